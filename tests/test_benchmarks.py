"""Every benchmark reader on a hand-made fixture in the benchmark's real published format
(tests/fixtures/eval, tests/fixtures/hnc, tests/fixtures/coco); images are generated here."""

from __future__ import annotations

import dataclasses
import shutil
import typing
from pathlib import Path

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import numpy as np
import pytest
from PIL import Image

from genemi import benchmarks
from genemi.benchmarks.choice import (
    genemi_val_choices,
    order_choices,
    order_perturbations,
    pre_caption,
    winoground_choices,
)
from genemi.benchmarks.pairwise import (
    SUGARCREPE,
    aro_records,
    byo_records,
    coco_neg_records,
    sugarcrepe_records,
)
from genemi.benchmarks.retrieval import image_folder, karpathy_retrieval
from genemi.config import EvalSource
from genemi.evalsets import ImageStore, distinct_inputs

ROOT = Path(__file__).parents[1]
FIX = Path(__file__).parent / "fixtures"
EV = FIX / "eval"


def _png(path: Path, size=(8, 8), color=(200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[..., :] = color
    arr[0, 0] = (0, 0, 0)
    Image.fromarray(arr).save(path, format="PNG")  # lossless even under a .jpg name: exact pixels


def _params(sources: dict[str, EvalSource]):
    return dataclasses.replace(frozen_params.load().eval, benchmarks=sources)


def _catalogue_params():
    """Eval params listing every benchmark of the catalogue (with the files where the catalogue puts them)."""
    return _params({n: benchmarks.catalogue_source(n) for n in benchmarks.catalogue()})


# ------------------------------------------------------------------------------ registry / params


def test_registry_matches_config_and_params():
    allowed = set(typing.get_args(typing.get_type_hints(EvalSource)["loader"]))
    assert allowed == set(benchmarks.loaders())
    p = frozen_params.load().eval
    assert list(p.benchmarks) == ["synth_test", "synth_gen", "synth_broad"]  # offline default
    cat = _catalogue_params().benchmarks
    for name, src in p.benchmarks.items():  # the shipped entries are the catalogue's
        assert src == cat[name]
    assert {s.loader for s in cat.values()} == allowed - {"byo"}  # every published format has an entry


def test_enabled_benchmark_without_files_fails_fast_naming_them(tmp_path):
    p = _catalogue_params()
    with pytest.raises(FileNotFoundError) as e:
        benchmarks.load_benchmark(p, "winoground", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "raw/eval/winoground/examples.jsonl") in msg and "images" in msg
    assert "docs/benchmarks.md" in msg and "eval.benchmarks" in msg
    with pytest.raises(FileNotFoundError, match="sugarcrepe/swap_obj.json"):
        benchmarks.check_files(p, "sugarcrepe", tmp_path)
    with pytest.raises(ValueError, match="eval.benchmarks.nope"):
        benchmarks.load_benchmark(p, "nope", tmp_path)


# ----------------------------------------------------------------------------------------- HNC


def test_hnc_test_and_val_schemas_through_the_registry(tmp_path):
    (tmp_path / "gqa").mkdir()
    p = _params(
        {
            "t": EvalSource("hnc", str(FIX / "hnc/hnc_test_mini.json"), "gqa", 1.0),
            "v": EvalSource("hnc", str(FIX / "hnc/hnc_train_mini.json"), "gqa", 1.0),
        }
    )
    test = benchmarks.load_benchmark(p, "t", tmp_path)
    pairs = {(r.image, r.caption, n.caption, n.type) for r in test.records for n in r.negatives}
    assert (
        "n100552.jpg",
        "The elephant is in front of the fence",
        "The giraffe is in front of the fence",
        "relation",
    ) in pairs
    assert (
        "n2000.jpg",
        "The white plate is on the table.",
        "The white cup is on the table.",
        "relation_attribute",
    ) in pairs
    val = benchmarks.load_benchmark(p, "v", tmp_path)
    by_id = {r.id.rsplit("-", 2)[-2] + "-" + r.id.rsplit("-", 1)[-1]: r for r in val.records}
    assert by_id["2386621-48"].negatives[0].caption == "The yellow plate is to the left of the straw."
    assert any(k.endswith("-0") and v.negatives for k, v in by_id.items())  # cpt_p_id == 0 is paired
    n, first = benchmarks.missing_images(val)
    assert n > 0 and first[0].startswith(str(tmp_path / "gqa"))


# ------------------------------------------------------------------------------- pairwise formats


def test_coco_neg_text():
    recs = coco_neg_records(EV / "test_coco_aug_withneg.json")
    assert [(r.image, r.negatives[0].type) for r in recs] == [
        ("COCO_val2014_000000391895.jpg", "neg_text"),
        ("COCO_val2014_000000522418.jpg", "neg_text"),
    ]
    assert recs[1].negatives[0].caption == "A cake wearing a net on her head cutting a woman."


def test_sugarcrepe_seven_categories(tmp_path):
    recs = sugarcrepe_records(EV / "sugarcrepe")
    assert sorted({r.negatives[0].type for r in recs}) == sorted(SUGARCREPE) and len(recs) == 8
    r = next(r for r in recs if r.id == "sugarcrepe-swap_obj-1")
    assert (r.image, r.caption, r.negatives[0].caption) == (
        "000000522418.jpg",
        "A woman cuts a cake.",
        "A cake cuts a woman.",
    )
    broken = tmp_path / "sc"
    shutil.copytree(EV / "sugarcrepe", broken)
    (broken / "add_att.json").write_text('{"0": {"filename": "x.jpg", "caption": "a"}}')
    with pytest.raises(ValueError, match=r"add_att.json: item '0': field 'negative_caption'"):
        sugarcrepe_records(broken)


def test_aro_relation_and_attribution_crop_by_bbox(tmp_path):
    recs, crops = aro_records(EV / "visual_genome_relation.json", "relation")
    assert [r.negatives[0].type for r in recs] == ["wearing", "on", "wearing"]
    assert (
        recs[0].caption == "the man is wearing the shirt"
        and recs[0].negatives[0].caption == "the shirt is wearing the man"
    )
    _png(tmp_path / "2315497.jpg", (8, 8))
    store = ImageStore(tmp_path, crops=crops)
    assert store.load(recs[0].image).size == (5, 4)  # (x, y, w, h) = (1, 2, 5, 4)
    assert store.load(recs[1].image).getpixel((0, 0)) == (0, 0, 0)
    assert store.load(recs[0].image).getpixel((0, 0)) != (0, 0, 0)  # the crop starts at (1, 2)
    attr, _ = aro_records(EV / "visual_genome_attribution.json", "attribution")
    assert [r.negatives[0].type for r in attr] == ["white_black", "red_green"]
    p = _params(
        {"a": EvalSource("aro_attribution", str(EV / "visual_genome_attribution.json"), str(tmp_path), 1.0)}
    )
    assert (
        benchmarks.load_benchmark(p, "a", tmp_path).macro_min_count == 25
    )  # ARO drops pairs seen < 25 times


def test_byo_format(tmp_path):
    recs = byo_records(EV / "byo.jsonl")
    assert [(n.type, n.caption, n.image) for n in recs[0].negatives] == [
        ("swap", "a blue circle left of a red square", None),
        ("swap", "a red square left of a blue circle", None),
    ]
    assert recs[1].id == "mine-2"
    assert [(n.type, n.caption, n.image) for n in recs[1].negatives] == [
        ("count", "three green crosses", None),
        ("edit", None, "b_edit.png"),
        ("recolour", "two yellow crosses", "b_yellow.png"),
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.png", "positive": "x", "negatives": []}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: 'negatives'"):
        byo_records(bad)


# --------------------------------------------------------------------------------- choice formats


def test_winoground(tmp_path):
    ch = winoground_choices(EV / "winoground_examples.jsonl")
    assert ch[0].images == ("ex_0_img_0.png", "ex_0_img_1.png")
    assert ch[0].texts == ("an old person kisses a young person", "a young person kisses an old person")
    assert [c.type for c in ch] == ["Object", "Object", "Relation"]


def test_genemi_validation_rows():
    ch, blobs = genemi_val_choices(EV / "genemi_val.jsonl")
    assert [len(c.images) for c in ch] == [3, 2] and not blobs
    assert (
        ch[0].images[1] == "000001/bird/bald_eagle.jpg"
        and ch[0].texts[1] == "a bald eagle standing on a rock"
    )


def test_genemi_validation_parquet_with_embedded_images(tmp_path):
    import io

    import pyarrow as pa  # a main dependency (pyproject.toml): this test runs, never skips
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buf, format="PNG")
    row = {
        "num_sample": 2,
        "caption_0": "a",
        "caption_1": "b",
        "image_0": {"bytes": buf.getvalue(), "path": "x.png"},
        "image_1": {"bytes": buf.getvalue(), "path": "y.png"},
    }
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "test.parquet")
    ch, blobs = genemi_val_choices(tmp_path / "test.parquet")
    assert ImageStore(tmp_path, blobs=blobs).load(ch[0].images[0]).getpixel((0, 0)) == (1, 2, 3)


def test_aro_order_perturbations_and_samples():
    assert pre_caption("A man (on) a moped.  Rides!", 4) == "a man on a"
    tagged = [
        ("a", "DT"),
        ("red", "JJ"),
        ("man", "NN"),
        ("rides", "VBZ"),
        ("a", "DT"),
        ("small", "JJ"),
        ("moped", "NN"),
    ]
    out = order_perturbations(tagged, np.random.default_rng(0))
    assert len(out) == 4
    toks = [t for t, _ in tagged]
    for o in out:
        assert sorted(o.split()) == sorted(toks)  # a shuffle: same words
    na = out[0].split()
    assert [na[i] for i in (0, 3, 4)] == ["a", "rides", "a"]  # only nouns/adjectives moved
    assert {na[2], na[6]} == {"man", "moped"} and {na[1], na[5]} == {"red", "small"}
    ab = out[1].split()
    assert [ab[i] for i in (1, 2, 5, 6)] == ["red", "man", "small", "moped"]  # nouns/adjectives stay
    tri = out[2].split()
    assert [sorted(tri[i : i + 3]) for i in (0, 3)] == [sorted(toks[0:3]), sorted(toks[3:6])] and tri[
        6
    ] == "moped"
    import itertools

    blocks = ["a red man", "rides a small", "moped"]  # trigrams move whole
    assert out[3] in {" ".join(b) for b in itertools.permutations(blocks)}

    def tagger(texts):
        return [
            [(w, "NN" if i % 2 else "DT") for i, w in enumerate(t.lower().replace(".", "").split())]
            for t in texts
        ]

    ch = order_choices(EV / "coco_karpathy_test.json", tagger, seed=0)
    assert len(ch) == 3 and ch[0].images == ("val2014/COCO_val2014_000000391895.jpg",)
    assert ch[0].texts[0] == "a man with a red helmet on a small moped on a dirt road"
    assert 2 <= len(ch[0].texts) <= 5 and len(set(ch[0].texts)) == len(ch[0].texts)
    assert order_choices(EV / "coco_karpathy_test.json", tagger, seed=0) == ch  # seeded


# ------------------------------------------------------------------------- retrieval / zero-shot


def test_karpathy_retrieval_5k_test_split():
    ret = karpathy_retrieval(FIX / "coco/dataset_coco_mini.json", "test")
    assert len(ret.texts) == len(ret.text_keys) and set(ret.text_keys) == set(ret.image_keys)
    assert all(i.startswith("val2014/") for i in ret.images)
    assert "A man with a red helmet on a small moped on a dirt road." in ret.texts


def test_zeroshot_image_folder(tmp_path):
    for c, name in enumerate(["golden_retriever", "tabby", "zebra"]):
        for k in range(2):
            _png(tmp_path / name / f"{k}.png", color=(c * 80, 0, 0))
    (tmp_path / "tabby" / "notes.txt").write_text("not an image")
    cls = image_folder(tmp_path, ("a photo of a {}.",))
    assert cls.classnames == ("golden retriever", "tabby", "zebra")
    assert list(zip(cls.images, cls.labels, strict=True))[:3] == [
        ("golden_retriever/0.png", 0),
        ("golden_retriever/1.png", 0),
        ("tabby/0.png", 1),
    ]
    with pytest.raises(ValueError, match="zeroshot_templates"):
        image_folder(tmp_path, ("a photo",))


def test_every_loader_through_the_registry_with_images(tmp_path):
    """Each format loads via params + registry, and every image it references resolves."""
    d = tmp_path / "data"
    for name in ("ex_0_img_0", "ex_0_img_1", "ex_1_img_0", "ex_1_img_1", "ex_2_img_0", "ex_2_img_1"):
        _png(d / "wino" / f"{name}.png")
    for name in ("COCO_val2014_000000391895.jpg", "COCO_val2014_000000522418.jpg"):
        _png(d / "coco" / "val2014" / name)
    for name in ("000000391895.jpg", "000000522418.jpg"):
        _png(d / "coco2017" / name)
    for name in ("2315497.jpg", "2400001.jpg"):
        _png(d / "vg" / name)
    for name in ("a.png", "b.png", "b_edit.png", "b_yellow.png"):
        _png(d / "byo" / name)
    for row in (
        "000001/bird/bird.jpg",
        "000001/bird/bald_eagle.jpg",
        "000001/bird/parrot.jpg",
        "000002/car/red_car.jpg",
        "000002/car/blue_car.jpg",
    ):
        _png(d / "gval" / row)
    sources = {
        "wino": EvalSource("winoground", str(EV / "winoground_examples.jsonl"), "wino", 1.0),
        "cneg": EvalSource("coco_neg", str(EV / "test_coco_aug_withneg.json"), "coco/val2014", 1.0),
        "sc": EvalSource("sugarcrepe", str(EV / "sugarcrepe"), "coco2017", 1.0),
        "rel": EvalSource("aro_relation", str(EV / "visual_genome_relation.json"), "vg", 1.0),
        "att": EvalSource("aro_attribution", str(EV / "visual_genome_attribution.json"), "vg", 1.0),
        "byo": EvalSource("byo", str(EV / "byo.jsonl"), "byo", 1.0),
        "gval": EvalSource("genemi_val", str(EV / "genemi_val.jsonl"), "gval", 1.0),
        "kret": EvalSource("karpathy_retrieval", str(FIX / "coco/dataset_coco_mini.json"), "coco", 1.0),
    }
    p = _params(sources)
    for name in sources:
        es = benchmarks.load_benchmark(p, name, d)
        imgs, texts = distinct_inputs(es)
        assert imgs and texts, name
        assert benchmarks.missing_images(es)[0] == 0, name
        for ref in imgs:
            assert es.store.load(ref).mode == "RGB"
    half = _params({"sc": dataclasses.replace(sources["sc"], subset=0.5)})
    kept = {r.id for r in benchmarks.load_benchmark(half, "sc", d).records}
    assert kept == {r.id for r in benchmarks.load_benchmark(half, "sc", d).records}  # deterministic subset
    assert 0 < len(kept) < 8


def test_stanza_tagger_wiring_and_order_through_the_registry(tmp_path, monkeypatch):
    """The stanza adapter with a stand-in pipeline (no models offline): tokens and PTB tags come through,
    and an aro_order source loads via the registry with its own `models` folder resolved against --data."""
    import stanza

    from genemi.mining.parse import doc_from_dicts

    seen = {}

    class FakePipeline:
        def __init__(self, lang, dir, processors, **kw):
            seen["dir"], seen["processors"] = dir, processors

        def bulk_process(self, docs):
            out = []
            for d in docs:
                words = d.text.split()
                toks = [
                    {
                        "id": i + 1,
                        "text": w,
                        "lemma": w,
                        "upos": "X",
                        "xpos": "NN" if i % 2 else "DT",
                        "head": 0,
                        "deprel": "root",
                    }
                    for i, w in enumerate(words)
                ]
                out.append(doc_from_dicts([{"tokens": toks}]))
            return out

    monkeypatch.setattr(stanza, "Pipeline", FakePipeline)
    from genemi.benchmarks.choice import stanza_tagger

    assert stanza_tagger(tmp_path)(["a red man"]) == [[("a", "DT"), ("red", "NN"), ("man", "DT")]]
    d = tmp_path / "data"
    (d / "models" / "stanza").mkdir(parents=True)
    for name in ("COCO_val2014_000000391895.jpg", "COCO_val2014_000000522418.jpg"):
        _png(d / "coco" / "val2014" / name)
    p = _params({"ord": EvalSource("aro_order", str(EV / "coco_karpathy_test.json"), "coco", 1.0,
                                   models="models/stanza")})
    es = benchmarks.load_benchmark(p, "ord", d)
    assert seen["dir"] == str(d / "models" / "stanza") and seen["processors"] == "tokenize,pos"
    assert len(es.choices) == 3 and benchmarks.missing_images(es)[0] == 0
    with pytest.raises(FileNotFoundError, match="stanza English models"):
        benchmarks.check_files(p, "ord", tmp_path / "elsewhere")


def test_every_loader_and_default_source_is_documented():
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    for name in benchmarks.loaders():
        assert f"`{name}`" in doc, name
    for name in benchmarks.catalogue():
        assert f"`{name}`" in doc, name
