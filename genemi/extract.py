"""Path-safe archive extraction and atomic placement of stage output folders.

:func:`safe_extract_zip` checks every entry of a zip before writing anything (no absolute paths, no ``..``,
no symlinks; the uncompressed size must fit on the disk) and extracts into a temporary sibling folder that
is renamed onto the target at the end. :func:`atomic_dir` gives a stage the same all-or-nothing output
folder for content it writes itself, and :func:`link_or_copy` / :func:`link_tree` place verified downloads
into stage outputs as hard links (copies across file systems), so a 20 GB download is not stored twice.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from genemi.lockfile import CHUNK, DownloadError, byte_progress


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
            with byte_progress(need, 0, f"extract {archive.name}", progress) as bar:
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
