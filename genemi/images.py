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

import errno
import io
import os
import stat
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from genemi import outputs as _outputs  # the running stage's outputs, which no image read may be
from genemi.archives import (  # noqa: F401  (re-exported)
    MAX_MEMBER_BYTES,
    ImageError,
    ImageNotFound,
    Located,
    _aliases,
    _Archive,
    _archive,
    _is_member,
)
from genemi.shards import ShardWriter, encode_png, shard_members  # noqa: F401  (re-exported)

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
