"""The manifest format and the atomic writers behind it."""

import json

import pytest

from genemi.io import atomic_path, iter_jsonl, write_json
from genemi.manifest import Negative, Record, read_manifest, write_manifest


def test_round_trip_and_sorted_keys(tmp_path):
    recs = [
        Record(id="a", image="x/a.png", caption="one red ring in the middle", split="test", source="synthetic",
               negatives=(Negative("attribute_replace", caption="one blue ring in the middle", image="x/a.n.png"),
                          Negative("relation", caption="c only")),
               meta={"key": "k"}),
        Record(id="b", image="x/b.png", caption="b"),
    ]
    path = tmp_path / "m.jsonl"
    assert write_manifest(path, recs) == 2
    assert read_manifest(path) == recs
    first = path.read_text().splitlines()[0]
    assert list(json.loads(first)) == sorted(json.loads(first))
    assert recs[1].group == "x/b.png"  # group defaults to the image


def test_bad_rows_name_file_line_and_field(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a", "image": "a.png", "caption": "x"}\n{"id": "b", "image": 3, "caption": "y"}\n')
    with pytest.raises(ValueError, match=r"m.jsonl:2 \(record id='b'\): field 'image'"):
        read_manifest(path)
    path.write_text('{"id": "a", "image": "a.png", "caption": "x", "negatives": [{"type": "t"}]}\n')
    with pytest.raises(ValueError, match=r"negatives\[0\].*neither caption nor image"):
        read_manifest(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match="m.jsonl:1: invalid JSON"):
        list(iter_jsonl(path))


def test_failed_write_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
