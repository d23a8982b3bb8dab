"""``data.stand_in_coco_colors``: COCO stand-in captions that leave colours out, the exact scorer that reads
them, and the genemi_val rows made from them. Checked against the world's scenes and renders."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from test_mining_synthetic import SP  # the synthetic backend's test world
from test_standin import _raw_params as _raw

from genemi.benchmarks import catalogue
from genemi.config import ConfigError, params_from_dict
from genemi.data import standin
from genemi.mining import synthetic as W
from genemi.synth import world

SIZE = 60  # restval 60, val 12, test 12


def _colour_words(caps) -> list[str]:
    return [w for c in caps for w in c.split() if w in world.PALETTE]


def _obj(color, shape, slot):
    return {"color": color, "shape": shape, "slot": slot, "dx": 0, "dy": 0}


def test_a_shape_named_alone_matches_any_colour_and_nothing_else():
    pair = {"kind": "pair", "objects": [_obj("red", "circle", 0), _obj("blue", "square", 2)], "order": [0, 1]}
    assert W.caption_true("a circle left of a square", pair)
    assert W.caption_true("a square right of a circle", pair)
    assert W.caption_true("a circle left of a blue square", pair)
    assert W.caption_true("a red circle left of a square", pair)
    assert not W.caption_true("a square left of a circle", pair)  # the order still counts
    assert not W.caption_true("a green circle left of a square", pair)  # a named colour still counts
    assert not W.caption_true("a circle left of a ring", pair)
    assert W.caption_true("a circle on the left", pair) and not W.caption_true("a circle in the middle", pair)
    assert not W.caption_true("one circle on the left", pair)  # two objects, not one
    count = {"kind": "count", "objects": [_obj("red", "circle", s) for s in range(3)], "order": [0, 1, 2]}
    assert W.caption_true("three circles", count) and W.caption_true("three red circles", count)
    assert not W.caption_true("two circles", count) and not W.caption_true("three squares", count)
    assert not W.caption_true("three blue circles", count)
    lone = {"kind": "count", "objects": [_obj("white", "ring", 1)], "order": [0]}
    assert W.caption_true("one ring in the middle", lone) and not W.caption_true("one ring on the left", lone)


def test_captions_keep_the_share_of_colour_words_asked_and_stay_true():
    scenes = [(split, i, rec) for split, i, rec, _ in standin._indexed(SP, 0, SIZE, "coco")]
    full = [standin.image_captions(rec, split, i, 0, 1.0) for split, i, rec in scenes]
    assert full == [standin.coco_captions(rec.meta["scene"]) for _, _, rec in scenes]  # 1.0: as ever
    n_full = len(_colour_words(c for caps in full for c in caps))
    for share in (0.0, 0.5):
        caps = [standin.image_captions(rec, split, i, 0, share) for split, i, rec in scenes]
        assert caps == [standin.image_captions(rec, split, i, 0, share) for split, i, rec in scenes]
        kept = len(_colour_words(c for cs in caps for c in cs)) / n_full
        assert kept == 0.0 if share == 0.0 else 0.4 < kept < 0.6, kept
        for (_, _, rec), cs in zip(scenes, caps, strict=True):
            assert 1 <= len(cs) == len(set(cs)) <= 4
            assert all(W.caption_true(c, rec.meta["scene"]) for c in cs), cs
    other = [standin.image_captions(rec, split, i, 1, 0.5) for split, i, rec in scenes]
    assert other != [standin.image_captions(rec, split, i, 0, 0.5) for split, i, rec in scenes]


@pytest.mark.parametrize("value", [-0.1, 1.5, "some"])
def test_bad_share_names_the_key(value):
    with pytest.raises(ConfigError, match="data.stand_in_coco_colors") as e:
        params_from_dict(_raw(stand_in_coco_colors=value))
    assert "\n" not in str(e.value)


def test_the_gate_writes_coco_and_genemi_val_with_the_share_the_params_name(tmp_path):
    """download_coco's and download_genemi_val's writers get data.stand_in_coco_colors; genemi_val rows are
    mined from the image's first caption as written, so their captions name the varied object's colour
    and shape (the miner's portrayal) and leave the rest as the caption had it."""
    from genemi.data.sources import gated_fetch

    words, rows = {}, {}
    for share in (1.0, 0.0):
        raw = _raw(source="genemi", stand_in="synthetic", stand_in_size=SIZE, stand_in_coco_colors=share)
        raw["eval"]["benchmarks"]["genemi_val"] = catalogue()["genemi_val"]
        p = params_from_dict(raw)
        coco, gv = tmp_path / f"coco{share}", tmp_path / f"gv{share}"
        gated_fetch(p, "download_coco", coco, lambda: None, standin.write_coco)
        gated_fetch(p, "download_genemi_val", gv, lambda: None, standin.write_genemi_val)
        data = json.loads((coco / "caption_datasets" / "dataset_coco.json").read_text())
        words[share] = _colour_words(s["raw"] for im in data["images"] for s in im["sentences"])
        rows[share] = [json.loads(line) for line in (gv / "test.jsonl").read_text().splitlines()]
    assert words[1.0] and not words[0.0]
    named = {s: len(_colour_words(r[k] for r in rs for k in r if k.startswith("caption_")))
             for s, rs in rows.items()}
    assert rows[0.0] and named[0.0] < named[1.0]
    for row in rows[0.0]:
        n = row["num_sample"]
        caps = [row[f"caption_{k}"] for k in range(n)]
        files = [tmp_path / "gv0.0" / row[f"image_{k}"]["path"] for k in range(n)]
        scenes = [W.read_scene(Image.open(io.BytesIO(f.read_bytes()))) for f in files]
        for k, cap in enumerate(caps):  # each caption is true of its own image and of no other in the row
            assert [W.caption_true(cap, s) for s in scenes] == [j == k for j in range(n)], (cap, caps)
            assert _colour_words([cap]), cap  # the portrayal names the varied object's colour
