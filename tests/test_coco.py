"""COCO caption loaders on hand-made fixtures in the Karpathy and official annotation formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from genemi.data.coco import CocoStats, iter_caption_annotation_records, iter_karpathy_records

FIX = Path(__file__).parent / "fixtures" / "coco"
KARPATHY = FIX / "dataset_coco_mini.json"
CAPTIONS = FIX / "captions_val2014_mini.json"


def test_karpathy_one_record_per_sentence_with_split_and_path():
    recs = list(iter_karpathy_records(KARPATHY))
    assert [r.id for r in recs] == [
        "coco-391895-770337",
        "coco-391895-771687",
        "coco-522418-681330",
        "coco-57870-787980",
        "coco-184613-1",
        "coco-184613-2",
    ]
    r = recs[0]
    assert r.image == "val2014/COCO_val2014_000000391895.jpg" and r.split == "test" and r.source == "coco"
    assert r.caption == "A man with a red helmet on a small moped on a dirt road."  # trailing space stripped
    assert r.negatives == () and r.group == r.image and r.meta == {"cocoid": 391895}
    assert [r.split for r in recs] == ["test", "test", "restval", "train", "val", "val"]


def test_karpathy_split_filter_and_missing_images(tmp_path):
    (tmp_path / "val2014").mkdir()
    (tmp_path / "val2014" / "COCO_val2014_000000391895.jpg").write_bytes(b"")
    stats = CocoStats()
    recs = list(
        iter_karpathy_records(KARPATHY, splits=["test", "val", "train"], image_root=tmp_path, stats=stats)
    )
    assert {r.image for r in recs} == {"val2014/COCO_val2014_000000391895.jpg"}
    assert stats.as_dict() == {"images": 4, "images_other_split": 1, "images_missing": 2, "records": 2}


def test_caption_annotations_sorted_and_match_karpathy_text():
    recs = list(iter_caption_annotation_records(CAPTIONS))
    assert [r.id for r in recs] == ["coco-391895-770337", "coco-391895-771687", "coco-522418-681330"]
    assert all(r.split == "val2014" and r.image.startswith("val2014/COCO_val2014_") for r in recs)
    # the same caption ids give the same records as the Karpathy file, apart from the split name
    karpathy = {r.id: (r.image, r.caption) for r in iter_karpathy_records(KARPATHY)}
    assert all(karpathy[r.id] == (r.image, r.caption) for r in recs)


def test_bad_karpathy_entry_names_file_and_index(tmp_path):
    bad = tmp_path / "dataset_coco.json"
    bad.write_text('{"images": [{"filepath": "val2014", "filename": "a.jpg", "split": "test"}]}')
    with pytest.raises(ValueError, match=r"dataset_coco\.json: images\[0\]: missing field 'cocoid'"):
        list(iter_karpathy_records(bad))
    bad.write_text(
        '{"images": [{"filepath": "v", "filename": "a.jpg", "split": "test", "cocoid": 1, '
        '"sentences": [{"raw": "  "}]}]}'
    )
    with pytest.raises(ValueError, match=r"images\[0\] \(cocoid 1\) sentences\[0\]: caption must be"):
        list(iter_karpathy_records(bad))


def test_annotation_with_unknown_image_is_named(tmp_path):
    bad = tmp_path / "captions.json"
    bad.write_text('{"images": [], "annotations": [{"id": 7, "image_id": 3, "caption": "x"}]}')
    with pytest.raises(ValueError, match="annotation 7 refers to unknown image_id 3"):
        list(iter_caption_annotation_records(bad))


def _coco_dir(tmp_path: Path, images: list[str]) -> Path:
    root = tmp_path / "coco"
    (root / "caption_datasets").mkdir(parents=True)
    (root / "caption_datasets" / "dataset_coco.json").write_bytes(KARPATHY.read_bytes())
    (root / "images" / "val2014").mkdir(parents=True)
    for name in images:
        (root / "images" / "val2014" / name).write_bytes(b"")
    return root


def test_write_karpathy_manifest_keeps_splits_with_images(tmp_path):
    from genemi.data.coco import write_karpathy_manifest
    from genemi.manifest import read_manifest

    root = _coco_dir(tmp_path, ["COCO_val2014_000000391895.jpg"])
    stats = write_karpathy_manifest("genemi", ("test", "val"), root, tmp_path / "k.jsonl")
    assert stats == {"splits": ["test", "val"], "images": 4, "images_other_split": 2, "images_missing": 1,
                     "records": 2}  # fmt: skip
    assert [r.id for r in read_manifest(tmp_path / "k.jsonl")] == ["coco-391895-770337", "coco-391895-771687"]


def test_write_karpathy_manifest_refuses_when_no_image_is_there(tmp_path):
    from genemi.data.coco import write_karpathy_manifest

    with pytest.raises(ValueError, match=r"no COCO caption of splits \['test'\] has its image under"):
        write_karpathy_manifest("genemi", ("test",), _coco_dir(tmp_path, []), tmp_path / "k.jsonl")
