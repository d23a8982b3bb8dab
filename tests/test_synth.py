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
    color_layout="fill",
    n_pretrain=300, n_broad=200, broad_colors=("pink", "cyan"), broad_shapes=("diamond", "frame"),
    broad_styles=("plain", "to", "photo"),
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


@pytest.mark.parametrize("layout", world.LAYOUTS)
def test_edited_images_equal_renders_of_the_negative_scenes(layout):
    """The segment -> edit path must produce exactly the scene the negative caption describes."""
    import dataclasses

    rng = np.random.default_rng(0)
    checked = {t: 0 for t in negs.NEGATIVE_TYPES}
    p = dataclasses.replace(P, color_layout=layout)
    for rec, img in dataset.generate_split(p, "test", 0):
        scene = rec.meta["scene"]
        for neg in negs.mine(scene, rng, negs.NEGATIVE_TYPES, 2, P.colors, P.shapes, 48, layout=layout):
            painter = ShapePainter(layout=layout)
            edited = negs.apply_edits(Image.fromarray(img), neg.edits, PixelSegmenter(), painter, 0)
            np.testing.assert_array_equal(np.asarray(edited), world.render(neg.scene, 48, layout))
            assert world.scene_key(neg.scene) != rec.meta["key"]
            assert neg.caption != rec.caption
            checked[neg.type] += 1
    assert all(n > 0 for n in checked.values()), checked


def test_swatch_layout_shows_colour_and_shape_in_different_patches():
    """In ``swatch`` the 16-px patch that holds a shape shows no colour of the palette, and the patch below it
    shows that object's colour and nothing else: binding them takes two patches."""
    import dataclasses

    p = dataclasses.replace(P, color_layout="swatch")
    palette = {tuple(v) for v in world.PALETTE.values()}
    checked = 0
    pairs = zip(dataset.generate_split(p, "test", 1), dataset.generate_split(P, "test", 1), strict=True)
    for (rec, img), (_, filled) in pairs:
        assert not np.array_equal(img, filled)
        for o in rec.meta["scene"]["objects"]:
            x = 16 * o["slot"]
            shape_patch = {tuple(c) for c in img[16:32, x:x + 16].reshape(-1, 3)}
            swatch_patch = {tuple(c) for c in img[32:48, x:x + 16].reshape(-1, 3)}
            assert shape_patch == {world.BACKGROUND, world.NEUTRAL}
            assert not shape_patch & palette
            assert swatch_patch == {world.BACKGROUND, world.PALETTE[o["color"]]}
            checked += 1
        assert {tuple(c) for c in img[0:16].reshape(-1, 3)} == {world.BACKGROUND}
    assert checked > 20


def test_the_swatch_fits_the_image_at_every_size_and_jitter():
    """The swatch sits one slot below its shape; at the largest jitter the world allows, it stays inside."""
    for size in range(24, 513):
        j = world.max_jitter(size)
        for dy in (-j, j):
            x0, y0, x1, y1 = world.box({"slot": 2, "dx": j, "dy": dy}, size, "swatch")
            assert y0 >= 0 and y1 <= size and x1 <= size, (size, dy)


def test_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="colour layout 'stripes'"):
        lone = {"kind": "count", "order": [0], "objects": [{"color": "red", "shape": "ring", "slot": 1}]}
        world.render(lone, 48, "stripes")
    with pytest.raises(ValueError, match="colour layout 'stripes'"):
        ShapePainter(layout="stripes")


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


# ---------------------------------------------------------------- the broad world and its retention split


def _combos_in(caption: str) -> set[str]:
    """'<colour> <shape>' pairs a caption names, read from its words alone (plural shapes made singular)."""
    singular = {v: k for k, v in world.PLURAL.items()}
    words = caption.rstrip(".").split()
    return {f"{a} {singular.get(b, b)}" for a, b in zip(words, words[1:], strict=False)
            if a in world.PALETTE and singular.get(b, b) in world.SHAPES}


def test_broad_splits_by_construction():
    """pretrain: the whole broad world less the held-out combos, in every wording; broad: only
    combinations with a broad-only colour or shape, plain wording, split 'test' (never trainable)."""
    held = set(P.heldout_combos)
    narrow = {f"{c} {s}" for c in P.colors for s in P.shapes}
    pre = [r for r, _ in dataset.generate_split(P, "pretrain", 0)]
    objs = [world.combo(o) for r in pre for o in r.meta["scene"]["objects"]]
    assert not held & set(objs)
    assert narrow & set(objs) and set(objs) - narrow  # the narrow part inside the broad world, and beyond it
    assert {r.meta["scene"].get("style") for r in pre} == set(P.broad_styles)
    assert all(r.split == "train" for r in pre)
    broad = [r for r, _ in dataset.generate_split(P, "broad", 0)]
    assert all(r.split == "test" and "style" not in r.meta["scene"] for r in broad)
    for r in broad:
        for o in r.meta["scene"]["objects"]:
            assert o["color"] in P.broad_colors or o["shape"] in P.broad_shapes, r.id
    lone = [r for r in broad if "class" in r.meta]
    assert all("class" in r.meta for r in broad[::2])  # every other scene is a lone object, others may be
    assert all(len(r.meta["scene"]["objects"]) == 1 and r.meta["scene"]["kind"] == "count" for r in lone)
    assert not {r.meta["class"] for r in lone} & narrow


def test_written_world_keeps_every_fine_tuning_combination_out_of_the_retention_split(tmp_path):
    """Read back what synth_data and mine write: no colour-shape combination of a fine-tuning record, of
    its mined negatives, or of synth_test / synth_gen is named by a synth_broad caption or class."""
    import dataclasses

    from genemi.manifest import iter_manifest, read_records

    p = dataclasses.replace(P, n_train=60, n_test=20, n_gen=20, n_pretrain=40, n_broad=80)
    dataset.write_synth_data(p, 0, tmp_path, log=lambda s: None)
    dataset.mine_synth_data(p, M, 0, tmp_path, "negatives", log=lambda s: None)
    finetune_world: set[str] = set()
    for split in dataset.SPLITS:
        for rec in iter_manifest(tmp_path / "negatives" / f"{split}.jsonl"):
            for cap in (rec.caption, *(n.caption for n in rec.negatives)):
                finetune_world |= _combos_in(cap)
    assert finetune_world <= {f"{c} {s}" for c in p.colors for s in p.shapes}
    broad = list(iter_manifest(tmp_path / "synth" / "broad.jsonl", held_out=()))
    named = set().union(*(_combos_in(r.caption) for r in broad))
    assert named and not named & finetune_world
    assert not {r.meta["class"] for r in broad if "class" in r.meta} & finetune_world
    with pytest.raises(ValueError, match="test"):  # a training reader refuses the retention records
        read_records(tmp_path / "synth" / "broad.jsonl")
    assert len(read_records(tmp_path / "synth" / "pretrain.jsonl")) == 40


def test_word_tokenizer_reads_every_broad_caption_and_the_zero_shot_prompt():
    import json

    from genemi.models import CONFIG_DIR, WordTokenizer

    cfg = json.loads((CONFIG_DIR / "genemi-synth-vit.json").read_text())["text_cfg"]
    tok = WordTokenizer(cfg["context_length"])
    assert max(tok.vocab.values()) < cfg["vocab_size"]
    colors, shapes = [*world.PALETTE], [*world.SHAPES]
    caps = [r.caption for split in ("pretrain", "broad") for r, _ in dataset.generate_split(P, split, 0)]
    caps += [f"a photo of a {c} {s}." for c in colors for s in shapes]  # eval.zeroshot_templates' default
    ids = tok(caps)
    assert (ids[:, 0] == tok.SOT).all() and int((ids == tok.EOT).sum()) == len(caps)
    assert tok("a photo of a pink diamond.")[0, 7].item() == tok.vocab["."]


def test_caption_wordings():
    pair = {"kind": "pair", "order": [0, 1], "objects": [
        {"color": "pink", "shape": "diamond", "slot": 0}, {"color": "blue", "shape": "frame", "slot": 2}]}
    lone = {"kind": "count", "order": [0], "objects": [{"color": "gray", "shape": "hourglass", "slot": 2}]}
    two = {"kind": "count", "order": [0, 1], "objects": [
        {"color": "lime", "shape": "hourglass", "slot": s} for s in (0, 1)]}
    assert world.caption(dict(pair, style="to")) == "a pink diamond to the left of a blue frame"
    # a pair in photo wording would be too long: plain
    assert world.caption(dict(pair, style="photo")) == "a pink diamond left of a blue frame"
    assert world.caption(dict(lone, style="to")) == "one gray hourglass to the right"
    assert world.caption(dict(lone, style="photo")) == "a photo of a gray hourglass."
    assert world.caption(dict(two, style="photo")) == "a photo of two lime hourglasses."
    with pytest.raises(ValueError, match="caption style"):
        world.caption(dict(lone, style="poem"))


@pytest.mark.parametrize("bad,key", [
    ({"broad_colors": ("red",)}, "synth.broad_colors"),
    ({"broad_shapes": ("blob",)}, "synth.broad_shapes"),
    ({"broad_styles": ("poem",)}, "synth.broad_styles"),
    ({"broad_colors": (), "broad_shapes": ()}, "synth.broad_colors"),
])
def test_bad_broad_world_params_name_the_key(bad, key):
    import dataclasses

    with pytest.raises(ValueError, match=key):
        dataset.check_params(dataclasses.replace(P, **bad))


def test_a_world_without_broad_only_objects_builds_every_split_but_the_retention_one(tmp_path):
    """The broad-palette stand-in world has no broad-only colour or shape: its narrow splits build, the
    retention split and the synth_data stage refuse, naming the keys."""
    import dataclasses

    bare = dataclasses.replace(P, broad_colors=(), broad_shapes=())
    assert next(dataset.generate_split(bare, "train", 0))
    with pytest.raises(ValueError, match="synth.broad_colors and synth.broad_shapes"):
        next(dataset.generate_split(bare, "broad", 0))
    with pytest.raises(ValueError, match="synth.broad_colors and synth.broad_shapes"):
        dataset.write_synth_data(bare, 0, tmp_path)
    assert not any(tmp_path.iterdir())  # refused before any split was written
