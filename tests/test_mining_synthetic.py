"""mine_real.backend=synthetic (genemi/mining/synthetic.py) and the corruption knob, checked against the
synthetic world itself: its scenes, renderer, shape masks and its own negative miner, never against the
backend's own helpers."""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import zipfile
from pathlib import Path

import frozen_params
import numpy as np
import pytest
import yaml
from PIL import Image

from genemi.config import SynthParams
from genemi.data import standin
from genemi.images import read_image
from genemi.manifest import Record, read_manifest
from genemi.mining import pipeline as P
from genemi.mining import synthetic as W
from genemi.mining.contact_sheet import variation_label
from genemi.mining.corrupt import corrupted
from genemi.synth import dataset, world
from genemi.synth.negatives import NEGATIVE_TYPES

ROOT = Path(__file__).resolve().parents[1]
SP = SynthParams(
    image_size=48, n_train=1, n_test=1, n_gen=1, colors=("red", "green", "blue", "yellow", "white"),
    shapes=("circle", "square", "triangle", "cross", "ring"), max_objects=3, heldout_combos=(), jitter=2,
    mention_order="left_first", color_layout="fill", n_pretrain=1, n_broad=2, broad_colors=("pink",), broad_shapes=("diamond",),
    broad_styles=("plain",),
)  # fmt: skip


def _jpeg(img: np.ndarray) -> Image.Image:
    """The image as the COCO stand-in stores it (JPEG), decoded."""
    return Image.open(io.BytesIO(standin._jpeg(img))).convert("RGB")


def _stand_in(n: int = 40):
    """``(record, scene, png-exact image, jpeg image)`` of the first ``n`` COCO stand-in scenes."""
    out = []
    for _, _, rec, img in standin._indexed(SP, 0, n, "coco"):
        out.append((rec, rec.meta["scene"], img, _jpeg(img)))
    return out[:n]


def _objects(scene):
    return sorted(
        (o["color"], o["shape"], o["slot"], o.get("dx", 0), o.get("dy", 0)) for o in scene["objects"]
    )


def test_reader_tagger_grounder_segmenter_equal_the_worlds_truth():
    for _, scene, png, jpg in _stand_in():
        for img in (Image.fromarray(png), jpg):
            assert _objects(W.read_scene(img)) == _objects(scene)
            objs = sorted(scene["objects"], key=lambda o: o["slot"])
            assert W.WorldTagger().tag(img) == list(dict.fromkeys(o["shape"] for o in objs))
            for shape in {o["shape"] for o in objs}:
                same = [o for o in objs if o["shape"] == shape]
                boxes = [world.box(o, SP.image_size) for o in same]
                dets = W.WorldGrounder().ground(img, world.PLURAL[shape] if len(same) > 1 else shape)
                union = tuple(f(b[i] for b in boxes) for i, f in enumerate((min, min, max, max)))
                assert [d.box for d in dets] == [union] + (boxes if len(boxes) > 1 else [])
                truth = np.zeros((SP.image_size,) * 2, dtype=bool)
                for o in same:
                    cx, cy, h = world.geometry(o, SP.image_size)
                    truth |= world.shape_mask(o["shape"], cx, cy, h, SP.image_size)
                assert np.array_equal(W.WorldSegmenter().segment(img, dets[0].box), truth)
        assert W.WorldGrounder().ground(jpg, "hexagon") == []


def test_painter_renders_exactly_what_the_world_renders():
    for _, scene, png, jpg in _stand_in(20):
        for i, o in enumerate(scene["objects"]):
            new = world.edited(
                scene,
                objects={
                    i: {
                        "color": "green" if o["color"] != "green" else "red",
                        "shape": "ring" if o["shape"] != "ring" else "cross",
                    }
                },
            )
            cx, cy, h = world.geometry(o, SP.image_size)
            mask = world.shape_mask(o["shape"], cx, cy, h, SP.image_size)
            prompt = f"a photo of a {world.combo(new['objects'][i])}, realistic, detailed"
            out = W.WorldPainter().edit(Image.fromarray(png), mask, prompt, seed=0)
            assert np.array_equal(np.asarray(out), world.render(new, SP.image_size))
            outside = ~world.shape_mask("square", cx, cy, h, SP.image_size)  # only the object's box changes
            assert np.array_equal(np.asarray(out)[outside], png[outside])
            assert _objects(W.read_scene(W.WorldPainter().edit(jpg, mask, prompt))) == _objects(new)


def test_scorer_accepts_every_true_caption_and_rejects_the_worlds_negatives():
    from genemi.config import MineParams

    mine = MineParams(types=NEGATIVE_TYPES, max_per_type=2)
    n_neg = 0
    for rec, scene, _, jpg in _stand_in():
        for cap in standin.coco_captions(scene):
            assert W.WorldScorer().score(jpg, cap) == W.MATCH, cap
        for neg in dataset.scene_negatives(rec, SP, mine, 0):  # the world's miner: false of the image
            assert W.WorldScorer().score(jpg, neg.caption) == W.MISMATCH, neg.caption
            n_neg += 1
    assert n_neg > 60
    assert W.WorldScorer().score(jpg, "a dog on a sofa") == W.MISMATCH  # outside the grammar: not confirmed


def test_corruption_is_deterministic_and_honours_the_fraction():
    names = [f"{k:06d}:circle:green_circle" for k in range(6000)]
    for frac in (0.0, 1 / 3, 0.9):
        got = [corrupted(7, n, frac) for n in names]
        assert got == [corrupted(7, n, frac) for n in names]
        sd = (frac * (1 - frac) / len(names)) ** 0.5
        assert abs(np.mean(got) - frac) <= 4 * sd + 1e-12
    assert [corrupted(7, n, 0.5) for n in names] != [corrupted(8, n, 0.5) for n in names]
    assert all(corrupted(0, n, 1.0) for n in names[:50])


def test_corruption_by_prompt_fails_every_variation_asking_for_one_prompt_together(tmp_path):
    # corrupt_by: prompt stands for an editor that cannot paint some prompts: one draw per (seed, prompt)
    # (as another portrayal: every variation drawn can fail so, an item having four portrayals)
    rows = _mine(tmp_path, 30, corrupt_fraction=0.4, corrupt_as="portrayal", corrupt_by="prompt")
    fate: dict[str, set[bool]] = {}
    for r in rows:
        fate.setdefault(r["meta"]["desc"], set()).add("corrupted" in r["meta"])
    assert all(len(f) == 1 for f in fate.values()), "one prompt both failed and succeeded"
    failed = {d for d, f in fate.items() if True in f}
    assert 0 < len(failed) < len(fate)
    assert failed == {d for d in fate if corrupted(3, "", 0.4, d)}
    # another seed fails other prompts; by variation, a prompt's variations fail apart
    assert {d for d in fate if corrupted(4, "", 0.4, d)} != failed
    (tmp_path / "v").mkdir()
    by_var = _mine(tmp_path / "v", 30, corrupt_fraction=0.4, corrupt_as="portrayal")
    mixed: dict[str, set[bool]] = {}
    for r in by_var:
        mixed.setdefault(r["meta"]["desc"], set()).add("corrupted" in r["meta"])
    assert any(len(f) == 2 for f in mixed.values())


def test_corruption_by_color_fails_exactly_that_share_of_the_colours_and_every_variation_naming_one(tmp_path):
    # corrupt_by: color stands for an editor that cannot paint some colours
    rows = _mine(tmp_path, 30, corrupt_fraction=0.34, corrupt_as="portrayal", corrupt_by="color")
    colors = standin.synthetic_lexicon(SP).colors()
    failing = {c for r in rows if "corrupted" in r["meta"] for c in [r["meta"]["short"].split()[0]]}
    assert len(failing) == round(0.34 * len(colors)) == 2  # exactly, not a draw per colour
    for r in rows:
        assert ("corrupted" in r["meta"]) == (r["meta"]["short"].split()[0] in failing), r["id"]
    others = [{c for c in colors if _fails(seed, c)} for seed in range(6)]
    assert failing == others[3] and len({frozenset(o) for o in others}) > 1  # the seed picks them


def _fails(seed: int, color: str) -> bool:
    from genemi.mining.corrupt import failing_colors

    return color in failing_colors(seed, 0.34, tuple(standin.synthetic_lexicon(SP).colors()))


def _records(n: int) -> tuple[list[Record], dict[str, Image.Image]]:
    recs, images = [], {}
    for rec, scene, _, jpg in _stand_in(n):
        caps = standin.coco_captions(scene)
        recs.append(
            Record(
                id=rec.id,
                image=f"{rec.id}.jpg",
                caption=caps[0],
                split="train",
                source="coco",
                meta={"original_captions": caps},
            )
        )
        images[rec.id] = jpg
    return recs, images


def _mine(tmp_path: Path, n: int, **over) -> list[dict]:
    recs, images = _records(n)
    for r in recs:
        images[r.id].save(tmp_path / r.image, quality=95, subsampling=0)
    p = dataclasses.replace(
        P.stage_settings(frozen_params.load())[0], backend="synthetic", iva_min=2.0, **over
    )
    chain = P.synthetic_chain(standin.synthetic_lexicon(SP))
    P.run_shard(recs, tmp_path, tmp_path / "w", chain, p, seed=3)
    return [
        r
        for f in sorted((tmp_path / "w" / P.PARTS).glob("*.json"))
        for r in json.loads(f.read_text())["records"]
    ]


@pytest.mark.parametrize("corrupt_as", ["portrayal", "unchanged", "misplaced"])
def test_variations_are_right_and_the_filter_drops_the_corrupted_ones(tmp_path, corrupt_as):
    rows = _mine(tmp_path, 30, corrupt_fraction=0.4, corrupt_as=corrupt_as)
    bad = [r for r in rows if "corrupted" in r["meta"]]
    good = [r for r in rows if "corrupted" not in r["meta"]]
    # misplaced needs a second object: only images of two or more shapes can fail that way
    low = 0.1 if corrupt_as == "misplaced" else 0.25
    assert len(rows) > 100 and low < len(bad) / len(rows) < 0.55
    for r in rows:
        shown = W.read_scene(Image.open(tmp_path / "w" / P.IMAGES / r["image"]))
        truth = [W.caption_true(c, shown) for c in r["meta"]["captions"]]
        if "corrupted" in r["meta"]:  # the image is not what its caption (the first rewrite) says
            assert not truth[0] and r["meta"]["corrupted"] != r["meta"]["short"]
            if corrupt_as == "unchanged":  # the origin's own pixels: the edit changed nothing
                assert r["meta"]["corrupted"] == r["meta"]["item"]
                assert shown == W.read_scene(Image.open(tmp_path / r["meta"]["source"]))
            if corrupt_as == "misplaced":  # the named object as it was, another one painted over
                was = W.read_scene(Image.open(tmp_path / r["meta"]["source"]))["objects"]
                item, now = r["meta"]["item"], shown["objects"]
                at = {w["slot"] for w in was if w["shape"] == item}
                assert [o for o in was if o["shape"] == item] == [o for o in now if o["slot"] in at]
                other = r["meta"]["corrupted"].split(" over the ")[1]
                assert other != item
                color, shape = W.prompt_object(r["meta"]["desc"])  # painted where the other object was
                slots = {o["slot"] for o in was if o["shape"] == other}
                painted = [(o["color"], o["shape"]) for o in now if o["slot"] in slots]
                assert slots and set(painted) == {(color, shape)}
        else:  # the caption rewriting, the grounder's group box and the painter agree with the pixels
            assert all(truth), (r["meta"]["captions"], shown)
    assert not any(r["meta"]["passed"] for r in bad)
    # IVA is a group's: a group left too alike by its undone edits loses its right variations too
    dropped = [r for r in good if not r["meta"]["passed"]]
    assert all(r["meta"]["iva_score"] <= 2.0 for r in dropped)
    assert not dropped if corrupt_as == "portrayal" else len(dropped) < len(good) / 4
    kept = P.merge(tmp_path / "w", tmp_path / "on.jsonl")
    assert kept["written"] == len(good) - len(dropped)
    # the contact sheet says which tiles were corrupted on purpose, and what they show
    assert all(f"CORRUPTED: shows {r['meta']['corrupted']}" in variation_label(r) for r in bad)
    assert not any("CORRUPTED" in variation_label(r) for r in good)
    assert kept["corrupted"] == len(bad) and kept["corrupted_kept"] == 0
    off = P.merge(tmp_path / "w", tmp_path / "off.jsonl", keep_failed=True)
    assert off["written"] == len(rows) and off["corrupted_kept"] == len(bad)


@pytest.mark.parametrize("corrupt_as", ["portrayal", "unchanged", "misplaced"])
def test_corruption_changes_nothing_else(tmp_path, corrupt_as):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    clean = {r["id"]: r for r in _mine(tmp_path / "a", 12, corrupt_as=corrupt_as)}
    dirty = {r["id"]: r for r in _mine(tmp_path / "b", 12, corrupt_fraction=0.5, corrupt_as=corrupt_as)}
    assert clean.keys() == dirty.keys()
    for i, r in dirty.items():
        same = {
            k: v for k, v in r["meta"].items() if k not in ("corrupted", "itm_score", "passed", "iva_score")
        }
        assert same == {k: v for k, v in clean[i]["meta"].items() if k in same}
        a = (tmp_path / "a" / "w" / P.IMAGES / r["image"]).read_bytes()
        b = (tmp_path / "b" / "w" / P.IMAGES / r["image"]).read_bytes()
        assert (a == b) == ("corrupted" not in r["meta"])


def _stand_in_params(tmp_path: Path, **over) -> Path:
    raw = frozen_params.raw()
    raw["data"] |= {"source": "genemi", "stand_in": "synthetic", "stand_in_size": 12}
    raw["real"]["coco_splits"] = ["restval"]
    raw["mine_real"] |= {"backend": "synthetic", "device": "cpu", "iva_min": 2.0, "contact_sheets": 2} | over
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_stage_mines_the_stand_in_end_to_end(tmp_path):
    from click.testing import CliRunner

    from genemi.config import load_params
    from genemi.data.coco import write_karpathy_manifest

    sys.path.insert(0, str(ROOT / "stages"))
    import mine_real

    params = _stand_in_params(tmp_path, corrupt_fraction=0.3)
    p = load_params(params)
    standin.write_coco(p.synth, p.real.subset_seed, p.data.stand_in_size, tmp_path / "coco")
    write_karpathy_manifest("genemi", ["restval"], tmp_path / "coco", tmp_path / "karpathy.jsonl")
    args = ["--params", str(params), "--manifest", str(tmp_path / "karpathy.jsonl"),
            "--image-root", str(tmp_path / "coco" / "images"), "--work-dir", str(tmp_path / "work"),
            "--out", str(tmp_path / "v.jsonl"), "--shard", str(tmp_path / "v.zip"),
            "--sheets", str(tmp_path / "sheets"), "--metrics", str(tmp_path / "m.json")]  # fmt: skip
    res = CliRunner().invoke(mine_real.main, args)
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "m.json").read_text())
    assert (
        m["backend"] == "synthetic" and m["origins"] == 12 and m["corrupted"] > 0 and m["corrupted_kept"] == 0
    )
    kept = read_manifest(tmp_path / "v.jsonl")
    assert len(kept) == m["written"] == m["variations"] - m["corrupted"] > 20
    assert len(zipfile.ZipFile(tmp_path / "v.zip").namelist()) == len(kept)
    for r in kept:  # what training reads: the shard's image, true of its caption
        img = read_image(tmp_path / "v" / r.image, what=r.id)
        assert (
            W.caption_true(r.caption, W.read_scene(img))
            and r.group == f"{r.meta['origin_name']}:{r.meta['item']}"
        )
    # the filter acts at the merge only: the same work folder re-merges without it
    res = CliRunner().invoke(
        mine_real.main,
        [
            *args[:1],
            str(_stand_in_params(tmp_path, corrupt_fraction=0.3, filter=False)),
            *args[2:],
            "--merge-only",
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(read_manifest(tmp_path / "v.jsonl")) == m["variations"]


def test_synthetic_backend_refuses_real_images(tmp_path):
    raw = frozen_params.raw()
    raw["data"] |= {"source": "genemi", "stand_in": "none"}
    raw["eval"]["monitor"] = ""
    raw["mine_real"] |= {"backend": "synthetic"}
    from genemi.config import params_from_dict

    with pytest.raises(ValueError, match="data.stand_in: synthetic"):
        P.stage_settings(params_from_dict(raw))
