"""benchmarks/standin_batch_overlap.py: its per-batch counts on batches worked out by hand, and its pairs
against the HNC stand-in file the download stage writes."""

from __future__ import annotations

import benchmark_module
import numpy as np
import pytest


@pytest.fixture(scope="module")
def overlap():
    return benchmark_module.load("standin_batch_overlap")


def test_counts_of_a_batch_holding_every_image(overlap):
    images = [
        [("a red circle left of a blue square", "n1", "a blue square left of a red circle",
          "a blue circle left of a red square")],
        [("a blue square left of a red circle", "n2", None, None)],  # image 0's flip as a positive
        [("two red circles", "three red circles", None, None)],
        [("two red circles", "two blue circles", None, None)],  # the same positive twice
        [("a red circle left of a green ring", "a green ring left of a red circle",
          "a green ring left of a red circle", "a green circle left of a red ring")],  # mined flip
        [("a green circle left of a red ring", "n3", None, None)],  # image 4's swap, as another's positive
    ]  # fmt: skip
    got = overlap.batch_counts(images, batch=6, batches=3, rng=np.random.default_rng(0))
    assert got == {"flip_in_batch": 1.0, "swap_in_batch": 1.0, "flip_mined": 1.0, "repeated": 2.0}


def test_pairs_are_the_stand_in_files_pairs(overlap, tmp_path):
    """Every (positive, negative) pair the benchmark draws from is a train pair of the HNC file, and back."""
    import frozen_params

    from genemi.config import params_from_dict
    from genemi.data import standin
    from genemi.data.hnc import iter_hnc_records

    raw = frozen_params.raw()
    raw["data"]["stand_in_size"] = 12
    p = params_from_dict(raw)
    for palette in ("narrow", "broad"):
        images = overlap.image_pairs(p, palette)
        world = standin.stand_in_world(p.synth, palette)
        standin.write_hnc(world, p.real.subset_seed, 12, tmp_path / palette)
        recs = iter_hnc_records(tmp_path / palette / "hnc_clean_strict_train.json", "train")
        assert sorted((r.caption, n.caption) for r in recs for n in r.negatives) == sorted(
            (pos, neg) for pairs in images for pos, neg, *_ in pairs
        )
        for pairs in images:  # a flip or a swap keeps the positive's words, in another order
            for pos, _, flip, swap in pairs:
                for other in (flip, swap):
                    if other is not None:
                        assert sorted(other.split()) == sorted(pos.split()) and other != pos
                if flip is not None:  # the flip exchanges whole objects: "A left of B" -> "B left of A"
                    a, b = pos.split(" left of ")
                    assert flip == f"{b} left of {a}"


def test_synthetic_road_pairs_are_the_mine_stage_files(overlap, tmp_path):
    """The synthetic road's (caption, flip, swap) per record equal the manifest the mine stage writes."""
    import frozen_params

    from genemi.config import params_from_dict
    from genemi.manifest import iter_manifest
    from genemi.synth.dataset import mine_synth_data, write_synth_data

    raw = frozen_params.raw()
    raw["synth"].update(n_train=40, n_test=4, n_gen=4, n_pretrain=4, n_broad=8)
    p = params_from_dict(raw)
    write_synth_data(p.synth, p.seed, tmp_path, log=lambda _: None)
    mine_synth_data(p.synth, p.mine, p.seed, tmp_path, "negatives", log=lambda _: None)
    want = []
    for rec in iter_manifest(tmp_path / "negatives" / "train.jsonl"):
        by_type = {n.type: n.caption for n in rec.negatives}
        want.append([(rec.caption, by_type.get("relation_flip"), by_type.get("relation_flip"),
                      by_type.get("attribute_swap"))])
    got = overlap.synthetic_images(p)
    assert got == want
    assert any(pairs[0][1] for pairs in got) and any(pairs[0][3] for pairs in got)  # both types occur
