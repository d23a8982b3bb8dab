"""The lock file every download is checked against, and the digests it pins.

A download (:mod:`genemi.download`, :mod:`genemi.snapshot`) is trusted on first use: the first verified copy
of a file or folder records ``{key: {"sha256": hex, "size": int, "source": str}}`` in a JSON lock file
(sorted keys), and every later use compares against that entry; a mismatch is a :class:`DownloadError`
that names the entry and the offline remedy (``GENEMI_RELOCK=<key>`` re-pins the copy now in place), never
a silent re-download. The module also holds what every download job shares: the chunked sha256 of a file,
the chunk size and the byte progress bar.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from genemi.io import decode_utf8, write_json

CHUNK = 1 << 20  # 1 MiB: large enough that Python overhead is negligible, small enough for a smooth bar


class DownloadError(RuntimeError):
    """A download or its verification failed; the message names the URL/file and what to do."""


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
            data = json.loads(decode_utf8(self.path.read_bytes(), self.path))  # non-UTF-8: named by line
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


def byte_progress(total: int | None, initial: int, desc: str, enabled: bool):
    """A tqdm bar counting bytes (hidden with ``enabled=False``; gone when done)."""
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
