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

Member names. Zips come from many tools, so a member is also found under the names they store:
``./`` prefixes, Windows ``\\`` separators, doubled ``//``, macOS NFD Unicode, UTF-8 names
stored without the zip's UTF-8 flag (zipfile reads those as cp437); ``<folder>.ZIP`` is found
like ``<folder>.zip``. These spellings are indexed once when the archive is opened (a read stays
a dict look-up); a stored name always wins, and two members that spell the same name, or one
name stored twice, are an error, never a guess. There is no case folding and no dropped
folder: a zip that holds ``images/images/x.jpg`` is not read as ``images/x.jpg`` (the error
says to point the image root into the archive, ``images.zip/images/images``). Folder entries
and ``__MACOSX/`` junk are not members.
A ``..`` after a folder that exists only inside a zip is applied by name before the look-up
(the OS cannot climb out of a folder it does not have; after a real folder the OS resolves it,
following symbolic links), so a member named ``../x`` or ``/x`` is never reached. A folder
that exists but lacks an image reads it from ``<folder>.zip`` beside it when that holds it (a
partly extracted archive); when neither does, the error names both places.

The open archive is cached per process and path, and reopened when the file's mtime, size,
inode or device changes (a rewritten shard) or in a forked worker (a shared file offset would interleave
reads); threads share it under a lock. A member declaring more than 1 GiB is refused before
it is inflated (a damaged header or a zip bomb).

Collections of many images are written as zip shards (:class:`ShardWriter`): one file per
split instead of tens of thousands, so DVC checks a handful of files on every ``dvc status``.
Members are stored uncompressed (PNG/JPEG are compressed already), so a member read is a seek
and a read.

PIL opens lazily: ``Image.open`` reads the header only, and a truncated or corrupt body
fails later, inside whatever first touches the pixels, with a message naming no file. Here
the whole image is decoded inside the ``try``, so every failure (missing file, truncated
data, unidentified format, any other ``OSError``, and every archive fault: cut short, bad CRC,
a compression method zipfile lacks, encryption, permission denied) becomes one
:class:`ImageError` on one line that names the file (``archive:member`` for a member), what
refers to it (``what``: the record, benchmark or manifest line) and what to do. A miss says
where the reader looked and what is in the way (a broken link, a folder named ``.zip``, a file
where a folder should be).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import threading
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from genemi import outputs as _outputs  # the running stage's outputs, which no image read may be


class ImageError(ValueError):
    """An image cannot be read; the message names the file, who refers to it and what to do."""


class ImageNotFound(ImageError, FileNotFoundError):
    """The referenced image file does not exist."""


_ORIENTATION = 0x0112  # the EXIF tag cameras and phones set instead of rotating the pixels
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def as_seen(im: Image.Image) -> Image.Image:
    """``im`` as PIL RGB, the way an image viewer shows it. ``convert("RGB")`` alone does not:

    * 16-bit greyscale (``I;16*``, PNG/TIFF) and 32-bit ``I`` are clipped at 255, so nearly every pixel
      turns white; they are scaled from 0..65535 to 0..255 (``I`` whose values stay within 0..255 is taken
      as 8-bit levels). Float ``F`` in [0, 1] is scaled by 255, other float ranges are clipped to 0..255;
    * transparency (``RGBA``, ``LA``, ``PA``, ``P`` with a transparent colour) is dropped, showing
      whatever colour the transparent pixels store (often black); it is composited over white;
    * an EXIF orientation (phone photos) is ignored; the pixels are turned upright;
    * CMYK with an embedded ICC profile is converted through it to sRGB.

    An ``RGB`` image without an EXIF orientation comes back as ``im.convert("RGB")``, the same pixels.
    """
    orientation = im.getexif().get(_ORIENTATION, 1) if "exif" in im.info or im.format == "TIFF" else 1
    if orientation not in (1, None):
        from PIL import ImageOps

        im = ImageOps.exif_transpose(im)
    mode = im.mode
    if mode == "RGB":
        return im.convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if mode == "F":
            a = a * 255.0 if a.size and np.nanmin(a) >= 0 and np.nanmax(a) <= 1 else a
        elif mode.startswith("I;16") or (a.size and a.max() > 255):
            a = np.clip(a, 0, 65535) / 257.0
        a = np.nan_to_num(a, nan=0.0)
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "CMYK" and im.info.get("icc_profile"):
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
            return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:  # a damaged profile or no littlecms: PIL's plain conversion below
            pass
    return im.convert("RGB")


def _decode(opener, label: str, what: str) -> Image.Image:
    ref = f" ({what})" if what else ""
    try:
        with opener() as im:
            im.load()  # force the full decode here: a truncated body fails now, not in a later convert
            return as_seen(im)
    except FileNotFoundError:
        raise ImageNotFound(f"{label}: image not found{ref}; fix the path or the image root") from None
    except PermissionError:
        raise ImageError(
            f"{label}: cannot read the image (permission denied){ref}; make it readable"
        ) from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{label}: image too large to decode{ref}: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL raises all three for corrupt data
        why = str(e) or type(e).__name__
        if isinstance(e, UnidentifiedImageError):  # PIL's text names a BytesIO's memory address
            why = "not an image format PIL can read"
        raise ImageError(
            f"{label}: cannot decode image{ref}: {why}; replace the file (re-download or regenerate it)"
        ) from None


@dataclass(frozen=True)
class Located:
    """Where an image's bytes are: a loose ``file``, or ``member`` of the zip ``archive`` (its name as
    stored, which may differ from the asked one by the spellings :func:`_aliases` accepts)."""

    file: Path | None = None
    archive: Path | None = None
    member: str = ""

    def read_bytes(self, what: str = "") -> bytes:
        ref = f" ({what})" if what else ""
        if self.file is not None:
            try:
                return self.file.read_bytes()
            except OSError as e:
                raise ImageError(
                    f"{self.file}: cannot read the image ({e.strerror or e}){ref}; "
                    "check that it is a readable file"
                ) from None
        try:
            return _archive(self.archive, what).read(self.member, what)
        except ImageError:
            raise
        except NotImplementedError:  # zipfile cannot inflate it (Deflate64 from Windows Explorer, PPMd...)
            raise ImageError(
                f"{self}: compressed with a method Python's zipfile cannot read{ref}; re-zip "
                f"{self.archive.name} with plain deflate or no compression (zip -r)"
            ) from None
        except RuntimeError as e:  # an encrypted member
            raise ImageError(
                f"{self}: cannot read from the archive ({e}){ref}; re-zip "
                f"{self.archive.name} without a password"
            ) from None
        except KeyError:  # the archive was replaced between the look-up and the read
            raise ImageNotFound(
                f"{self}: the member vanished: {self.archive.name} was replaced while "
                f"being read{ref}; run again"
            ) from None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as e:  # bad CRC, cut short
            raise ImageError(
                f"{self}: cannot read from the archive ({e}){ref}; replace {self.archive.name} "
                "(re-download or regenerate it)"
            ) from None

    def __str__(self) -> str:
        return str(self.file) if self.file is not None else f"{self.archive}:{self.member}"


def _aliases(info: zipfile.ZipInfo) -> set[str]:
    """Other spellings a member is found by, besides its stored name: ``/`` for Windows' ``\\``, no
    leading ``./``, Unicode NFC (macOS writes NFD), and the UTF-8 reading of a name stored without
    the UTF-8 flag (which zipfile decodes as cp437). Never a case change or a dropped folder: those
    could find a different image than the one asked for."""
    names = {info.filename}
    if not info.flag_bits & 0x800 and not info.filename.isascii():
        try:
            names.add(info.filename.encode("cp437").decode("utf-8"))
        except UnicodeError:
            pass
    out = set()
    for n in names:
        n = n.replace("\\", "/")
        while "//" in n:
            n = n.replace("//", "/")
        while n.startswith("./"):
            n = n[2:]
        out |= {n, unicodedata.normalize("NFC", n)}
    return out - {info.filename}


def _is_member(name: str) -> bool:
    """An image member: not a folder entry, not macOS's ``__MACOSX/`` resource-fork junk."""
    return not name.endswith(("/", "\\")) and not name.startswith("__MACOSX/")


class _Archive:
    """An open zip and its member index; one per archive and process (a forked worker reopens it:
    a shared file offset between processes would interleave their reads).

    ``index`` maps every name a member is looked up by to its stored name: the stored names
    themselves, then the spellings of :func:`_aliases` that no stored name already has. An alias
    two members share maps to ``None`` (ambiguous: an error, never a guess). Built once on open,
    so a read is a dict look-up and a read."""

    def __init__(self, path: Path, what: str = "") -> None:
        ref = f" ({what})" if what else ""
        try:
            st = path.stat()
            self.signature = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
            self.zip = zipfile.ZipFile(path)
            self.lock = threading.Lock()
        except PermissionError:
            raise ImageError(
                f"{path}: cannot open the archive (permission denied){ref}; make it readable"
            ) from None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise ImageError(
                f"{path}: not a readable zip archive ({e}){ref}; replace the file (re-download or "
                "regenerate it)"
            ) from None
        # Folder entries and __MACOSX/ junk stay in the index: an asked path never ends with "/", and
        # filtering 150k names in Python would cost more than the look-ups they could never match.
        names = self.zip.namelist()
        self.index: dict[str, str | None] = dict(zip(names, names, strict=True))
        self.clashes: dict[str, list[str]] = {}
        if len(self.index) < len(names):  # a name stored twice: which one is meant is unknowable
            seen: set[str] = set()
            for n in names:
                if n in seen:
                    self.clashes[n] = [n, n]
                    self.index[n] = None
                seen.add(n)
        joined = "\n".join(names)  # one C-speed test for the common case: nothing to alias
        if joined.isascii() and "\\" not in joined and "//" not in joined and "./" not in joined:
            return
        for info in self.zip.infolist():
            n = info.filename
            if not _is_member(n) or (
                n.isascii() and "\\" not in n and "//" not in n and not n.startswith("./")
            ):
                continue  # an ASCII name without ``\\``, ``//`` or a ``./`` prefix has no other spelling
            for alias in _aliases(info):
                if alias in self.index and (self.index[alias] == alias or alias in self.clashes):
                    continue  # a stored name is always itself
                if alias in self.index:
                    self.clashes.setdefault(alias, [self.index[alias]]).append(n)
                    self.index[alias] = None
                else:
                    self.index[alias] = n

    def find(self, member: str) -> str | None:
        """The stored name of ``member`` (asked in any spelling of :func:`_aliases`), or ``None``."""
        key = member
        name = self.index.get(key, "")
        if name == "":  # not a stored name: the asked spelling may be NFD (macOS) where the zip is NFC
            key = unicodedata.normalize("NFC", member)
            name = self.index.get(key, "")
        if name is None:
            first, second = sorted(self.clashes[key])[:2]
            what = "is stored twice" if first == second else f"and {second!r} both stand for {member!r}"
            raise ImageError(
                f"{self.zip.filename}: member {first!r} {what}, so which image is meant is "
                "unknown; re-zip it without the duplicate"
            )
        return name or None

    def read(self, member: str, what: str = "") -> bytes:
        info = self.zip.getinfo(member)  # the look-up zip.read does anyway
        if info.file_size > MAX_MEMBER_BYTES:  # zipfile stops at the declared size: this bounds memory
            raise ImageError(
                f"{self.zip.filename}:{member}: declares {info.file_size} bytes, more than any image "
                f"here ({MAX_MEMBER_BYTES} bytes){f' ({what})' if what else ''}; the archive is damaged "
                "or not an image set: replace it"
            )
        with self.lock:
            return self.zip.read(info)


_ARCHIVES: dict[tuple[int, str], _Archive] = {}
MAX_MEMBER_BYTES = 1 << 30  # an encoded image above 1 GiB is a damaged header or a zip bomb


def _archive(path: Path, what: str = "") -> _Archive:
    key = (os.getpid(), str(path))
    a = _ARCHIVES.get(key)
    try:
        st = path.stat()
    except OSError:
        st = None  # gone or unreadable: _Archive names the problem
    if a is None or st is None or a.signature != (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev):
        # rewritten since: reopen. The old zip is not closed here: another thread may still be
        # reading from it; it closes when its last reference goes.
        a = _ARCHIVES[key] = _Archive(path, what)
    return a


def _mode(p: Path) -> int:
    """``st_mode`` of ``p``, 0 when nothing is there. A name too long for the file system is not
    there either: a zip member's name has no such limit, so the look-up goes on into archives."""
    try:
        return os.stat(p).st_mode
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in the path
        return 0
    except OSError as e:
        if e.errno in (errno.ENAMETOOLONG, errno.ELOOP):
            return 0
        raise


def _zip_beside(head: Path) -> Path | None:
    """``<head>.zip`` (or ``.ZIP``, as some Windows tools name it) when it is a file."""
    for suffix in (".zip", ".ZIP"):
        z = head.with_name(head.name + suffix)
        if stat.S_ISREG(_mode(z)):
            return z
    return None


def _is_zip(p: Path) -> bool:
    return p.suffix.lower() == ".zip" and stat.S_ISREG(_mode(p))


def locate(path: str | os.PathLike, what: str = "") -> Located | None:
    """Where the image ``path`` is (see the module doc), or ``None`` when it is nowhere."""
    return _locate(Path(path), what)[0]


def _locate(path: Path, what: str = "") -> tuple[Located | None, tuple[Path, list[str], str] | None]:
    """:func:`locate`, and on a miss the archive and members it looked in (for the error message)."""
    try:
        return _find(path, what)
    except ImageError:
        raise
    except OSError as e:  # a folder on the way cannot be searched (permission denied, I/O error)
        ref = f" ({what})" if what else ""
        where = f" at {e.filename}" if e.filename and str(e.filename) != str(path) else ""
        raise ImageError(
            f"{_shown(path)}: cannot look for the image ({e.strerror or e}{where}){ref}; "
            "check that its folders are readable"
        ) from None


def _climb(path: Path) -> Path:
    """``path`` with each ``..`` that follows a folder absent from disk (one that exists only inside a
    zip, where the OS cannot climb out of it) applied by name. A ``..`` after a folder that exists is
    left to the OS, which follows symbolic links: the same file a loose read would open."""
    out: list[str] = []
    for part in path.parts:
        if part == ".." and out and out[-1] != ".." and not _is_dir(Path(*out)):
            out.pop()
        else:
            out.append(part)
    return Path(*out) if out else Path(".")


def _find(path: Path, what: str) -> tuple[Located | None, tuple[Path, list[str], str] | None]:
    if stat.S_ISREG(_mode(path)):
        return Located(file=path), None
    if ".." in path.parts and (climbed := _climb(path)) != path:
        return _find(climbed, what)
    parts = path.parts
    for i in range(len(parts) - 1, 0, -1):
        head = Path(*parts[:i])
        if not head.name:  # the file system's root: nothing above it to look in
            return None, None
        if _is_zip(head):  # a component is the archive itself
            rest = "/".join(parts[i:])
            archive, members = head, [rest, f"{head.stem}/{rest}"]
        elif z := _zip_beside(head):  # the folder's zip beside it
            rest = "/".join(parts[i:])
            archive, members = z, [f"{parts[i - 1]}/{rest}", rest]
        elif stat.S_ISDIR(_mode(head)):
            return None, None  # the deepest folder that exists has no archive on the way down
        else:
            continue
        a = _archive(archive, what)
        for m in members:
            if (name := a.find(m)) is not None:
                return Located(archive=archive, member=name), None
        return None, (archive, members, rest)
    return None, None


def _not_found(path: Path, looked: tuple[Path, list[str], str] | None, what: str) -> ImageNotFound:
    """The one-line error for an image that is nowhere: where it looked, the likely cause, what to do."""
    ref = f" ({what})" if what else ""
    why, todo = _why_missing(path, looked)
    return ImageNotFound(f"{_shown(path)}: {why}{ref}; {todo}")


def _shown(path: Path) -> str:
    """``path`` for a one-line message: escaped when it holds a newline, a NUL or another control."""
    return str(path) if str(path).isprintable() else repr(str(path))


def _why_missing(path: Path, looked: tuple[Path, list[str], str] | None) -> tuple[str, str]:
    todo = "fix the path or the image root"
    if looked is not None:
        archive, members, rest = looked
        folder = archive.with_name(archive.stem)
        tried = " or ".join(dict.fromkeys(members))
        why = f"image not found: no such file, and {archive} has no member {tried}"
        if _is_dir(folder) and not _is_zip(archive.parent):
            why = (
                f"image not found: {folder} exists but lacks it, and {archive.name} beside it has no "
                f"member {tried}"
            )
        names = [i.filename for i in _archive(archive).zip.infolist() if _is_member(i.filename)]
        names = [n if n.isprintable() else repr(n) for n in names]  # the message stays one line
        deeper = sorted(n for n in names if n.endswith("/" + members[0]))
        if deeper:  # zipped from a folder too high: the members sit under more folders
            root = f"{archive}/{deeper[0][: -len(rest) - 1]}"  # root/rest is then that member
            return (
                f"{why}, but it holds {deeper[0]}",
                f"point the image root into the archive ({root}) or re-zip it so its members are "
                f"{members[0]}",
            )
        return f"{why} (it holds {len(names)} file(s){f', e.g. {min(names)}' if names else ''})", todo
    if _is_dir(path):
        return "is a folder, not an image", todo
    for anc in path.parents:  # the deepest thing on the way that explains the miss
        zips = [anc.with_name(anc.name + s) for s in (".zip", ".ZIP")] if anc.name else []
        if broken := [z for z in zips if _is_link(z) and not _mode(z)]:
            return (
                f"image not found, {broken[0]} is a broken symbolic link (to {os.readlink(broken[0])})",
                todo,
            )
        if (folders := [z for z in zips if _is_dir(z)]) and not _is_dir(anc):
            return f"image not found, {folders[0]} is a folder, not a zip archive", todo
        others = (
            [anc.with_name(anc.name + s) for s in OTHER_ARCHIVES] if anc.name and not _is_dir(anc) else []
        )
        if other := [a for a in others if stat.S_ISREG(_mode(a))]:
            return (
                f"image not found; {other[0]} is beside its folder, but only zip archives are read",
                f"extract it there ({anc}/...) or re-pack it as {anc.name}.zip",
            )
        if _is_dir(anc):
            if anc == path.parent:  # its folder is there, the file is not: nothing more to say
                return "image not found", todo
            break
        if stat.S_ISREG(_mode(anc)):
            return f"image not found, {anc} is a file, not a folder", todo
    return "image not found, neither as a file nor in a zip beside its folder", todo


OTHER_ARCHIVES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".7z", ".rar")  # named in a miss, never read


def _is_dir(p: Path) -> bool:
    return stat.S_ISDIR(_mode(p))


def _is_link(p: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(p).st_mode)
    except (OSError, ValueError):
        return False


def explain_missing(path: str | os.PathLike) -> str:
    """Why :func:`read_image` would not find ``path`` (its error message after the path, without what
    to do), or ``""`` when the image is there. For callers that count missing images before reading."""
    loc, looked = _locate(Path(path))
    return "" if loc is not None else _why_missing(Path(path), looked)[0]


def image_exists(path: str | os.PathLike) -> bool:
    """Whether :func:`read_image` finds ``path`` (a loose file or an archive member)."""
    return locate(path) is not None


def _check_read(loc: Located, what: str) -> None:
    """An image that is also an output of the running stage is refused (:func:`genemi.outputs.check_read`)."""
    if _outputs._stack:
        _outputs._stack[-1].check_read(loc.file if loc.file is not None else loc.archive, what)


def read_bytes(path: str | os.PathLike, *, what: str = "") -> bytes:
    """The encoded bytes of image ``path`` (loose or archived); missing raises :class:`ImageNotFound`."""
    loc, looked = _locate(Path(path), what)
    if loc is None:
        raise _not_found(Path(path), looked, what)
    _check_read(loc, what)
    return loc.read_bytes(what)


def read_image(path: str | os.PathLike, *, what: str = "") -> Image.Image:
    """The image at ``path`` (a file or an archive member) fully decoded, as PIL RGB. ``what`` names the
    referrer in errors."""
    loc, looked = _locate(Path(path), what)
    if loc is None:
        raise _not_found(Path(path), looked, what)
    _check_read(loc, what)
    if loc.file is not None:  # PIL reads the file itself (no copy of the bytes)
        return _decode(lambda: Image.open(loc.file), str(loc.file), what)
    data = loc.read_bytes(what)
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
