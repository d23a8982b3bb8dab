"""The one image reader: loose files, zip members (a root inside an archive, or a folder's zip beside it),
and the shard writer that the pipeline's own image collections use."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import threading
import unicodedata
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
    with pytest.raises(
        ImageNotFound, match=r"d/none\.png: image not found: .*d\.zip has no member d/none\.png.*\(record 7\)"
    ):
        read_rgb(tmp_path / "d" / "none.png", what="record 7")
    with pytest.raises(ImageError, match=r"d\.zip:d/bad\.png: cannot decode image \(record 8\)"):
        read_rgb(tmp_path / "d" / "bad.png", what="record 8")
    (tmp_path / "e.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(ImageError, match=r"e\.zip: not a readable zip archive"):
        read_rgb(tmp_path / "e" / "x.png")


def test_bytes_that_are_no_image_say_so_without_a_memory_address(tmp_path):
    _zip(tmp_path / "d.zip", {"d/text.png": b"hello, not an image"})
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "text.png").write_bytes(b"hello, not an image")
    for path, shown in (
        (tmp_path / "d" / "text.png", "d.zip:d/text.png"),
        (tmp_path / "loose" / "text.png", "text.png"),
    ):
        with pytest.raises(ImageError) as e:
            read_rgb(path, what="record 9")
        assert shown in str(e.value) and "(record 9)" in str(e.value)
        assert "not an image format PIL can read" in str(e.value) and "0x" not in str(e.value)


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


# ------------------------------------------------------------------ zips as people make them
def _cp437_flagless(path: Path, name: str, data: bytes) -> Path:
    """A zip whose member name is UTF-8 bytes without the UTF-8 flag (old Windows/macOS tools)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(name, data)
    raw = bytearray(path.read_bytes())
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # clear bit 11 in both headers
        i = raw.find(sig)
        raw[i + off] &= ~0x08 & 0xFF
        raw[i + off + 1] &= ~0x08 & 0xFF
    path.write_bytes(bytes(raw))
    assert zipfile.ZipFile(path).namelist() != [name]  # zipfile now reads it as cp437 mojibake
    return path


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("./images/a.png", "a.png"),  # a `./` prefix (zip of `./images`, some Python writers)
        ("images\\a.png", "a.png"),  # Windows separators
        ("images\\sub\\a.png", "sub/a.png"),
        ("./a.png", "a.png"),
        (unicodedata.normalize("NFD", "images/café.png"), "café.png"),  # macOS writes NFD names
        ("images/café.png", unicodedata.normalize("NFD", "café.png")),  # a manifest in NFD
        ("images/über/ß.png", "über/ß.png"),
        ("images//a.png", "a.png"),
    ],
)
def test_member_names_as_other_tools_write_them_are_found(tmp_path, stored, asked):
    _zip(tmp_path / "images.zip", {stored: _png(7), "images/other.png": _png(1)})
    loc = locate(tmp_path / "images" / asked)
    assert loc is not None and loc.member == stored  # the stored name is what gets read
    assert read_rgb(tmp_path / "images" / asked)[0, 0, 0] == 7


def test_a_utf8_name_stored_without_the_utf8_flag_is_found(tmp_path):
    _cp437_flagless(tmp_path / "images.zip", "images/café.png", _png(4))
    assert read_rgb(tmp_path / "images" / "café.png")[0, 0, 0] == 4


def test_zip_r_of_a_folder_uppercase_zip_and_deflate_are_read(tmp_path):
    folder = tmp_path / "a" / "images" / "sub"
    folder.mkdir(parents=True)
    (folder / "x.png").write_bytes(_png(3))
    (tmp_path / "a" / "images" / ".DS_Store").write_bytes(b"junk")
    subprocess.run(
        ["zip", "-qr", "images.zip", "images"], cwd=tmp_path / "a", check=True
    )  # has folder entries
    subprocess.run(["rm", "-r", str(tmp_path / "a" / "images")], check=True)
    assert "images/sub/" in zipfile.ZipFile(tmp_path / "a" / "images.zip").namelist()
    assert read_rgb(tmp_path / "a" / "images" / "sub" / "x.png")[0, 0, 0] == 3
    assert not image_exists(tmp_path / "a" / "images" / "sub")  # a folder entry is not an image
    _zip(tmp_path / "b" / "images.ZIP", {"images/x.png": _png(5)})
    assert read_rgb(tmp_path / "b" / "images" / "x.png")[0, 0, 0] == 5
    with zipfile.ZipFile(tmp_path / "c.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("c/x.png", _png(6))
    assert read_rgb(tmp_path / "c" / "x.png")[0, 0, 0] == 6


def test_macos_junk_and_folder_entries_are_not_members(tmp_path):
    _zip(
        tmp_path / "images.zip",
        {
            "images/": b"",
            "images/x.png": _png(1),
            "__MACOSX/images/._x.png": b"AppleDouble",
            "images/y.png/": b"",
        },
    )
    assert list(shard_members(tmp_path / "images.zip")) == ["images/x.png"]
    with pytest.raises(
        ImageNotFound, match="has no member images/y.png"
    ):  # a folder entry named like an image
        read_rgb(tmp_path / "images" / "y.png")


def test_zip64_member_records_are_read(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as z, z.open("z/a.png", "w", force_zip64=True) as f:
        f.write(_png(8))  # a member with ZIP64 sizes, as zips over 4 GB have
    assert read_rgb(tmp_path / "z" / "a.png")[0, 0, 0] == 8


@pytest.mark.slow
def test_many_members_zip64(tmp_path):
    with zipfile.ZipFile(tmp_path / "big.zip", "w") as z:  # > 65535 entries: needs ZIP64's end record
        for i in range(70_000):
            z.writestr(f"big/{i}.png", b"" if i != 69_999 else _png(9))
    assert read_rgb(tmp_path / "big" / "69999.png")[0, 0, 0] == 9


@pytest.mark.parametrize(
    "members",
    [
        {"./images/a.png": _png(1), "images/a.png": _png(2)},
        {"images\\a.png": _png(1), "images/a.png": _png(2)},
    ],
    ids=["dot-slash", "backslash"],
)
def test_a_stored_name_beats_another_members_alias(tmp_path, members):
    _zip(tmp_path / "images.zip", members)
    assert read_rgb(tmp_path / "images" / "a.png")[0, 0, 0] == 2


def test_two_members_spelling_the_same_name_are_an_error_not_a_guess(tmp_path):
    _zip(tmp_path / "images.zip", {"./images/a.png": _png(1), "images\\a.png": _png(2)})
    with pytest.raises(
        ImageError, match=r"images\.zip: member .* and .* both stand for 'images/a.png', so which"
    ):
        read_rgb(tmp_path / "images" / "a.png")


def test_a_name_stored_twice_is_an_error_not_the_last_one(tmp_path):
    with pytest.warns(UserWarning, match="Duplicate name"):
        _zip(tmp_path / "images.zip", {"images/a.png": _png(1), zipfile.ZipInfo("images/a.png"): _png(2)})
    with pytest.raises(ImageError, match=r"images\.zip: member 'images/a.png' is stored twice"):
        read_rgb(tmp_path / "images" / "a.png")


def test_a_member_name_with_a_newline_keeps_the_error_on_one_line(tmp_path):
    _zip(tmp_path / "images.zip", {"images/a\nb.png": _png(1)})
    with pytest.raises(ImageNotFound) as e:
        read_rgb(tmp_path / "images" / "c.png")
    assert "\n" not in str(e.value) and "a\\nb.png" in str(e.value)


def test_no_lenient_match_finds_another_image(tmp_path):
    _zip(tmp_path / "images.zip", {"images/A.png": _png(1), "images/images/a.png": _png(2)})
    for asked in ("a.png", "A.PNG"):  # no case folding, no dropped folder
        assert locate(tmp_path / "images" / asked) is None


@pytest.mark.parametrize(
    ("stored", "asked", "root"),
    [
        ("images/images/x.jpg", "x.jpg", "images.zip/images/images"),
        ("gqa/images/sub/x.jpg", "sub/x.jpg", "images.zip/gqa/images"),
    ],
)
def test_a_zip_made_from_a_folder_too_high_says_where_its_images_are(tmp_path, stored, asked, root):
    _zip(tmp_path / "images.zip", {stored: _png(4)})
    with pytest.raises(
        ImageNotFound,
        match=rf"it holds {stored} \(rec\); point the image root into "
        rf"the archive \(.*/{root}\)",
    ):
        read_rgb(tmp_path / "images" / asked, what="rec")
    assert read_rgb(tmp_path / root / asked)[0, 0, 0] == 4  # what the message proposes works


# ------------------------------------------------------------------------------------- faults
def _good_zip(tmp_path: Path) -> bytes:
    return _zip(tmp_path / "good" / "images.zip", {f"images/{i}.png": _png(i) for i in range(4)}).read_bytes()


@pytest.mark.parametrize(
    "cut",
    [0, 10, 0.5, -30, -5],
    ids=["empty", "in-first-header", "in-a-member", "in-central-dir", "in-end-record"],
)
def test_a_truncated_zip_is_named_with_what_to_do(tmp_path, cut):
    good = _good_zip(tmp_path)
    n = int(len(good) * cut) if isinstance(cut, float) else cut if cut >= 0 else len(good) + cut
    (tmp_path / "images.zip").write_bytes(good[:n])
    with pytest.raises(
        ImageError, match=r"images\.zip: not a readable zip archive .*\(rec 3\); replace the file"
    ):
        read_rgb(tmp_path / "images" / "1.png", what="rec 3")


def test_damaged_member_bytes_name_the_member_and_the_referrer(tmp_path):
    raw = bytearray(_good_zip(tmp_path))
    raw[raw.find(b"IDAT") + 6] ^= 0xFF  # inside member 0's data: its CRC no longer matches
    (tmp_path / "images.zip").write_bytes(bytes(raw))
    with pytest.raises(
        ImageError,
        match=r"images\.zip:images/0\.png: cannot read from the archive \(Bad CRC-32"
        r".*\(rec 4\); replace images\.zip",
    ):
        read_rgb(tmp_path / "images" / "0.png", what="rec 4")
    assert read_rgb(tmp_path / "images" / "1.png")[0, 0, 0] == 1  # the archive stays usable


@pytest.mark.parametrize(
    ("method", "flag", "match"),
    [(9, 0, "compressed with a method Python's zipfile cannot read"), (0, 1, "without a password")],
    ids=["deflate64", "encrypted"],
)
def test_unreadable_member_kinds_say_how_to_rezip(tmp_path, method, flag, match):
    raw = bytearray(_zip(tmp_path / "images.zip", {"images/0.png": _png(1)}).read_bytes())
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = raw.find(sig)
        raw[i + off] |= flag
        if method:
            raw[i + off + 2 : i + off + 4] = method.to_bytes(2, "little")
    (tmp_path / "images.zip").write_bytes(bytes(raw))
    with pytest.raises(ImageError, match=rf"images\.zip:images/0\.png: .*{match}"):
        read_rgb(tmp_path / "images" / "0.png")


def test_an_unreadable_archive_is_one_image_error(tmp_path, monkeypatch):
    _zip(tmp_path / "images.zip", {"images/0.png": _png(1)})

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "images.zip"))

    monkeypatch.setattr(zipfile, "ZipFile", denied)  # as root a chmod 000 file stays readable
    with pytest.raises(
        ImageError, match=r"images\.zip: cannot open the archive \(permission denied\) \(r\); make it"
    ):
        read_rgb(tmp_path / "images" / "0.png", what="r")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda t: (t / "images.zip").mkdir(), r"images\.zip is a folder, not a zip archive"),
        (
            lambda t: (t / "images.zip").symlink_to(t / "gone.zip"),
            r"images\.zip is a broken symbolic link \(to ",
        ),
        (lambda t: (t / "images").write_bytes(b"x"), r"/images is a file, not a folder"),
        (lambda t: None, r"neither as a file nor in a zip beside its folder"),
        (
            lambda t: (t / "images.tar").write_bytes(b"x"),
            r"images\.tar is beside its folder, but only zip archives are read",
        ),
    ],
    ids=["zip-is-a-folder", "zip-is-a-broken-link", "parent-is-a-file", "nothing", "a-tar-beside"],
)
def test_a_missing_image_says_what_is_in_the_way(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(ImageNotFound, match=match + r".* \(rec 5\); (fix the path|extract it there)"):
        read_rgb(tmp_path / "images" / "0.png", what="rec 5")


def test_a_folder_is_not_an_image(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(ImageNotFound, match=r"/d: is a folder, not an image"):
        read_rgb(tmp_path / "d")


def test_a_partly_extracted_folder_says_both_places_it_looked(tmp_path):
    _zip(tmp_path / "images.zip", {"images/a.png": _png(1)})
    (tmp_path / "images").mkdir()
    with pytest.raises(
        ImageNotFound,
        match=r"/images exists but lacks it, and images\.zip beside it has no member "
        r"images/b\.png",
    ):
        read_rgb(tmp_path / "images" / "b.png")


def test_an_archive_replaced_in_place_with_the_same_size_is_reopened(tmp_path):
    z = _zip(tmp_path / "s.zip", {"s/a.png": _png(1)})
    assert read_rgb(tmp_path / "s" / "a.png")[0, 0, 0] == 1
    before = z.stat()
    with open(z, "r+b") as f:  # same inode, same size: only mtime tells
        f.write(_zip(tmp_path / "new" / "s.zip", {"s/a.png": _png(2)}).read_bytes())
    os.utime(z, ns=(before.st_atime_ns, before.st_mtime_ns + 1))
    assert z.stat().st_size == before.st_size and z.stat().st_ino == before.st_ino
    assert read_rgb(tmp_path / "s" / "a.png")[0, 0, 0] == 2


def _read_all(folder: str, n: int, out) -> None:
    out.put([int(read_rgb(Path(folder) / f"{i}.png")[0, 0, 0]) for i in range(n)])


def test_forked_workers_and_threads_read_the_same_cached_archive(tmp_path):
    folder = tmp_path / "s"
    with ShardWriter(folder) as shard:
        for i in range(60):
            shard.write(folder / f"{i}.png", _png(i))
    assert read_rgb(folder / "0.png")[0, 0, 0] == 0  # the parent has it open before forking
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_read_all, args=(str(folder), 60, q)) for _ in range(3)]
    for p in procs:
        p.start()
    errors = []

    def reader():
        try:
            for i in range(60):
                assert read_rgb(folder / f"{i}.png")[0, 0, 0] == i
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [q.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert errors == [] and results == [list(range(60))] * 3


# ------------------------------------------------------------------------------- odd paths
def test_dotdot_through_a_zipped_folder_means_its_parent_not_a_hostile_member(tmp_path):
    _zip(tmp_path / "images.zip", {"images/x.png": _png(1), "images/../other/y.png": _png(66)})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "y.png").write_bytes(_png(12))
    assert read_rgb(tmp_path / "images" / ".." / "other" / "y.png")[0, 0, 0] == 12
    assert read_rgb(tmp_path / "other" / ".." / "images" / "x.png")[0, 0, 0] == 1


def test_dotdot_after_a_real_folder_follows_the_os_not_the_spelling(tmp_path):
    (tmp_path / "elsewhere" / "dir").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "link").symlink_to(tmp_path / "elsewhere" / "dir")
    (tmp_path / "a" / "x.png").write_bytes(_png(1))  # what `a/link/..` would be by name
    (tmp_path / "elsewhere" / "y.png").write_bytes(_png(2))  # what it is to the OS
    assert read_rgb(tmp_path / "a" / "link" / ".." / "y.png")[0, 0, 0] == 2
    assert locate(tmp_path / "a" / "link" / ".." / "x.png") is None  # never the other folder's file


@pytest.mark.parametrize("hostile", ["/etc/x.png", "../x.png", "images/../../x.png"])
def test_absolute_and_climbing_member_names_are_never_reached(tmp_path, hostile):
    _zip(tmp_path / "images.zip", {hostile: _png(66)})
    for asked in ("x.png", "../x.png", "../../x.png", "etc/x.png"):
        path = tmp_path / "images" / asked
        assert locate(path) is None or locate(path).file is not None


def test_a_symlinked_folder_and_a_symlinked_zip_are_followed(tmp_path):
    _zip(tmp_path / "real" / "images.zip", {"images/a.png": _png(3)})
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert read_rgb(tmp_path / "link" / "images" / "a.png")[0, 0, 0] == 3
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "images.zip").symlink_to(tmp_path / "real" / "images.zip")
    assert read_rgb(tmp_path / "other" / "images" / "a.png")[0, 0, 0] == 3


# ----------------------------------------------------------------------------- ShardWriter
@pytest.mark.parametrize("outside", ["../x.png", "../train2/x.png", "", "sub/../../x.png"])
def test_the_writer_refuses_a_path_outside_its_folder(tmp_path, outside):
    folder = tmp_path / "train"
    with pytest.raises(ValueError, match=r"train\.zip: cannot add .*: it is not inside .*train, the folder"):
        with ShardWriter(folder) as shard:
            shard.write(Path(str(folder) + "/" + outside) if outside else folder, b"x")
    assert list(tmp_path.iterdir()) == []


def test_the_writer_resolves_dotdot_inside_its_folder(tmp_path):
    folder = tmp_path / "train"
    with ShardWriter(folder) as shard:
        shard.write(folder / "sub" / ".." / "a.png", _png(1))
        with pytest.raises(ValueError, match="image train/a.png written twice"):
            shard.write(folder / "a.png", _png(2))
    assert list(shard_members(tmp_path / "train.zip")) == ["train/a.png"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError, MemoryError])
def test_an_interrupted_writer_keeps_the_old_shard_and_leaves_no_temp_file(tmp_path, error):
    folder = tmp_path / "train"
    with ShardWriter(folder) as shard:
        shard.write(folder / "a.png", _png(1))
    old = (tmp_path / "train.zip").read_bytes()
    with pytest.raises(error), ShardWriter(folder) as shard:
        shard.write(folder / "a.png", _png(2))
        raise error()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.zip"]
    assert (tmp_path / "train.zip").read_bytes() == old


def test_a_writer_failing_to_finish_leaves_no_temp_file(tmp_path, monkeypatch):
    folder = tmp_path / "train"
    shard = ShardWriter(folder)
    shard.write(folder / "a.png", _png(1))

    def full():
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shard._zip, "close", full)
    with pytest.raises(OSError, match=r"train\.zip: cannot write \(No space left on device\)"):
        shard.close()
    assert list(tmp_path.iterdir()) == []
    shard.close()  # a second close is a no-op


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda t: (t / "out").write_bytes(b""), OSError, r"out/train\.zip: cannot write"),
        (
            lambda t: (t / "out" / "train.zip").mkdir(parents=True),
            IsADirectoryError,
            r"train\.zip: a folder is in the way of the shard",
        ),
    ],
    ids=["parent-is-a-file", "shard-path-is-a-folder"],
)
def test_an_unwritable_shard_fails_before_any_image_is_made(tmp_path, make, error, match):
    make(tmp_path)
    with pytest.raises(error, match=match):
        ShardWriter(tmp_path / "out" / "train")


def test_a_read_only_folder_fails_before_work_naming_the_shard(tmp_path, monkeypatch):
    import tempfile

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)  # as root a chmod 555 folder stays writable
    with pytest.raises(
        OSError, match=r"train\.zip: cannot write \(Permission denied\); make the folder writable"
    ):
        ShardWriter(tmp_path / "train")


def test_a_member_declaring_a_huge_size_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    from genemi import archives

    with zipfile.ZipFile(tmp_path / "images.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("images/bomb.png", b"\0" * 200_000)  # inflates 1000x: a small zip bomb
    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 100_000)
    with pytest.raises(
        ImageError,
        match=r"images\.zip:images/bomb\.png: declares 200000 bytes, more than any image .* \(rec 9\); the",
    ):
        read_rgb(tmp_path / "images" / "bomb.png", what="rec 9")


def test_a_folder_that_cannot_be_searched_is_one_image_error(tmp_path, monkeypatch):
    real_stat = os.stat

    def denied(p, *a, **k):
        if str(p).startswith(str(tmp_path)):
            raise PermissionError(13, "Permission denied", str(p))
        return real_stat(p, *a, **k)

    monkeypatch.setattr(os, "stat", denied)  # what stat gives under a chmod 000 folder (root is exempt)
    with pytest.raises(
        ImageError, match=r"/a/b\.png: cannot look for the image \(Permission denied\) \(rec 6\); check"
    ):
        read_rgb(tmp_path / "a" / "b.png", what="rec 6")


def test_a_member_with_a_name_too_long_for_the_file_system_is_read(tmp_path):
    long = "d" * 300  # a zip name has no 255-byte limit; stat-ing it as a loose path fails ENAMETOOLONG
    _zip(tmp_path / "images.zip", {f"images/{long}/x.png": _png(5)})
    (tmp_path / "images").mkdir()  # a partly extracted folder: the OS sees the long component
    assert read_rgb(tmp_path / "images" / long / "x.png")[0, 0, 0] == 5
    with pytest.raises(ImageNotFound, match=r"image not found.* \(rec\); fix the path"):
        read_rgb(tmp_path / long / "y.png", what="rec")  # the miss itself is explained, not an OSError


@pytest.mark.parametrize("bad", ["a\nb.png", "a\x00b.png"])
def test_a_path_with_control_characters_gives_a_one_line_error(tmp_path, bad):
    with pytest.raises(ImageNotFound) as e:
        read_rgb(str(tmp_path / bad), what="rec")
    assert "\n" not in str(e.value) and "\x00" not in str(e.value) and "(rec)" in str(e.value)


class _Shard:
    """A map-style dataset over a shard's members, as the training banks read them in workers."""

    def __init__(self, folder: Path, n: int) -> None:
        self.folder, self.n = folder, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return int(read_rgb(self.folder / f"{i}.png")[0, 0, 0])


@pytest.mark.slow
def test_dataloader_workers_read_a_shard_the_parent_has_open(tmp_path):
    from torch.utils.data import DataLoader

    folder = tmp_path / "s"
    with ShardWriter(folder) as shard:
        for i in range(64):
            shard.write(folder / f"{i}.png", _png(i))
    assert read_rgb(folder / "3.png")[0, 0, 0] == 3  # cached in the parent before the workers fork
    loader = DataLoader(_Shard(folder, 64), batch_size=8, num_workers=2, multiprocessing_context="fork")
    assert [int(v) for batch in loader for v in batch] == list(range(64))


def test_a_loose_image_without_read_permission_says_so(tmp_path, monkeypatch):
    (tmp_path / "a.png").write_bytes(_png(1))

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Image, "open", denied)  # as root a chmod 000 file stays readable
    with pytest.raises(
        ImageError, match=r"a\.png: cannot read the image \(permission denied\) \(rec\); make it"
    ):
        read_rgb(tmp_path / "a.png", what="rec")
