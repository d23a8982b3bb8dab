"""HNC loaders on hand-made fixtures in the real train/val and test schemas (docs/method.md §2.1, §2.2)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from genemi.data.hnc import HncStats, convert_hnc, in_subset, iter_hnc_records
from genemi.manifest import Negative, read_manifest

FIX = Path(__file__).parent / "fixtures" / "hnc"
TRAIN = FIX / "hnc_train_mini.json"
TEST = FIX / "hnc_test_mini.json"


def _triples(records) -> set[tuple[str, str, str, str]]:
    return {(r.image, r.caption, n.caption, n.type) for r in records for n in r.negatives}


def _reference_pairs_train(path: Path) -> set[tuple[str, str, str, str]]:
    """Plain, whole-file reference: every negative joined to caption str(cpt_p_id) if that is a positive."""
    out = set()
    for gid, entry in json.loads(path.read_text()).items():
        caps = entry["captions"]
        for cap in caps.values():
            p = cap.get("cpt_p_id")
            if cap["label"] == 0 and p is not None and caps.get(str(p), {}).get("label") == 1:
                out.add((f"{gid}.jpg", caps[str(p)]["caption"], cap["caption"], cap["type"]))
    return out


def test_train_schema_pairs_by_cpt_p_id_including_zero():
    stats = HncStats()
    recs = list(iter_hnc_records(TRAIN, "train", stats=stats))
    by_id = {r.id: r for r in recs}
    r = by_id["hnc-train-2386621-48"]
    assert r.image == "2386621.jpg" and r.source == "hnc" and r.split == "train" and r.group == "2386621.jpg"
    assert r.caption == "The yellow banana is to the left of the straw."
    assert r.negatives == (
        Negative(type="attribute_subg", caption="The yellow plate is to the left of the straw."),
    )
    assert r.meta == {"type": "attribute_subg"}
    # cpt_p_id == 0 is a real pair (the thesis loader lost it by testing truthiness)
    assert by_id["hnc-train-1-0"].negatives == (
        Negative("obj_verify_count_attr", "There is no cat that is black."),
    )
    assert _triples(recs) == _reference_pairs_train(TRAIN)
    assert by_id["hnc-train-1-2"].negatives == ()  # its would-be negatives are orphans
    assert stats.as_dict() == {
        "images": 3,
        "images_outside_subset": 0,
        "images_missing": 0,
        "records": 5,
        "negatives": 4,
        "positives_without_negative": 1,
        "orphan_negatives": 2,  # cpt_p_id 99 (unknown) and absent
    }


def test_test_schema_pairs_consecutive_keys():
    stats = HncStats()
    recs = list(iter_hnc_records(TEST, "test", stats=stats))
    assert [r.id for r in recs] == [
        "hnc-test-n100552-0",
        "hnc-test-n100552-8",
        "hnc-test-n100552-10",
        "hnc-test-n2000-3",
    ]
    assert all(r.image in ("n100552.jpg", "n2000.jpg") for r in recs)
    assert recs[1].caption == "The elephant is in front of the fence"
    assert recs[1].negatives == (Negative("relation", "The giraffe is in front of the fence"),)
    # key "2" (a negative) sorts before the first positive "3" of its image: an orphan, not a pair
    assert recs[3].negatives == (Negative("relation_attribute", "The white cup is on the table."),)
    assert stats.orphan_negatives == 1 and stats.negatives == 4


def test_missing_images_are_skipped_and_counted(tmp_path):
    (tmp_path / "2386621.jpg").write_bytes(b"")
    (tmp_path / "n2000.jpg").write_bytes(b"")
    stats = HncStats()
    recs = list(iter_hnc_records(TRAIN, "train", image_root=tmp_path, stats=stats))
    assert {r.image for r in recs} == {"2386621.jpg"} and stats.images_missing == 2 and stats.records == 2
    stats = HncStats()
    recs = list(iter_hnc_records(TEST, "test", image_root=tmp_path, stats=stats))
    assert {r.image for r in recs} == {"n2000.jpg"} and stats.images_missing == 1


def test_subset_is_deterministic_nested_and_about_the_right_size():
    keys = [str(2_000_000 + i) for i in range(20_000)]
    one = {k for k in keys if in_subset(k, 0.01, seed=0)}
    ten = {k for k in keys if in_subset(k, 0.10, seed=0)}
    assert 150 <= len(one) <= 250 and 1_800 <= len(ten) <= 2_200
    assert one <= ten  # the 1% subset is inside the 10% one
    assert one == {k for k in reversed(keys) if in_subset(k, 0.01, seed=0)}
    assert one != {k for k in keys if in_subset(k, 0.01, seed=1)}
    assert all(in_subset(k, 1.0, 0) for k in keys[:10]) and not any(in_subset(k, 0.0, 0) for k in keys[:10])


def test_subset_does_not_depend_on_file_order(tmp_path):
    data = json.loads(TRAIN.read_text())
    for i in range(200):  # more images so a 50% subset is non-trivial
        data[str(3_000_000 + i)] = {
            "captions": {"0": {"caption": f"c{i}", "label": 1, "type": "relation_obj"}}
        }
    items = list(data.items())
    random.Random(0).shuffle(items)
    shuffled = tmp_path / "shuffled.json"
    shuffled.write_text(json.dumps(dict(items)))
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(data))
    a = {r.id for r in iter_hnc_records(plain, "train", subset=0.5, seed=3)}
    b = {r.id for r in iter_hnc_records(shuffled, "train", subset=0.5, seed=3)}
    assert a == b and 60 < len(a) < 150


def test_convert_writes_a_manifest_that_reads_back(tmp_path):
    out = tmp_path / "hnc" / "train.jsonl"
    stats = convert_hnc(TRAIN, out, "train")
    back = read_manifest(out)
    assert stats.records == len(back) == 5
    assert back == list(iter_hnc_records(TRAIN, "train"))


@pytest.mark.parametrize(
    "content, match",
    [
        (
            '{"5": {"captions": {"0": {"caption": "x", "label": 2}}}}',
            r"bad\.json: image '5' caption 0: 'label'",
        ),
        ('{"5": {"captions": {"0": {"label": 1}}}}', r"bad\.json: image '5' caption 0: expected .*'caption'"),
        ('{"5": [1, 2]}', r"bad\.json: entry '5' must be an object"),
        ('{"5": {"captions": {"0": {"caption": "x", "label": 1}}}', r"bad\.json: invalid JSON near byte"),
    ],
)
def test_bad_input_names_file_image_and_caption(tmp_path, content, match):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(ValueError, match=match):
        list(iter_hnc_records(bad, "train"))


def test_missing_file_says_which_stage_makes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json: HNC file not found.*download_hnc"):
        list(iter_hnc_records(tmp_path / "nope.json", "train"))


def _hnc_dir(tmp_path: Path) -> Path:
    """A download_hnc output from the fixtures (val: the train fixture again)."""
    d = tmp_path / "raw"
    d.mkdir()
    for split, src in (("train", TRAIN), ("val", TRAIN), ("test", TEST)):
        (d / f"hnc_clean_strict_{split}.json").write_bytes(src.read_bytes())
    return d


def test_write_hnc_manifests_all_splits_with_their_subsets(tmp_path):
    from types import SimpleNamespace

    from genemi.data.hnc import write_hnc_manifests

    images = tmp_path / "images"
    images.mkdir()
    for name in ("2386621.jpg", "2354786.jpg", "n2000.jpg", "n2001.jpg"):
        (images / name).write_bytes(b"")
    data = SimpleNamespace(source="hnc", hnc_subset=1.0)
    # val: 0.01% of 3 images draws none, which is an error, not an empty manifest
    tiny = SimpleNamespace(hnc_val_subset=0.0001, subset_seed=0)
    hnc = _hnc_dir(tmp_path)
    with pytest.raises(ValueError, match=r"hnc_clean_strict_val\.json: 0 records: the subset .* drew none"):
        write_hnc_manifests(data, tiny, hnc, images, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    real = SimpleNamespace(hnc_val_subset=1.0, subset_seed=0)
    log = []
    stats = write_hnc_manifests(data, real, hnc, images, tmp_path / "out", log=log.append)
    keys = ("subset", "images_outside_subset", "images_missing", "records")
    counts = {s: tuple(v[k] for k in keys) for s, v in stats.items()}
    # every image in the subset; those not in images/ are skipped and counted
    assert counts["train"] == (1.0, 0, 2, 2) and counts["test"] == (1.0, 0, 1, 1)
    assert counts["val"][:2] == (1.0, 0) and counts["val"][3] > 0
    assert {r.image for r in read_manifest(tmp_path / "out" / "train.jsonl")} == {"2386621.jpg"}
    assert {r.image for r in read_manifest(tmp_path / "out" / "test.jsonl")} == {"n2000.jpg"}
    assert len(log) == 3


def test_write_hnc_manifests_refuses_an_empty_image_folder(tmp_path):
    from types import SimpleNamespace

    from genemi.data.hnc import write_hnc_manifests

    (tmp_path / "images").mkdir()
    data = SimpleNamespace(source="hnc", hnc_subset=1.0)
    real = SimpleNamespace(hnc_val_subset=1.0, subset_seed=0)
    with pytest.raises(ValueError, match=r"hnc_clean_strict_train\.json: 0 records: none of the \d+ drawn images is under"):
        write_hnc_manifests(data, real, _hnc_dir(tmp_path), tmp_path / "images", tmp_path / "out")
