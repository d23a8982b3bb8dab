"""The synthetic stand-ins of the real datasets (genemi/data/standin.py), read by the real readers.

What the readers see is checked against the synthetic world itself (its scenes, renderer and miner),
and against the published schemas (field names, HNC type names), not against the writer's own helpers.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import frozen_params
import numpy as np
import pytest
import yaml
from PIL import Image

from genemi.benchmarks import catalogue
from genemi.config import ConfigError, EvalSource, MineParams, SynthParams, params_from_dict
from genemi.data import standin
from genemi.images import image_exists, read_bytes
from genemi.lockfile import DownloadError, Lock
from genemi.snapshot import tree_digest
from genemi.synth import dataset, world
from genemi.synth.negatives import NEGATIVE_TYPES

ROOT = Path(__file__).resolve().parents[1]
P = SynthParams(
    image_size=48, n_train=1, n_test=1, n_gen=1, colors=("red", "green", "blue", "yellow"),
    shapes=("circle", "square", "triangle"), max_objects=3, heldout_combos=("red triangle",), jitter=2,
    mention_order="left_first", color_layout="fill", n_pretrain=1, n_broad=2, broad_colors=("pink",), broad_shapes=("diamond",),
    broad_styles=("plain",),
)  # fmt: skip
SIZE = 15  # train 15, val 3, test 3

# HNC's published type names (train/val files, test file)
HNC_TRAINVAL_TYPES = {
    "attribute", "object", "attribute_subg", "relation_subj", "relation_pred", "relation_obj",
    "relation_attr_subj", "relation_attr_pred", "relation_attr_obj", "obj_count", "obj_comp_count",
    "obj_verify_count", "obj_verify_count_attr", "and_logic_attr", "and_logic_rel", "xor_logic_attr",
    "xor_logic_rel",
}  # fmt: skip
HNC_TEST_TYPES = {
    "relation", "relation_attribute", "attribute_relation", "verify_object_attribute",
    "verify_object_relation", "object_count", "object_compare_count", "and_logic_relation",
    "xor_logic_relation", "xor_logic_attribute",
}  # fmt: skip
TRAINVAL_FIELDS = {
    "caption", "label", "type", "textual_label", "bboxes", "ambiguity", "noisy", "replaced", "cpt_p_id"
}  # fmt: skip


def _scenes(road: str) -> dict[str, list[dict]]:
    """The world's scenes of a road, per split, drawn straight from generate_split."""
    out: dict[str, list] = {"train": [], "val": [], "test": []}
    for split, rec, _ in standin.scenes(P, 0, SIZE, road):
        out[split].append(rec)
    return out


def _true_captions(scene: dict) -> set[str]:
    """Every caption of the world's grammar that is true of ``scene`` (both mention orders of a pair)."""
    caps = {world.caption(scene)}
    if scene["kind"] == "pair":
        caps.add(world.caption(dict(scene, order=scene["order"][::-1])))
    return caps


def _close_to_render(path: Path, scene: dict) -> None:
    im = Image.open(io.BytesIO(read_bytes(path)))  # a loose file or a member of the published zip
    assert im.format == "JPEG" and im.size == (P.image_size, P.image_size), path
    diff = np.abs(np.asarray(im.convert("RGB"), dtype=np.int16) - world.render(scene, P.image_size))
    assert diff.mean() < 4, f"{path}: not the render of its scene (mean abs diff {diff.mean():.1f})"


@pytest.fixture(scope="module")
def hnc(tmp_path_factory):
    out = tmp_path_factory.mktemp("hnc")
    assert standin.write_hnc(P, 0, SIZE, out / "hnc") == {"train": 15, "val": 3, "test": 3}
    assert standin.write_gqa(P, 0, SIZE, out / "gqa") == 21
    return out


def test_hnc_files_follow_the_published_schemas(hnc):
    train = json.loads((hnc / "hnc" / "hnc_clean_strict_train.json").read_text())
    for key, entry in train.items():
        assert key.isdigit() and set(entry) == {"captions"}
        caps = entry["captions"]
        for cid, cap in caps.items():
            assert set(cap) == TRAINVAL_FIELDS and cap["type"] in HNC_TRAINVAL_TYPES
            if cap["label"] == 0:  # points to a positive of the same image: the one just before it
                assert caps[str(cap["cpt_p_id"])]["label"] == 1 and int(cid) == cap["cpt_p_id"] + 1
                assert caps[str(cap["cpt_p_id"])]["type"] == cap["type"]
            else:
                assert cap["cpt_p_id"] is None and cap["replaced"] is None
        # HNC pairs each positive with exactly one negative (pos/neg counts are equal)
        parents = [c["cpt_p_id"] for c in caps.values() if c["label"] == 0]
        assert len(parents) == len(set(parents)) == sum(c["label"] == 1 for c in caps.values())
    test = json.loads((hnc / "hnc" / "hnc_clean_strict_test.json").read_text())
    for key, entry in test.items():
        assert key.startswith("n") and key.endswith(".jpg")
        ids = sorted(entry, key=int)
        assert ids == [str(i) for i in range(len(ids))] and entry[ids[0]]["label"] == 1  # consecutive keys
        # a positive at each even key, its one negative at the next key, both of one type
        assert [entry[i]["label"] for i in ids] == [1, 0] * (len(ids) // 2)
        assert all(entry[ids[k]]["type"] == entry[ids[k + 1]]["type"] for k in range(0, len(ids), 2))
        for cap in entry.values():
            assert set(cap) == {"caption", "label", "type", "replaced"} and cap["type"] in HNC_TEST_TYPES


def test_hnc_reader_reads_the_scenes_and_their_mined_negatives(hnc):
    """Per image, the reader finds the scene's caption in the world's wording (left-first: the one caption the
    synthetic world writes), once per mined negative with that one negative; each negative is false of the
    scene, and together they are exactly the synthetic miner's captions."""
    from genemi.data.hnc import HNC_FILES, HncStats, iter_hnc_records

    mine = MineParams(types=NEGATIVE_TYPES, max_per_type=1)
    for split, recs in _scenes("hnc").items():
        stats = HncStats()
        got = list(
            iter_hnc_records(
                hnc / "hnc" / HNC_FILES[split], split, image_root=hnc / "gqa" / "images", stats=stats
            )
        )
        assert stats.images == len(recs) and stats.images_missing == 0 and stats.orphan_negatives == 0
        assert stats.positives_without_negative == 0
        by_image: dict[str, list] = {}
        for r in got:
            by_image.setdefault(r.image, []).append(r)
        assert len(by_image) == len(recs)
        for i, rec in enumerate(recs):
            scene = rec.meta["scene"]
            image = f"n{100000 + i}.jpg" if split == "test" else f"{standin.HNC_ID_BASE[split] + i}.jpg"
            _close_to_render(hnc / "gqa" / "images" / image, scene)
            read = by_image[image]
            assert {r.caption for r in read} == {rec.caption} == {world.caption(scene)}
            for r in read:
                assert len(r.negatives) == 1 and r.negatives[0].caption not in _true_captions(scene)
                assert r.negatives[0].type in (HNC_TEST_TYPES if split == "test" else HNC_TRAINVAL_TYPES)
            mined, _ = dataset.mine_record(
                rec, Image.fromarray(world.render(scene, P.image_size)), P, mine, 0
            )
            assert [r.negatives[0].caption for r in read] == [n.caption for n in mined.negatives]


def test_hnc_stand_in_words_pairs_both_ways_only_in_a_random_order_world(tmp_path):
    """With ``synth.mention_order: random`` the world's captions name either object first, so a pair image
    gets both wordings, each with every mined negative rewritten in that wording."""
    from genemi.data.hnc import iter_hnc_records

    p = dataclasses.replace(P, mention_order="random")
    standin.write_hnc(p, 0, SIZE, tmp_path / "hnc")
    recs = list(iter_hnc_records(tmp_path / "hnc" / "hnc_clean_strict_train.json", "train"))
    scenes = [rec.meta["scene"] for split, rec, _ in standin.scenes(p, 0, SIZE, "hnc") if split == "train"]
    for i, scene in enumerate(scenes):
        read = [r for r in recs if r.image == f"{standin.HNC_ID_BASE['train'] + i}.jpg"]
        assert {r.caption for r in read} == _true_captions(scene)
        for r in read:  # one negative each, false of the scene; a pair's negative keeps its relation word
            (neg,) = r.negatives
            assert neg.caption not in _true_captions(scene)
            if scene["kind"] == "pair":
                assert ("right" in neg.caption.split()) == ("right" in r.caption.split())
    assert any(s["kind"] == "pair" for s in scenes)


def test_hnc_stand_in_through_the_manifest_conversion(hnc, tmp_path):
    from types import SimpleNamespace

    from genemi.data.hnc import write_hnc_manifests
    from genemi.manifest import iter_manifest

    data = SimpleNamespace(source="hnc", hnc_subset=1.0)
    real = SimpleNamespace(hnc_val_subset=1.0, subset_seed=0)
    stats = write_hnc_manifests(data, real, hnc / "hnc", hnc / "gqa" / "images", tmp_path / "m")
    for split, n in (("train", 15), ("val", 3), ("test", 3)):
        recs = list(iter_manifest(tmp_path / "m" / f"{split}.jsonl"))
        assert stats[split]["images"] == n and stats[split]["records"] == len(recs) >= n
        assert all(image_exists(hnc / "gqa" / "images" / r.image) and r.negatives for r in recs)


def test_karpathy_stand_in_read_by_the_coco_readers(tmp_path):
    from genemi.data.coco import (
        CocoStats,
        iter_caption_annotation_records,
        iter_karpathy_records,
        write_karpathy_manifest,
    )
    from genemi.manifest import iter_manifest

    out = tmp_path / "coco"
    assert standin.write_coco(P, 0, SIZE, out) == {"restval": 15, "val": 3, "test": 3}
    stats = CocoStats()
    recs = list(
        iter_karpathy_records(
            out / "caption_datasets" / "dataset_coco.json", image_root=out / "images", stats=stats
        )
    )
    assert stats.images == 21 and stats.images_missing == 0
    scenes = _scenes("coco")
    for split, ksplit in (("train", "restval"), ("val", "val"), ("test", "test")):
        for i, rec in enumerate(scenes[split]):
            cocoid = standin.COCO_ID_BASE[ksplit] + i
            caps = [r for r in recs if r.meta["cocoid"] == cocoid]
            assert 2 <= len(caps) <= 4 and {r.split for r in caps} == {ksplit}
            assert caps[0].caption == rec.caption and len({r.caption for r in caps}) == len(caps)
            for r in caps:  # every caption is true: a wording of the scene, or an object at its place
                objs = {
                    f"a {o['color']} {o['shape']} {world.PLACE[o['slot']]}"
                    for o in rec.meta["scene"]["objects"]
                }
                assert r.caption in _true_captions(rec.meta["scene"]) | objs
            _close_to_render(out / "images" / caps[0].image, rec.meta["scene"])
    anns = out / "annotations_trainval2014" / "annotations" / "captions_val2014.json"
    assert len(list(iter_caption_annotation_records(anns, image_root=out / "images"))) == len(recs)
    s = write_karpathy_manifest("genemi", ["test"], out, tmp_path / "k.jsonl")
    assert (
        s["records"] == len(list(iter_manifest(tmp_path / "k.jsonl"))) == sum(r.split == "test" for r in recs)
    )


def _painted(scene: dict, caption: str) -> dict:
    """``scene`` with its objects recoloured/reshaped as ``caption`` (same grammar, same objects) names them."""
    w = caption.split()
    objs = [scene["objects"][i] for i in scene["order"]]  # in mention order
    if scene["kind"] == "pair":
        combos = [(w[1], w[2]), (w[6], w[7])]
    else:  # "one C S <place>" / "two C Ss": every object alike
        singular = {v: k for k, v in world.PLURAL.items()}
        combos = [(w[1], singular.get(w[2], w[2]))] * len(objs)
    changes = {scene["objects"].index(o): {"color": c, "shape": s} for o, (c, s) in zip(objs, combos, strict=True)}
    return world.edited(scene, objects=changes)


def test_genemi_val_stand_in_read_by_its_loader(tmp_path):
    from genemi.benchmarks.choice import load_genemi_val

    out = tmp_path / "gv"
    assert standin.write_genemi_val(P, 0, SIZE, out) == 3
    src = EvalSource("genemi_val", str(out / "test.jsonl"), str(out), 1.0)
    es = load_genemi_val(src, out / "test.jsonl", out, None, 0)
    assert len(es.choices) == 3
    tests = _scenes("coco")["test"]
    for ch, rec in zip(es.choices, tests, strict=True):
        # GeNeMi's set was made from Karpathy test by its miner: row i holds variations of one object of the
        # COCO stand-in's test image i, each image the world's render of the scene its caption names
        assert 2 <= len(ch.images) == len(ch.texts) <= 4 and len(set(ch.texts)) == len(ch.texts)
        orig = rec.meta["scene"]
        scenes = [_painted(orig, t) for t in ch.texts]
        for ref, scene in zip(ch.images, scenes, strict=True):
            _close_to_render(es.store.file(ref), scene)
        keys = [world.scene_key(s) for s in scenes]
        assert len(set(keys)) == len(keys)  # each caption is true of one image of its row
        changed = [{i for i, (a, b) in enumerate(zip(orig["objects"], s["objects"])) if a != b} for s in scenes]
        assert len({frozenset(c) for c in changed if c}) <= 1  # one object (or its group) varies along the row
        assert len({o["shape"] for i in set().union(*changed) for o in [orig["objects"][i]]}) <= 1


def test_same_params_same_bytes_and_seed_changes_them(tmp_path):
    def digests(seed: int, name: str) -> list[str]:
        out = []
        for w in (standin.write_hnc, standin.write_gqa, standin.write_coco, standin.write_genemi_val):
            w(P, seed, 5, tmp_path / name / w.__name__)
            out.append(tree_digest(tmp_path / name / w.__name__)[0])
        return out

    a, b, c = digests(0, "a"), digests(0, "b"), digests(1, "c")
    assert a == b
    assert all(x != y for x, y in zip(a, c, strict=True))
    # the synthetic world's colours and size shape the stand-in too
    standin.write_gqa(dataclasses.replace(P, image_size=32, jitter=1), 0, 5, tmp_path / "d")
    with zipfile.ZipFile(tmp_path / "d" / "images.zip") as z:
        assert Image.open(io.BytesIO(z.read(z.namelist()[0]))).size == (32, 32)


def test_gqa_and_coco_stand_ins_are_the_published_zips(hnc, tmp_path):
    """GQA's images.zip holds images/<id>.jpg, COCO's val2014.zip val2014/COCO_val2014_<12 digits>.jpg; the
    download stages keep such zips unextracted, so the stand-ins write no loose image at all."""
    import re

    assert sorted(p.name for p in (hnc / "gqa").iterdir()) == ["images.zip"]
    with zipfile.ZipFile(hnc / "gqa" / "images.zip") as z:
        names = z.namelist()
    assert len(names) == 21 and all(re.fullmatch(r"images/(\d+|n\d+)\.jpg", n) for n in names)
    standin.write_coco(P, 0, SIZE, tmp_path / "coco")
    assert sorted(p.name for p in (tmp_path / "coco" / "images").iterdir()) == ["val2014.zip"]
    with zipfile.ZipFile(tmp_path / "coco" / "images" / "val2014.zip") as z:
        names = z.namelist()
    assert len(names) == 21 and all(re.fullmatch(r"val2014/COCO_val2014_\d{12}\.jpg", n) for n in names)


def _raw_params(**data) -> dict:
    raw = frozen_params.raw()
    raw["data"].update(data)
    raw["eval"]["monitor"] = ""
    return raw


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("stand_in", "synthetc", "data.stand_in: must be one of"),
        ("stand_in_size", 0, "data.stand_in_size = 0"),
        ("stand_in_size", 2.5, "data.stand_in_size: expected an integer"),
        ("stand_in_palette", "wide", "data.stand_in_palette: must be one of"),
    ],
)
def test_bad_stand_in_params_name_the_key(key, value, match):
    with pytest.raises(ConfigError, match=match) as e:
        params_from_dict(_raw_params(**{key: value}))
    assert "\n" not in str(e.value)


def test_gate_writes_stand_ins_only_where_a_road_or_benchmark_needs_them(tmp_path):
    from genemi import roads
    from genemi.data.sources import fetch_or_skip

    def no_network():
        raise AssertionError("a stand-in or a skipped download must not fetch")

    def write(folder: Path):
        (folder / "x.json").write_text("{}")

    hnc_test = catalogue()["hnc_test"]  # raw/hnc/hnc_clean_strict_test.json + raw/gqa/images.zip
    cases = [  # (data.source, extra benchmarks, stage, what the folder then holds)
        ("hnc", {}, "download_gqa", ["x.json"]),
        ("genemi", {}, "download_gqa", ["SKIPPED.txt"]),
        ("genemi", {}, "download_coco", ["x.json"]),
        ("synthetic", {}, "download_coco", ["SKIPPED.txt"]),
        ("hnc", {}, "download_coco", ["SKIPPED.txt"]),  # HNC training reads no COCO ...
        ("synthetic", {"hnc_test": hnc_test}, "download_gqa", ["x.json"]),  # ... a listed benchmark's folder
        ("genemi", {}, "download_genemi_val", ["SKIPPED.txt"]),
    ]
    for source, extra, stage, want in cases:
        raw = _raw_params(source=source, stand_in="synthetic")
        raw["eval"]["benchmarks"].update(extra)
        p = params_from_dict(raw)
        out = tmp_path / f"{source}-{stage}-{len(extra)}"
        fetched = fetch_or_skip(roads.download_needed(p, stage), out, no_network,
                                skipped=roads.skipped_note(p, stage), stand_in="synthetic", write_stand_in=write)  # fmt: skip
        assert not fetched and sorted(p.name for p in out.iterdir()) == want, (source, extra, stage)
    out = tmp_path / "stanza"  # a needed download without a stand-in: skipped, saying why
    assert not fetch_or_skip("mine_real parses", out, no_network, stand_in="synthetic")
    assert "no synthetic stand-in" in (out / "SKIPPED.txt").read_text()

    def broken(folder: Path):
        (folder / "half.json").write_text("{")
        raise ValueError("generator failed")

    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "old.json").write_text("{}")
    with pytest.raises(ValueError, match="generator failed"):
        fetch_or_skip("hnc road", tmp_path / "kept", no_network, stand_in="synthetic", write_stand_in=broken)
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["old.json"]  # the previous output is intact


def test_genemi_val_by_hand_is_verified_against_the_lock(tmp_path):
    from genemi.data.sources import fetch_genemi_val

    lock = Lock(tmp_path / "lock.json")
    with pytest.raises(DownloadError, match=r"genemi_val is fetched by hand: .*/dl/genemi_val/test.jsonl"):
        fetch_genemi_val(None, tmp_path / "out", tmp_path / "dl", lock)
    assert not (tmp_path / "out").exists() and not lock.path.exists()
    standin.write_genemi_val(P, 0, 5, tmp_path / "dl" / "genemi_val")  # placed by hand
    out = fetch_genemi_val(None, tmp_path / "out", tmp_path / "dl", lock)
    assert (out / "test.jsonl").read_bytes() == (tmp_path / "dl" / "genemi_val" / "test.jsonl").read_bytes()
    assert set(json.loads(lock.path.read_text())) == {"genemi_val"}
    with open(tmp_path / "dl" / "genemi_val" / "test.jsonl", "a") as f:
        f.write("\n")
    with pytest.raises(DownloadError, match="checksum mismatch for 'genemi_val'"):
        fetch_genemi_val(None, tmp_path / "out2", tmp_path / "dl", lock)


@pytest.mark.slow
def test_download_stages_write_stand_ins_that_the_manifest_stages_convert(tmp_path):
    """`python stages/download_{hnc,gqa,coco,genemi_val}.py` with data.stand_in=synthetic, then the
    conversions, as dvc runs them: offline, nothing in the lock file."""
    params = tmp_path / "params.yaml"
    raw_params = _raw_params(source="hnc", stand_in="synthetic", stand_in_size=20, hnc_subset=1.0)
    raw_params["real"]["hnc_val_subset"] = 1.0  # the real 1% of 4 stand-in val images would be none
    params.write_text(yaml.safe_dump(raw_params))
    genemi = tmp_path / "genemi.yaml"  # the genemi road, scoring genemi_val: COCO and genemi_val are needed
    raw_genemi = _raw_params(source="genemi", stand_in="synthetic", stand_in_size=20)
    raw_genemi["eval"]["benchmarks"]["genemi_val"] = catalogue()["genemi_val"]
    genemi.write_text(yaml.safe_dump(raw_genemi))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(script: str, *args, params=params) -> None:
        cmd = [sys.executable, f"stages/{script}.py", "--params", str(params), *map(str, args)]
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr

    common = ("--downloads", tmp_path / "dl", "--lock", tmp_path / "lock.json")
    raw = tmp_path / "raw"
    for name in ("hnc", "gqa", "coco", "genemi_val"):
        run(f"download_{name}", "--out", raw / name, *common)
    for name in ("coco", "genemi_val"):  # not needed by the hnc road (no listed benchmark reads them)
        assert [f.name for f in (raw / name).iterdir()] == ["SKIPPED.txt"]
        run(f"download_{name}", "--out", raw / name, *common, params=genemi)
    assert not (tmp_path / "lock.json").exists() and not (tmp_path / "dl").exists()
    assert (raw / "genemi_val" / "test.jsonl").is_file()
    assert [f.name for f in (raw / "gqa").iterdir()] == ["images.zip"]  # the published zip, not extracted
    assert len(zipfile.ZipFile(raw / "gqa" / "images.zip").namelist()) == 28
    assert len(zipfile.ZipFile(raw / "coco" / "images" / "val2014.zip").namelist()) == 28
    run("hnc_manifest", "--hnc", raw / "hnc", "--images", raw / "gqa" / "images", "--out", tmp_path / "hnc",
        "--stats", tmp_path / "hnc.json")  # fmt: skip
    run("coco_manifest", "--coco", raw / "coco", "--out", tmp_path / "k.jsonl", "--stats", tmp_path / "k.json",
        params=genemi)  # fmt: skip
    hs, ks = json.loads((tmp_path / "hnc.json").read_text()), json.loads((tmp_path / "k.json").read_text())
    assert hs["train"]["images"] == 20 and hs["train"]["records"] >= 20 and hs["test"]["images_missing"] == 0
    assert ks["images_missing"] == 0 and ks["records"] >= 2 * 4  # Karpathy test: 4 images, 2-4 captions each


def test_genemi_val_rows_never_repeat_a_scene(tmp_path, monkeypatch):
    """On a pair of same-shape objects, swapping colours and swapping places reach the same scene; a row
    keeps one of them, so every caption of a row is true of exactly one of its images (captions name
    scenes one-to-one in the left_first world)."""
    from genemi.benchmarks.choice import genemi_val_choices

    # these two types first, so the duplicate would fit in a row of at most 4
    types = ("attribute_swap", "relation_flip", "attribute_replace", "object_replace", "count_change")
    monkeypatch.setattr(standin, "MINE", MineParams(types=types, max_per_type=1))
    standin.write_genemi_val(P, 0, 100, tmp_path)
    choices, _ = genemi_val_choices(tmp_path / "test.jsonl")
    assert len(choices) == 20
    assert all(len(set(ch.texts)) == len(ch.texts) >= 2 for ch in choices)


def test_benchmark_loaders_read_the_stand_ins_where_the_download_stages_put_them(tmp_path):
    """The evaluation side of the roads: each loader reads its stand-in under data/ at the paths the
    download stages write (dvc.yaml outs) and params.yaml names, and every image it names decodes."""
    from genemi.benchmarks import choice, pairwise, retrieval

    data = tmp_path / "data"
    standin.write_hnc(P, 0, SIZE, data / "raw" / "hnc")
    standin.write_gqa(P, 0, SIZE, data / "raw" / "gqa")
    standin.write_coco(P, 0, SIZE, data / "raw" / "coco")
    standin.write_genemi_val(P, 0, SIZE, data / "raw" / "eval" / "genemi_val")
    cases = [  # (loader, file, images, what must be read)
        (pairwise.LOADERS["hnc"], "raw/hnc/hnc_clean_strict_test.json", "raw/gqa/images.zip", "records"),
        (pairwise.LOADERS["hnc"], "raw/hnc/hnc_clean_strict_val.json", "raw/gqa/images.zip", "records"),
        (retrieval.LOADERS["karpathy_retrieval"], "raw/coco/caption_datasets/dataset_coco.json",
         "raw/coco/images", "retrieval"),
        (choice.LOADERS["genemi_val"], "raw/eval/genemi_val/test.jsonl", "raw/eval/genemi_val", "choices"),
    ]  # fmt: skip
    for loader, file, images, what in cases:
        src = EvalSource("x", file, images, 1.0)
        assert all(path.exists() for path, _ in loader.needs(src, data / file, data / images, None))
        es = loader.load(src, data / file, data / images, None, 0)
        if what == "records":
            refs = {r.image for r in es.records}
            assert len(es.records) >= 3 and all(r.negatives for r in es.records)
        elif what == "retrieval":
            refs = set(es.retrieval.images)
            assert len(refs) == 3 and len(es.retrieval.texts) >= 6  # Karpathy test: 3 images, 2-4 captions
        else:
            refs = {ref for ch in es.choices for ref in ch.images}
            assert len(es.choices) == 3
        assert all(es.store.load(ref).size == (P.image_size, P.image_size) for ref in refs)


def test_every_stand_in_caption_is_in_the_word_tokenizers_vocabulary(hnc, tmp_path):
    """So a stand-in road can run on the synthetic base model (word tokenizer), in minutes on a CPU."""
    from genemi.models import WordTokenizer

    standin.write_coco(P, 0, SIZE, tmp_path / "coco")
    standin.write_genemi_val(P, 0, SIZE, tmp_path / "gv")
    texts = []
    for f in (hnc / "hnc").glob("*.json"):
        for entry in json.loads(f.read_text()).values():
            texts += [c["caption"] for c in entry.get("captions", entry).values()]
    coco = json.loads((tmp_path / "coco" / "caption_datasets" / "dataset_coco.json").read_text())
    texts += [s["raw"] for im in coco["images"] for s in im["sentences"]]
    for line in (tmp_path / "gv" / "test.jsonl").read_text().splitlines():
        row = json.loads(line)
        texts += [row[f"caption_{k}"] for k in range(row["num_sample"])]
    assert len(texts) > 100
    WordTokenizer(context_length=12)(texts)  # genemi-synth-vit's; raises on an unknown word or a long caption


def test_synthetic_lexicon_lets_the_miner_rewrite_stand_in_captions_within_the_vocabulary(tmp_path):
    """GeNeMi's offline miner pieces (caption tagger, lexicon portrayer, caption rewriter) given the
    synthetic lexicon: every COCO stand-in caption yields objects, and every variation caption they
    write is in the world's vocabulary, naming another colour or shape (a true edit)."""
    from genemi.mining.models import CaptionNounTagger
    from genemi.mining.portrayals import LexiconPortrayer, edit_type
    from genemi.mining.rewrite import CaptionRewriter, variation_captions
    from genemi.models import WordTokenizer

    lex = standin.synthetic_lexicon(P)
    tagger, portrayer = CaptionNounTagger(lexicon=lex), LexiconPortrayer(lex)
    rewriter = CaptionRewriter(lexicon=lex)
    vocab = set(WordTokenizer(12).vocab)
    rng = np.random.default_rng(0)
    n = 0
    for _, rec, img in standin.scenes(P, 0, 10, "coco"):
        caps = standin.coco_captions(rec.meta["scene"])
        items = tagger.tag(Image.fromarray(img), caps[0])
        assert items and set(items) <= {o["shape"] for o in rec.meta["scene"]["objects"]}
        for item in items:
            for por in portrayer.portray(item, caps[0], 4, rng):
                assert set(por.short.split()) <= vocab
                assert edit_type(item, por.short, lex) in ("attribute", "object")
                for text in variation_captions(rewriter, item, por.short, caps[0], caps[1:]):
                    assert set(text.split()) <= vocab, text
                    n += 1
    assert n > 50
    assert "brown" not in {w for t in portrayer.colors for w in t.split()}  # the packaged palette is not used


def test_hnc_conversion_is_skipped_for_the_genemi_road(tmp_path):
    """data.source=genemi trains on COCO: download_hnc writes SKIPPED.txt, hnc_manifest empty manifests."""
    from types import SimpleNamespace

    from genemi.data.hnc import write_hnc_manifests

    (tmp_path / "hnc").mkdir()
    (tmp_path / "hnc" / "SKIPPED.txt").write_text("skipped")
    data = SimpleNamespace(source="genemi", hnc_subset=1.0)
    real = SimpleNamespace(hnc_val_subset=1.0, subset_seed=0)
    stats = write_hnc_manifests(data, real, tmp_path / "hnc", tmp_path / "gqa", tmp_path / "m")
    assert stats == {"skipped": "data.source is genemi"}
    assert sorted(p.stat().st_size for p in (tmp_path / "m").iterdir()) == [0, 0, 0]


def test_broad_palette_draws_the_pretraining_worlds_objects_and_keeps_held_out_ones_out(tmp_path):
    """``data.stand_in_palette: broad``: stand-in scenes and their captions use every colour and shape of the
    pretraining world, held-out combinations stay out of train and test, and the narrow palette is the
    fine-tuning world itself."""
    from genemi.data.hnc import iter_hnc_records

    assert standin.stand_in_world(P, "narrow") == P
    with pytest.raises(ValueError, match="data.stand_in_palette"):
        standin.stand_in_world(P, "wide")
    broad = standin.stand_in_world(P, "broad")
    colors, shapes = set(P.colors) | set(P.broad_colors), set(P.shapes) | set(P.broad_shapes)
    objects = [(o["color"], o["shape"]) for _, rec, _ in standin.scenes(broad, 0, 60, "hnc")
               for o in rec.meta["scene"]["objects"]]  # fmt: skip
    assert {c for c, _ in objects} == colors and {s for _, s in objects} == shapes
    assert not {f"{c} {s}" for c, s in objects} & set(P.heldout_combos)
    standin.write_hnc(broad, 0, SIZE, tmp_path / "hnc")
    words = set(world.vocabulary(sorted(colors), sorted(shapes)))
    recs = list(iter_hnc_records(tmp_path / "hnc" / "hnc_clean_strict_train.json", "train"))
    captions = [c for r in recs for c in [r.caption, *(n.caption for n in r.negatives)]]
    assert captions and all(set(c.split()) <= words for c in captions)


def test_the_gate_writes_the_stand_in_of_the_palette_the_params_name(tmp_path):
    """download_hnc's gate with data.stand_in_palette: broad writes scenes with the pretraining world's
    colours and shapes, narrow only the fine-tuning world's."""
    from genemi.data.sources import gated_fetch

    words = {}
    for palette in ("narrow", "broad"):
        p = params_from_dict(_raw_params(source="hnc", stand_in="synthetic", stand_in_size=12,
                                         stand_in_palette=palette))  # fmt: skip
        gated_fetch(p, "download_hnc", tmp_path / palette, lambda: None, standin.write_hnc)
        data = json.loads((tmp_path / palette / "hnc_clean_strict_train.json").read_text())
        captions = [c["caption"] for e in data.values() for c in e["captions"].values()]
        words[palette] = {w for c in captions for w in c.split()}
    only_broad = set(p.synth.broad_colors) | set(p.synth.broad_shapes)
    assert not words["narrow"] & only_broad and words["broad"] & only_broad
