"""Images inside zip archives: the member index of one archive, opened once per process and file version.

A :class:`Located` image is a loose file or a member of a zip. :func:`_archive` opens an archive once
(reopened when its mtime, size, inode or device changes; forked workers reopen rather than share a file
offset) and indexes its members under every spelling other tools store (``./`` prefixes, ``\\``
separators, ``//``, NFD names, UTF-8 names without the flag); two members that spell one name are an error,
never a guess. Every fault of an archive (cut short, bad CRC, Deflate64, encrypted, a member declaring
more than 1 GiB) is one :class:`ImageError` naming ``archive:member``, the referrer and what to do.
"""

from __future__ import annotations

import os
import threading
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path


class ImageError(ValueError):
    """An image cannot be read; the message names the file, who refers to it and what to do."""


class ImageNotFound(ImageError, FileNotFoundError):
    """The referenced image file does not exist."""


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
