"""Small, safe file helpers: atomic writes, deterministic JSON, UTF-8 text and JSONL streaming.

Every writer goes to a temporary file in the destination folder and is renamed into
place, so an interrupted run never leaves a half-written output behind. Inside an
:class:`OutputSet` (every stage runs in one, :class:`genemi.errors.Stage`) the renames onto the
stage's declared outputs wait until the stage has finished: then all of them are published together,
or, when the stage fails, none is and the temporaries are removed. A stage's outputs are therefore
all new or all old.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from genemi.outputs import (  # noqa: F401  (the output set; re-exported for the stages and writers)
    CollisionError,
    OutputError,
    OutputSet,
    Port,
    _output_error,
    _umask,
    after_publish,
    check_read,
    current,
    declare,
    option_of,
    output_folder,
    real,
)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched. An ``OSError``
    while writing (disk full, read-only folder) becomes an :class:`OutputError` naming ``path``.
    The file gets the mode a plain ``open()`` would give (``0o666 & ~umask``), not mkstemp's 0600.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
        os.close(fd)
    except OutputError:
        raise
    except OSError as e:
        raise _output_error(path, e) from e
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():  # the writer may have replaced it by a folder or removed it
            os.chmod(tmp_path, 0o666 & ~_umask())
        outputs = current()
        if outputs is not None and outputs.defers(path):
            outputs.add(path, tmp_path)  # published with the stage's other outputs when it succeeds
        else:
            os.replace(tmp_path, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            tmp_path.unlink()
        # a write error (disk full: no filename) or one on our own files; an input's error passes as is
        ours = (None, str(tmp_path), str(path))
        if isinstance(e, OSError) and not isinstance(e, OutputError) and e.filename in ours:
            raise _output_error(path, e) from e
        if not isinstance(e, OSError) and any(s in str(e) for s in ("No space left", "StorageFull")):
            raise _output_error(path, OSError(28, "No space left on device")) from e  # safetensors' IoError
        raise


def check_writable(*paths: str | os.PathLike | None, dirs: tuple[str | os.PathLike | None, ...] = ()) -> None:
    """Fail before any work if an output cannot be written, naming it; leaves nothing behind.

    ``paths``: output files (an existing folder at the path is an error); ``dirs``: output folders (an
    existing file there is an error). A probe file is created and removed in the nearest folder that
    exists on the way, so a missing output folder is not created here. ``None`` entries are skipped.
    """
    for path, is_dir in [(p, False) for p in paths] + [(d, True) for d in dirs]:
        if path is None:
            continue
        path = Path(path)
        if not is_dir and path.is_dir():
            raise OutputError(f"{path}: this output file is a folder; remove it or pass another path")
        if is_dir and path.exists() and not path.is_dir():
            raise OutputError(f"{path}: this output folder is a file; remove it or pass another path")
        folder = path if is_dir else path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise OutputError(f"{path}: cannot write: {folder} is a file, not a folder; pass another output path")
        try:
            fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise _output_error(path, e) from e


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_png(path: str | os.PathLike, image: Any, compress_level: int | None = None) -> None:
    """Atomically write PIL ``image`` as PNG; ``compress_level`` 0-9 (None: zlib's default, 6)."""
    opts = {} if compress_level is None else {"compress_level": compress_level}
    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG", **opts)


def safe_name(text: str) -> str:
    """File-name-safe form of an id (runs of anything but ``A-Za-z0-9._:-`` -> "_"; never empty)."""
    return re.sub(r"[^A-Za-z0-9._:-]+", "_", text.strip()).strip("_") or "_"


def dumps(obj: Any) -> str:
    """Deterministic JSON: sorted keys, fixed separators, trailing newline."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as deterministic, human-readable JSON."""
    write_text(path, dumps(obj))


class EncodingError(ValueError):
    """A text file that is not UTF-8; the message names the file, the line and the byte."""


def decode_utf8(data: bytes, label: str | os.PathLike, first_line: int = 1) -> str:
    """``data`` as UTF-8 text (a leading byte-order mark dropped); bytes that are not UTF-8 raise
    :class:`EncodingError` naming ``label:<line>`` (``first_line``: the line ``data`` starts on)."""
    bom = 3 if first_line == 1 and data.startswith(b"\xef\xbb\xbf") else 0  # Windows editors write one
    try:
        return data[bom:].decode("utf-8") if bom else data.decode("utf-8")
    except UnicodeDecodeError as e:
        start = e.start + bom
        line = first_line + data.count(b"\n", 0, start)
        col = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise EncodingError(
            f"{label}:{line}: not UTF-8 (byte 0x{data[start]:02x} at column {col}; Latin-1 or another legacy "
            f"encoding?); re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def check_utf8(path: str | os.PathLike, chunk: int = 1 << 20) -> None:
    """Raise :class:`EncodingError` naming ``path:<line>`` at the first byte that is not UTF-8; for
    streaming parsers (ijson) whose own error gives only a byte offset. Reads the file once, in chunks."""
    import codecs

    decoder, line, done = codecs.getincrementaldecoder("utf-8")(), 1, b""
    with open(path, "rb") as f:
        while True:
            data = f.read(chunk)
            try:
                decoder.decode(data, final=not data)
            except UnicodeDecodeError:
                decode_utf8(done[-4:] + data, path, line - done[-4:].count(b"\n"))  # raises, naming the line
                raise
            if not data:
                return
            line += data.count(b"\n")
            done = data


def read_text(path: str | os.PathLike) -> str:
    """A UTF-8 text file; a missing file or bytes that are not UTF-8 raise naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    check_read(path)
    return decode_utf8(path.read_bytes(), path)


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON, naming the file in the error if it is missing, not UTF-8 or malformed."""
    path = Path(path)
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Atomically write one JSON object per line (sorted keys); return the row count."""
    n = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True, ensure_ascii=False))
            f.write("\n")
            n += 1
    return n


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Stream rows of a JSONL file; a bad line raises naming file and line number."""
    for _, row in iter_jsonl_lines(path):
        yield row


def iter_jsonl_lines(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """``(line number, row)`` of a JSONL file (blank lines skipped); a bad line raises naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    check_read(path)
    with path.open("rb") as f:  # bytes, decoded per line: an encoding error names its line
        for lineno, raw in enumerate(f, 1):
            line = decode_utf8(raw, path, lineno)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {e.msg}") from e
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row
