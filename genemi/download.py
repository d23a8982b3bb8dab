"""Verified, resumable, atomic downloads and path-safe archive extraction.

Lifecycle of one downloaded file (:func:`fetch`), all under a downloads folder that is *not* a DVC
output (so ``dvc repro`` never deletes a half-finished 20 GB download):

* ``<dest>.part``  bytes received so far; kept after an interruption and resumed with an HTTP
  ``Range`` request on the next call;
* ``<dest>``       the complete file, renamed from ``.part`` only after its size and sha256 check;
* the lock file    ``{key: {"sha256": hex, "size": int, "source": str}}`` (JSON, sorted keys). An entry is
  written the first time a file is verified (trust on first use) and checked on every later use;
  a mismatch is an error, never a silent re-download.

Without network, :func:`fetch` fails at once (no retry before the first byte) with the URL and the path
where a manually fetched file is accepted; a file placed there is verified the same way and used.

Folders that third-party tools fill (a Hugging Face snapshot, stanza models) go through
:func:`fetch_tree`: filled in a fixed ``.partial`` folder (tools resume inside it), hashed as a tree,
checked against the lock, then renamed into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath

from genemi.io import write_json

CHUNK = 1 << 20  # 1 MiB: large enough that Python overhead is negligible, small enough for a smooth bar


class DownloadError(RuntimeError):
    """A download or its verification failed; the message names the URL/file and what to do."""


# --------------------------------------------------------------------------------------------- lock file


RELOCK_ENV = "GENEMI_RELOCK"  # 1/true/all: re-pin every key a run checks; "a,b": only those lock keys


class Lock:
    """The lock file: expected sha256 and size of every fetched file or tree, keyed by a stable name.

    Read-modify-write happens under an ``flock`` on a sidecar file, so two download stages run in
    parallel (``dvc exp run --jobs``) do not lose each other's entries.
    """

    def __init__(self, path: str | os.PathLike, relock: bool | Iterable[str] = False) -> None:
        """``relock``: True (every key) or the keys whose entry a mismatching file may replace -- the way
        out when the first run pinned a wrong file (placed by hand) and the right one is now in place."""
        self.path = Path(path)
        self.relock = relock if isinstance(relock, bool) else frozenset(relock)

    @staticmethod
    def relock_setting(flag: bool) -> bool | list[str]:
        """What to re-pin: everything with ``--relock`` or ``GENEMI_RELOCK=1``; the listed lock keys with
        ``GENEMI_RELOCK=<key>,<key>`` (which also reaches a stage run by ``dvc repro``); else nothing."""
        env = os.environ.get(RELOCK_ENV, "").strip()
        if flag or env.lower() in ("1", "true", "all"):
            return True
        return [k.strip() for k in env.split(",") if k.strip()]

    def relocks(self, key: str) -> bool:
        return self.relock is True or (not isinstance(self.relock, bool) and key in self.relock)

    def remedy(self, key: str, what: Path) -> str:
        """What to do about a file that does not match ``key``'s entry (works offline)."""
        return (
            f"If {what} is the right file (e.g. it replaces a wrong one placed by hand), re-pin it: "
            f"rerun with "
            f"GENEMI_RELOCK={key} (or `python stages/download_<name>.py --relock ...`), or remove the \"{key}\" "
            f"entry from {self.path}. Otherwise delete {what} and run again to download it."
        )

    def read(self) -> dict[str, dict]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DownloadError(
                f"{self.path}: lock file is not valid JSON ({e.msg}); fix or delete it"
            ) from e
        if not isinstance(data, dict):
            raise DownloadError(f"{self.path}: lock file must be a JSON object")
        return data

    def get(self, key: str) -> dict | None:
        return self.read().get(key)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".flock"), "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def check_or_record(
        self, key: str, sha256: str, size: int, source: str, what: Path, published_size: int | None = None
    ) -> bool:
        """Compare with the recorded entry, or record it if there is none; return True if recorded.

        Raises :class:`DownloadError` naming ``what`` (the file or folder) on a mismatch, unless ``key``
        is to be re-pinned (``relock``). A new pin is refused when ``published_size`` (the size the
        source announces, where known) differs from ``size``.
        """
        with self._locked():
            data = self.read()
            entry = data.get(key)
            if entry is not None and entry.get("size") == size and entry.get("sha256") == sha256:
                return False
            if published_size is not None and published_size != size:
                raise DownloadError(
                    f"{what}: {size} bytes, but {source} is published with {published_size} bytes; this "
                    f"is not the file {key!r} names (truncated or another file). Replace it, or delete it "
                    f"and run again."
                )
            if entry is not None:
                if not self.relocks(key):
                    raise DownloadError(
                        f"{what}: checksum mismatch for {key!r}: expected sha256 {entry.get('sha256')} "
                        f"({entry.get('size')} bytes) from {self.path}, got {sha256} ({size} bytes). "
                        f"The file is corrupt, or the upstream file changed, or the pinned one was wrong. "
                        + self.remedy(key, what)
                    )
                print(
                    f"{self.path}: re-pinned {key!r}: sha256 {entry.get('sha256')} "
                    f"({entry.get('size')} bytes) "
                    f"-> {sha256} ({size} bytes)",
                    file=sys.stderr,
                )
            data[key] = {"sha256": sha256, "size": size, "source": source}
            write_json(self.path, data)
            return True


def sha256_file(path: str | os.PathLike, h: hashlib._Hash | None = None) -> str:
    """Hex sha256 of a file, read in chunks (constant memory)."""
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _progress(total: int | None, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not enabled,
        leave=False,
    )


# ------------------------------------------------------------------------------------------------ fetch


def _manual_hint(url: str, dest: Path) -> str:
    return (
        f"If this machine has no network, fetch {url} elsewhere and place it at {dest.resolve()}; "
        f"it will be verified against the lock file and used."
    )


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` -> (100, 1000); ``bytes */1000`` -> (None, 1000); unknown parts -> None."""
    m = re.fullmatch(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", (header or "").strip())
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def published_size(url: str, timeout: float = 10.0) -> int | None:
    """The size ``url``'s server announces (HEAD ``Content-Length``), or None when unknown or offline."""
    try:
        req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "genemi-download/0.1",
                                                                 "Accept-Encoding": "identity"})
        with urllib.request.urlopen(req, timeout=min(timeout, 10.0)) as resp:
            length = resp.headers.get("Content-Length")
            return int(length) if length is not None and length.isdigit() else None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        return None


def _open(url: str, start: int, timeout: float, dest: Path):
    """Open ``url`` from byte ``start``; return (response, offset the body starts at, total size or None)."""
    headers = {"User-Agent": "genemi-download/0.1", "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:
            # Range beyond the end: the .part may already hold the whole file; the caller checks.
            _, total = _content_range(e.headers.get("Content-Range"))
            e.close()
            return None, start, total
        raise DownloadError(
            f"HTTP {e.code} {e.reason} for {url}. Check the URL in params.yaml (section 'real'). "
            + _manual_hint(url, dest)
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"cannot reach {url}: {reason}. " + _manual_hint(url, dest)) from None
    if start and resp.status == 206:
        got, total = _content_range(resp.headers.get("Content-Range"))
        if got != start:
            resp.close()
            raise DownloadError(
                f"{url}: asked for bytes from {start}, server sent {got}; delete {dest}.part and run again"
            )
        return resp, start, total
    length = resp.headers.get("Content-Length")
    return resp, 0, int(length) if length is not None else None  # 200: a full body (Range ignored)


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    key: str,
    lock: Lock,
    timeout: float = 10.0,
    retries: int = 3,
    progress: bool = True,
) -> Path:
    """Make ``dest`` hold the verified content of ``url``; return ``dest``.

    * ``dest`` exists (a previous run, or placed by hand) -> verified against ``lock[key]`` (recorded if new).
    * otherwise bytes go to ``dest.part`` (resumed if present), are size- and sha256-checked, and the
      file is renamed onto ``dest``. A connection cut after some progress is resumed up to ``retries``
      times; a failure before the first byte raises immediately, so no network means failing in seconds.

    ``timeout`` (seconds) bounds the connect and every read.
    """
    dest = Path(dest)
    if dest.is_file():
        entry = lock.get(key)
        size = dest.stat().st_size
        relock = lock.relocks(key)
        if entry is not None and entry.get("size") != size and not relock:  # cheap check before hashing GBs
            raise DownloadError(
                f"{dest}: size mismatch for {key!r}: expected {entry.get('size')} bytes from {lock.path}, "
                f"found {size}. " + lock.remedy(key, dest)
            )
        # a file placed by hand and about to be pinned is checked against the size the server announces
        published = published_size(url, timeout) if entry is None or relock else None
        lock.check_or_record(key, sha256_file(dest), size, url, dest, published_size=published)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempts = 0
    digest = None  # sha256 of the whole .part, kept while streaming so 20 GB are not read twice
    while True:
        start = part.stat().st_size if part.is_file() else 0
        resp, offset, total = _open(url, start, timeout, dest)
        if resp is None:  # 416: nothing after `start`
            if total is not None and total != start:
                part.unlink()  # the .part is longer than the file: it is not this file; start over
                continue
            break
        free = shutil.disk_usage(dest.parent).free
        if total is not None and total - offset > free:
            resp.close()
            raise DownloadError(
                f"{url}: {(total - offset) / 2**30:.1f} GiB still to download but {dest.parent} "
                f"has {free / 2**30:.1f} GiB free; free space or move the downloads folder"
            )
        h = hashlib.sha256()
        mode = "ab" if offset else "wb"
        if offset:
            sha256_file(part, h)  # hash the bytes we already have, then continue the same hash
        received = offset
        try:
            with resp, open(part, mode) as f, _progress(total, offset, dest.name, progress) as bar:
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:  # reset, timeout, short read mid-body
            cut = f"{type(e).__name__}: {e}"
        else:
            cut = None if total is None or received >= total else "connection closed early"
        if cut is None:
            if total is not None and received != total:
                part.unlink()
                raise DownloadError(
                    f"{url}: received {received} bytes, server announced {total}; "
                    f"the partial file was removed, run again"
                )
            digest = h.hexdigest()
            break
        attempts += 1
        if attempts > retries:
            raise DownloadError(
                f"{url}: download interrupted after {received} of {total or '?'} bytes ({cut}). "
                f"The partial file {part} is kept; run again to resume."
            )
    size = part.stat().st_size
    digest = digest or sha256_file(part)  # the 416 path (all bytes already there) streamed nothing
    try:
        lock.check_or_record(key, digest, size, url, dest)
    except DownloadError:
        part.unlink()  # a corrupt .part would otherwise be "resumed" forever
        raise
    os.replace(part, dest)
    return dest


# ------------------------------------------------------------------------------------------------- trees


def tree_digest(root: str | os.PathLike) -> tuple[str, int, int]:
    """(sha256 over sorted ``relpath\\0sha256\\n`` lines, total bytes, file count) of a folder."""
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    h = hashlib.sha256()
    total = 0
    for p in files:
        h.update(f"{p.relative_to(root).as_posix()}\0{sha256_file(p)}\n".encode())
        total += p.stat().st_size
    return h.hexdigest(), total, len(files)


def fetch_tree(
    dest: str | os.PathLike, fill: Callable[[Path], None], *, key: str, lock: Lock, source: str
) -> Path:
    """Make folder ``dest`` hold a verified tree that ``fill(partial_dir)`` downloads; return ``dest``.

    ``fill`` is called with a fixed ``<dest>.partial`` folder, so a tool that resumes (huggingface_hub)
    continues where an interrupted run stopped. An existing ``dest`` (or one placed by hand) is verified
    and used without calling ``fill``. Any exception from ``fill`` becomes a :class:`DownloadError`
    naming ``source`` and the manual path.
    """
    dest = Path(dest)
    if dest.is_dir():
        digest, size, _ = tree_digest(dest)
        lock.check_or_record(key, digest, size, source, dest)
        return dest
    partial = dest.with_name(dest.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    try:
        fill(partial)
    except DownloadError:
        raise
    except Exception as e:  # tools raise their own types (requests, huggingface_hub, stanza)
        raise DownloadError(
            f"cannot download {source}: {type(e).__name__}: {e}. The partial folder {partial} is kept; run "
            f"again to resume. Without network, build this folder elsewhere and place it at {dest.resolve()}."
        ) from None
    digest, size, _ = tree_digest(partial)
    lock.check_or_record(key, digest, size, source, dest)
    os.replace(partial, dest)
    return dest


# ---------------------------------------------------------------------------------------------- extract


def _mkdtemp(near: Path) -> Path:
    """A fresh hidden sibling folder of ``near``, with normal permissions (mkdtemp makes it 0700)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{near.name}.", suffix=".tmp", dir=near.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    return tmp


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _safe_member_path(name: str, archive: Path) -> PurePosixPath:
    """The member's relative path; raises if it is absolute, climbs with ``..`` or is otherwise unsafe."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or "\\" in name or "\0" in name:
        raise DownloadError(f"{archive}: refusing to extract absolute or non-POSIX entry {name!r}")
    rel = PurePosixPath(name)
    if any(part == ".." for part in rel.parts):
        raise DownloadError(f"{archive}: refusing to extract entry {name!r}: it escapes the target folder")
    return rel


def safe_extract_zip(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    reserve_bytes: int = 1 << 30,
    progress: bool = True,
) -> Path:
    """Extract ``archive`` into the new folder ``dest`` atomically; return ``dest``.

    Every entry is checked before anything is written: absolute paths, ``..`` components and symlinks
    raise :class:`DownloadError` naming the entry. The uncompressed size plus ``reserve_bytes`` must fit
    in the free space of ``dest``'s file system. Files go to a temporary sibling folder that is renamed
    onto ``dest`` at the end; ``dest`` must not exist yet (DVC removes stage outputs before a run).
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise DownloadError(f"{dest}: already exists; remove it to extract {archive} again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise DownloadError(f"{archive}: not a readable zip archive ({e}); delete it and run again") from None
    with zf:
        infos = zf.infolist()
        plan = []
        for info in infos:
            rel = _safe_member_path(info.filename, archive)
            if _is_symlink(info):
                raise DownloadError(f"{archive}: refusing to extract symlink entry {info.filename!r}")
            plan.append((info, rel))
        need = sum(info.file_size for info in infos)
        free = shutil.disk_usage(dest.parent).free
        if need + reserve_bytes > free:
            raise DownloadError(
                f"{archive}: extracting needs {need / 2**30:.1f} GiB "
                f"(+{reserve_bytes / 2**30:.1f} GiB reserve) but {dest.parent} has {free / 2**30:.1f} GiB "
                f"free; free space or move the data folder"
            )
        tmp = _mkdtemp(dest)
        try:
            root = tmp.resolve()
            with _progress(need, 0, f"extract {archive.name}", progress) as bar:
                for info, rel in plan:
                    target = tmp.joinpath(*rel.parts)
                    # Belt and braces: the resolved path must stay inside the temporary root.
                    if not target.resolve().is_relative_to(root):
                        raise DownloadError(f"{archive}: entry {info.filename!r} escapes the target folder")
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
                    bar.update(info.file_size)
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Place ``src`` at ``dst`` as a hard link (no extra disk), else a copy; atomic either way."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:  # another file system, or links not supported
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return dst


def link_tree(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Mirror folder ``src`` at ``dst`` with hard links (copies across file systems)."""
    src, dst = Path(src), Path(dst)
    for p in sorted(src.rglob("*")):
        target = dst / p.relative_to(src)
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif p.is_file():
            link_or_copy(p, target)
    dst.mkdir(parents=True, exist_ok=True)
    return dst


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary sibling folder; on success it replaces ``path`` (a stage output) whole
    (inside a stage, together with its other outputs: :class:`genemi.io.OutputSet`).

    On any exception the temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _mkdtemp(path)
    try:
        yield tmp
        from genemi.io import current

        outputs = current()
        if outputs is not None and outputs.defers(path):  # replaces path with the stage's other outputs
            outputs.hold_folder(path, tmp)
            return
        if path.exists():
            shutil.rmtree(path)  # our own previous output (DVC normally removes it before the run)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def hf_file_url(
    repo_id: str, filename: str, revision: str, repo_type: str = "dataset", endpoint: str | None = None
) -> str:
    """The resolve URL of one file of a Hugging Face repo (huggingface_hub builds it; no request made).

    The bytes then go through :func:`fetch`, so HF files get the same lock, resume and offline behaviour
    as every other download. ``endpoint`` overrides ``https://huggingface.co`` (a mirror, or tests).
    """
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo_id, filename, repo_type=repo_type, revision=revision, endpoint=endpoint)


__all__ = [
    "DownloadError",
    "atomic_dir",
    "link_tree",
    "Lock",
    "fetch",
    "fetch_tree",
    "hf_file_url",
    "link_or_copy",
    "safe_extract_zip",
    "sha256_file",
    "tree_digest",
]
