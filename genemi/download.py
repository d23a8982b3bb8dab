"""Verified, resumable, atomic HTTP downloads of single files.

Lifecycle of one downloaded file (:func:`fetch`), all under a downloads folder that is *not* a DVC
output (so ``dvc repro`` never deletes a half-finished 20 GB download): ``<dest>.part`` holds the bytes
received so far, is kept after an interruption and resumed with an HTTP ``Range`` request on the next
call; ``<dest>`` is the complete file, renamed from ``.part`` only after its size and sha256 match the
lock file (:mod:`genemi.lockfile`). Without network, :func:`fetch` fails at once (no retry before the first
byte) with the URL and the path where a manually fetched file is accepted; a file placed there is verified
the same way and used. Single files of a Hugging Face repo take the same road (:func:`hf_file_url`); whole
folders that third-party tools fill are :mod:`genemi.snapshot`'s, archives :mod:`genemi.extract`'s.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from genemi.lockfile import CHUNK, DownloadError, Lock, byte_progress, sha256_file


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
            with resp, open(part, mode) as f, byte_progress(total, offset, dest.name, progress) as bar:
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


def hf_file_url(
    repo_id: str, filename: str, revision: str, repo_type: str = "dataset", endpoint: str | None = None
) -> str:
    """The resolve URL of one file of a Hugging Face repo (huggingface_hub builds it; no request made).

    The bytes then go through :func:`fetch`, so HF files get the same lock, resume and offline behaviour
    as every other download. ``endpoint`` overrides ``https://huggingface.co`` (a mirror, or tests).
    """
    from huggingface_hub import hf_hub_url

    return hf_hub_url(repo_id, filename, repo_type=repo_type, revision=revision, endpoint=endpoint)
