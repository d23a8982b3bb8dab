"""The one image reader: loose files, zip members (a root inside an archive, or a folder's zip beside it),
and the shard writer that the pipeline's own image collections use."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genemi.images import (
    ImageError,
    ImageNotFound,
    ShardWriter,
    encode_png,
    image_exists,
    locate,
    read_bytes,
    read_rgb,
    shard_members,
)


def _png(value: int) -> bytes:
    return encode_png(Image.fromarray(np.full((3, 5, 3), value, np.uint8)))


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_a_shard_reads_back_every_image_under_its_unzipped_path(tmp_path):
    folder = tmp_path / "synth" / "train"
    with ShardWriter(folder) as shard:
        for i in range(4):
            shard.write(folder / "sub" / f"{i}.png", _png(10 * i))
    assert [p.name for p in (tmp_path / "synth").iterdir()] == ["train.zip"]  # one file, no folder
    assert list(shard_members(tmp_path / "synth" / "train.zip")) == [f"train/sub/{i}.png" for i in range(4)]
    for i in range(4):
        assert read_rgb(folder / "sub" / f"{i}.png")[0, 0].tolist() == [10 * i] * 3
    # unzipping it gives the same layout readers name
    with zipfile.ZipFile(tmp_path / "synth" / "train.zip") as z:
        z.extractall(tmp_path / "unzipped")
    assert read_rgb(tmp_path / "unzipped" / "train" / "sub" / "3.png")[0, 0].tolist() == [30] * 3


def test_the_same_images_give_a_byte_identical_shard(tmp_path):
    shards = []
    for run in ("a", "b"):
        folder = tmp_path / run / "split"
        with ShardWriter(folder) as shard:
            for i in range(3):
                shard.write(folder / f"{i}.png", _png(i))
        os.utime(folder.with_suffix(".zip"), (0, 1_000_000 * (run == "b")))
        shards.append(folder.with_suffix(".zip").read_bytes())
    assert shards[0] == shards[1]  # fixed member timestamps: DVC sees no change on a rerun


def test_a_failed_writer_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "out" / "train"
    with pytest.raises(RuntimeError), ShardWriter(folder) as shard:
        shard.write(folder / "0.png", _png(0))
        raise RuntimeError("interrupted")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_stale_loose_folder_is_refused_not_shadowing_the_shard(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(FileExistsError, match="train: a folder of loose images is in the way"):
        ShardWriter(tmp_path / "train")


def test_a_loose_file_wins_over_the_zip_beside_its_folder(tmp_path):
    _zip(tmp_path / "images.zip", {"images/a.jpg": _png(1), "images/b.jpg": _png(2)})
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(_png(9))
    assert read_rgb(tmp_path / "images" / "a.jpg")[0, 0, 0] == 9
    # a partly extracted folder: what it lacks comes from the zip
    assert read_rgb(tmp_path / "images" / "b.jpg")[0, 0, 0] == 2
    assert not image_exists(tmp_path / "images" / "c.jpg")


@pytest.mark.parametrize(
    "members",
    [{"images/x/a.jpg": _png(7)}, {"x/a.jpg": _png(7)}],
    ids=["zip-holds-the-folder", "zip-holds-its-contents"],
)
def test_a_published_zip_is_read_in_place_of_its_folder(tmp_path, members):
    _zip(tmp_path / "gqa" / "images.zip", members)
    path = tmp_path / "gqa" / "images" / "x" / "a.jpg"
    assert read_rgb(path)[0, 0, 0] == 7
    assert read_bytes(path) == _png(7)


@pytest.mark.parametrize("name", ["val2014/COCO_1.jpg", "COCO_1.jpg"])
def test_a_root_may_point_into_an_archive(tmp_path, name):
    _zip(tmp_path / "val2014.zip", {"val2014/COCO_1.jpg": _png(5)})
    loc = locate(tmp_path / "val2014.zip" / name)
    assert loc is not None and loc.member == "val2014/COCO_1.jpg"
    assert read_rgb(tmp_path / "val2014.zip" / name)[0, 0, 0] == 5


def test_missing_member_corrupt_member_and_broken_archive_name_the_image(tmp_path):
    _zip(tmp_path / "d.zip", {"d/ok.png": _png(1), "d/bad.png": b"\x89PNG not really"})
    with pytest.raises(ImageNotFound, match=r"d/none\.png: image not found \(record 7\)"):
        read_rgb(tmp_path / "d" / "none.png", what="record 7")
    with pytest.raises(ImageError, match=r"d\.zip:d/bad\.png: cannot decode image \(record 8\)"):
        read_rgb(tmp_path / "d" / "bad.png", what="record 8")
    (tmp_path / "e.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(ImageError, match=r"e\.zip: not a readable zip archive"):
        read_rgb(tmp_path / "e" / "x.png")


def test_a_path_under_nothing_that_exists_is_simply_not_found(tmp_path):
    missing = tmp_path.anchor + "no-such-top-folder-genemi/a/b.png"  # an absolute path up to the root
    assert locate(missing) is None
    with pytest.raises(ImageNotFound, match="no-such-top-folder-genemi/a/b.png: image not found"):
        read_rgb(missing)
    assert locate("no-such-relative-folder/b.png") is None


def test_a_rewritten_archive_is_reopened(tmp_path):
    _zip(tmp_path / "s.zip", {"s/a.png": _png(1)})
    assert read_rgb(tmp_path / "s" / "a.png")[0, 0, 0] == 1
    _zip(tmp_path / "s.zip", {"s/a.png": _png(2), "s/b.png": _png(3)})
    assert read_rgb(tmp_path / "s" / "a.png")[0, 0, 0] == 2
    assert read_rgb(tmp_path / "s" / "b.png")[0, 0, 0] == 3
