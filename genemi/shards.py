"""Writing many images as one shard: a stored zip per split, atomic, with fixed member timestamps so the
same images give the same bytes (:class:`ShardWriter`), and listing a shard's image members.
"""

from __future__ import annotations

import contextlib
import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from genemi.archives import _archive, _is_member


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

        self.folder = Path(os.path.normpath(folder))
        self._abs_folder = Path(os.path.abspath(folder))
        if self.folder.name in ("", ".", ".."):
            raise ValueError(f"{folder}: a shard needs a folder name (it is written as <folder>.zip)")
        self.path = self.folder.with_name(self.folder.name + ".zip")
        if self.folder.is_dir():  # its loose files would shadow the shard's members
            raise FileExistsError(
                f"{self.folder}: a folder of loose images is in the way of its shard "
                f"{self.path.name}; remove the folder and run again"
            )
        if self.path.is_dir():
            raise IsADirectoryError(
                f"{self.path}: a folder is in the way of the shard; remove it and run again"
            )
        self._atomic = atomic_path(self.path, suffix=".zip")  # fails here, naming the path, when unwritable
        self._tmp = self._atomic.__enter__()
        try:
            self._zip = zipfile.ZipFile(self._tmp, "w", zipfile.ZIP_STORED)
        except BaseException as e:
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise
        self._names: set[str] = set()
        self._closed = False

    def write(self, path: str | os.PathLike, data: bytes) -> None:
        """Add image ``path`` (under ``folder``; ``..`` is resolved first) with its encoded ``data``."""
        p = Path(os.path.abspath(path))  # absolute and without ``..``: a member never climbs out
        if self._abs_folder not in p.parents:
            raise ValueError(
                f"{self.path}: cannot add {path}: it is not inside {self.folder}, the folder this shard "
                "stands for; write it to the shard of its own folder"
            )
        rel = p.relative_to(self._abs_folder.parent).as_posix()
        if rel in self._names:
            raise ValueError(f"{self.path}: image {rel} written twice; give each image its own name")
        self._names.add(rel)
        info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        self._zip.writestr(info, data)

    def close(self, error: BaseException | None = None) -> None:
        """Finish the shard and move it to ``<folder>.zip``; with ``error`` (or if finishing fails)
        remove the temporary file instead and leave any old shard as it was. Closing twice is a no-op."""
        if self._closed:
            return
        self._closed = True
        if error is not None:  # the shard is abandoned: the zip's end matters not, only the temp file
            with contextlib.suppress(Exception):
                self._zip.close()
            self._atomic.__exit__(type(error), error, error.__traceback__)
            return
        try:
            self._zip.close()
        except BaseException as e:  # e.g. the disk filled while writing the central directory
            self._atomic.__exit__(type(e), e, e.__traceback__)  # removes the temp file (or raises, naming it)
            raise
        self._atomic.__exit__(None, None, None)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind, error, tb) -> None:
        self.close(error)


def shard_members(archive: str | os.PathLike) -> Iterator[str]:
    """The member names of a shard or zip, in the order they were written (no folder entries, no
    ``__MACOSX/`` junk)."""
    yield from (i.filename for i in _archive(Path(archive)).zip.infolist() if _is_member(i.filename))
