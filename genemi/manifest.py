"""The one internal record format every data source produces.

A manifest is a JSONL file of :class:`Record` rows. The synthetic world, the HNC loaders,
the GeNeMi variation loader and the miners all write it; training and evaluation read only it.

Semantics of a record:

* ``image`` is true for ``caption`` (the positive pair).
* each :class:`Negative` is one hard negative of a named ``type``:
  - ``caption`` only: a caption that is false for ``image`` (text negative, HNC style);
  - ``image`` only: an edited image for which ``caption`` is false (image negative);
  - both: an edited image for which the negative caption is true and the positive caption
    is false -- a Winoground-style 2x2 group.
* ``group`` ties records that are variations of one origin (GeNeMi batching keys on it);
  it defaults to the image path.

Image paths are relative to an image root that the caller passes alongside the manifest,
so manifests carry no absolute paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from genemi.io import iter_jsonl_lines, write_jsonl, write_text


@dataclass(frozen=True)
class Negative:
    type: str
    caption: str | None = None
    image: str | None = None

    def __post_init__(self) -> None:
        if self.caption is None and self.image is None:
            raise ValueError(f"negative of type {self.type!r} has neither caption nor image")


@dataclass(frozen=True)
class Record:
    id: str
    image: str
    caption: str
    split: str = "train"
    source: str = "unknown"
    group: str = ""
    negatives: tuple[Negative, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.group:
            object.__setattr__(self, "group", self.image)
        object.__setattr__(self, "negatives", tuple(self.negatives))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["negatives"] = [{k: v for k, v in asdict(n).items() if v is not None} for n in self.negatives]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "record") -> Record:
        """Build a record from a dict; a missing, mistyped or empty field raises naming ``where`` and it.

        Captions, ids and image paths must be non-empty and not only whitespace: an empty caption
        would train (and score) as a real sentence.
        """
        unknown = set(d) - {"id", "image", "caption", "split", "source", "group", "negatives", "meta"}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
        for key in ("id", "image", "caption"):
            _text(d.get(key), where, key)
        for key in ("split", "source", "group"):
            if key in d and not isinstance(d[key], str):
                raise ValueError(f"{where}: field {key!r} must be a string, got {d[key]!r:.80}")
        if not isinstance(d.get("meta", {}), dict):
            raise ValueError(f"{where}: field 'meta' must be an object, got {d['meta']!r:.80}")
        if not isinstance(d.get("negatives", []), list):
            raise ValueError(f"{where}: field 'negatives' must be a list, got {d['negatives']!r:.80}")
        negs = []
        for i, n in enumerate(d.get("negatives", [])):
            field_ = f"negatives[{i}]"
            if not isinstance(n, dict):
                raise ValueError(f"{where}: field {field_!r} must be an object, got {n!r:.80}")
            _text(n.get("type"), where, f"{field_}.type")
            if unknown := set(n) - {"type", "caption", "image"}:
                raise ValueError(f"{where}: field {field_!r} has unknown key(s) {sorted(unknown)}")
            if n.get("caption") is None and n.get("image") is None:
                raise ValueError(f"{where}: field {field_!r} has neither caption nor image")
            for key in ("caption", "image"):
                if n.get(key) is not None:
                    _text(n[key], where, f"{field_}.{key}")
            negs.append(Negative(type=n["type"], caption=n.get("caption"), image=n.get("image")))
        images = (("image", d["image"]), *((f"negatives[{i}].image", n.image) for i, n in enumerate(negs)))
        for key, value in images:
            if value is not None and (why := escapes(value)):
                raise ValueError(f"{where}: field {key!r} = {value!r} {why}")
        if (i := identical_negative(d["image"], d["caption"], negs)) is not None:
            raise ValueError(f"{where}: field 'negatives[{i}]' {IDENTICAL}")
        return cls(
            id=d["id"],
            image=d["image"],
            caption=d["caption"],
            split=d.get("split", "train"),
            source=d.get("source", "unknown"),
            group=d.get("group", ""),
            negatives=tuple(negs),
            meta=dict(d.get("meta", {})),
        )


IDENTICAL = (
    "is identical to the positive (same caption, or same image): no model can tell them apart, so it would "
    "score as a tie; fix or remove the negative"
)


def same_caption(a: str, b: str) -> bool:
    """Captions a tokenizer reads alike: equal up to case and runs of whitespace."""
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def identical_negative(image: str, caption: str, negatives: Iterable[Negative]) -> int | None:
    """Index of the first negative that is its positive (its caption, or its image): a tie by
    construction, which makes an accuracy meaningless and a hard-negative loss a constant."""
    pos = None
    for i, n in enumerate(negatives):
        if n.image is not None and n.image == image:
            return i
        if n.caption is not None:
            pos = " ".join(caption.split()).casefold() if pos is None else pos
            if " ".join(n.caption.split()).casefold() == pos:
                return i
    return None


def escapes(path: str) -> str:
    """Why an image path from a data file would be read from outside its image root ("" if it would not):
    an absolute path, a drive, or a ``..`` part. Data files name images relative to their root."""
    if path[:1] in ("/", "\\") or path[1:2] == ":":
        return "is absolute: image paths are relative to the image root; make it relative"
    if ".." in path and ".." in path.replace("\\", "/").split("/"):
        return "climbs out of the image root ('..'): image paths stay inside it; fix the path"
    return ""


def _text(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: field {key!r} must be a string, got {value!r:.80}")
    if not value.strip():
        raise ValueError(f"{where}: field {key!r} is empty or only whitespace; fix or remove the row")
    return value


def write_manifest(path: str | os.PathLike, records: Iterable[Record]) -> int:
    """Atomically write records as JSONL (one sorted-key object per line); return the count."""
    return write_jsonl(path, (r.to_dict() for r in records))


def write_off_road_manifest(path: str | os.PathLike) -> None:
    """The placeholder manifest of a road that is off: no record, written as one blank line (readers skip it).

    Not 0 bytes: DVC warns "'<path>' is empty" about every empty output and dependency each time it saves
    one, and a road that is off by choice leaves the user nothing to act on.
    """
    write_text(path, "\n")


def has_records(path: str | os.PathLike) -> bool:
    """Whether the manifest at ``path`` holds at least one row (reads up to the first non-blank line)."""
    return next(iter_jsonl_lines(path), None) is not None


def iter_manifest(path: str | os.PathLike, held_out: Iterable[str] = (), what: str = "training manifest",
                  ) -> Iterator[Record]:
    """Stream records from a manifest, naming file:line (and the record id) on a bad row; a record of a
    ``held_out`` split is refused (:func:`read_records`)."""
    held_out = tuple(held_out)
    for lineno, row in iter_jsonl_lines(path):
        where = f"{path}:{lineno} (record id={row.get('id')!r})"
        r = Record.from_dict(row, where=where)
        if r.split in held_out:
            raise ValueError(
                f"{where}: split {r.split!r}: the {what} holds a record of a held-out split "
                f"({', '.join(held_out)}), which evaluation scores; train on the train split's manifest"
            )
        yield r


def read_manifest(path: str | os.PathLike) -> list[Record]:
    return list(iter_manifest(path))


HELD_OUT_SPLITS = ("test", "gen", "val")  # evaluated (or monitored) splits: never trained on


def read_records(path: str | os.PathLike, what: str = "training manifest",
                 held_out: Iterable[str] = HELD_OUT_SPLITS) -> list[Record]:
    """:func:`read_manifest` that refuses a manifest without records, naming it: training or scoring
    on nothing must fail, not write an untrained model or empty metrics with exit status 0. A record
    of a ``held_out`` split (``test``, ``gen``, ``val``: what evaluation scores) is refused, naming it."""
    records = list(iter_manifest(path, held_out, what))
    if not records:
        raise ValueError(
            f"{path}: the {what} has no records; regenerate it (dvc repro) or fix the stage that writes it"
        )
    return records


DIGEST = "digest.json"  # beside a stage's manifests: the small file DVC tracks instead of every image


def image_digest(root: str | os.PathLike, manifests: Iterable[str | os.PathLike]) -> dict[str, Any]:
    """sha256 over every image the ``manifests`` reference (record and negative images, relative to ``root``).

    A downstream DVC stage depends on the manifests plus this digest instead of the image
    shards, and any changed image (or a changed path) still changes the digest. The digest is
    of the encoded bytes, so it is the same whether the images sit loose or in a shard.
    """
    import hashlib
    from pathlib import Path

    from genemi.images import ImageNotFound, read_bytes

    def sha(m, r: Record, rel: str) -> str:
        try:
            data = read_bytes(Path(root) / rel)  # a loose file or a shard member
        except ImageNotFound:
            raise FileNotFoundError(f"{m}: record {r.id!r} names image {rel!r}, not found under {root}") from None
        return hashlib.sha256(data).hexdigest()

    return _digest((m, r, sha) for m in manifests for r in iter_manifest(m))


def written_digest(records: Iterable[Record], hashes: dict[str, str]) -> dict[str, Any]:
    """:func:`image_digest` of manifests holding ``records`` (in order), from ``hashes`` (image path ->
    sha256 hex of the bytes written there), for a stage that has just written them: its outputs are
    published only when it ends (:class:`genemi.io.OutputSet`), so it cannot read them back."""

    def sha(_, r: Record, rel: str) -> str:
        if rel not in hashes:
            raise ValueError(f"record {r.id!r} names image {rel!r}, which this stage did not write")
        return hashes[rel]

    return _digest((None, r, sha) for r in records)


def _digest(rows) -> dict[str, Any]:
    import hashlib

    total, n = hashlib.sha256(), 0
    for m, r, sha in rows:
        for rel in (r.image, *(x.image for x in r.negatives if x.image)):
            total.update(f"{rel}\0{sha(m, r, rel)}\n".encode())
            n += 1
    return {"images": n, "sha256": total.hexdigest()}
