"""The image digest that DVC tracks in place of the image folders."""

from __future__ import annotations

import pytest

from genemi.manifest import Negative, Record, image_digest, write_manifest


def test_digest_changes_with_any_image_and_names_a_missing_one(tmp_path):
    (tmp_path / "a.png").write_bytes(b"aaa")
    (tmp_path / "n.png").write_bytes(b"nnn")
    m = tmp_path / "m.jsonl"
    write_manifest(m, [Record(id="r1", image="a.png", caption="x", negatives=(Negative("t", image="n.png"),))])
    first = image_digest(tmp_path, [m])
    assert first["images"] == 2 and first == image_digest(tmp_path, [m])
    (tmp_path / "n.png").write_bytes(b"nnN")  # a negative image changes: the digest does
    assert image_digest(tmp_path, [m])["sha256"] != first["sha256"]
    (tmp_path / "n.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"m.jsonl: record 'r1' names image 'n.png'"):
        image_digest(tmp_path, [m])
