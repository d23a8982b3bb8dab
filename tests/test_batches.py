"""Batch assembly: negatives, GeNeMi group modes, duplicate-image refill."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from PIL import Image

from genemi.bank import PairBank
from genemi.config import BatchingParams
from genemi.manifest import Negative, Record
from genemi.samplers import EpochSampler, GroupSampler, dedupe_images, make_sampler


def _batching(**kw):
    base = dict(
        mode="item_based",
        variations_per_group=2,
        regular_per_group=2,
        regular_sources=("coco",),
        score_eps=0.5,
        dedupe_images=False,
        negative_rows=False,
    )
    return BatchingParams(**{**base, **kw})


def _records():
    """3 origins x 2 items x 3 variations (GeNeMi) + 12 COCO pairs."""
    recs = []
    for o in range(3):
        for item in ("dog", "cup"):
            for v in range(3):
                recs.append(
                    Record(
                        id=f"o{o}:{item}:{v}",
                        image=f"o{o}/{item}/{v}.png",
                        caption=f"c {o} {item} {v}",
                        source="genemi",
                        group=f"o{o}:{item}",
                        meta={"origin_name": f"o{o}", "itm_score": [float(v), float(v)]},
                    )
                )
    recs += [
        Record(id=f"coco{i}", image=f"coco/{i}.png", caption=f"coco {i}", source="coco") for i in range(12)
    ]
    return recs


@pytest.mark.parametrize(
    "mode,key",
    [
        ("item_based", lambda r: r.group),
        ("image_based", lambda r: r.meta["origin_name"]),
        ("allinone", lambda r: r.id),
    ],
)
def test_group_modes(mode, key):
    recs = _records()
    s = GroupSampler(recs, _batching(mode=mode), batch_size=8, seed=0)
    assert s.per_step == 2
    for step in range(6):
        idx = s.indices(step).tolist()
        assert len(idx) == 8 == len(set(idx))
        var = [recs[i] for i in idx if recs[i].source == "genemi"]
        groups = collections.Counter(key(r) for r in var)
        assert len(groups) == 2  # two groups per step
        assert all(
            n == min(2, sum(key(r) == g for r in recs if r.source == "genemi")) for g, n in groups.items()
        )
        assert sum(recs[i].source == "coco" for i in idx) == 8 - len(var)
    assert torch.equal(s.indices(5), GroupSampler(recs, _batching(mode=mode), 8, 0).indices(5))
    # image_based really puts variations of one origin image together, across its items
    if mode == "image_based":
        seen = collections.Counter()
        for step in range(40):
            for i in s.indices(step).tolist():
                if recs[i].source == "genemi":
                    seen[(recs[i].meta["origin_name"], recs[i].group)] += 1
        assert {g for _, g in seen} == {r.group for r in recs if r.source == "genemi"}


def test_score_based_sampling_prefers_high_itm():
    recs = _records()
    s = GroupSampler(recs, _batching(), batch_size=8, seed=1)
    counts = collections.Counter()
    for step in range(600):
        for i in s.indices(step).tolist():
            if recs[i].source == "genemi":
                counts[recs[i].id.rsplit(":", 1)[1]] += 1
    # p ~ m - min(m) + 0.5 with m = 0, 1, 2: weights .5, 1.5, 2.5 -> inclusion grows with the score
    assert counts["0"] < counts["1"] < counts["2"]


def test_no_regular_pairs_fills_with_other_records():
    recs = [r for r in _records() if r.source != "coco"]
    idx = GroupSampler(recs, _batching(), batch_size=8, seed=0).indices(0).tolist()
    assert len(idx) == 8 == len(set(idx))


def test_dedupe_images_refills_with_new_images():
    pos_image = torch.tensor([0, 0, 1, 1, 2, 3, 4, 5, 6, 7])
    idx = torch.tensor([0, 1, 2, 3])
    out = dedupe_images(idx, pos_image, seed=0, step=0)
    assert len(set(pos_image[out].tolist())) == 4 and out[0] == 0 and out[2] == 2
    assert torch.equal(out, dedupe_images(idx, pos_image, seed=0, step=0))
    with pytest.raises(ValueError, match="distinct"):
        dedupe_images(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 0, 1, 1]), 0, 0)
    pairs = torch.arange(30) // 2  # every image has two captions
    s = make_sampler(_batching(mode="records", dedupe_images=True), 8, 0, pairs, _records())
    assert all(len(set(pairs[s.indices(step)].tolist())) == 8 for step in range(5))


def test_records_mode_is_the_epoch_sampler():
    s = make_sampler(_batching(mode="records"), 8, 3, torch.arange(30))
    assert isinstance(s, EpochSampler) and torch.equal(s.indices(2), EpochSampler(30, 8, 3).indices(2))


def _bank(tmp_path):
    for i in range(6):
        Image.fromarray(np.full((4, 4, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    recs = [
        Record(
            id=str(i),
            image=f"{i}.png",
            caption=f"cap {i}",
            negatives=(
                Negative("a", caption=f"neg {i} a", image=f"{(i + 1) % 6}.png"),
                Negative("b", caption=f"neg {i} b"),
                Negative("c", image=f"{(i + 2) % 6}.png"),
            ),
        )
        for i in range(6)
    ]

    def tok(texts):
        return torch.tensor([[hash(t) % 1000] for t in texts])

    return PairBank.from_records(recs, tmp_path, tok)


def test_negatives_do_not_depend_on_the_split_over_ranks(tmp_path):
    bank = _bank(tmp_path)
    idx = torch.tensor([5, 1, 3, 0])
    whole = bank.batch(idx, 2, torch.Generator().manual_seed(7), True)
    st, si = bank.choose_negatives(idx, 2, torch.Generator().manual_seed(7))
    halves = [bank.gather(idx[s], st[s], si[s], True) for s in (slice(0, 2), slice(2, 4))]
    assert torch.equal(whole.neg_texts, torch.cat([h.neg_texts for h in halves]))
    assert torch.equal(whole.neg_images, torch.cat([h.neg_images for h in halves]))
    assert torch.equal(whole.neg_image_mask, torch.cat([h.neg_image_mask for h in halves]))
    # negative c has no caption, negative b no image: masks say so
    assert whole.neg_text_mask.shape == (4, 2) and whole.neg_images.shape == (4, 2, 3, 4, 4)
    plain = bank.batch(idx, 0, torch.Generator(), True)
    assert plain.neg_texts is None and plain.images.shape == (4, 3, 4, 4)


def test_negative_rows_layout(tmp_path):
    """Records first, then each record's k negative slots; partners point at each other."""
    from genemi.samplers import records_per_step

    bank = _bank(tmp_path)
    idx = torch.tensor([5, 1, 3])
    st, si, fill = bank.choose_negative_rows(idx, 2, torch.Generator().manual_seed(7))
    # only negative "a" has both a caption and an image; the second slot of every record is empty
    assert (st[:, 0] >= 0).all() and (st[:, 1] == -1).all() and (si[:, 1] == -1).all()
    b = bank.gather_negative_rows(idx, st, si, fill, image_negatives=True)
    m = 3
    assert b.images.shape == (m * 3, 3, 4, 4) and b.texts.shape == (m * 3, 1)
    assert b.neg_texts is None and b.own_images
    for i, r in enumerate(idx.tolist()):
        slot = m + 2 * i
        assert b.own[i].tolist() == [slot, -1] and b.own[slot].tolist() == [i, -1]
        assert b.own[slot + 1].tolist() == [-1, -1]  # a random other record fills the empty slot
        assert torch.equal(b.texts[slot], bank.tokens[bank.neg_text[r, 0]])
        assert torch.equal(b.images[slot], bank.pixels(bank.neg_image[r, :1])[0])
        f = int(fill[i, 1])
        assert torch.equal(b.texts[slot + 1], bank.tokens[bank.pos_text[f]])
    assert records_per_step(128, 1, 3, True) == 32 and records_per_step(128, 1, 3, False) == 128
    assert records_per_step(128, 2, 0, True) == 128
    with pytest.raises(ValueError, match="negative_rows"):
        records_per_step(128, 2, 4, True)


def test_negative_types_filter_and_typo(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "0.png")
    Image.fromarray(np.ones((4, 4, 3), np.uint8)).save(tmp_path / "1.png")
    negs = (Negative("a", caption="y", image="1.png"), Negative("b", caption="z"))
    recs = [Record(id="0", image="0.png", caption="x", negatives=negs)]

    def tok(texts):
        return torch.tensor([[len(t)] for t in texts])

    assert (PairBank.from_records(recs, tmp_path, tok).neg_text >= 0).sum() == 2
    only_a = PairBank.from_records(recs, tmp_path, tok, types=["a"])
    assert only_a.neg_text.tolist() == [[1]] and only_a.neg_image.tolist() == [[1]]
    with pytest.raises(ValueError, match=r"negative_types.*\['relation'\]"):
        PairBank.from_records(recs, tmp_path, tok, types=["a", "relation"])


def test_negative_rows_features_are_the_partner_rows(tmp_path):
    from genemi.train import encode

    bank = _bank(tmp_path)
    st, si, fill = bank.choose_negative_rows(torch.tensor([0, 2]), 1, torch.Generator().manual_seed(1))
    b = bank.gather_negative_rows(torch.tensor([0, 2]), st, si, fill, image_negatives=True)

    class Flat(torch.nn.Module):  # features = raw inputs, so rows can be told apart
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def encode_image(self, x):
            return x.flatten(1) * self.w + torch.arange(48.0)

        def encode_text(self, t):
            return torch.cat([t.float(), torch.ones(len(t), 1)], 1) * self.w

    f = encode(Flat(), b)
    assert torch.equal(f["neg_text_features"][:2, 0], f["text_features"][2:])
    assert torch.equal(f["neg_image_features"][2:, 0], f["image_features"][:2])
    assert f["neg_mask"].all() and f["neg_image_mask"].all()


def test_real_images_of_different_sizes_go_through_the_model_transform(tmp_path):
    from genemi.bank import ImageFiles
    from genemi.clip import Clip
    from genemi.config import ModelParams

    for i, size in enumerate([(30, 20), (17, 41), (64, 64)]):
        Image.fromarray(np.full((*size, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.jpg")
    recs = [
        Record(
            id=str(i),
            image=f"{i}.jpg",
            caption=f"c{i}",
            negatives=(Negative("x", caption=f"n{i}", image=f"{(i + 1) % 3}.jpg"),),
        )
        for i in range(3)
    ]
    with pytest.raises(ValueError, match="differ in size"):
        PairBank.from_records(recs, tmp_path, lambda t: torch.zeros(len(t), 2, dtype=torch.long))
    # a real model's preprocessing (open_clip's), here on the tiny architecture
    transform = Clip.from_params(ModelParams("genemi-synth-vit", "", "open_clip")).transform
    bank = PairBank.from_records(
        recs, tmp_path, lambda t: torch.zeros(len(t), 2, dtype=torch.long), transform=transform
    )
    assert isinstance(bank.images, ImageFiles)
    b = bank.batch(torch.tensor([2, 0]), 1, torch.Generator().manual_seed(0), True)
    assert b.images.shape == (2, 3, 48, 48) and b.neg_images.shape == (2, 1, 3, 48, 48)
    assert torch.equal(b.neg_images[0, 0], bank.pixels(torch.tensor([0]))[0])  # neg of record 2 is 0.jpg


def test_add_regular_reroots_coco_pairs(tmp_path):
    from genemi.samplers import add_regular

    (tmp_path / "var").mkdir()
    (tmp_path / "coco" / "val2014").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "var" / "v.png")
    Image.fromarray(np.full((4, 4, 3), 9, np.uint8)).save(tmp_path / "coco" / "val2014" / "c.png")
    var = [Record(id="v", image="v.png", caption="a", source="genemi", group="o:x")]
    coco = [Record(id="c", image="val2014/c.png", caption="b", source="coco")]
    merged, root = add_regular(var, tmp_path / "var", coco, tmp_path / "coco")
    assert root == tmp_path and [r.image for r in merged] == ["var/v.png", "coco/val2014/c.png"]
    assert merged[0].group == "o:x" and merged[1].source == "coco"
    bank = PairBank.from_records(merged, root, lambda t: torch.zeros(len(t), 1, dtype=torch.long))
    assert int(bank.images[bank.pos_image[1]].max()) == 9


def test_add_regular_reads_variations_from_a_zip_without_climbing_out_of_it(tmp_path):
    """The mined variations live only in data/mine_real/images.zip (no folder): a path through the
    absent folder (images/../../raw/...) cannot be opened, so both sets are rooted at their common folder."""
    from genemi.images import ShardWriter, encode_png
    from genemi.samplers import add_regular

    data = tmp_path / "data"
    mined = data / "mine_real" / "images"
    with ShardWriter(mined) as shard:
        shard.write(mined / "o" / "v.png", encode_png(Image.new("RGB", (4, 4), (7, 7, 7))))
    (data / "raw" / "coco" / "images" / "val2014").mkdir(parents=True)
    Image.new("RGB", (4, 4), (9, 9, 9)).save(data / "raw" / "coco" / "images" / "val2014" / "c.png")
    var = [Record(id="v", image="o/v.png", caption="a", source="genemi", group="o:x")]
    coco = [Record(id="c", image="val2014/c.png", caption="b", source="coco")]
    merged, root = add_regular(var, mined, coco, data / "raw" / "coco" / "images")
    assert root == data
    assert [r.image for r in merged] == ["mine_real/images/o/v.png", "raw/coco/images/val2014/c.png"]
    bank = PairBank.from_records(merged, root, lambda t: torch.zeros(len(t), 1, dtype=torch.long))
    assert [int(bank.images[bank.pos_image[i]].max()) for i in (0, 1)] == [7, 9]
