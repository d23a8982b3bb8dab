"""The synthetic world: scenes, captions, negatives and their edited images."""

import numpy as np
import pytest
from PIL import Image

from genemi.config import MineParams, SynthParams
from genemi.synth import dataset, world
from genemi.synth import negatives as negs
from genemi.synth.backend import PixelSegmenter, ShapePainter, mask_box

P = SynthParams(
    image_size=48, n_train=120, n_test=20, n_gen=30,
    colors=("red", "green", "blue", "yellow", "purple", "white"),
    shapes=("circle", "square", "triangle", "cross", "ring"),
    max_objects=3, heldout_combos=("red triangle", "blue circle"), jitter=2, mention_order="left_first",
)
M = MineParams(types=negs.NEGATIVE_TYPES, max_per_type=2)


def test_every_shape_spans_its_box_so_edits_round_trip():
    for shape in world.SHAPES:
        m = world.shape_mask(shape, 24, 24, 5, 48)
        assert mask_box(m) == (19, 19, 30, 30), shape


def test_captions_follow_geometry_and_mention_order():
    scene = {"kind": "pair", "order": [1, 0], "objects": [
        {"color": "red", "shape": "circle", "slot": 0}, {"color": "blue", "shape": "square", "slot": 2}]}
    assert world.caption(scene) == "a blue square right of a red circle"
    assert world.scene_key(scene) == world.scene_key(dict(scene, order=[0, 1]))
    lone = {"kind": "count", "order": [0], "objects": [{"color": "red", "shape": "ring", "slot": 1}]}
    assert world.caption(lone) == "one red ring in the middle"


def test_splits_are_deterministic_and_respect_heldout_combos():
    a = [(r.to_dict(), img.tobytes()) for r, img in dataset.generate_split(P, "train", 3)]
    b = [(r.to_dict(), img.tobytes()) for r, img in dataset.generate_split(P, "train", 3)]
    assert a == b
    held = set(P.heldout_combos)
    for rec, _ in dataset.generate_split(P, "train", 3):
        assert not any(world.combo(o) in held for o in rec.meta["scene"]["objects"])
    for rec, _ in dataset.generate_split(P, "gen", 3):
        assert any(world.combo(o) in held for o in rec.meta["scene"]["objects"])


def test_edited_images_equal_renders_of_the_negative_scenes():
    """The segment -> edit path must produce exactly the scene the negative caption describes."""
    rng = np.random.default_rng(0)
    checked = {t: 0 for t in negs.NEGATIVE_TYPES}
    for rec, img in dataset.generate_split(P, "test", 0):
        scene = rec.meta["scene"]
        for neg in negs.mine(scene, rng, negs.NEGATIVE_TYPES, 2, P.colors, P.shapes, 48):
            edited = negs.apply_edits(Image.fromarray(img), neg.edits, PixelSegmenter(), ShapePainter(), 0)
            np.testing.assert_array_equal(np.asarray(edited), world.render(neg.scene, 48))
            assert world.scene_key(neg.scene) != rec.meta["key"]
            assert neg.caption != rec.caption
            checked[neg.type] += 1
    assert all(n > 0 for n in checked.values()), checked


def test_relation_flip_and_attribute_swap_keep_the_bag_of_words():
    """What makes these the hard types: the negative caption uses exactly the same words."""
    scene = {"kind": "pair", "order": [0, 1], "objects": [
        {"color": "red", "shape": "circle", "slot": 0, "dx": 0, "dy": 0},
        {"color": "blue", "shape": "square", "slot": 2, "dx": 0, "dy": 0}]}
    rng = np.random.default_rng(0)
    swap = negs.propose(scene, "attribute_swap", rng, P.colors, P.shapes, 48)
    flip = negs.propose(scene, "relation_flip", rng, P.colors, P.shapes, 48)
    assert swap.caption == "a blue circle left of a red square"
    assert flip.caption == "a blue square left of a red circle"
    words = sorted(world.caption(scene).split())
    assert sorted(swap.caption.split()) == words
    assert sorted(flip.caption.split()) == words
    # named right-first, the flip keeps "right of" and swaps the arguments too
    flip = negs.propose(dict(scene, order=[1, 0]), "relation_flip", rng, P.colors, P.shapes, 48)
    assert flip.caption == "a red circle right of a blue square"


def test_mention_order_changes_captions_only():
    """left_first names the left object first in every pair; random names either, same scenes."""
    import dataclasses

    left = list(dataset.generate_split(P, "train", 2))
    rand = list(dataset.generate_split(dataclasses.replace(P, mention_order="random"), "train", 2))
    pairs = [(a, b) for (a, _), (b, _) in zip(left, rand, strict=True) if a.meta["scene"]["kind"] == "pair"]
    assert len(pairs) > 20
    for a, b in pairs:
        assert a.meta["scene"]["objects"] == b.meta["scene"]["objects"]
        assert a.meta["key"] == b.meta["key"]
        assert " left of " in a.caption
    assert {" right of " in b.caption for _, b in pairs} == {True, False}
    with pytest.raises(ValueError, match="mention order"):
        world.sample_scene(np.random.default_rng(0), P.colors, P.shapes, 3, 0, lambda c, s: True, "up")


def test_train_negatives_never_show_heldout_combos():
    held = set(P.heldout_combos)
    for rec, img in dataset.generate_split(P, "train", 1):
        out, files = dataset.mine_record(rec, Image.fromarray(img), P, M, 1)
        assert len(files) == len(out.negatives)
        for n in out.negatives:
            assert not any(f"{c} {s}" in n.caption for c, s in (h.split() for h in held))


@pytest.mark.parametrize("bad,key", [
    ({"colors": ("red", "mauve")}, "synth.colors"),
    ({"shapes": ("circle", "hexagon")}, "synth.shapes"),
    ({"heldout_combos": ("red hexagon",)}, "synth.heldout_combos"),
    ({"jitter": 9}, "synth.jitter"),
])
def test_bad_world_params_name_the_key(bad, key):
    import dataclasses

    with pytest.raises(ValueError, match=key):
        dataset.check_params(dataclasses.replace(P, **bad))
