"""The training bank's cache on disk: :func:`cached_tables` builds a manifest's :class:`~genemi.tables.Tables`
once per (manifest sha256, tokenizer, held-out splits), streaming the manifest, into
``<manifest>.bank/<key>/`` (a temporary folder renamed into place under a lock: the first of several ranks
builds, the others wait), and maps it read-only, so every rank of a node shares one copy through the page
cache. An entry whose recorded size and mtime match the manifest is used without rehashing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from genemi.tables import FORMAT, RecordKeys, Strings, TableBuilder, Tables, tokenize


class _TokenFile:
    """Token rows appended to a raw file in the narrowest of uint16 / int32 / int64 that holds them so far
    (a wider value rewrites what is written, once)."""

    LADDER = (np.uint16, np.int32, np.int64)

    def __init__(self, path: Path):
        self.path, self.dtype, self.rows, self.width = path, np.uint16, 0, None
        self.f = open(path, "wb")  # noqa: SIM115  (closed by close())

    def write(self, tokens: np.ndarray) -> None:
        if self.width is None:
            self.width = tokens.shape[1]
        elif tokens.shape[1] != self.width:
            raise ValueError(
                f"the tokenizer returned rows of {tokens.shape[1]} and {self.width} tokens for different "
                "captions; "
                "the training bank needs a fixed context length"
            )
        if len(tokens):
            lo, hi = int(tokens.min()), int(tokens.max())
            dtype = next(t for t in self.LADDER if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max)
            if np.dtype(dtype).itemsize > np.dtype(self.dtype).itemsize:
                self.f.close()
                old = np.fromfile(self.path, self.dtype)
                self.f = open(self.path, "wb")  # noqa: SIM115
                old.astype(dtype).tofile(self.f)
                self.dtype = dtype
        tokens.astype(self.dtype).tofile(self.f)
        self.rows += len(tokens)

    def close(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()


def tokenizer_fingerprint(tokenizer: Callable) -> str:
    """sha256 over the tokenizer's class, context length, vocabulary and its tokens for probe sentences:
    what the cached token array depends on besides the manifest."""
    h = hashlib.sha256(f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}".encode())
    h.update(repr(getattr(tokenizer, "context_length", None)).encode())
    for attr in ("vocab", "encoder"):
        vocab = getattr(tokenizer, attr, None)
        if isinstance(vocab, dict):
            h.update(json.dumps(sorted(vocab.items(), key=repr), default=str).encode())
    probes = [
        "a photo of a cat",
        "red cube left of blue sphere",
        "Two DOGS, running!",
        "ünïcödé 字 🙂",
        " ".join(f"word{i}" for i in range(100)),
    ]
    for p in probes:
        try:
            h.update(np.asarray(tokenizer([p])).tobytes())
        except ValueError as e:
            h.update(str(e).encode())
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


_ARRAYS = (
    "pos_image",
    "pos_text",
    "neg_text",
    "neg_image",
    "neg_type",
    "paths_blob",
    "paths_off",
    "ids_blob",
    "ids_off",
    "source",
    "group",
    "group_blob",
    "group_off",
    "origin",
    "origin_blob",
    "origin_off",
    "itm",
)


def _save(folder: Path, t: Tables, tokens: _TokenFile, stat: os.stat_result, digest: str) -> None:
    paths = Strings.from_list(t.paths)
    k = t.keys
    arrays = dict(
        pos_image=t.pos_image,
        pos_text=t.pos_text,
        neg_text=t.neg_text,
        neg_image=t.neg_image,
        neg_type=t.neg_type,
        paths_blob=paths.blob,
        paths_off=paths.offsets,
        ids_blob=k.ids.blob,
        ids_off=k.ids.offsets,
        source=k.source,
        group=k.group,
        group_blob=k.group_names.blob,
        group_off=k.group_names.offsets,
        origin=k.origin,
        origin_blob=k.origin_names.blob,
        origin_off=k.origin_names.offsets,
        itm=k.itm,
    )
    for name, a in arrays.items():
        with open(folder / f"{name}.npy", "wb") as f:
            np.save(f, np.ascontiguousarray(a))
            f.flush()
            os.fsync(f.fileno())
    meta = {
        "format": FORMAT,
        "manifest_sha256": digest,
        "stat": [stat.st_size, stat.st_mtime_ns],
        "records": len(t.pos_image),
        "type_names": t.type_names,
        "seen_types": t.seen_types,
        "sources": k.sources,
        "tokens": {"dtype": np.dtype(tokens.dtype).name, "shape": [tokens.rows, tokens.width]},
    }
    (folder / "meta.json").write_text(json.dumps(meta, sort_keys=True, indent=1) + "\n")


def _load(folder: Path) -> Tables:
    meta = json.loads((folder / "meta.json").read_text())
    # copy-on-write maps: torch.from_numpy takes them without a copy; pages stay shared while unwritten
    a = {name: np.load(folder / f"{name}.npy", mmap_mode="c") for name in _ARRAYS}
    tok = meta["tokens"]
    rows, width = tok["shape"]
    tokens = (
        np.memmap(folder / "tokens.bin", dtype=tok["dtype"], mode="r", shape=(rows, width))
        if rows
        else np.zeros((0, width or 0), tok["dtype"])
    )
    keys = RecordKeys(
        source=a["source"],
        sources=meta["sources"],
        ids=Strings(a["ids_blob"], a["ids_off"]),
        group=a["group"],
        group_names=Strings(a["group_blob"], a["group_off"]),
        origin=a["origin"],
        origin_names=Strings(a["origin_blob"], a["origin_off"]),
        itm=a["itm"],
    )
    return Tables(
        pos_image=a["pos_image"],
        pos_text=a["pos_text"],
        neg_text=a["neg_text"],
        neg_image=a["neg_image"],
        neg_type=a["neg_type"],
        type_names=meta["type_names"],
        seen_types=meta["seen_types"],
        paths=Strings(a["paths_blob"], a["paths_off"]),
        keys=keys,
        tokens=tokens,
    )


def _build(path: Path, tokenizer: Callable, folder: Path, stat, digest: str, progress: bool,
           held_out: tuple[str, ...] = ()) -> None:
    from tqdm import tqdm

    from genemi.manifest import iter_manifest
    from genemi.token_rows import fast_rows

    tokens = _TokenFile(folder / "tokens.bin")
    rows = fast_rows(tokenizer)  # open_clip's rows, its BPE run once per distinct word

    def sink(captions: list[str]) -> None:
        tokens.write(np.asarray(tokenize(rows, captions, iter_manifest(path))))

    b = TableBuilder(sink=sink)
    with tqdm(desc=f"{path.name}: training bank", unit="rec", disable=not progress, mininterval=2) as bar:
        for r in iter_manifest(path, held_out):
            b.add(r)
            bar.update()
    if not len(b.counts):
        raise ValueError(
            f"{path}: the training manifest has no records; regenerate it (dvc repro) or fix the stage "
            "that writes it"
        )
    t = b.finish()
    tokens.close()
    _save(folder, t, tokens, stat, digest)


def cached_tables(path: str | os.PathLike, tokenizer: Callable, progress: bool = True,
                  held_out: Sequence[str] = ()) -> Tables:
    """The :class:`Tables` of manifest ``path`` with its captions tokenised by ``tokenizer``, built once into
    ``<path>.bank/<sha256 prefix>-<tokenizer prefix>/`` and memory-mapped from there (module docstring).

    A cache entry whose recorded size and mtime match the manifest is used without rehashing it; entries of
    an earlier version of the manifest are removed when a new one is written. Where the manifest's folder is
    read-only (a shared dataset), the environment variable ``GENEMI_BANK_CACHE`` names a folder to use
    instead.
    """
    import fcntl

    path = Path(path)
    stat = path.stat()
    tok = tokenizer_fingerprint(tokenizer)[:12]
    if held_out:  # built only if no record is of these splits: a build checked for other splits is no proof
        tok += f"-h{zlib.crc32(','.join(held_out).encode()):08x}"
    folder = cache_folder(path)
    if hit := _lookup(folder, tok, stat):
        return _load(hit)
    digest = file_sha256(path)
    entry = folder / f"{digest[:20]}-{tok}"
    if (entry / "meta.json").exists():
        return _load(entry)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / ".lock", "w")  # noqa: SIM115  (closed below)
    except OSError as e:
        raise OSError(
            f"{path}: cannot write the training bank's cache {folder} ({e.strerror}); "
            "set GENEMI_BANK_CACHE to a "
            "writable folder (on a node's local disk: every rank of the node maps it)"
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one rank builds; the others wait here, then find the entry
        if not (entry / "meta.json").exists():
            for stale in folder.glob(".*.tmp-*"):  # left by a killed build (we hold the lock: none runs)
                shutil.rmtree(stale, ignore_errors=True)
            tmp = folder / f".{entry.name}.tmp-{os.getpid()}"
            tmp.mkdir()
            try:
                _build(path, tokenizer, tmp, stat, digest, progress, tuple(held_out))
                os.rename(tmp, entry)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            for old in folder.iterdir():  # entries of other versions of this manifest
                if old.is_dir() and not old.name.startswith((".", digest[:20])):
                    shutil.rmtree(old, ignore_errors=True)
    return _load(entry)


def cache_folder(path: Path) -> Path:
    """``<path>.bank`` beside the manifest, or under ``$GENEMI_BANK_CACHE`` (named after the manifest and a
    hash of its absolute path) when that is set."""
    if root := os.environ.get("GENEMI_BANK_CACHE"):
        where = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        return Path(root) / f"{path.name}-{where}.bank"
    return path.parent / f"{path.name}.bank"


def _lookup(folder: Path, tok: str, stat: os.stat_result) -> Path | None:
    """The entry built from a manifest with this size and mtime, and this tokenizer, if any."""
    if not folder.is_dir():
        return None
    for entry in sorted(folder.iterdir()):
        if entry.name.endswith(f"-{tok}") and not entry.name.startswith("."):
            try:
                meta = json.loads((entry / "meta.json").read_text())
            except (OSError, ValueError):
                continue
            if meta.get("format") == FORMAT and meta.get("stat") == [stat.st_size, stat.st_mtime_ns]:
                return entry
    return None
