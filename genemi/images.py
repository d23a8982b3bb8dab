"""The one image reader of every path: synthetic, real training, evaluation, mining.

Where an image lives. A path names an image as it would sit on disk once every archive is
unzipped (``data/synth/train/train-000001.png``). The reader finds it in one of two forms:

* a loose file at that path (hand-placed folders, BYO benchmarks), which always wins;
* a member of a zip archive: either a path component *is* a ``.zip`` file
  (``data/raw/coco/val2014.zip/val2014/COCO_...jpg``, a root that points into an archive), or a
  folder is absent and ``<folder>.zip`` sits beside it (the pipeline's own shards and the
  published GQA/COCO zips, read without extracting them). Inside the archive the member is
  looked up with the folder's name as its first component and, failing that, without it, so
  both ways people zip a folder resolve.

Collections of many images are written as zip shards (:class:`ShardWriter`): one file per
split instead of tens of thousands, so DVC checks a handful of files on every ``dvc status``.
Members are stored uncompressed (PNG/JPEG are compressed already), so a member read is a seek
and a read.

PIL opens lazily: ``Image.open`` reads the header only, and a truncated or corrupt body
fails later, inside whatever first touches the pixels, with a message naming no file. Here
the whole image is decoded inside the ``try``, so every failure (missing file, truncated
data, unidentified format, any other ``OSError``) becomes one :class:`ImageError` that names
the file and what refers to it (``what``: the record, benchmark or manifest line).
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


class ImageError(ValueError):
    """An image cannot be read; the message names the file, who refers to it and what to do."""


class ImageNotFound(ImageError, FileNotFoundError):
    """The referenced image file does not exist."""


def _decode(opener, label: str, what: str) -> Image.Image:
    ref = f" ({what})" if what else ""
    try:
        with opener() as im:
            im.load()  # force the full decode here: a truncated body fails now, not in a later convert
            return im.convert("RGB")
    except FileNotFoundError:
        raise ImageNotFound(f"{label}: image not found{ref}; fix the path or the image root") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{label}: image too large to decode{ref}: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL raises all three for corrupt data
        why = str(e) or type(e).__name__
        raise ImageError(
            f"{label}: cannot decode image{ref}: {why}; replace the file (re-download or regenerate it)"
        ) from None


@dataclass(frozen=True)
class Located:
    """Where an image's bytes are: a loose ``file``, or ``member`` of the zip ``archive``."""

    file: Path | None = None
    archive: Path | None = None
    member: str = ""

    def read_bytes(self) -> bytes:
        if self.file is not None:
            return self.file.read_bytes()
        try:
            return _archive(self.archive).read(self.member)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:  # damaged: bad CRC, cut short
            raise ImageError(
                f"{self}: cannot read from the archive ({e}); replace {self.archive.name} "
                "(re-download or regenerate it)"
            ) from None

    def __str__(self) -> str:
        return str(self.file) if self.file is not None else f"{self.archive}:{self.member}"


class _Archive:
    """An open zip and its member names; one per archive and process (a forked worker reopens it:
    a shared file offset between processes would interleave their reads)."""

    def __init__(self, path: Path) -> None:
        st = path.stat()
        self.signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        try:
            self.zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile as e:
            raise ImageError(
                f"{path}: not a readable zip archive ({e}); replace the file (re-download or regenerate it)"
            ) from None
        self.names = set(self.zip.namelist())
        self.lock = threading.Lock()

    def read(self, member: str) -> bytes:
        with self.lock:
            return self.zip.read(member)


_ARCHIVES: dict[tuple[int, str], _Archive] = {}


def _archive(path: Path) -> _Archive:
    key = (os.getpid(), str(path))
    a = _ARCHIVES.get(key)
    st = path.stat()
    if a is None or a.signature != (st.st_mtime_ns, st.st_size, st.st_ino):  # rewritten since: reopen
        if a is not None:
            a.zip.close()
        a = _ARCHIVES[key] = _Archive(path)
    return a


def _is_zip(p: Path) -> bool:
    return p.suffix.lower() == ".zip" and p.is_file()


def locate(path: str | os.PathLike) -> Located | None:
    """Where the image ``path`` is (see the module doc), or ``None`` when it is nowhere."""
    path = Path(path)
    if path.is_file():
        return Located(file=path)
    parts = path.parts
    for i in range(len(parts) - 1, 0, -1):
        head = Path(*parts[:i])
        if not head.name:  # the file system's root: nothing above it to look in
            return None
        if _is_zip(head):  # a component is the archive itself
            archive, members = head, ["/".join(parts[i:]), "/".join((head.stem, *parts[i:]))]
        elif _is_zip(z := head.with_name(head.name + ".zip")):  # the folder's zip beside it
            archive, members = z, ["/".join(parts[i - 1 :]), "/".join(parts[i:])]
        elif head.is_dir():
            return None  # the deepest folder that exists has no archive on the way down
        else:
            continue
        names = _archive(archive).names
        for m in members:
            if m in names:
                return Located(archive=archive, member=m)
        return None
    return None


def image_exists(path: str | os.PathLike) -> bool:
    """Whether :func:`read_image` finds ``path`` (a loose file or an archive member)."""
    return locate(path) is not None


def read_bytes(path: str | os.PathLike, *, what: str = "") -> bytes:
    """The encoded bytes of image ``path`` (loose or archived); missing raises :class:`ImageNotFound`."""
    loc = locate(path)
    if loc is None:
        ref = f" ({what})" if what else ""
        raise ImageNotFound(
            f"{path}: image not found, neither as a file nor in a zip beside its folder{ref}; "
            "fix the path or the image root"
        )
    return loc.read_bytes()


def read_image(path: str | os.PathLike, *, what: str = "") -> Image.Image:
    """The image at ``path`` (a file or an archive member) fully decoded, as PIL RGB. ``what`` names the
    referrer in errors."""
    loc = locate(path)
    if loc is None or loc.file is not None:  # a missing file raises ImageNotFound naming the path
        file = Path(path) if loc is None else loc.file
        return _decode(lambda: Image.open(file), str(file), what)
    data = loc.read_bytes()
    return _decode(lambda: Image.open(io.BytesIO(data)), str(loc), what)


def read_image_bytes(data: bytes, *, label: str, what: str = "") -> Image.Image:
    """An encoded image held in memory (e.g. a parquet cell) as PIL RGB; ``label`` stands for the file."""
    return _decode(lambda: Image.open(io.BytesIO(data)), label, what)


def read_rgb(path: str | os.PathLike, *, what: str = "") -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB of the image at ``path`` (see :func:`read_image`)."""
    return np.asarray(read_image(path, what=what))


def encode_png(image: Image.Image, compress_level: int | None = None) -> bytes:
    """PNG bytes of ``image`` (the same bytes :func:`genemi.io.write_png` writes to a file)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", **({} if compress_level is None else {"compress_level": compress_level}))
    return buf.getvalue()


class ShardWriter:
    """Write the images of one folder as one zip shard, ``<folder>.zip``, atomically.

    ``write(path, data)`` takes the image's path as readers will name it (under ``folder``); the
    member is that path relative to the folder's parent, so unzipping the shard beside it
    recreates ``folder``. Members are stored (no recompression) with fixed timestamps, so the same
    images in the same order give a byte-identical shard and DVC sees no change. Nothing appears
    at ``<folder>.zip`` until :meth:`close` (the ``with`` block) succeeds.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        from genemi.io import atomic_path

        self.folder = Path(folder)
        self.path = self.folder.with_name(self.folder.name + ".zip")
        if self.folder.is_dir():  # its loose files would shadow the shard's members
            raise FileExistsError(
                f"{self.folder}: a folder of loose images is in the way of its shard "
                f"{self.path.name}; remove the folder and run again"
            )
        self._atomic = atomic_path(self.path, suffix=".zip")
        self._tmp = self._atomic.__enter__()
        self._zip = zipfile.ZipFile(self._tmp, "w", zipfile.ZIP_STORED)
        self._names: set[str] = set()

    def write(self, path: str | os.PathLike, data: bytes) -> None:
        rel = Path(path).relative_to(self.folder.parent).as_posix()
        if rel in self._names:
            raise ValueError(f"{self.path}: image {rel} written twice")
        self._names.add(rel)
        info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        self._zip.writestr(info, data)

    def close(self, error: BaseException | None = None) -> None:
        self._zip.close()
        if error is None:
            self._atomic.__exit__(None, None, None)
        else:
            self._atomic.__exit__(type(error), error, error.__traceback__)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind, error, tb) -> None:
        self.close(error)


def shard_members(archive: str | os.PathLike) -> Iterator[str]:
    """The member names of a shard, in the order they were written."""
    yield from (i.filename for i in _archive(Path(archive)).zip.infolist() if not i.is_dir())
