"""VALSE, VL-CheckList, WhatsUp, SugarCrepe++ and EqBen: readers on fixtures in each released layout
(tests/fixtures/eval/{valse,vl_checklist,whatsup,sugarcrepe_pp,eqben}), and their scores against a
brute-force reference of each benchmark's own evaluation code on hand-set features."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from genemi import benchmarks
from genemi.benchmarks.compositional import (
    SUGARCREPE_PP,
    VALSE_PIECES,
    eqben_choices,
    sugarcrepe_pp_triplets,
    valse_records,
    vl_checklist_records,
    whatsup_choices,
    whatsup_qa_records,
)
from genemi.bootstrap import compare
from genemi.config import EvalSource
from genemi.evalsets import ImageStore, distinct_inputs
from genemi.metrics import Features, evaluate_set, summarize

EV = Path(__file__).parent / "fixtures" / "eval"
VALSE = EV / "valse" / "data"
VLC = EV / "vl_checklist"
WHATSUP = EV / "whatsup"
SCPP = EV / "sugarcrepe_pp"
EQBEN = EV / "eqben" / "eqben_subset_10percent_final.json"


def _params(sources: dict[str, EvalSource]):
    return dataclasses.replace(frozen_params.load().eval, benchmarks=sources)


def _image(path: Path, color=(200, 30, 30), size: int = 48) -> None:
    """A tiny image (the synthetic model's 48 px, which it reads without resizing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":  # EqBen's YouCook2 frames: HWC uint8 BGR arrays
        np.save(path, np.full((size, size, 3), color[::-1], np.uint8), allow_pickle=False)
    else:
        Image.new("RGB", (size, size), color).save(path, format="PNG")  # lossless, whatever the suffix


def _features(es, seed: int, dim: int = 3) -> tuple[Features, dict]:
    """Random unit vectors for every image and caption of ``es``; ``vec[(kind, key)]`` to score by hand."""
    imgs, texts = distinct_inputs(es)
    g = np.random.default_rng(seed)

    def unit(n):
        x = g.normal(size=(n, dim))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    iv, tv = unit(len(imgs)), unit(len(texts))
    f = Features(
        {r: i for i, r in enumerate(imgs)},
        torch.tensor(iv, dtype=torch.float32),
        {t: i for i, t in enumerate(texts)},
        torch.tensor(tv, dtype=torch.float32),
    )
    vec = {("i", r): f.images[i].double().numpy() for i, r in enumerate(imgs)}
    vec |= {("t", t): f.texts[i].double().numpy() for i, t in enumerate(texts)}
    return f, vec


def _pulled(es, seed: int, noise: float = 0.7) -> tuple[Features, dict]:
    """:func:`_features` with each choice's image moved towards its true caption (plus noise), so that
    some samples, pairs and sets come out right and some wrong."""
    f, _ = _features(es, seed)
    g = np.random.default_rng([seed, 1])
    for c in es.choices:
        x = f.texts[f.text_index[c.texts[0]]].double().numpy() + noise * g.normal(size=f.texts.shape[1])
        f.images[f.image_index[c.images[0]]] = torch.tensor(x / np.linalg.norm(x), dtype=torch.float32)
    vec = {("i", r): f.images[i].double().numpy() for r, i in f.image_index.items()}
    vec |= {("t", t): f.texts[i].double().numpy() for t, i in f.text_index.items()}
    return f, vec


def _sim(vec, a, b) -> float:
    return float(vec[a] @ vec[b])


# ------------------------------------------------------------------------------------------- VALSE


def test_valse_reads_the_released_pieces_and_keeps_validated_foils():
    """VALSE ``data/<piece>.json`` = ``{"<key>": {"dataset", "image_file", "caption", "foil", "mturk":
    {"foil", "caption", "other"}, ...}}`` (Heidelberg-NLP/VALSE README); its scripts keep a sample only when
    ``foil['mturk']['caption'] >= 2`` (unimodal_valse_eval.py, "MTURK filtering!")."""
    recs = valse_records(VALSE)
    assert sorted({r.negatives[0].type for r in recs}) == sorted(VALSE_PIECES)
    raw = {p: json.loads((VALSE / f"{p}.json").read_text()) for p in VALSE_PIECES}
    kept = sum(row["mturk"]["caption"] >= 2 for rows in raw.values() for row in rows.values())
    assert len(recs) == kept == 13 and not any("rejected" in r.caption for r in recs)
    r = next(r for r in recs if r.negatives[0].type == "actant-swap")
    assert (r.image, r.caption, r.negatives[0].caption) == (
        "actions/images_512/exercising_255.jpg",
        "A man exercises his torso.",
        "A torso exercises for a man.",
    )
    assert [r.image for r in valse_records(VALSE / "foil-it.json")] == [
        "coco/val2014/COCO_val2014_000000165831.jpg"
    ]


@pytest.mark.parametrize("seed", range(4))
def test_valse_scores_match_its_pairwise_accuracy_by_brute_force(seed):
    """VALSE's CLIP number is the pairwise accuracy per piece: the image scores the caption above the foil
    (validated samples only); the average is over pieces."""
    p = _params({"v": EvalSource("valse", str(VALSE), ".", 1.0)})
    es = benchmarks.load_benchmark(p, "v", EV)
    f, vec = _features(es, seed)
    s = summarize(evaluate_set(es, f))
    per = {}
    for piece, folder in VALSE_PIECES.items():
        for row in json.loads((VALSE / f"{piece}.json").read_text()).values():
            if row["mturk"]["caption"] >= 2:
                img = ("i", f"{folder}/{row['image_file']}")
                per.setdefault(piece, []).append(
                    _sim(vec, img, ("t", row["caption"])) > _sim(vec, img, ("t", row["foil"]))
                )
    for piece, hits in per.items():
        assert s[f"{piece}/text"] == pytest.approx(100 * np.mean(hits)), piece
    assert s["macro/text"] == pytest.approx(np.mean([100 * np.mean(h) for h in per.values()]))
    assert s["all/n"] == 13


# ------------------------------------------------------------------------------------ VL-CheckList


def test_vl_checklist_reads_corpus_yamls_and_their_annotations():
    """VL-CheckList: ``corpus/v1/<Aspect>/<category>/<corpus>.yaml`` holds ``ANNO_PATH`` (relative to the
    checkout) and ``IMG_ROOT`` (relative to $DATASET); an annotation is ``[[path, {"POS", "NEG"}], ...]`` and
    its ITC task compares ``texts_pos[0]`` with ``texts_neg[0]`` on ``IMG_ROOT/path`` (vl_checklist/
    data_loader.py ``load_itc_samples``, evaluate.py)."""
    recs, groups = vl_checklist_records(VLC)
    types = sorted({r.negatives[0].type for r in recs})
    assert types == [
        "attribute_color",
        "attribute_material",
        "object_location_center",
        "object_size_large",
        "relation_action",
        "relation_spatial",
    ]
    assert groups == {
        "macro_attribute": ("attribute_color", "attribute_material"),
        "macro_object": ("object_location_center", "object_size_large"),
        "macro_relation": ("relation_action", "relation_spatial"),
    }
    r = next(r for r in recs if r.caption == "white shirt")  # IMG_ROOT "vg/" and "vg" give the same path
    assert r.image == "vg/VG_100K_2/2417425.jpg" and r.negatives[0].caption == "gray shirt"
    assert sum(r.negatives[0].type == "attribute_color" for r in recs) == 3  # vg + vaw corpora pooled
    assert (
        next(r for r in recs if r.caption == "person ride bicycle").image
        == "hake/hake_images_20190730/xxx1.jpg"
    )


@pytest.mark.parametrize("seed", range(4))
def test_vl_checklist_scores_match_pos_over_neg_by_brute_force(seed):
    """Per sample: ``s(I, POS[0]) > s(I, NEG[0])``; per category the accuracy over its corpora; each aspect
    (Object, Attribute, Relation) the mean over its categories."""
    p = _params({"c": EvalSource("vl_checklist", str(VLC), ".", 1.0)})
    es = benchmarks.load_benchmark(p, "c", EV)
    f, vec = _features(es, seed)
    s = summarize(evaluate_set(es, f))
    cats = {}
    for y in sorted((VLC / "corpus" / "v1").rglob("*.yaml")):
        cfg = yaml.safe_load(y.read_text())
        rel = y.relative_to(VLC / "corpus" / "v1")
        cat = "_".join(x.lower() for x in rel.parts[:-1])
        for path, texts in json.loads((VLC / cfg["ANNO_PATH"]).read_text()):
            img = ("i", f"{cfg['IMG_ROOT'].rstrip('/')}/{path}")
            cats.setdefault(cat, []).append(
                _sim(vec, img, ("t", texts["POS"][0])) > _sim(vec, img, ("t", texts["NEG"][0]))
            )
    for cat, hits in cats.items():
        assert s[f"{cat}/text"] == pytest.approx(100 * np.mean(hits)), cat
    for aspect in ("object", "attribute", "relation"):
        mine = [100 * np.mean(h) for c, h in cats.items() if c.startswith(aspect)]
        assert s[f"macro_{aspect}/text"] == pytest.approx(np.mean(mine)), aspect
    assert s["macro/text"] == pytest.approx(np.mean([100 * np.mean(h) for h in cats.values()]))


# ------------------------------------------------------------------------------------------ WhatsUp


def _whatsup_reference(path: Path, vec) -> dict[str, float]:
    """WhatsUp's ``Controlled_Images.evaluate_scores`` (dataset_zoo/aro_datasets.py): argmax over the four
    options, individual accuracy; per object pair ``(name.split('_')[0], name.split('_')[-1])`` the
    preposition ``name.split('_')[1]`` is right or not; pair = both of left/right (and of on/under or
    in-front/behind) right, over N/2; set = all four right, over N/4."""
    data = json.loads(path.read_text())
    correct, pairs = [], {}
    for d in data:
        img = ("i", d["image_path"])
        scores = [_sim(vec, img, ("t", c)) for c in d["caption_options"]]
        ok = int(np.argmax(scores)) == 0
        correct.append(ok)
        name = d["image_path"].split("/")[-1]
        pairs.setdefault((name.split("_")[0], name.split("_")[-1][:-5]), {})[name.split("_")[1]] = ok
    pair = sum(c.get("left", 0) and c.get("right", 0) for c in pairs.values())
    pair += sum(
        (c.get("on", 0) and c.get("under", 0)) or (c.get("in-front", 0) and c.get("behind", 0))
        for c in pairs.values()
    )
    sets = sum(sum(c.values()) == 4 for c in pairs.values())
    return {
        "all/text": 100 * np.mean(correct),
        "all/pair": pair * 100 / (len(data) / 2),
        "all/set": sets * 100 / (len(data) / 4),
    }


def test_whatsup_controlled_reads_four_options_with_the_first_true(tmp_path):
    """``controlled_images_dataset.json`` = ``[{"image_path": "data/controlled_images/<a>_<prep>_<b>.jpeg",
    "caption_options": [true, false, false, false]}]`` (whatsup_vlms README: the first option is always the
    correct one); image paths are relative to the checkout (they start with ``data/``)."""
    ch, groups = whatsup_choices(WHATSUP / "data" / "controlled_images_dataset.json")
    assert len(ch) == 8 and all(len(c.texts) == 4 and len(c.images) == 1 for c in ch)
    assert ch[2].images == ("data/controlled_images/beer-bottle_left_of_armchair.jpeg",)
    assert ch[2].texts[0] == "A beer bottle to the left of a armchair" and ch[2].type == "left"
    assert sorted(groups["pair"]) == sorted(
        [(ch[2].id, ch[3].id), (ch[0].id, ch[1].id), (ch[6].id, ch[7].id), (ch[4].id, ch[5].id)]
    )
    assert sorted(map(sorted, groups["set"])) == [sorted(c.id for c in ch[:4]), sorted(c.id for c in ch[4:])]
    b, gb = whatsup_choices(WHATSUP / "data" / "controlled_clevr_dataset.json")
    assert [c.type for c in b] == ["left", "right", "in-front", "behind"] and len(gb["pair"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_path": "data/x/mug.jpeg", "caption_options": ["a", "b"]}]))
    with pytest.raises(ValueError, match="bad.json: item 0: image name 'mug.jpeg'"):
        whatsup_choices(bad)


def test_whatsup_scores_match_its_evaluate_scores_by_brute_force():
    seen = set()
    for seed in range(12):
        for name in ("controlled_images_dataset.json", "controlled_clevr_dataset.json"):
            p = _params({"w": EvalSource("whatsup", str(WHATSUP / "data" / name), str(WHATSUP), 1.0)})
            es = benchmarks.load_benchmark(p, "w", EV)
            f, vec = _pulled(es, seed)
            s = summarize(evaluate_set(es, f, seed=0))
            for k, v in _whatsup_reference(WHATSUP / "data" / name, vec).items():
                assert s[k] == pytest.approx(v), (seed, name, k)
                seen.add((k, 0 < v < 100))
    assert {("all/pair", True), ("all/set", True), ("all/set", False)} <= seen  # the cases were exercised
    flat = compare({"base": evaluate_set(es, f), "finetuned": evaluate_set(es, f)}, n_boot=20)
    assert "delta/all/pair_lo" in flat and "base/all/set_hi" in flat


def test_whatsup_a_tie_counts_as_wrong():
    """WhatsUp takes ``np.argmax``, which gives a tie to the first (true) option; here a tie is wrong."""
    es = benchmarks.load_benchmark(
        _params(
            {
                "w": EvalSource(
                    "whatsup", str(WHATSUP / "data" / "controlled_clevr_dataset.json"), str(WHATSUP), 1.0
                )
            }
        ),
        "w",
        EV,
    )
    imgs, texts = distinct_inputs(es)
    f = Features(
        {r: i for i, r in enumerate(imgs)},
        torch.ones(len(imgs), 2) / 2**0.5,
        {t: i for i, t in enumerate(texts)},
        torch.ones(len(texts), 2) / 2**0.5,
    )
    s = summarize(evaluate_set(es, f))
    assert s["all/text"] == 0.0 and s["all/pair"] == 0.0 and s["all/set"] == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_whatsup_qa_paths_types_and_scores(seed):
    """COCO-QA / VG-QA: ``[[image id, true, false], ...]``; COCO images ``val2017/<id:012d>.jpg``, VG
    ``vg_images/<id>.jpg``; the preposition type as WhatsUp assigns it (one object: the caption's last word;
    two objects: left/right/above/below on COCO)."""
    coco = whatsup_qa_records(WHATSUP / "data" / "coco_qa_two_obj.json")
    assert [(r.image, r.negatives[0].type) for r in coco] == [
        ("val2017/000000391895.jpg", "left"),
        ("val2017/000000522418.jpg", "above"),
    ]
    vg = whatsup_qa_records(WHATSUP / "data" / "vg_qa_one_obj.json")
    assert [(r.image, r.negatives[0].type) for r in vg] == [
        ("vg_images/2315497.jpg", "left"),
        ("vg_images/2400001.jpg", "top"),
    ]
    p = _params({"q": EvalSource("whatsup_qa", str(WHATSUP / "data" / "vg_qa_one_obj.json"), ".", 1.0)})
    es = benchmarks.load_benchmark(p, "q", EV)
    f, vec = _features(es, seed)
    s = summarize(evaluate_set(es, f))
    rows = json.loads((WHATSUP / "data" / "vg_qa_one_obj.json").read_text())
    hits = [
        int(np.argmax([_sim(vec, ("i", f"vg_images/{i}.jpg"), ("t", c)) for c in (t, n)])) == 0
        for i, t, n in rows
    ]
    assert s["all/text"] == pytest.approx(100 * np.mean(hits))


# ------------------------------------------------------------------------------------- SugarCrepe++


def test_sugarcrepe_pp_reads_the_five_category_files(tmp_path):
    """``data/<category>.json`` = ``[{"id", "filename", "caption", "caption2", "negative_caption"}]`` for
    replace_att, replace_obj, replace_rel, swap_att, swap_obj (Sri-Harsha/scpp data/; no add_* files)."""
    trips = sugarcrepe_pp_triplets(SCPP)
    assert sorted({t.type for t in trips}) == sorted(SUGARCREPE_PP) and len(trips) == 6
    t = next(t for t in trips if t.type == "swap_obj")
    assert (t.image, t.positives, t.negative) == (
        "000000391895.jpg",
        ("A dog chases a cat.", "A cat is being chased by a dog."),
        "A cat chases a dog.",
    )
    (tmp_path / "sc").mkdir()
    for c in SUGARCREPE_PP:
        (tmp_path / "sc" / f"{c}.json").write_text((SCPP / f"{c}.json").read_text())
    (tmp_path / "sc" / "swap_att.json").write_text('[{"id": 0, "filename": "x.jpg", "caption": "a"}]')
    with pytest.raises(ValueError, match=r"swap_att.json: item 0: field 'caption2'"):
        sugarcrepe_pp_triplets(tmp_path / "sc")


@pytest.mark.parametrize("seed", range(6))
def test_sugarcrepe_pp_itt_and_tot_match_its_definitions_by_brute_force(seed):
    """ITT: both positives closer to the image than the negative; TOT (evaluate_ulms.py): ``p1_p2 > p2_ref
    and p1_p2 > p1_ref``; Image-P1-Neg / Image-P2-Neg: one positive against the negative (VLMs/README.md)."""
    p = _params({"s": EvalSource("sugarcrepe_pp", str(SCPP), ".", 1.0)})
    es = benchmarks.load_benchmark(p, "s", EV)
    f, vec = _features(es, seed)
    s = summarize(evaluate_set(es, f))
    res = {}
    for cat in SUGARCREPE_PP:
        for row in json.loads((SCPP / f"{cat}.json").read_text()):
            i, p1, p2, n = (
                ("i", row["filename"]),
                ("t", row["caption"]),
                ("t", row["caption2"]),
                ("t", row["negative_caption"]),
            )
            r = res.setdefault(cat, {"text": [], "tot": [], "text_p1": [], "text_p2": []})
            r["text"].append(_sim(vec, i, p1) > _sim(vec, i, n) and _sim(vec, i, p2) > _sim(vec, i, n))
            r["tot"].append(_sim(vec, p1, p2) > _sim(vec, p2, n) and _sim(vec, p1, p2) > _sim(vec, p1, n))
            r["text_p1"].append(_sim(vec, i, p1) > _sim(vec, i, n))
            r["text_p2"].append(_sim(vec, i, p2) > _sim(vec, i, n))
    for cat, r in res.items():
        for m, hits in r.items():
            assert s[f"{cat}/{m}"] == pytest.approx(100 * np.mean(hits)), (cat, m)
    for m in ("text", "tot"):
        assert s[f"macro/{m}"] == pytest.approx(np.mean([100 * np.mean(r[m]) for r in res.values()]))
    assert s["all/n"] == 6
    flat = compare({"base": evaluate_set(es, f), "finetuned": evaluate_set(es, f)}, n_boot=20)
    assert "delta/replace_rel/tot_lo" in flat and flat["delta/macro/tot"] == 0.0


# -------------------------------------------------------------------------------------------- EqBen


def test_eqben_reads_winoground_style_rows_typed_by_sub_dataset():
    """EqBen's open subset annotation follows Winoground's style: ``[{"image0", "caption0", "image1",
    "caption1"}]``, image paths under the image folder starting with the sub-dataset (EqBenALL reads
    ``image.split('/')[0]``); the AG annotation holds caption lists, of which EqBen takes the first."""
    ch = eqben_choices(EQBEN)
    assert [c.type for c in ch] == ["eqbenkubric_cnt", "eqbensd", "eqbenyoucook2"]
    assert ch[1].images == ("eqbensd/0002_a.png", "eqbensd/0002_b.png")
    assert ch[1].texts == ("A red apple on a plate.", "A green apple on a plate.")


def test_eqben_youcook2_frames_are_bgr_npy_read_without_pickle(tmp_path):
    _image(tmp_path / "eqbenyoucook2/v/f.npy", (10, 20, 30))
    assert ImageStore(tmp_path).load("eqbenyoucook2/v/f.npy").getpixel((0, 0)) == (10, 20, 30)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="obj.npy: not a plain .npy array"):
        ImageStore(tmp_path).load("obj.npy")


@pytest.mark.parametrize("seed", range(6))
def test_eqben_scores_match_its_cal_wino_score_by_brute_force(seed):
    """EqBen's ``cal_wino_score`` (src/eqben/eqben_acc.py): text = c0i0 > c1i0 and c1i1 > c0i1; image =
    c0i0 > c0i1 and c1i1 > c1i0; group = both; per sub-dataset."""
    p = _params({"e": EvalSource("eqben", str(EQBEN), ".", 1.0)})
    es = benchmarks.load_benchmark(p, "e", EV)
    f, vec = _features(es, seed)
    s = summarize(evaluate_set(es, f))
    for row in json.loads(EQBEN.read_text()):
        c = {
            f"c{a}i{b}": _sim(vec, ("t", row[f"caption{a}"]), ("i", row[f"image{b}"]))
            for a in (0, 1)
            for b in (0, 1)
        }
        text = c["c0i0"] > c["c1i0"] and c["c1i1"] > c["c0i1"]
        image = c["c0i0"] > c["c0i1"] and c["c1i1"] > c["c1i0"]
        t = row["image0"].split("/")[0]
        assert (s[f"{t}/text"], s[f"{t}/image"], s[f"{t}/group"]) == (
            100.0 * text,
            100.0 * image,
            100.0 * (text and image),
        ), t


# ------------------------------------------------------------------------- registry, files, stage


def _place_images(data: Path) -> None:
    """Every fixture's images where its entry's `images` folder and its released layout put them."""
    for piece, folder in VALSE_PIECES.items():
        for row in json.loads((VALSE / f"{piece}.json").read_text()).values():
            _image(data / "valse_images" / folder / row["image_file"])
    for y in (VLC / "corpus" / "v1").rglob("*.yaml"):
        cfg = yaml.safe_load(y.read_text())
        for path, _ in json.loads((VLC / cfg["ANNO_PATH"]).read_text()):
            _image(data / "vlc_images" / cfg["IMG_ROOT"] / path)
    for name in ("controlled_images_dataset.json", "controlled_clevr_dataset.json"):
        for row in json.loads((WHATSUP / "data" / name).read_text()):
            _image(data / "whatsup" / row["image_path"])  # the checkout: paths start with data/
    for i in (391895, 522418):
        _image(data / "whatsup" / "data" / "val2017" / f"{i:012d}.jpg")
    for cat in SUGARCREPE_PP:
        for row in json.loads((SCPP / f"{cat}.json").read_text()):
            _image(data / "coco2017" / row["filename"])
    for row in json.loads(EQBEN.read_text()):
        for k in ("image0", "image1"):
            _image(data / "eqben" / row[k], (5, 6, 7))


SOURCES = {
    "valse": EvalSource("valse", str(VALSE), "valse_images", 1.0),
    "vl_checklist": EvalSource("vl_checklist", str(VLC), "vlc_images", 1.0),
    "whatsup_a": EvalSource(
        "whatsup", str(WHATSUP / "data" / "controlled_images_dataset.json"), "whatsup", 1.0
    ),
    "whatsup_b": EvalSource(
        "whatsup", str(WHATSUP / "data" / "controlled_clevr_dataset.json"), "whatsup/data", 1.0
    ),
    "whatsup_coco_two": EvalSource(
        "whatsup_qa", str(WHATSUP / "data" / "coco_qa_two_obj.json"), "whatsup/data", 1.0
    ),
    "sugarcrepe_pp": EvalSource("sugarcrepe_pp", str(SCPP), "coco2017", 1.0),
    "eqben": EvalSource("eqben", str(EQBEN), "eqben", 1.0),
}


def test_every_new_benchmark_through_the_registry_finds_its_images(tmp_path):
    """Each loads via params + registry from its released layout, and every image it names resolves (WhatsUp's
    ``data/...`` paths against the checkout and against its data folder alike)."""
    data = tmp_path / "data"
    _place_images(data)
    p = _params(SOURCES)
    for name in SOURCES:
        es = benchmarks.load_benchmark(p, name, data)
        imgs, texts = distinct_inputs(es)
        assert imgs and texts, name
        assert benchmarks.missing_images(es) == (0, []), name
        assert benchmarks.check_images(es) == len(imgs), name
    es = benchmarks.load_benchmark(p, "eqben", data)
    assert es.store.load("eqbenyoucook2/video_7/frame_10.npy").getpixel((0, 0)) == (5, 6, 7)
    (data / "valse_images/visual7w/images/v7w_2371044.jpg").unlink()
    n, first = benchmarks.missing_images(benchmarks.load_benchmark(p, "valse", data))
    assert n == 1 and first[0].endswith("visual7w/images/v7w_2371044.jpg")


def test_missing_files_are_named_before_any_model(tmp_path):
    p = _params(
        {
            n: benchmarks.catalogue_source(n)
            for n in ("valse", "vl_checklist", "sugarcrepe_pp", "whatsup_a", "eqben")
        }
    )
    with pytest.raises(FileNotFoundError, match=r"valse/data/existence.json  <- VALSE piece"):
        benchmarks.check_files(p, "valse", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"vl_checklist/corpus/v1  <- VL-CheckList corpus"):
        benchmarks.check_files(p, "vl_checklist", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"sugarcrepe_pp/swap_obj.json"):
        benchmarks.check_files(p, "sugarcrepe_pp", tmp_path)
    with pytest.raises(FileNotFoundError, match="controlled_images_dataset.json"):
        benchmarks.check_files(p, "whatsup_a", tmp_path)


def test_subset_keeps_whole_whatsup_groups_only(tmp_path):
    """A subset drops a pair or set whose images it did not all keep, instead of scoring it incomplete."""
    src = dataclasses.replace(SOURCES["whatsup_a"], subset=0.5)
    data = tmp_path / "data"
    _place_images(data)
    es = benchmarks.load_benchmark(_params({"w": src}), "w", data)
    kept = {c.id for c in es.choices}
    assert 0 < len(kept) < 8
    f, _ = _features(es, 0)
    out = evaluate_set(es, f)
    n_pairs = sum(all(i in kept for i in g) for g in es.choice_groups["pair"])
    assert len(out.samples["all/pair"].values) == n_pairs if n_pairs else "all/pair" not in out.samples


def test_evaluate_stage_runs_each_new_benchmark(tmp_path):
    """The evaluate stage end to end on tiny random models: metrics, headline, per-item file and plots for
    every new loader."""
    from click.testing import CliRunner

    from genemi.config import load_params
    from genemi.items import load_items
    from genemi.models import build_model, save_weights
    from stages import evaluate as stage

    raw = frozen_params.raw()
    raw["eval"].update(bootstrap=20, monitor="")
    # free text needs open_clip's BPE vocabulary: a tiny random architecture registered like genemi's own
    import open_clip

    arch = tmp_path / "genemi-test-tiny-bpe.json"
    arch.write_text(
        json.dumps(
            {
                "embed_dim": 16,
                "vision_cfg": {
                    "image_size": 32,
                    "layers": 1,
                    "width": 32,
                    "head_width": 16,
                    "patch_size": 16,
                },
                "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
            }
        )
    )
    open_clip.add_model_config(arch)
    raw["model"].update(arch="genemi-test-tiny-bpe", tokenizer="open_clip")
    raw["threads"] = 1
    raw["eval"]["benchmarks"] = {
        n: {"loader": s.loader, "file": s.file, "images": s.images, "models": s.file, "subset": 1.0}
        for n, s in SOURCES.items()
    }
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    for seed, name in ((0, "base"), (1, "finetuned")):
        torch.manual_seed(seed)
        save_weights(build_model(load_params(params).model), tmp_path / f"{name}.safetensors", {})
    data = tmp_path / "data"
    _place_images(data)
    for name in SOURCES:
        out = [tmp_path / f"{name}.json", tmp_path / f"{name}_head.json", tmp_path / f"{name}.npz"]
        res = CliRunner().invoke(
            stage.main,
            [
                "--params",
                str(params),
                "--benchmark",
                name,
                "--data",
                str(data),
                "--base",
                str(tmp_path / "base.safetensors"),
                "--finetuned",
                str(tmp_path / "finetuned.safetensors"),
                "--plot-dir",
                str(tmp_path / "plots"),
                "--metrics",
                str(out[0]),
                "--headline",
                str(out[1]),
                "--items",
                str(out[2]),
            ],
        )
        assert res.exit_code == 0, (name, res.output)
        flat, head = json.loads(out[0].read_text()), json.loads(out[1].read_text())
        assert "delta/macro_text" in head or "delta/hard_text" in head, (name, head)
        items = load_items(out[2])
        for k in ("all/text", "all/tot", "all/pair", "all/set", "all/group"):
            if f"base/{k}" in flat:
                assert 100 * items.outcomes["base"][k].mean() == pytest.approx(flat[f"base/{k}"], abs=1e-3)
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    flat = json.loads((tmp_path / "vl_checklist.json").read_text())
    assert "finetuned/macro_relation/text" in flat and "delta/macro_object/text_lo" in flat
    csv = (tmp_path / "plots" / "vl_checklist.csv").read_text()
    assert "macro_object" not in csv and "attribute_color" in csv
    assert "finetuned/replace_att/tot" in json.loads((tmp_path / "sugarcrepe_pp.json").read_text())


def test_dvc_resolves_an_evaluate_stage_per_new_catalogue_entry(tmp_path):
    """Listed in eval.benchmarks, each catalogue entry becomes evaluate@<name> depending on exactly its
    own data/<file> and data/<images> (DVC resolves dvc.yaml's foreach itself)."""
    pytest.importorskip("dvc")
    from test_pipeline_spec import _data_deps, _dvc_stages

    new = [
        "valse",
        "vl_checklist",
        "whatsup_a",
        "whatsup_b",
        "whatsup_coco_one",
        "whatsup_coco_two",
        "whatsup_vg_one",
        "whatsup_vg_two",
        "sugarcrepe_pp",
        "eqben",
    ]
    stages, raw = _dvc_stages(tmp_path, new)
    for name in new:
        entry = raw["eval"]["benchmarks"][name]
        want = {
            f"data/{entry['file']}",
            f"data/{entry['images']}",
            "models/base.safetensors",
            "models/finetuned.safetensors",
            "params.yaml",
        }
        assert _data_deps(stages[f"evaluate@{name}"]) == want, name
