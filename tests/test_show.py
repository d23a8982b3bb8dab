"""`python -m genemi.show`: images that live in shards can still be exported and looked at."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from PIL import Image

from genemi import show
from genemi.images import ShardWriter, encode_png
from genemi.manifest import Negative, Record, write_manifest


def _world(tmp_path):
    root = tmp_path / "data"
    folder = root / "negatives" / "test"
    blobs = {}
    with ShardWriter(folder) as shard:
        for name, v in (("r0.png", 10), ("r0.neg.png", 200)):
            blobs[name] = encode_png(Image.fromarray(np.full((8, 8, 3), v, np.uint8)))
            shard.write(folder / name, blobs[name])
    manifest = root / "negatives" / "test.jsonl"
    write_manifest(
        manifest,
        [
            Record(
                id="r0",
                image="negatives/test/r0.png",
                caption="a red ring",
                negatives=(
                    Negative("colour", "a blue ring", "negatives/test/r0.neg.png"),
                    Negative("words", "a ring red"),
                ),
            )
        ],
    )
    return root, manifest, blobs


def test_an_image_in_a_shard_is_exported_byte_for_byte(tmp_path):
    root, _, blobs = _world(tmp_path)
    out = tmp_path / "shown"
    r = CliRunner().invoke(show.main, [str(root / "negatives" / "test" / "r0.neg.png"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "r0.neg.png").read_bytes() == blobs["r0.neg.png"]


def test_a_record_is_drawn_beside_each_of_its_negatives(tmp_path):
    _, manifest, _ = _world(tmp_path)
    out = tmp_path / "shown"
    r = CliRunner().invoke(show.main, ["--manifest", str(manifest), "--id", "r0", "--out", str(out)])
    assert r.exit_code == 0, r.output
    sheet = Image.open(out / "r0.sheet.png")
    assert sheet.width == 3 * 160  # the original, the image negative, the caption-only negative
    # the image negative's tile shows its own pixels (200), the caption-only one repeats the original (10)
    assert sheet.getpixel((160 + 80, 80))[0] == 200 and sheet.getpixel((320 + 80, 80))[0] == 10


def test_unknown_ids_and_images_fail_naming_them(tmp_path):
    root, manifest, _ = _world(tmp_path)
    r = CliRunner().invoke(
        show.main, ["--manifest", str(manifest), "--id", "nope", "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 1 and "test.jsonl: no record with id 'nope'" in r.output
    r = CliRunner().invoke(
        show.main, [str(root / "negatives" / "test" / "x.png"), "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 1 and "x.png: image not found" in r.output
    assert not (tmp_path / "o").exists()
