"""Stand-ins for the real datasets: the synthetic world written out in their published formats.

With ``data.stand_in: synthetic`` the download stages write these files instead of downloading, so
every real road (the HNC and COCO readers, the conversions, the loaders, the genemi_val reader) runs
offline, end to end, on files that only differ from the real ones in where they come from.
Each writer takes the synthetic world (``synth`` params), a ``seed``, ``size`` and ``palette``
(:func:`stand_in_world`) and writes into an existing folder (the download stage's temporary output,
renamed into place when complete):

* :func:`write_hnc`:  ``hnc_clean_strict_{train,val,test}.json`` in HNC's two schemas (train/val:
  keyed by GQA image id, a ``captions`` object, negatives pointing to their positive by
  ``cpt_p_id``; test: keyed by ``<name>.jpg``, a positive followed by its negatives in consecutive keys).
* :func:`write_gqa`:  ``images.zip`` with members ``images/<gqa id>.jpg`` (JPEG, like GQA's published
  zip, which download_gqa keeps unextracted) for every image id of those files.
* :func:`write_coco`: ``images/val2014.zip`` with members ``val2014/COCO_val2014_<cocoid:012d>.jpg``
  (COCO's published val2014.zip, kept unextracted),
  ``caption_datasets/dataset_coco.json`` (Karpathy) and
  ``annotations_trainval2014/annotations/captions_val2014.json`` (official captions), the layout of
  download_coco's real output.
* :func:`write_genemi_val`: ``test.jsonl`` (GeNeMi's validation rows ``num_sample``, ``caption_i``,
  ``image_i: {"path"}``) with its images, one row per COCO stand-in test image with two variations or more.

Sizes: each road's largest split has ``size`` scenes (HNC train, Karpathy ``restval``), its ``val``
and ``test`` splits ``size // 5`` each (at least 1); genemi_val has one row per Karpathy test image.

Scenes come from :func:`genemi.synth.dataset.generate_split` (train scenes for the largest split,
held-out-free test scenes for val/test), with a seed derived from ``(seed, road)`` so the HNC and
COCO stand-ins hold different scenes, in the world :func:`stand_in_world` picks (``data.stand_in_palette``).
Captions are the world's own (its 27 words, 38 with the broad palette; lower case, no full stop), so the word
tokenizer reads them too. Negatives are the synthetic miner's
(:func:`genemi.synth.dataset.scene_negatives`, every type, one per type): real compositional edits.

HNC: as in HNC, every positive has exactly one negative of its own type. An image holds its scene's
caption in the world's wording (:func:`hnc_wordings`: left-first names a pair's left object first; a random
mention order gives both wordings), once per mined negative, each followed by that negative rewritten in the
positive's wording. The synthetic types map to HNC type names (:data:`HNC_TYPES`, :data:`HNC_TEST_TYPES`;
the table in docs/real-data.md).

COCO: every image has 2-4 true captions (the scene caption, the other wording of a pair, and a
caption of each object and its place, e.g. "a red circle on the left"), since Karpathy images have
several captions each; with ``data.stand_in_coco_colors`` < 1 they leave some colour words out, as people's
captions do (:func:`coco_captions`).

genemi_val: a row is GeNeMi's miner's variations of one object of a test image, mined from its first COCO
caption (``mine_real`` with the world's exact models, :func:`genemi_val_row`): 2-4 portrayals painted in,
each with its rewritten caption; their scenes differ, so each caption matches exactly one image of its row,
like GeNeMi's.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from genemi import seeding
from genemi.config import MineParams, SynthParams
from genemi.images import ShardWriter
from genemi.manifest import Record
from genemi.synth import dataset, world
from genemi.synth.negatives import NEGATIVE_TYPES, SceneNegative

PathLike = str | os.PathLike

# every negative type, one of each per scene: the richest caption set the miner gives
MINE = MineParams(types=NEGATIVE_TYPES, max_per_type=1)
JPEG_QUALITY = 95  # high, with no chroma subsampling, so the flat colours survive the compression

# (scene kind, synthetic type) -> HNC train/val type. Pair captions are relation captions ("a red
# circle left of a blue square"), count captions attribute/count captions. "_subj"/"_obj" follow the
# object whose word changed; see _hnc_type.
HNC_TYPES = {
    ("pair", "attribute_swap"): "attribute_subg",
    ("pair", "attribute_replace"): "relation_attr",  # + _subj / _obj
    ("pair", "object_replace"): "relation",  # + _subj / _obj
    ("pair", "relation_flip"): "relation_pred",
    ("count", "attribute_replace"): "attribute",
    ("count", "object_replace"): "object",
    ("count", "count_change"): "obj_count",
}
# the same, for the test file's own type names
HNC_TEST_TYPES = {
    ("pair", "attribute_swap"): "attribute_relation",
    ("pair", "attribute_replace"): "relation_attribute",
    ("pair", "object_replace"): "relation",
    ("pair", "relation_flip"): "relation",
    ("count", "attribute_replace"): "verify_object_attribute",
    ("count", "object_replace"): "verify_object_relation",
    ("count", "count_change"): "object_count",
}
# id bases of the stand-in images: distinct per split, unique for up to 10**6 scenes a split
HNC_ID_BASE = {"train": 1_000_000, "val": 2_000_000}
COCO_ID_BASE = {"restval": 1_000_000, "val": 2_000_000, "test": 3_000_000}


def split_sizes(size: int) -> dict[str, int]:
    """Scenes per split of a road: ``{"train": size, "val": size // 5, "test": size // 5}``, val/test >= 1."""
    if size < 1:
        raise ValueError(f"data.stand_in_size must be >= 1, got {size}")
    small = max(1, size // 5)
    return {"train": size, "val": small, "test": small}


def stand_in_world(p: SynthParams, palette: str) -> SynthParams:
    """The world stand-in scenes are drawn from (``data.stand_in_palette``): ``narrow`` is ``p`` itself, the
    fine-tuning world; ``broad`` draws every colour and shape of the pretraining world (the held-out
    combinations still only in ``gen``), so that with 12x the object pairs a batch of 128 seldom holds a
    caption twice or a caption and its relation flip, as a batch of real captions does not
    (benchmarks/results/standin_hnc_investigation.md)."""
    if palette == "narrow":
        return p
    if palette != "broad":
        raise ValueError(f"data.stand_in_palette: must be one of narrow, broad, got {palette!r}")
    colors, shapes = dataset.broad_palette(p)
    return dataclasses.replace(p, colors=tuple(colors), shapes=tuple(shapes), broad_colors=(),
                               broad_shapes=())


def _road_seed(seed: int, road: str) -> int:
    """An own scene seed per road, so HNC and COCO stand-ins do not hold the same scenes."""
    return int(seeding.rng(seed, "stand_in", road).integers(2**31))


def scenes(p: SynthParams, seed: int, size: int, road: str) -> Iterator[tuple[str, Record, np.ndarray]]:
    """``(split, record, image)`` for every stand-in scene of ``road``, split by split (train, val, test).

    Train scenes come from the world's train split (no held-out combination), val and test from
    consecutive runs of its test split; ``image`` is HWC uint8 RGB at ``p.image_size``.
    """
    n = split_sizes(size)
    s = _road_seed(seed, road)
    for rec, img in dataset.generate_split(dataclasses.replace(p, n_train=n["train"]), "train", s):
        yield "train", rec, img
    held_free = dataclasses.replace(p, n_test=n["val"] + n["test"])
    for i, (rec, img) in enumerate(dataset.generate_split(held_free, "test", s)):
        yield ("val" if i < n["val"] else "test"), rec, img


def _indexed(
    p: SynthParams, seed: int, size: int, road: str
) -> Iterator[tuple[str, int, Record, np.ndarray]]:
    """:func:`scenes` with each scene's index inside its split."""
    for split, group in itertools.groupby(scenes(p, seed, size, road), key=lambda t: t[0]):
        for i, (_, rec, img) in enumerate(group):
            yield split, i, rec, img


def _jpeg(img: np.ndarray | Image.Image) -> bytes:
    im = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buf.getvalue()


def _save_jpeg(img: np.ndarray | Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_jpeg(img))


def _write_json(path: Path, obj: object) -> None:
    """Insertion order kept (the published files' order: a positive, then its negatives)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


# -------------------------------------------------------------------------------------------- HNC + GQA


def hnc_image_key(split: str, i: int) -> str:
    """GQA id of stand-in image ``i`` of ``split``: numeric for train/val, ``n<digits>`` for test."""
    return f"n{100000 + i}" if split == "test" else str(HNC_ID_BASE[split] + i)


def wordings(scene: dict) -> list[dict]:
    """The scene as each of its true wordings: a pair names either object first; a count scene has one."""
    if scene["kind"] == "pair":
        return [scene, dict(scene, order=scene["order"][::-1])]
    return [scene]


def _reword(neg_scene: dict, flip: bool) -> str:
    """The negative's caption in the wording of the positive (``flip``: the reversed mention order)."""
    return world.caption(dict(neg_scene, order=neg_scene["order"][::-1]) if flip else neg_scene)


def _diff(pos: str, neg: str) -> tuple[int, list[str] | None]:
    """(index of the first differing word, [original, replacement]) of two captions; (-1, None) if equal."""
    a, b = pos.split(), neg.split()
    for i, (x, y) in enumerate(itertools.zip_longest(a, b, fillvalue="")):
        if x != y:
            return i, [x, y]
    return -1, None


def _hnc_type(kind: str, neg_type: str, first_diff: int, test: bool) -> str:
    name = (HNC_TEST_TYPES if test else HNC_TYPES)[(kind, neg_type)]
    if not test and name in ("relation_attr", "relation"):
        # "a C S left of a C S": words 0-2 name the subject, 3-4 the relation, 5-7 the object
        name += "_subj" if first_diff < 3 else "_obj"
    return name


def _bboxes(scene: dict, image_key: str, size: int) -> dict:
    """HNC's ``bboxes``: GQA object id -> ``{"bbox": {x, y, w, h}, "name"}`` for every object of the scene."""
    out = {}
    for k, o in enumerate(sorted(scene["objects"], key=lambda o: o["slot"])):
        x0, y0, x1, y1 = world.box(o, size)
        out[f"{int(image_key) * 10 + k}"] = {
            "bbox": {"x": int(x0), "y": int(y0), "w": int(x1 - x0), "h": int(y1 - y0)},
            "name": o["shape"],
        }
    return out


def hnc_wordings(scene: dict, mention_order: str) -> list[dict]:
    """The scene as the world words its captions (``synth.mention_order``): ``left_first`` names a pair's left
    object first, the one wording the synthetic base was trained on; ``random`` lets either object come
    first, so a pair gets both wordings. A count scene has one."""
    return wordings(scene) if mention_order == "random" else [scene]


def hnc_pairs(rec: Record, p: SynthParams, seed: int) -> list[tuple[str, list[tuple[str, str, list | None]]]]:
    """What one stand-in image holds, one entry per wording of the scene (:func:`hnc_wordings`), with every
    mined negative rewritten in that wording: ``[(positive caption, [(negative caption, synthetic type,
    replaced)])]``."""
    scene = rec.meta["scene"]
    found: list[SceneNegative] = dataset.scene_negatives(rec, p, MINE, seed)
    out = []
    for w, worded in enumerate(hnc_wordings(scene, p.mention_order)):
        pos = world.caption(worded)
        negs = []
        for n in found:
            cap = _reword(n.scene, flip=w == 1)
            if cap != pos:
                negs.append((cap, n.type, _diff(pos, cap)[1]))
        out.append((pos, negs))
    return out


def _hnc_entry(
    split: str, key: str, rec: Record, p: SynthParams, seed: int, counter: itertools.count
) -> dict:
    """One image's captions: per mined negative, its positive (the same caption again for the next negative,
    as HNC repeats a positive for each caption template) and then the negative, both of the negative's type;
    HNC pairs each positive with exactly one negative."""
    kind = rec.meta["scene"]["kind"]
    test = split == "test"
    caps: dict[str, dict] = {}
    bboxes = {} if test else _bboxes(rec.meta["scene"], key, p.image_size)
    for pos, negs in hnc_pairs(rec, p, seed):
        for cap, neg_type, replaced in negs:
            ty = _hnc_type(kind, neg_type, _diff(pos, cap)[0], test)
            pos_id = next(counter)
            if test:  # the test schema: caption, label, type, replaced; a pair in consecutive keys
                caps[str(pos_id)] = {"caption": pos, "label": 1, "type": ty, "replaced": None}
                caps[str(next(counter))] = {"caption": cap, "label": 0, "type": ty, "replaced": None}
                continue
            caps[str(pos_id)] = {
                "caption": pos, "label": 1, "type": ty, "textual_label": None, "bboxes": bboxes,
                "ambiguity": {"ambiguous": False, "count": 0}, "noisy": False, "replaced": None,
                "cpt_p_id": None,
            }  # fmt: skip
            caps[str(next(counter))] = {
                "caption": cap, "label": 0, "type": ty, "textual_label": replaced[0] if replaced else None,
                "bboxes": bboxes, "ambiguity": {"ambiguous": False, "count": 0}, "noisy": False,
                "replaced": replaced, "cpt_p_id": pos_id,
            }  # fmt: skip
    return caps


def write_hnc(p: SynthParams, seed: int, size: int, out: PathLike, palette: str = "narrow") -> dict[str, int]:
    """``<out>/hnc_clean_strict_{train,val,test}.json``; returns the number of images per split.

    Caption ids are a running counter per file (as HNC's); a test image's counter restarts at 0.
    """
    from genemi.data.hnc import HNC_FILES

    p = stand_in_world(p, palette)

    out = Path(out)
    files: dict[str, dict] = {s: {} for s in HNC_FILES}
    counter = itertools.count()
    for split, i, rec, _ in _indexed(p, seed, size, "hnc"):
        key = hnc_image_key(split, i)
        caps = _hnc_entry(split, key, rec, p, seed, itertools.count() if split == "test" else counter)
        if not caps:  # no negative was found (cannot happen with every type on): HNC has no empty entries
            continue
        if split == "test":
            files[split][f"{key}.jpg"] = caps
        else:
            files[split][key] = {"captions": caps}
    for split, fname in HNC_FILES.items():
        _write_json(out / fname, files[split])
    return {s: len(v) for s, v in files.items()}


def write_gqa(p: SynthParams, seed: int, size: int, out: PathLike, palette: str = "narrow") -> int:
    """``<out>/images.zip`` holding ``images/<gqa id>.jpg`` for every image of :func:`write_hnc`'s files
    (read as ``<out>/images/<gqa id>.jpg``); returns their number."""
    p = stand_in_world(p, palette)
    n = 0
    folder = Path(out) / "images"
    with ShardWriter(folder) as shard:
        for split, i, _, img in _indexed(p, seed, size, "hnc"):
            shard.write(folder / f"{hnc_image_key(split, i)}.jpg", _jpeg(img))
            n += 1
    return n


# ------------------------------------------------------------------------------------------------- COCO

KARPATHY_SPLIT = {"train": "restval", "val": "val", "test": "test"}  # all of them are val2014 images


def coco_captions(scene: dict, colors: float = 1.0, rng: np.random.Generator | None = None) -> list[str]:
    """2-4 true captions of a scene: its wordings, then each object with its place (lone objects: "a ...").

    ``colors`` < 1 (``data.stand_in_coco_colors``): each colour word is kept with that probability (draws from
    ``rng``), as people's captions often leave out what they can take for granted, while GeNeMi's portrayals
    name the varied object's look; a caption without a colour word stays true (it names the shape alone)."""
    caps = [world.caption(w) for w in wordings(scene)]
    objs = sorted(scene["objects"], key=lambda o: o["slot"])
    for o in objs:
        caps.append(f"a {o['color']} {o['shape']} {world.PLACE[o['slot']]}")
    caps = list(dict.fromkeys(caps))[:4]
    if colors < 1.0:
        if rng is None:
            raise ValueError("coco_captions: colors < 1 needs an rng")
        keep = lambda w: w not in world.PALETTE or rng.random() < colors  # noqa: E731
        kept = (" ".join(w for w in c.split() if keep(w)) for c in caps)
        caps = list(dict.fromkeys(kept))
    return caps


def image_captions(rec: Record, split: str, i: int, seed: int, colors: float) -> list[str]:
    """The COCO stand-in captions of scene ``i`` of ``split`` (:func:`coco_captions`, with its own colour
    draws)."""
    return coco_captions(rec.meta["scene"], colors, seeding.rng(seed, "coco_colors", split, i))


def coco_file_name(cocoid: int) -> str:
    return f"COCO_val2014_{cocoid:012d}.jpg"


def write_coco(
    p: SynthParams, seed: int, size: int, out: PathLike, palette: str = "narrow", coco_colors: float = 1.0
) -> dict[str, int]:
    """download_coco's layout (module docstring); returns the number of images per Karpathy split.
    ``coco_colors``: the share of colour words the captions keep (:func:`coco_captions`)."""
    p = stand_in_world(p, palette)
    out = Path(out)
    images, anns, official = [], [], []
    counts: dict[str, int] = {}
    sentid = 0
    folder = out / "images" / "val2014"
    with ShardWriter(folder) as shard:  # the JPEGs go straight into the zip
        for split, i, rec, img in _indexed(p, seed, size, "coco"):
            ksplit = KARPATHY_SPLIT[split]
            cocoid = COCO_ID_BASE[ksplit] + i
            fname = coco_file_name(cocoid)
            shard.write(folder / fname, _jpeg(img))
            imgid = len(images)
            sentences = []
            for cap in image_captions(rec, split, i, seed, coco_colors):
                sentences.append({"tokens": cap.split(), "raw": cap, "imgid": imgid, "sentid": sentid})
                anns.append({"image_id": cocoid, "id": sentid, "caption": cap})
                sentid += 1
            images.append({
                "filepath": "val2014", "sentids": [s["sentid"] for s in sentences], "filename": fname,
                "imgid": imgid, "split": ksplit, "sentences": sentences, "cocoid": cocoid,
            })  # fmt: skip
            official.append({"id": cocoid, "file_name": fname, "height": p.image_size, "width": p.image_size})
            counts[ksplit] = counts.get(ksplit, 0) + 1
    _write_json(out / "caption_datasets" / "dataset_coco.json", {"images": images, "dataset": "coco"})
    _write_json(
        out / "annotations_trainval2014" / "annotations" / "captions_val2014.json",
        {"info": {"description": "genemi synthetic stand-in"}, "images": official, "annotations": anns},
    )
    return counts


# ------------------------------------------------------------------------------------------- mining


def synthetic_lexicon(p: SynthParams):
    """The substitution lexicon of the synthetic world, for GeNeMi's miner on stand-in captions.

    The packaged lexicon knows COCO's objects and a wide palette: on the world's captions its caption
    tagger finds no object ("circle" is no COCO category), and its portrayals would paint colours the
    world has no word for. This one has ``p.colors`` as the only colour scale, ``p.shapes`` as the only
    kind of object and "left of" / "right of" as inverse relations, so every rewritten caption stays in
    the world's vocabulary. Pass it as the ``lexicon`` of the miner's tagger, portrayer, rewriter and
    rule negatives (:mod:`genemi.mining`).
    """
    from genemi.mining.lexicon import Lexicon

    return Lexicon(
        scales={"colors": {"color": tuple((c,) for c in p.colors)}, "materials": {}, "sizes": {}},
        relations={"left of": "right of", "right of": "left of"},
        supercategories={"shape": tuple(p.shapes)},
        aliases={},
        subtypes={},
        irregular_plurals={s: world.PLURAL[s] for s in p.shapes},
    )


# ------------------------------------------------------------------------------------------- genemi_val

GENEMI_VAL_MAX = 4  # GeNeMi rows hold 2-4 image-caption pairs: the variations of one object


def genemi_val_row(
    rec: Record, image: np.ndarray, p: SynthParams, seed: int
) -> list[tuple[str, Image.Image]]:
    """``[(caption, image)]`` of one row: GeNeMi's miner's variations of one object of the image, as GeNeMi
    made its validation set from Karpathy test with its own pipeline (4 portrayals per object, filtered).

    The chain is ``mine_real``'s with the world's exact models
    (:func:`genemi.mining.synthetic.synthetic_chain`'s parts):
    the first tagged object that gives at least two variations, its portrayals (a recolouring or another
    shape), the rewritten caption, the painted image; a variation is kept when the scorer confirms its caption
    and its scene differs from the row's others, so each caption is true of exactly one image of the row.
    Fewer than two: ``[]`` (no row)."""
    from genemi.mining import synthetic as W
    from genemi.mining.portrayals import LexiconPortrayer
    from genemi.mining.rewrite import CaptionRewriter

    lexicon = synthetic_lexicon(p)  # the parts of synthetic_chain, without the pipeline's model doors
    portrayer, rewriter = LexiconPortrayer(lexicon), CaptionRewriter(None, lexicon)
    img = Image.fromarray(image)
    for item in W.WorldTagger().tag(img, rec.caption):
        mask = W.WorldSegmenter().segment(img, W.WorldGrounder().ground(img, item)[0].box)
        rng = seeding.rng(seed, rec.id, item, "genemi_val")
        row: list[tuple[str, Image.Image, dict]] = []
        for por in portrayer.portray(item, rec.caption, GENEMI_VAL_MAX, rng):
            cap = rewriter.rewrite(rec.caption, item, por.short)
            var = W.WorldPainter().edit(img, mask, por.desc, 0)
            scene = W.read_scene(var)
            if cap is None or W.WorldScorer().score(var, cap) <= 0:
                continue
            if any(W.caption_true(cap, s) or W.caption_true(c, scene) for c, _, s in row):
                continue
            row.append((cap, var, scene))
        if len(row) >= 2:
            return [(c, v) for c, v, _ in row]
    return []


def compositional_val_row(
    rec: Record, image: np.ndarray, p: SynthParams, seed: int
) -> list[tuple[str, Image.Image]]:
    """A harder row in genemi_val's format for diagnosis (``benchmarks/standin_genemi_effect.py``): the scene,
    then up to three of the synthetic miner's negatives of it (colour swap, colour or shape change, place
    swap, count change) as images with the captions true of them; every scene of the row differs."""
    mined, files = dataset.mine_record(rec, Image.fromarray(image), p, MINE, seed)
    keys = {rec.meta["key"]}
    row = [(rec.caption, Image.fromarray(image))]
    for neg, (_, img), key in zip(mined.negatives, files, mined.meta["negative_keys"], strict=True):
        if key in keys or len(row) == GENEMI_VAL_MAX:
            continue
        keys.add(key)
        row.append((neg.caption, img))
    return row


def write_genemi_val(
    p: SynthParams, seed: int, size: int, out: PathLike, row_of=genemi_val_row, palette: str = "narrow",
    coco_colors: float = 1.0,
) -> int:
    """``<out>/test.jsonl`` and ``<out>/<row:06d>/<i>.jpg``, one row per COCO stand-in test image (GeNeMi's
    validation set was made from Karpathy test) made by ``row_of`` from the image's first caption as
    :func:`write_coco` writes it (``coco_colors``); returns the number of rows."""
    p = stand_in_world(p, palette)
    out = Path(out)
    lines = []
    for split, i, rec, img in _indexed(p, seed, size, "coco"):
        if split != "test":
            continue
        row: dict = {}
        rec = dataclasses.replace(rec, caption=image_captions(rec, split, i, seed, coco_colors)[0])
        pairs = row_of(rec, img, p, seed)
        if not pairs:
            continue
        row["num_sample"] = len(pairs)
        for k, (cap, im) in enumerate(pairs):
            rel = f"{i:06d}/{k}.jpg"
            _save_jpeg(im, out / rel)
            row[f"caption_{k}"] = cap
            row[f"image_{k}"] = {"path": rel}
        lines.append(json.dumps(row, ensure_ascii=False))
    (out / "test.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)
