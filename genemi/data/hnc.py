"""HNC (hard negative captions, CoNLL 2023) -> genemi manifest records, streamed.

Two schemas exist (docs/method.md §2.1, §2.2):

* train/val ``{"<gqa id>": {"captions": {"<cap id>": {"caption", "label": 1|0, "type", "cpt_p_id", ...}}}}``;
  a negative (label 0) belongs to the positive whose cap id is ``str(cpt_p_id)`` -- ``cpt_p_id == 0`` is a
  valid id (the thesis loader dropped those pairs by testing truthiness). Image: ``<gqa id>.jpg``.
* test ``{"<name>.jpg": {"<cap id>": {"caption", "label", "type", "replaced"}}}``; no wrapper, no
  ``cpt_p_id``: a negative belongs to the last positive before it in numeric key order (pairs are
  consecutive keys). Image: the key itself.

Each entry is recognised by its shape (a ``captions`` object or not), so one reader handles both.
The 8 GB train file is read with ijson one top-level entry (one image, ~240 captions) at a time, so
memory stays flat whatever the file size.

Output: one :class:`Record` per positive caption, its negatives as ``Negative(type=<hnc type>,
caption=...)``, ``source="hnc"``, image path relative to the GQA images root.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from genemi import seeding
from genemi.config import DataParams, RealDataParams
from genemi.images import image_exists
from genemi.io import check_utf8
from genemi.manifest import Negative, Record, write_manifest

HNC_FILES = {
    "train": "hnc_clean_strict_train.json",
    "val": "hnc_clean_strict_val.json",
    "test": "hnc_clean_strict_test.json",
}


@dataclass
class HncStats:
    """Counts of one conversion; written next to the manifest so skipped data is visible."""

    images: int = 0  # top-level entries read
    images_outside_subset: int = 0  # not drawn into the deterministic subset
    images_missing: int = 0  # drawn, but the image file is absent under the image root (skipped)
    records: int = 0  # positives written
    negatives: int = 0  # negatives attached to a written positive
    positives_without_negative: int = 0  # written with an empty negatives list
    orphan_negatives: int = 0  # no matching positive (cpt_p_id missing/unknown, or no earlier positive)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def in_subset(image_key: str, fraction: float, seed: int) -> bool:
    """Whether image ``image_key`` is in the ``fraction`` subset drawn with ``seed``.

    Decided by a hash of (seed, key) alone, so the subset does not depend on file order, on which
    other images exist, or on the Python hash seed; the 1% subset is contained in the 10% one.
    """
    if fraction >= 1.0:
        return True
    if fraction <= 0.0:
        return False
    return seeding.fraction(seed, "subset", image_key) < fraction


EXPECTED = (
    'an object of image entries: train/val {"<gqa id>": {"captions": {"<cap id>": {"caption", "label", '
    '"type", "cpt_p_id"}}}} or test {"<name>.jpg": {"<cap id>": {"caption", "label", "type"}}}'
)
_JSON_KINDS = {"[": "a list", "{": "an object", '"': "a string", "t": "a boolean", "f": "a boolean",
               "n": "null"}


def _kind(value: object) -> str:
    return {list: "a list", dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def iter_hnc_entries(path: str | os.PathLike) -> Iterator[tuple[str, dict]]:
    """Stream ``(top-level key, value)`` pairs of an HNC JSON file in file order, in constant memory.

    The structure is checked as it streams: the top level must be an object (a list, a string or
    ``{}`` raise, saying what was expected and what was found), and so must every entry.
    """
    import ijson  # C backend (yajl2_c) when available: ~10x the pure-Python parser

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: HNC file not found (run the download_hnc stage, see docs/real-data.md)"
        )
    with path.open("rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")[:1].decode("ascii", "replace")
        if head != "{":
            found = "an empty file" if not head else _JSON_KINDS.get(head, "a number or invalid JSON")
            raise ValueError(f"{path}: top level must be {EXPECTED}; found {found}")
        f.seek(0)
        n = 0
        try:
            # use_float: numbers as float/int rather than Decimal (we never need exact decimals)
            for key, value in ijson.kvitems(f, "", use_float=True):
                if not isinstance(value, dict):
                    raise ValueError(
                        f"{path}: entry {key!r} must be an object of captions ({EXPECTED}); "
                        f"found {_kind(value)}"
                    )
                n += 1
                yield key, value
        except ijson.JSONError as e:
            check_utf8(path)  # bytes that are not UTF-8: named by line, not by the parser's byte offset
            raise ValueError(f"{path}: invalid JSON near byte {f.tell()}: {e}") from None
    if n == 0:
        raise ValueError(f"{path}: no image entries (found {{}}); expected {EXPECTED}")


def entry_schema(key: str, entry: dict, where: str) -> str:
    """``"trainval"`` (a ``captions`` object) or ``"test"`` (caption ids at the top); raises otherwise."""
    if "captions" in entry:
        caps = entry["captions"]
        if not isinstance(caps, dict):
            raise ValueError(
                f"{where}: 'captions' must be an object of caption id -> {{caption, label, type, cpt_p_id}}; "
                f"found {_kind(caps)}"
            )
        if not caps:
            raise ValueError(f"{where}: 'captions' is empty; expected caption id -> {{caption, label, ...}}")
        return "trainval"
    if not entry:
        raise ValueError(f"{where}: no captions (found {{}}); expected {EXPECTED}")
    return "test"


def _label(cap: dict, where: str) -> int:
    label = cap.get("label")
    if label not in (0, 1) or isinstance(label, float):
        raise ValueError(f"{where}: 'label' must be 1 (positive) or 0 (negative), got {label!r}")
    return int(label)


def _caption(cap: object, where: str) -> str:
    if not isinstance(cap, dict) or not isinstance(cap.get("caption"), str):
        raise ValueError(f"{where}: expected an object with a string 'caption', got {cap!r:.200}")
    if not cap["caption"].strip():
        raise ValueError(f"{where}: field 'caption' is empty or only whitespace")
    return cap["caption"]


def _sorted_ids(caps: dict) -> list[str]:
    # Cap ids are decimal strings; numeric order is the generator's order (a negative follows its positive).
    return sorted(caps, key=lambda k: (0, int(k), k) if k.isdigit() else (1, 0, k))


def _pairs(key: str, entry: dict, where: str, stats: HncStats) -> tuple[str, list[tuple[str, dict, list]]]:
    """(image path, [(cap id, positive, [negatives])]) for one top-level entry of either schema."""
    if entry_schema(key, entry, where) == "trainval":
        caps = entry["captions"]
        image = f"{key}.jpg"
        pos = {}
        for cid in _sorted_ids(caps):
            _caption(caps[cid], f"{where} caption {cid}")
            if _label(caps[cid], f"{where} caption {cid}") == 1:
                pos[cid] = (cid, caps[cid], [])
        for cid in _sorted_ids(caps):
            cap = caps[cid]
            if cap["label"] == 1:
                continue
            parent = cap.get("cpt_p_id")
            # `is None`, not truthiness: cpt_p_id == 0 points at caption "0".
            target = pos.get(str(int(parent))) if isinstance(parent, (int, float)) else None
            if parent is None or target is None:
                stats.orphan_negatives += 1
                continue
            target[2].append(cap)
        return image, list(pos.values())
    # test schema: keyed by file name, consecutive positive/negative keys
    image = key
    out: list[tuple[str, dict, list]] = []
    for cid in _sorted_ids(entry):
        cap = entry[cid]
        _caption(cap, f"{where} caption {cid}")
        if _label(cap, f"{where} caption {cid}") == 1:
            out.append((cid, cap, []))
        elif out:
            out[-1][2].append(cap)
        else:
            stats.orphan_negatives += 1
    return image, out


def iter_hnc_records(
    path: str | os.PathLike,
    split: str,
    *,
    image_root: str | os.PathLike | None = None,
    subset: float = 1.0,
    seed: int = 0,
    stats: HncStats | None = None,
) -> Iterator[Record]:
    """Stream manifest records from one HNC file (either schema), in file order.

    ``subset`` keeps that fraction of images (:func:`in_subset`, by image key and ``seed``). With
    ``image_root``, images whose file is absent are skipped and counted in ``stats.images_missing``.
    Record ids are ``hnc-<split>-<image stem>-<cap id>``; ``meta`` holds the positive's ``type``.
    """
    stats = stats if stats is not None else HncStats()
    root = Path(image_root) if image_root is not None else None
    first = None  # the file's schema, from its first entry: one file never mixes the two
    for key, entry in iter_hnc_entries(path):
        stats.images += 1
        where = f"{path}: image {key!r}"
        schema = entry_schema(key, entry, where)
        first = first or schema
        if schema != first:
            raise ValueError(f"{where}: entry in the {schema} schema, but the file's first entry is {first}")
        if not in_subset(key, subset, seed):
            stats.images_outside_subset += 1
            continue
        image = f"{key}.jpg" if schema == "trainval" else key  # see _pairs
        if root is not None and not image_exists(root / image):
            stats.images_missing += 1
            continue
        image, pairs = _pairs(key, entry, where, stats)
        stem = image.removesuffix(".jpg")
        for cid, pos, negs in pairs:
            negatives = tuple(
                Negative(type=str(n.get("type") or "unknown"), caption=n["caption"]) for n in negs
            )
            stats.records += 1
            stats.negatives += len(negatives)
            stats.positives_without_negative += not negatives
            yield Record(
                id=f"hnc-{split}-{stem}-{cid}",
                image=image,
                caption=pos["caption"],
                split=split,
                source="hnc",
                negatives=negatives,
                meta={"type": str(pos.get("type") or "unknown")},
            )
    if stats.records == 0:  # raised inside the writer's loop: no empty manifest is left behind
        if stats.images_missing:
            why = (f"none of the {stats.images_missing} drawn images is under {root}; "
                   "is download_gqa's output complete (images.zip holding images/<id>.jpg, or a folder)?")
        elif stats.images_outside_subset == stats.images:
            why = f"the subset ({subset:g} of {stats.images} images, seed {seed}) drew none; raise it"
        else:
            why = "no entry has a positive caption (label 1)"
        raise ValueError(f"{path}: 0 records: {why}")


def convert_hnc(
    path: str | os.PathLike,
    out: str | os.PathLike,
    split: str,
    *,
    image_root: str | os.PathLike | None = None,
    subset: float = 1.0,
    seed: int = 0,
) -> HncStats:
    """Stream one HNC file into a manifest at ``out`` (atomic); return the counts."""
    stats = HncStats()
    write_manifest(
        out, iter_hnc_records(path, split, image_root=image_root, subset=subset, seed=seed, stats=stats)
    )
    return stats


def write_hnc_manifests(
    data: DataParams,
    real: RealDataParams,
    hnc_dir: str | os.PathLike,
    image_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    log: Callable[[str], object] = lambda line: None,
) -> dict:
    """The hnc_manifest stage: ``<out_dir>/{train,val,test}.jsonl`` from the three HNC files in
    ``hnc_dir``, keeping ``data.hnc_subset`` of train and ``real.hnc_val_subset`` of val images.

    Returns the stats to record: per split its subset fraction and :class:`HncStats`. With
    ``data.source`` other than ``hnc`` (synthetic, or genemi, which trains on COCO) it writes empty
    manifests (DVC expects the outputs) and returns a "skipped" note. Raises ValueError when a split
    found none of its images (an incomplete GQA download), which would otherwise train on nothing.
    The folder is replaced whole, and only once every split converted: a failure leaves the
    previous output as it was.
    """
    from genemi.extract import atomic_dir

    with atomic_dir(out_dir) as tmp:
        return _write_hnc_manifests(data, real, hnc_dir, image_root, tmp, log)


def _write_hnc_manifests(data, real, hnc_dir, image_root, out_dir: Path, log) -> dict:
    if data.source != "hnc":  # synthetic, or genemi (which trains on COCO): download_hnc skipped too
        for split in HNC_FILES:
            write_manifest(out_dir / f"{split}.jsonl", [])
        return {"skipped": f"data.source is {data.source}"}
    fractions = {"train": data.hnc_subset, "val": real.hnc_val_subset, "test": 1.0}
    stats = {}
    for split, fname in HNC_FILES.items():
        s = convert_hnc(
            Path(hnc_dir) / fname,
            out_dir / f"{split}.jsonl",
            split,
            image_root=image_root,
            subset=fractions[split],
            seed=real.subset_seed,
        )
        if s.records == 0 and s.images_missing:
            raise ValueError(
                f"{fname}: none of its {s.images_missing} images is under {image_root}; is download_gqa's "
                f"output complete (images.zip holding images/<id>.jpg, or a folder)?"
            )
        stats[split] = {"subset": fractions[split], **s.as_dict()}
        log(f"hnc {split}: {s.records} records, {s.images_missing} images missing (skipped)")
    return stats
