"""`python -m genemi.show`: images that live in shards can still be exported and looked at."""

from __future__ import annotations

import numpy as np
import pytest
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


def _bad_args(tmp_path):
    """(args, exit status, text the one-line error holds) for every kind of bad argument."""
    root, manifest, _ = _world(tmp_path)
    shard = root / "negatives" / "test"
    bad_line = tmp_path / "bad.jsonl"
    bad_line.write_text(manifest.read_text() + "{not json\n")
    no_image = tmp_path / "m" / "noimg.jsonl"
    no_image.parent.mkdir()
    no_image.write_text(manifest.read_text().replace("r0.neg.png", "gone.png"))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "r0.png").write_bytes(b"\x89PNG")
    (tmp_path / "afile").write_text("x")
    return {
        "missing-image": ([str(shard / "x.png")], 1, "x.png: image not found"),
        "second-image-missing": ([str(shard / "r0.png"), str(shard / "x.png")], 1, "x.png: image not found"),
        "manifest-bad-line": (["--manifest", str(bad_line), "--first", "5"], 1, "bad.jsonl:2: invalid JSON"),
        "unknown-id": (
            ["--manifest", str(manifest), "--id", "nope"],
            1,
            "test.jsonl: no record with id 'nope'",
        ),
        "record-image-missing": (
            ["--manifest", str(no_image), "--root", str(root)],
            1,
            "gone.png: image not found",
        ),
        "record-image-missing-names-record": (
            ["--manifest", str(no_image), "--root", str(root)],
            1,
            "colour negative of record 'r0' of",
        ),
        "image-ok-then-manifest-fails": (
            [str(shard / "r0.png"), "--manifest", str(manifest), "--id", "nope"],
            1,
            "no record with id 'nope'",
        ),
        "list-not-a-zip": (["--list", str(manifest)], 1, "test.jsonl: not a readable zip archive"),
        "list-missing": (["--list", str(tmp_path / "none.zip")], 2, "none.zip' does not exist"),
        "list-with-images": (
            ["--list", str(root / "negatives" / "test.zip"), str(shard / "r0.png")],
            2,
            "--list prints a shard's members and stops",
        ),
        "out-is-a-file": ([str(shard / "r0.png"), "--out", str(tmp_path / "afile")], 2, "afile' is a file"),
        "out-under-a-file": ([str(shard / "r0.png"), "--out", str(tmp_path / "afile" / "o")], 1, "afile"),
        "names-collide": (
            [str(shard / "r0.png"), str(tmp_path / "a" / "r0.png")],
            1,
            "would both be exported as",
        ),
        "id-without-manifest": ([str(shard / "r0.png"), "--id", "r0"], 2, "--id applies to --manifest"),
        "root-without-manifest": ([str(shard / "r0.png"), "--root", "x"], 2, "--root applies to --manifest"),
        "first-and-id": (["--manifest", str(manifest), "--id", "r0", "--first", "2"], 2, "one or the other"),
        "nothing": ([], 2, "give image paths to export"),
        "a-folder-in-the-way": (
            [str(shard / "r0.png"), str(shard / "r0.neg.png")],
            1,
            "r0.neg.png: a folder is in the way",
        ),
        "out-inside-a-shard-folder": (
            [str(shard / "r0.png"), "--out", str(shard / "sub")],
            2,
            "the folder of the shard",
        ),
    }


NAMES = [
    "missing-image",
    "second-image-missing",
    "manifest-bad-line",
    "unknown-id",
    "record-image-missing",
    "record-image-missing-names-record",
    "image-ok-then-manifest-fails",
    "list-not-a-zip",
    "list-missing",
    "list-with-images",
    "out-is-a-file",
    "out-under-a-file",
    "names-collide",
    "id-without-manifest",
    "root-without-manifest",
    "first-and-id",
    "nothing",
    "out-inside-a-shard-folder",
    "a-folder-in-the-way",
]


@pytest.mark.parametrize("case", NAMES)
def test_every_bad_argument_is_one_error_line_and_writes_nothing(tmp_path, case):
    table = _bad_args(tmp_path)
    assert sorted(table) == sorted(NAMES)  # every case of the table runs
    args, status, text = table[case]
    out = tmp_path / "o"
    if "--out" not in args:
        args = [*args, "--out", str(out)]
    if case == "a-folder-in-the-way":
        (out / "r0.neg.png").mkdir(parents=True)
    r = CliRunner().invoke(show.main, args)
    assert r.exit_code == status, r.output
    assert "Traceback" not in r.output and isinstance(r.exception, SystemExit)
    error = [line for line in r.output.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1 and text in error[0], r.output
    written = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert written in ([], ["r0.neg.png"] if case == "a-folder-in-the-way" else [])  # nothing written


def test_help_names_every_mode_and_what_is_written():
    r = CliRunner().invoke(show.main, ["--help"])
    assert r.exit_code == 0
    for text in ("--manifest", "--list", ".sheet.png", "byte for byte", "refused", "``", ":mod:"):
        assert (text in r.output) == (text not in ("``", ":mod:")), text  # plain text, no reST markup


def test_the_same_image_twice_is_exported_once(tmp_path):
    root, _, blobs = _world(tmp_path)
    image = str(root / "negatives" / "test" / "r0.png")
    r = CliRunner().invoke(show.main, [image, image, "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["r0.png"]


def test_list_prints_image_members_only(tmp_path):
    root, _, _ = _world(tmp_path)
    r = CliRunner().invoke(show.main, ["--list", str(root / "negatives" / "test.zip")])
    assert r.exit_code == 0 and r.output.split() == ["test/r0.png", "test/r0.neg.png"]


def test_an_image_named_as_errors_name_members_is_exported(tmp_path):
    root, _, blobs = _world(tmp_path)
    arg = f"{root / 'negatives' / 'test.zip'}:test/r0.neg.png"  # ARCHIVE:MEMBER, as in an error message
    r = CliRunner().invoke(show.main, [arg, "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "r0.neg.png").read_bytes() == blobs["r0.neg.png"]


def test_a_sheet_named_after_a_hostile_record_id_stays_in_out(tmp_path):
    root, manifest, _ = _world(tmp_path)
    manifest.write_text(
        manifest.read_text()
        .replace('"id":"r0"', '"id":"../../x/r0"')
        .replace('"id": "r0"', '"id": "../../x/r0"')
    )
    out = tmp_path / "deep" / "er" / "o"
    r = CliRunner().invoke(show.main, ["--manifest", str(manifest), "--id", "../../x/r0", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert [p.name for p in out.iterdir()] == ["_.._x_r0.sheet.png"]
    assert not (tmp_path / "deep" / "x").exists()


def test_list_needs_no_writable_folder(tmp_path, monkeypatch):
    root, _, _ = _world(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.chdir(ro)
    import genemi.io

    def refuse(*a, **k):
        raise AssertionError("--list probed an output folder")

    monkeypatch.setattr(genemi.io, "check_writable", refuse)
    r = CliRunner().invoke(show.main, ["--list", str(root / "negatives" / "test.zip")])
    assert r.exit_code == 0, r.output


def test_a_zip_beside_the_folder_one_works_in_does_not_refuse_every_out(tmp_path, monkeypatch):
    """A backup ``project.zip`` beside the project is not a shard whose folder --out would shadow."""
    root, _, blobs = _world(tmp_path / "project")
    (tmp_path / "project.zip").write_bytes(b"a backup, not a shard")
    monkeypatch.chdir(tmp_path / "project")
    r = CliRunner().invoke(show.main, [str(root / "negatives" / "test" / "r0.png"), "--out", "shown"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "project" / "shown" / "r0.png").read_bytes() == blobs["r0.png"]
    # below the working folder the rule still holds: data/negatives/test beside test.zip is refused
    r = CliRunner().invoke(
        show.main, [str(root / "negatives" / "test" / "r0.png"), "--out", "data/negatives/test/x"]
    )
    assert r.exit_code == 2 and "the folder of the shard" in r.output
