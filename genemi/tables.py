"""A manifest as index tables: numpy arrays, memory-mapped from a cache beside the manifest.

What :class:`genemi.bank.PairBank` and GeNeMi's group samplers read, without a Python object per record:

* ``pos_image``, ``pos_text`` ``[N]`` int64: each record's image and caption id; ``neg_text``, ``neg_image``,
  ``neg_type`` ``[N, Kmax]``: its negatives' caption, image and type ids (-1 = none);
* every distinct image path once (:class:`Strings`: one byte array plus offsets), in first-seen order;
* every distinct caption once, tokenised: ``[U, L]`` token ids in the narrowest integer type that holds them
  (uint16 for open_clip's 49,408-word vocabulary: 154 bytes a caption at L = 77);
* :class:`RecordKeys`: each record's source, id, group, origin image and mean ITM score.

:func:`genemi.bank_cache.cached_tables` builds them once per (manifest sha256, tokenizer), streaming the manifest, into
``<manifest>.bank/<key>/`` (written to a temporary folder and renamed, under a lock: the first of several
ranks builds, the others wait), and maps them read-only: every rank of a node shares one copy through the
page cache, and a rank reads only the rows of its own batches. ``.dvcignore`` keeps these folders out of
the DVC outputs the manifests sit in.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from genemi.manifest import Record

FORMAT = 1  # bump when the cached files change meaning
CHUNK = 65536  # captions tokenised per call while streaming


class Strings:
    """Strings in one UTF-8 byte array with ``[n + 1]`` int64 offsets; ``s[i]`` decodes string ``i``."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray):
        self.blob, self.offsets = blob, offsets

    @classmethod
    def from_list(cls, items: Iterable[str]) -> Strings:
        data = [s.encode("utf-8") for s in items]
        offsets = np.zeros(len(data) + 1, np.int64)
        np.cumsum([len(b) for b in data], out=offsets[1:])
        return cls(np.frombuffer(b"".join(data), np.uint8).copy(), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.blob[self.offsets[i] : self.offsets[i + 1]].tobytes().decode("utf-8")

    def tolist(self) -> list[str]:
        return [self[i] for i in range(len(self))]


def _sorted_rank(names: Sequence[str]) -> np.ndarray:
    """``[len(names)]`` int64: each name's position among the sorted names (distinct in, distinct out)."""
    rank = np.empty(len(names), np.int64)
    rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
    return rank


@dataclass
class RecordKeys:
    """What GeNeMi's group samplers read of each record, as arrays (``N`` records)."""

    source: np.ndarray  # [N] int16 index into sources
    sources: list[str]
    ids: Strings  # [N] record ids
    group: np.ndarray  # [N] int64 index into group_names
    group_names: Strings  # distinct Record.group values
    origin: np.ndarray  # [N] int64 index into origin_names
    origin_names: Strings  # distinct origin images: meta["origin_name"], else group up to its last ":"
    itm: np.ndarray  # [N] float64 mean meta["itm_score"] (0 without)

    def __len__(self) -> int:
        return len(self.source)

    @classmethod
    def from_records(cls, records: Iterable[Record]) -> RecordKeys:
        b = TableBuilder()
        for r in records:
            b.add(r)
        return b.finish().keys

    def key_rank(self, mode: str) -> np.ndarray:
        """``[N]`` int64: each record's group key's rank among the sorted distinct keys of ``mode``
        (``allinone``: the record id; ``item_based``: ``Record.group``; ``image_based``: the origin image)."""
        if mode == "allinone":
            ids = self.ids.tolist()
            distinct = {s: None for s in ids}
            names = list(distinct)
            at = dict(zip(names, _sorted_rank(names).tolist(), strict=True))
            return np.fromiter((at[s] for s in ids), np.int64, len(ids))
        if mode == "item_based":
            return _sorted_rank(self.group_names.tolist())[self.group]
        return _sorted_rank(self.origin_names.tolist())[self.origin]


def origin_key(r: Record) -> str:
    """The origin image a GeNeMi record varies (``image_based`` batching's group key)."""
    return str(r.meta.get("origin_name") or r.group.rsplit(":", 1)[0])


class _Interner:
    """Distinct strings in first-seen order -> ids."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def __call__(self, s: str) -> int:
        return self.ids.setdefault(s, len(self.ids))

    def names(self) -> list[str]:
        return list(self.ids)  # dicts keep insertion order, i.e. id order


@dataclass
class Tables:
    pos_image: np.ndarray  # [N] int64
    pos_text: np.ndarray  # [N] int64
    neg_text: np.ndarray  # [N, Kmax] int64, -1 = none
    neg_image: np.ndarray  # [N, Kmax] int64, -1 = none
    neg_type: np.ndarray  # [N, Kmax] int16 index into type_names, -1 = none
    type_names: list[str]  # types of the stored negatives
    seen_types: list[str]  # every negative type in the manifest (sorted), kept or not
    paths: Sequence[str]  # distinct image paths, by id
    keys: RecordKeys
    captions: list[str] | None = None  # distinct captions by id (built in memory)
    tokens: np.ndarray | None = None  # [U, L] token ids (built from a manifest file)

    def negatives(self, types: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
        """``(neg_text, neg_image)`` ``[N, K]`` int64 of the negatives whose type is in ``types`` (all if
        None), each record's kept negatives first in manifest order, ``K`` = max(1, most kept by a record)."""
        if types is not None:
            if missing := sorted(set(types) - set(self.seen_types)):
                raise ValueError(
                    f"loss.negative_types: no training negative has type {missing}; "
                    f"the manifest has {self.seen_types}"
                )
        stored = self.neg_type >= 0
        keep = (
            stored
            if types is None
            else np.isin(self.neg_type, [i for i, t in enumerate(self.type_names) if t in types])
        )
        if (keep == stored).all():
            return self.neg_text, self.neg_image
        kmax = max(1, int(keep.sum(1).max(initial=0)))
        order = np.argsort(~keep, axis=1, kind="stable")[:, :kmax]  # kept slots first, in their order
        kept = np.take_along_axis(keep, order, 1)
        return tuple(
            np.where(kept, np.take_along_axis(a, order, 1), -1) for a in (self.neg_text, self.neg_image)
        )


class TableBuilder:
    """Streams records into :class:`Tables`. ``sink(captions)`` receives each new distinct caption, in id
    order, in lists of :data:`CHUNK` (None: they are kept in ``Tables.captions``)."""

    def __init__(self, types: Sequence[str] | None = None, sink: Callable[[list[str]], None] | None = None):
        self.types, self.sink = types, sink
        self.img, self.txt, self.type = _Interner(), _Interner(), _Interner()
        self.group, self.origin, self.source = _Interner(), _Interner(), _Interner()
        self.seen_types: set[str] = set()
        self.pending: list[str] = []
        self.pos_i, self.pos_t, self.counts = array("q"), array("q"), array("q")
        self.neg_t, self.neg_i, self.neg_ty = array("q"), array("q"), array("q")
        self.src, self.grp, self.org, self.itm = array("q"), array("q"), array("q"), array("d")
        self.ids, self.id_ends = bytearray(), array("q", [0])

    def _text(self, caption: str) -> int:
        n = len(self.txt.ids)
        i = self.txt(caption)
        if i == n:
            self.pending.append(caption)
            if self.sink is not None and len(self.pending) >= CHUNK:
                self.sink(self.pending)
                self.pending = []
        return i

    def add(self, r: Record) -> None:
        self.pos_i.append(self.img(r.image))
        self.pos_t.append(self._text(r.caption))
        k = 0
        for n in r.negatives:
            self.seen_types.add(n.type)
            if self.types is not None and n.type not in self.types:
                continue
            self.neg_t.append(self._text(n.caption) if n.caption is not None else -1)
            self.neg_i.append(self.img(n.image) if n.image is not None else -1)
            self.neg_ty.append(self.type(n.type))
            k += 1
        self.counts.append(k)
        self.src.append(self.source(r.source))
        self.grp.append(self.group(r.group))
        self.org.append(self.origin(origin_key(r)))
        self.itm.append(float(np.mean(r.meta.get("itm_score", 0.0))))
        self.ids += r.id.encode("utf-8")
        self.id_ends.append(len(self.ids))

    def finish(self) -> Tables:
        if self.sink is not None and self.pending:
            self.sink(self.pending)
            self.pending = []
        counts = np.frombuffer(self.counts, np.int64)
        n, kmax = len(counts), max(1, int(counts.max(initial=0)))
        rows = np.repeat(np.arange(n), counts)
        cols = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)

        def pad(flat: array, dtype) -> np.ndarray:
            out = np.full((n, kmax), -1, dtype)
            out[rows, cols] = np.frombuffer(flat, np.int64)
            return out

        keys = RecordKeys(
            source=np.frombuffer(self.src, np.int64).astype(np.int16),
            sources=self.source.names(),
            ids=Strings(
                np.frombuffer(bytes(self.ids), np.uint8), np.frombuffer(self.id_ends, np.int64).copy()
            ),
            group=np.frombuffer(self.grp, np.int64).copy(),
            group_names=Strings.from_list(self.group.names()),
            origin=np.frombuffer(self.org, np.int64).copy(),
            origin_names=Strings.from_list(self.origin.names()),
            itm=np.frombuffer(self.itm, np.float64).copy(),
        )
        return Tables(
            pos_image=np.frombuffer(self.pos_i, np.int64).copy(),
            pos_text=np.frombuffer(self.pos_t, np.int64).copy(),
            neg_text=pad(self.neg_t, np.int64),
            neg_image=pad(self.neg_i, np.int64),
            neg_type=pad(self.neg_ty, np.int16),
            type_names=self.type.names(),
            seen_types=sorted(self.seen_types),
            paths=self.img.names(),
            keys=keys,
            captions=None if self.sink is not None else self.pending,
        )


def tokenize(tokenizer: Callable, captions: list[str], records: Iterable[Record]):
    """``tokenizer(captions)``; a caption it refuses (e.g. a word outside the synthetic vocabulary) is
    reported with the first of ``records`` that uses it, so the manifest row can be found."""
    try:
        return tokenizer(captions)
    except ValueError as e:
        for r in records:
            for c in (r.caption, *(n.caption for n in r.negatives if n.caption is not None)):
                try:
                    tokenizer([c])
                except ValueError:
                    raise ValueError(f"record {r.id!r}: {e}") from None
        raise
