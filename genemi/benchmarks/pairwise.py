"""Readers of benchmarks made of (image, true caption, false captions) pairs -> manifest records.

Each record keeps its negatives' ``type`` (HNC type, SugarCrepe category, ARO relation / attribute pair),
so the metrics come out per type. Formats: docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path

from genemi.data.hnc import in_subset, iter_hnc_records
from genemi.evalsets import (
    EvalSet,
    ImageStore,
    Loader,
    RecordTable,
    records_classification,
    records_retrieval,
)
from genemi.io import iter_jsonl_lines, read_json
from genemi.manifest import Negative, Record, read_manifest

# The relations ARO leaves out of VG-Relation's macro accuracy: their subject and object can swap without
# the caption turning false ("near", "next to", "with", ...) or they are rare verbs. Copied as data from ARO's
# own list (mertyg/vision-language-models-are-bows, notebooks/"Replicate ARO! VG-Relation,
# VG-Attribution.ipynb", the cell that prints "VG-Relation Macro Accuracy").
ARO_SYMMETRIC_RELATIONS = frozenset(
    """adjusting|attached to|between|bigger than|biting|boarding|brushing|chewing|cleaning|climbing|close to|
coming from|coming out of|contain|crossing|dragging|draped over|drinking|drinking from|driving|driving down|
driving on|eating from|eating in|enclosing|exiting|facing|filled with|floating in|floating on|flying|
flying above|flying in|flying over|flying through|full of|going down|going into|going through|grazing in|
growing in|growing on|guiding|hanging from|hanging in|hanging off|hanging over|higher than|holding onto|
hugging|in between|jumping off|jumping on|jumping over|kept in|larger than|leading|leaning over|leaving|
licking|longer than|looking in|looking into|looking out|looking over|looking through|lying next to|
lying on top of|making|mixed with|mounted on|moving|on the back of|on the edge of|on the front of|
on the other side of|opening|painted on|parked at|parked beside|parked by|parked in|parked in front of|
parked near|parked next to|perched on|petting|piled on|playing|playing in|playing on|playing with|pouring|
reaching for|reading|reflected on|riding on|running in|running on|running through|seen through|
sitting behind|sitting beside|sitting by|sitting in front of|sitting near|sitting next to|sitting under|
skiing down|skiing on|sleeping in|sleeping on|smiling at|sniffing|splashing|sprinkled on|stacked on|
standing against|standing around|standing behind|standing beside|standing in front of|standing near|
standing next to|staring at|stuck in|surrounding|swimming in|swinging|talking to|topped with|touching|
traveling down|traveling on|tying|typing on|underneath|wading in|waiting for|walking across|walking by|
walking down|walking next to|walking through|working in|working on|worn on|wrapped around|wrapped in|by|of|
near|next to|with|beside|on the side of|around""".replace("\n", "").split("|")
)

SUGARCREPE = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")


def subset_of(items: list, src, seed: int) -> list:
    """The items (records or choices, by ``.id``) in the ``src.subset`` fraction drawn with ``seed``."""
    return [x for x in items if in_subset(x.id, src.subset, seed)]


def _str(row: dict, key: str, where: str) -> str:
    v = row.get(key)
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"{where}: field {key!r} must be a non-empty string, got {v!r}")
    return v


def _pair(
    row: object, where: str, rid: str, source: str, neg_type: str, keys: tuple[str, str, str]
) -> Record:
    """A test record from one ``{<image>, <caption>, <negative caption>}`` row; ``keys`` name the three
    fields (each a non-empty string)."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected an object with {', '.join(keys)}")
    image, caption, negative = (_str(row, k, where) for k in keys)
    return Record(
        id=rid,
        image=image,
        caption=caption,
        split="test",
        source=source,
        negatives=(Negative(type=neg_type, caption=negative),),
    )


def needs_file_and_dir(what_file: str, what_dir: str):
    """The ``needs`` of a loader reading one file and one image folder: ``[(file, ...), (images, ...)]``."""
    return lambda src, file, images, p: [(file, what_file), (images, what_dir)]


# ------------------------------------------------------------------------------ manifest / BYO


def load_manifest(src, file: Path, images: Path, p, seed: int) -> EvalSet:
    """A genemi manifest (the synthetic splits): pairwise metrics (when its records have negatives), retrieval
    over its distinct images, and zero-shot classification of the records that name a ``meta["class"]``
    (``synth_broad``, prompts from ``eval.zeroshot_templates``)."""
    recs = subset_of(read_manifest(file), src, seed)
    return EvalSet("manifest", ImageStore(images), recs if any(r.negatives for r in recs) else [],
                   retrieval=records_retrieval(recs) if recs else None,
                   classification=records_classification(recs, p.zeroshot_templates))


def byo_records(path: Path) -> list[Record]:
    """Bring-your-own JSONL, one object per line::

        {"image": "rel/path.jpg", "positive": "true caption",
         "negatives": ["false caption", ...] | [{"caption": ..., "image": ..., "type": ...}, ...],
         "type": "default type of the negatives", "id": "optional"}

    A negative object may carry ``caption`` (a text negative), ``image`` (an edited image the positive
    is false for) or both (a Winoground-style pair); its ``type`` defaults to the row's (``"negative"``).
    """
    out = []
    for i, (lineno, row) in enumerate(iter_jsonl_lines(path), 1):
        where = f"{path}:{lineno}"
        image, positive = _str(row, "image", where), _str(row, "positive", where)
        default_type = row.get("type", "negative")
        negs = row.get("negatives")
        if not isinstance(negs, list) or not negs:
            raise ValueError(f"{where}: 'negatives' must be a non-empty list of captions or objects")
        parsed = []
        for j, n in enumerate(negs):
            if isinstance(n, str):
                caption = _str({f"negatives[{j}]": n}, f"negatives[{j}]", where)
                parsed.append(Negative(type=str(default_type), caption=caption))
            elif isinstance(n, dict) and (
                isinstance(n.get("caption"), str) or isinstance(n.get("image"), str)
            ):
                for key in ("caption", "image"):
                    if n.get(key) is not None:
                        _str(n, key, f"{where}: negatives[{j}]")
                parsed.append(
                    Negative(
                        type=str(n.get("type", default_type)), caption=n.get("caption"), image=n.get("image")
                    )
                )
            else:
                raise ValueError(
                    f"{where}: negatives[{j}] must be a string or an object with 'caption' and/or 'image'"
                )
        out.append(
            Record(
                id=str(row.get("id", f"byo-{i}")),
                image=image,
                caption=positive,
                split="test",
                source="byo",
                negatives=tuple(parsed),
            )
        )
    return out


def load_byo(src, file: Path, images: Path, p, seed: int) -> EvalSet:
    return EvalSet("byo", ImageStore(images), subset_of(byo_records(file), src, seed))


# --------------------------------------------------------------------------------------- HNC


def load_hnc(src, file: Path, images: Path, p, seed: int) -> EvalSet:
    """Either HNC schema (genemi.data.hnc recognises each entry's shape); ``subset`` by image key. Streamed
    into a :class:`~genemi.evalsets.RecordTable`: the whole val file (1.16 M pairs) holds no record object."""
    records = RecordTable(iter_hnc_records(file, "eval", subset=src.subset, seed=seed))
    return EvalSet("hnc", ImageStore(images), records)


# ---------------------------------------------------------------------------------- COCO neg


def coco_neg_records(path: Path) -> list[Record]:
    """The thesis's COCO set (Structure-CLIP ``test_coco_aug_withneg.json``): a JSON list of
    ``{"image": <val2014 file name>, "text": <positive>, "neg_text": <negative>}``; type ``neg_text``."""
    data = read_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of {{image, text, neg_text}} objects")
    keys = ("image", "text", "neg_text")
    return [
        _pair(row, f"{path}: item {i}", f"coco_neg-{i}", "coco_neg", "neg_text", keys)
        for i, row in enumerate(data)
    ]


def load_coco_neg(src, file, images, p, seed) -> EvalSet:
    return EvalSet("coco_neg", ImageStore(images), subset_of(coco_neg_records(file), src, seed))


# ---------------------------------------------------------------------------------- SugarCrepe


def sugarcrepe_file(folder: Path, cat: str) -> Path:
    """``<cat>.json``; an early release of SugarCrepe named the object files ``*_ent.json`` (add_ent,
    replace_ent, swap_ent), so that name is read when the ``*_obj`` one is absent."""
    path = folder / f"{cat}.json"
    if not path.exists() and cat.endswith("_obj"):
        old = folder / f"{cat[: -len('_obj')]}_ent.json"
        if old.exists():
            return old
    return path


def sugarcrepe_records(folder: Path) -> list[Record]:
    """The 7 SugarCrepe files ``<category>.json`` = ``{"<id>": {"filename", "caption", "negative_caption"}}``
    (images: COCO val2017 file names); type = category."""
    out = []
    for cat in SUGARCREPE:
        path = sugarcrepe_file(folder, cat)
        data = read_json(path)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected an object {{id: {{filename, caption, negative_caption}}}}")
        for key in sorted(data, key=lambda k: (len(k), k)):
            where, rid = f"{path}: item {key!r}", f"sugarcrepe-{cat}-{key}"
            out.append(
                _pair(data[key], where, rid, "sugarcrepe", cat, ("filename", "caption", "negative_caption"))
            )
    return out


def load_sugarcrepe(src, file, images, p, seed) -> EvalSet:
    return EvalSet("sugarcrepe", ImageStore(images), subset_of(sugarcrepe_records(file), src, seed))


def _needs_sugarcrepe(src, file, images, p):
    return [
        (sugarcrepe_file(file, c), f"SugarCrepe {c}.json (repo RAIVNLab/sugar-crepe, data/)")
        for c in SUGARCREPE
    ] + [(images, "COCO val2017 images (val2017.zip)")]


# ---------------------------------------------------------------------------------------- ARO


def aro_records(path: Path, kind: str) -> tuple[list[Record], dict]:
    """ARO VG-Relation / VG-Attribution: a JSON list of ``{"image_path", "bbox_x", "bbox_y", "bbox_w",
    "bbox_h", "true_caption", "false_caption", "relation_name" | "attributes": [a, b], ...}``.

    The image is the bbox crop (as ARO does: it removes the scene's irrelevant parts); the type is the
    relation name or ``"<a>_<b>"`` (ARO's attribute-pair key). Returns the records and the crop table.
    """
    data = read_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of ARO test cases")
    recs, crops = [], {}
    for i, row in enumerate(data):
        where = f"{path}: item {i}"
        try:
            box = tuple(float(row[k]) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
            image = _str(row, "image_path", where)
            if kind == "relation":
                t = _str(row, "relation_name", where)
            else:
                a = row["attributes"]
                t = f"{a[0]}_{a[1]}"
        except (KeyError, TypeError, IndexError, ValueError) as e:
            raise ValueError(
                f"{where}: not an ARO {kind} test case ({e}); expected image_path, bbox_x/y/w/h, "
                f"true_caption, false_caption and {'relation_name' if kind == 'relation' else 'attributes'}"
            ) from None
        ref = f"{image}#crop={','.join(f'{v:g}' for v in box)}"
        crops[ref] = (image, box)
        recs.append(
            Record(
                id=f"aro-{kind}-{i}",
                image=ref,
                caption=_str(row, "true_caption", where),
                split="test",
                source=f"aro_{kind}",
                group=image,
                negatives=(Negative(type=t, caption=_str(row, "false_caption", where)),),
            )
        )
    return recs, crops


def _load_aro(kind: str, min_count: int, exclude: frozenset[str] = frozenset()):
    """ARO's macro accuracies: VG-Relation averages its relations less ARO's symmetric ones (every
    relation: ``macro_all``); VG-Attribution averages attribute pairs seen >= 25 times."""

    def load(src, file, images, p, seed) -> EvalSet:
        recs, crops = aro_records(file, kind)
        recs = subset_of(recs, src, seed)
        return EvalSet(f"aro_{kind}", ImageStore(images, crops=crops), recs, macro_min_count=min_count,
                       macro_exclude=exclude)

    return load


LOADERS = {
    "manifest": Loader(
        load_manifest,
        needs_file_and_dir("genemi manifest JSONL", "image root"),
        "produced by the synth_data and mine stages",
    ),
    "byo": Loader(
        load_byo,
        needs_file_and_dir("your JSONL {image, positive, negatives, type}", "your image root"),
        "your own files; format in docs/benchmarks.md#bring-your-own",
    ),
    "hnc": Loader(
        load_hnc,
        needs_file_and_dir("HNC JSON (HF patilli/HNC)", "GQA images (images.zip)"),
        "download_hnc and download_gqa stages with data.source=hnc",
    ),
    "coco_neg": Loader(
        load_coco_neg,
        needs_file_and_dir("test_coco_aug_withneg.json (Structure-CLIP)", "COCO val2014 images"),
        "Structure-CLIP's test_coco_aug_withneg.json; images from the download_coco stage",
    ),
    "sugarcrepe": Loader(
        load_sugarcrepe, _needs_sugarcrepe, "github.com/RAIVNLab/sugar-crepe data/*.json + COCO val2017"
    ),
    "aro_relation": Loader(
        _load_aro("relation", 0, ARO_SYMMETRIC_RELATIONS),
        needs_file_and_dir("ARO visual_genome_relation.json", "ARO VG images (vgr_vga_images.zip)"),
        "github.com/mertyg/vision-language-models-are-bows (VG_Relation)",
    ),
    "aro_attribution": Loader(
        _load_aro("attribution", 25),
        needs_file_and_dir("ARO visual_genome_attribution.json", "ARO VG images (vgr_vga_images.zip)"),
        "github.com/mertyg/vision-language-models-are-bows (VG_Attribution)",
    ),
}
