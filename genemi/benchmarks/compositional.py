"""Readers of VALSE, VL-CheckList, WhatsUp, SugarCrepe++ and EqBen, each in its released file layout.

Each reader follows its benchmark's own evaluation code for what is compared and which items count
(docs/benchmarks.md has the protocol, the file layout and the known differences):

* VALSE (``Heidelberg-NLP/VALSE`` ``data/*.json``): caption vs foil per image, only the samples its
  annotators validated (``mturk.caption >= 2``); one type per piece (``existence``, ``counting-hard``, ...).
* VL-CheckList (``om-ai-lab/VL-CheckList``): the ``corpus/v1/<Aspect>/.../<corpus>.yaml`` files name each
  annotation (``ANNO_PATH``, relative to the checkout) and its image folder (``IMG_ROOT``); each annotation
  is ``[[image path, {"POS": [...], "NEG": [...]}], ...]`` and the first POS competes with the first NEG.
* WhatsUp (``amitakamath/whatsup_vlms``): Controlled-A/B, ``[{"image_path", "caption_options"}]`` with the
  first of four options true (one image, four captions; pair and set accuracy over the images of one object
  pair); COCO-QA / VG-QA, ``[[image id, true caption, false caption], ...]``.
* SugarCrepe++ (``Sri-Harsha/scpp`` ``data/<category>.json``): ``[{"id", "filename", "caption",
  "caption2", "negative_caption"}]``; two true captions and one false one per image.
* EqBen (``Wangt-CN/EqBen``, Winoground-style annotation): ``[{"image0", "caption0", "image1",
  "caption1"}]``; text, image and group score per sub-dataset (the first folder of ``image0``).
"""

from __future__ import annotations

from pathlib import Path

from genemi.benchmarks.pairwise import _str, needs_file_and_dir, subset_of
from genemi.evalsets import Choice, EvalSet, ImageStore, Loader, Triplet
from genemi.io import read_json
from genemi.manifest import Negative, Record

# ------------------------------------------------------------------------------------------ VALSE

# piece (file stem of data/<piece>.json) -> its image folder under `images`: the folders of VALSE's own
# config.py (relative to its data/ folder; FOIL-it's COCO val2014 placed as coco/val2014)
VALSE_PIECES = {
    "existence": "visual7w/images",
    "plurals": "plurals/test_images",
    "counting-hard": "visual7w/images",
    "counting-small-quant": "visual7w/images",
    "counting-adversarial": "visual7w/images",
    "relations": "relations/test_images",
    "action-replacement": "actions/images_512",
    "actant-swap": "actions/images_512",
    "coreference-standard": "coref/release_too_many_is_this_in_color/images",
    "coreference-hard": "coref/release_v18/test_images",
    "foil-it": "coco/val2014",
}
VALSE_MIN_VOTES = 2  # a valid foil: >= 2 of 3 annotators chose the caption and not the foil (VALSE README)


def _valse_files(path: Path) -> list[Path]:
    """``path`` itself (one piece) or the folder's 11 piece files."""
    if path.suffix == ".json":
        return [path]
    return [path / f"{piece}.json" for piece in VALSE_PIECES]


def valse_records(path: Path) -> list[Record]:
    """VALSE pieces ``{"<key>": {"image_file", "caption", "foil", "mturk": {"caption": votes}, ...}}``;
    type = piece; samples with fewer than 2 caption votes (not validated) are left out, as VALSE's
    evaluation scripts do."""
    out = []
    for f in _valse_files(path):
        piece = f.stem
        if piece not in VALSE_PIECES:
            raise ValueError(f"{f}: not a VALSE piece; expected one of {', '.join(VALSE_PIECES)}.json")
        data = read_json(f)
        if not isinstance(data, dict):
            raise ValueError(f"{f}: expected an object {{key: {{image_file, caption, foil, mturk}}}}")
        for key, row in data.items():
            where = f"{f}: item {key!r}"
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected an object with image_file, caption, foil, mturk")
            votes = (row.get("mturk") or {}).get("caption") if isinstance(row.get("mturk"), dict) else None
            if not isinstance(votes, int):
                raise ValueError(f"{where}: 'mturk.caption' (annotator votes, 0-3) must be an integer")
            if votes < VALSE_MIN_VOTES:
                continue
            image = f"{VALSE_PIECES[piece]}/{_str(row, 'image_file', where)}"
            out.append(
                Record(
                    id=f"valse-{piece}-{key}",
                    image=image,
                    caption=_str(row, "caption", where),
                    split="test",
                    source="valse",
                    negatives=(Negative(type=piece, caption=_str(row, "foil", where)),),
                )
            )
    return out


def load_valse(src, file, images, p, seed) -> EvalSet:
    return EvalSet("valse", ImageStore(images), subset_of(valse_records(file), src, seed))


def _needs_valse(src, file, images, p):
    return [(f, "VALSE piece (github.com/Heidelberg-NLP/VALSE data/)") for f in _valse_files(file)] + [
        (images, "folder holding each piece's images (visual7w/images/, plurals/test_images/, ...)")
    ]


# ------------------------------------------------------------------------------------ VL-CheckList

VLC_ASPECTS = ("object", "attribute", "relation")


def vl_checklist_records(root: Path) -> tuple[list[Record], dict[str, tuple[str, ...]]]:
    """Every corpus of a VL-CheckList checkout ``root`` (``corpus/v1/**.yaml`` + the ``data/`` files they
    name): records typed ``<aspect>_<category>`` (``attribute_color``, ``object_location_center``,
    ``relation_spatial``; corpora of one category pooled) and the aspect -> types table."""
    import yaml

    corpus = root / "corpus" / "v1"
    configs = sorted(corpus.rglob("*.yaml"))
    if not configs:
        raise ValueError(
            f"{root}: no corpus/v1/<Aspect>/.../<corpus>.yaml; point `file` at a VL-CheckList "
            "checkout (the folder holding corpus/ and data/)"
        )
    out, types = [], {}
    for cfg_path in configs:
        rel = cfg_path.relative_to(corpus)
        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        if not isinstance(cfg.get("ANNO_PATH"), str) or not isinstance(cfg.get("IMG_ROOT"), str):
            raise ValueError(f"{cfg_path}: needs ANNO_PATH and IMG_ROOT (VL-CheckList corpus format)")
        t = "_".join(part.lower() for part in rel.parts[:-1])
        aspect = rel.parts[0].lower()
        if aspect not in VLC_ASPECTS:
            raise ValueError(f"{cfg_path}: aspect {rel.parts[0]!r} is not one of Object, Attribute, Relation")
        types.setdefault(f"macro_{aspect}", set()).add(t)
        ann = root / cfg["ANNO_PATH"]
        data = read_json(ann)
        if not isinstance(data, list):
            raise ValueError(f'{ann}: expected a JSON list of [image path, {{"POS": [...], "NEG": [...]}}]')
        img_root = cfg["IMG_ROOT"].strip("/")
        for i, row in enumerate(data):
            where = f"{ann}: item {i}"
            ok = isinstance(row, list) and len(row) == 2 and isinstance(row[1], dict)
            pos, neg = (row[1].get("POS"), row[1].get("NEG")) if ok else (None, None)
            if not (
                ok
                and isinstance(row[0], str)
                and pos
                and neg
                and isinstance(pos, list)
                and isinstance(neg, list)
            ):
                raise ValueError(f'{where}: expected [image path, {{"POS": [caption, ...], "NEG": [...]}}]')
            caption = _str({"POS[0]": pos[0]}, "POS[0]", where)
            negative = _str({"NEG[0]": neg[0]}, "NEG[0]", where)
            out.append(
                Record(
                    id=f"vlc-{t}-{rel.stem}-{i}",
                    image=f"{img_root}/{row[0]}",
                    caption=caption,
                    split="test",
                    source="vl_checklist",
                    negatives=(Negative(type=t, caption=negative),),
                )
            )
    return out, {k: tuple(sorted(v)) for k, v in sorted(types.items())}


def load_vl_checklist(src, file, images, p, seed) -> EvalSet:
    recs, groups = vl_checklist_records(file)
    return EvalSet("vl_checklist", ImageStore(images), subset_of(recs, src, seed), macro_groups=groups)


def _needs_vl_checklist(src, file, images, p):
    return [
        (file / "corpus" / "v1", "VL-CheckList corpus/v1 (github.com/om-ai-lab/VL-CheckList)"),
        (file / "data", "VL-CheckList data/ (the annotations its corpus files name)"),
        (images, "folder holding hake/, swig/ and vg/ (VL-CheckList DATASETS.md)"),
    ]


# ------------------------------------------------------------------------------------------ WhatsUp

# the two prepositions of each pair (WhatsUp's pair accuracy): left/right, and on/under (Controlled-A)
# or in-front/behind (Controlled-B); a set is all four images of one object pair
WHATSUP_PAIRS = (("left", "right"), ("on", "under"), ("in-front", "behind"))


def whatsup_choices(path: Path) -> tuple[list[Choice], dict[str, list[tuple[str, ...]]]]:
    """Controlled-A/B ``[{"image_path": "data/controlled_images/<a>_<prep>_<b>.jpeg", "caption_options":
    [true, false, false, false]}]``: one 1-image x 4-caption sample each, type = the preposition of its file
    name; and the ``pair`` / ``set`` groups (ids of the images of one object pair ``(<a>, <b>)``)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of {{image_path, caption_options}}")
    out, by_pair = [], {}
    for i, row in enumerate(data):
        where = f"{path}: item {i}"
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected an object with image_path and caption_options")
        image = _str(row, "image_path", where)
        opts = row.get("caption_options")
        if (
            not isinstance(opts, list)
            or len(opts) < 2
            or not all(isinstance(o, str) and o.strip() for o in opts)
        ):
            raise ValueError(f"{where}: 'caption_options' must list >= 2 captions, the true one first")
        parts = Path(image).stem.split("_")
        prep = parts[1] if len(parts) >= 3 else ""
        if prep not in {p for pair in WHATSUP_PAIRS for p in pair}:
            raise ValueError(
                f"{where}: image name {Path(image).name!r} is not <object>_<preposition>_<object> "
                "(on, under, left_of, right_of, in-front_of, behind)"
            )
        cid = f"whatsup-{i}"
        out.append(Choice(cid, (image,), tuple(opts), prep))
        by_pair.setdefault((parts[0], parts[-1]), {})[prep] = cid
    groups: dict[str, list[tuple[str, ...]]] = {"pair": [], "set": []}
    for preps in by_pair.values():  # only complete pairs and sets (the released files hold all four)
        groups["pair"] += [(preps[a], preps[b]) for a, b in WHATSUP_PAIRS if a in preps and b in preps]
        if len(preps) == 4:
            groups["set"].append(tuple(preps.values()))
    return out, groups


def load_whatsup(src, file, images, p, seed) -> EvalSet:
    choices, groups = whatsup_choices(file)
    return EvalSet("whatsup", ImageStore(images), [], subset_of(choices, src, seed), choice_groups=groups)


def _qa_preposition(true: str, two_objects: bool, coco: bool) -> str:
    """The preposition type WhatsUp's COCO-QA / VG-QA evaluation assigns (``dataset_zoo/aro_datasets.py``)."""
    if not two_objects:
        return true.split()[-1]
    for phrase, prep in (("left of", "left"), ("right of", "right")):
        if phrase in true:
            return prep
    if coco:
        return "above" if "above" in true else "below"
    return "front" if "front of" in true else "behind" if "behind" in true else "top"


def whatsup_qa_records(path: Path) -> list[Record]:
    """COCO-QA / VG-QA ``[[image id, true caption, false caption], ...]`` (``coco_qa_{one,two}_obj.json``:
    images ``val2017/<id, 12 digits>.jpg``; ``vg_qa_{one,two}_obj.json``: ``vg_images/<id>.jpg``)."""
    name = path.name
    if not name.startswith(("coco_qa_", "vg_qa_")):
        raise ValueError(
            f"{path}: a WhatsUp QA file is named coco_qa_*_obj.json or vg_qa_*_obj.json (the name "
            "says where its images are)"
        )
    coco, two = name.startswith("coco_"), "_two_" in name
    data = read_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of [image id, true caption, false caption]")
    out = []
    for i, row in enumerate(data):
        where = f"{path}: item {i}"
        if not (isinstance(row, list) and len(row) >= 3 and isinstance(row[0], int | str)):
            raise ValueError(f"{where}: expected [image id, true caption, false caption]")
        true = _str({"caption": row[1]}, "caption", where)
        false = _str({"negative": row[2]}, "negative", where)
        image = f"val2017/{int(row[0]):012d}.jpg" if coco else f"vg_images/{row[0]}.jpg"
        out.append(
            Record(
                id=f"whatsup_qa-{i}",
                image=image,
                caption=true,
                split="test",
                source="whatsup_qa",
                negatives=(Negative(type=_qa_preposition(true, two, coco), caption=false),),
            )
        )
    return out


def load_whatsup_qa(src, file, images, p, seed) -> EvalSet:
    return EvalSet("whatsup_qa", ImageStore(images), subset_of(whatsup_qa_records(file), src, seed))


# ------------------------------------------------------------------------------------- SugarCrepe++

SUGARCREPE_PP = ("replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")


def sugarcrepe_pp_triplets(folder: Path) -> list[Triplet]:
    """The 5 SugarCrepe++ files ``<category>.json`` = ``[{"id", "filename", "caption", "caption2",
    "negative_caption"}]`` (images: COCO val2017 file names); type = category."""
    out = []
    for cat in SUGARCREPE_PP:
        path = folder / f"{cat}.json"
        data = read_json(path)
        if not isinstance(data, list):
            raise ValueError(
                f"{path}: expected a JSON list of {{id, filename, caption, caption2, negative_caption}}"
            )
        for i, row in enumerate(data):
            where = f"{path}: item {i}"
            if not isinstance(row, dict):
                raise ValueError(
                    f"{where}: expected an object with filename, caption, caption2, negative_caption"
                )
            p1, p2, neg = (_str(row, k, where) for k in ("caption", "caption2", "negative_caption"))
            out.append(
                Triplet(f"scpp-{cat}-{row.get('id', i)}", _str(row, "filename", where), (p1, p2), neg, cat)
            )
    return out


def load_sugarcrepe_pp(src, file, images, p, seed) -> EvalSet:
    return EvalSet(
        "sugarcrepe_pp", ImageStore(images), triplets=subset_of(sugarcrepe_pp_triplets(file), src, seed)
    )


def _needs_sugarcrepe_pp(src, file, images, p):
    return [
        (file / f"{c}.json", f"SugarCrepe++ {c}.json (github.com/Sri-Harsha/scpp data/)")
        for c in SUGARCREPE_PP
    ] + [(images, "COCO val2017 images (val2017.zip)")]


# -------------------------------------------------------------------------------------------- EqBen


def _caption(row: dict, key: str, where: str) -> str:
    """A caption field; EqBen's AG annotation holds a list there, of which its loader takes the first."""
    v = row.get(key)
    if isinstance(v, list) and v:
        v = v[0]
    return _str({key: v}, key, where)


def eqben_choices(path: Path) -> list[Choice]:
    """EqBen's Winoground-style annotation ``[{"image0", "caption0", "image1", "caption1"}]`` (the 10%
    subset ``eqben_subset_10percent_final.json`` or the full set): one 2x2 sample each, type = the first
    folder of ``image0`` (the sub-dataset: ``eqbenag``, ``eqbenyoucook2``, ``eqbengebc``, ``eqbenkubric_*``,
    ``eqbensd``)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of {{image0, caption0, image1, caption1}}")
    out = []
    for i, row in enumerate(data):
        where = f"{path}: item {i}"
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected an object with image0, caption0, image1, caption1")
        imgs = tuple(_str(row, f"image{k}", where) for k in (0, 1))
        caps = tuple(_caption(row, f"caption{k}", where) for k in (0, 1))
        t = imgs[0].split("/")[0] if "/" in imgs[0] else "all"
        out.append(Choice(f"eqben-{i}", imgs, caps, t))
    return out


def load_eqben(src, file, images, p, seed) -> EvalSet:
    return EvalSet("eqben", ImageStore(images), [], subset_of(eqben_choices(file), src, seed))


LOADERS = {
    "valse": Loader(
        load_valse, _needs_valse, "github.com/Heidelberg-NLP/VALSE data/*.json + each piece's images"
    ),
    "vl_checklist": Loader(
        load_vl_checklist,
        _needs_vl_checklist,
        "github.com/om-ai-lab/VL-CheckList (corpus/, data/) + HAKE, SWiG, VG images",
    ),
    "whatsup": Loader(
        load_whatsup,
        needs_file_and_dir(
            "WhatsUp controlled_images_dataset.json / controlled_clevr_dataset.json",
            "WhatsUp data/ folder holding controlled_images/ or controlled_clevr/",
        ),
        "github.com/amitakamath/whatsup_vlms (its Google Drive data folder)",
    ),
    "whatsup_qa": Loader(
        load_whatsup_qa,
        needs_file_and_dir(
            "WhatsUp coco_qa_{one,two}_obj.json / vg_qa_{one,two}_obj.json",
            "WhatsUp data/ folder holding val2017/ or vg_images/",
        ),
        "github.com/amitakamath/whatsup_vlms (its Google Drive data folder)",
    ),
    "sugarcrepe_pp": Loader(
        load_sugarcrepe_pp, _needs_sugarcrepe_pp, "github.com/Sri-Harsha/scpp data/*.json + COCO val2017"
    ),
    "eqben": Loader(
        load_eqben,
        needs_file_and_dir(
            "EqBen annotation (eqben_subset_10percent_final.json)",
            "EqBen image folder (image_subset/, holding eqbenag/, eqbensd/, ...)",
        ),
        "github.com/Wangt-CN/EqBen (annotation and images from its README's links)",
    ),
}
