"""Verified folders that third-party tools fill: a Hugging Face snapshot, stanza's models.

:func:`fetch_tree` hands the tool a fixed ``<dest>.partial`` folder (so a tool that resumes, such as
huggingface_hub, continues where an interrupted run stopped), hashes the filled folder as a tree
(:func:`tree_digest`: every file's relative path and sha256), checks that digest against the lock file
(:mod:`genemi.lockfile`) and only then renames the folder into place. A folder already at ``dest`` (a
previous run, or built by hand on another machine) is verified the same way and used without the tool.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from genemi.lockfile import DownloadError, Lock, sha256_file


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
