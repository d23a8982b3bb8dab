"""The mining chain: records and files, determinism, sharding, kill-and-resume, merge, contact
sheets; with fakes (any objects implementing the interfaces) and with the tiny real models."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genemi.images import read_bytes
from genemi.manifest import read_manifest
from genemi.mining import pipeline as P
from genemi.mining.contact_sheet import origin_sheet
from genemi.mining.parse import doc_from_dicts

sys.path.insert(0, str(Path(__file__).parent))
import frozen_params  # noqa: E402  (tests/fixtures/params.yaml, not the live params.yaml)
import mining_fakes as F  # noqa: E402


@pytest.fixture()
def data(tmp_path) -> tuple[Path, list]:
    root = tmp_path / "data"
    root.mkdir()
    return root, F.make_dataset(root)


def _mine(data, out: Path, rank: int = 0, world: int = 1, **over) -> dict:
    root, recs = data
    return P.run_shard(
        recs,
        root,
        out,
        F.fake_chain(),
        F.params(variations_per_item=2, **over),
        seed=0,
        rank=rank,
        world=world,
    )


def _files(d: Path) -> dict[str, bytes]:
    return {str(f.relative_to(d)): f.read_bytes() for f in sorted(d.rglob("*")) if f.is_file()}


def test_chain_writes_genemi_records_and_images(data, tmp_path):
    out = tmp_path / "out"
    _mine(data, out)
    stats = P.merge(out, tmp_path / "all.jsonl", keep_failed=True)
    recs = read_manifest(tmp_path / "all.jsonl")
    # 6 origins; tags: dog+bench, cat+car, -, man+umbrella, bird+boat, cup(no box)+laptop -> 9 items x 2
    assert (
        stats["origins"] == 6 and stats["items"] == 10 and stats["no_box"] == 1 and stats["variations"] == 18
    )
    assert len(recs) == 18 and [r.id for r in recs] == sorted(r.id for r in recs)
    dog = [r for r in recs if r.group == "img_000:dog"]
    assert len(dog) == 2
    r = dog[0]
    assert r.source == "genemi" and r.id == r.meta["name"] and r.id.startswith("img_000:dog:")
    assert {
        "name",
        "origin_name",
        "item",
        "short",
        "source",
        "save",
        "itm_score",
        "iva_score",
        "type",
    } <= set(r.meta)
    assert r.meta["source"] == "img_000.png" and r.image == r.meta["save"]
    assert r.meta["short"] in r.caption and "dog" not in r.caption.replace(r.meta["short"], "")
    # an object swap makes the original caption a negative; a recolouring does not
    for v in recs:
        has = any(
            n.type == "object" and n.caption == data[1][int(v.meta["origin_name"][-3:])].caption
            for n in v.negatives
        )
        assert has == (v.meta["type"] == "object")
    # variation image: only the (fake) mask changed; IVA of two different fills = mask area 25 %
    orig = np.asarray(Image.open(data[0] / "img_000.png"))
    var = np.asarray(Image.open(out / P.IMAGES / r.image))
    outside = np.ones((32, 32), bool)
    outside[8:24, 8:24] = False
    assert np.array_equal(var[outside], orig[outside])
    assert r.meta["iva_score"] == pytest.approx(25.0)
    # the filter: mean ITM > 0 and IVA > 14
    kept = P.merge(out, tmp_path / "kept.jsonl")
    assert kept["kept"] == sum(1 for v in recs if np.mean(v.meta["itm_score"]) > 0) > 0
    assert all(np.mean(v.meta["itm_score"]) > 0 for v in read_manifest(tmp_path / "kept.jsonl"))


def test_mining_is_deterministic(data, tmp_path):
    _mine(data, tmp_path / "a")
    _mine(data, tmp_path / "b")
    P.merge(tmp_path / "a", tmp_path / "a.jsonl")
    P.merge(tmp_path / "b", tmp_path / "b.jsonl")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_shards_partition_the_work_and_merge_like_one_process(data, tmp_path, monkeypatch):
    _mine(data, tmp_path / "single")
    P.merge(tmp_path / "single", tmp_path / "single.jsonl")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert P.dist_env() == (1, 2)
    s0 = _mine(data, tmp_path / "multi", rank=0, world=2)
    s1 = _mine(data, tmp_path / "multi", rank=1, world=2)
    assert s0["assigned"] + s1["assigned"] == 6 and s0["mined"] == 3
    ids = [r.id for r in data[1]]
    assert {r.id for r in P.shard(data[1], 0, 2)} | {r.id for r in P.shard(data[1], 1, 2)} == set(ids)
    P.merge(tmp_path / "multi", tmp_path / "multi.jsonl")
    assert (tmp_path / "multi.jsonl").read_bytes() == (tmp_path / "single.jsonl").read_bytes()
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2 is outside WORLD_SIZE=2"):
        P.dist_env()


def test_killed_run_resumes_without_duplicates(data, tmp_path):
    root, recs = data
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(Path(F.__file__)), str(root / "train.jsonl"), str(root), str(out), "0.15"],
        env=env,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(list((out / P.PARTS).glob("*.json"))) < 2:
            time.sleep(0.05)
            assert proc.poll() is None, "the miner finished or crashed before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done_before = len(list((out / P.PARTS).glob("*.json")))
    assert 2 <= done_before < 6, "killed part-way"
    stats = P.run_shard(recs, root, out, F.fake_chain(), F.params(variations_per_item=2), seed=0)
    assert stats["resumed"] == done_before and stats["mined"] == 6 - done_before
    P.merge(out, tmp_path / "resumed.jsonl", keep_failed=True)
    ids = [r.id for r in read_manifest(tmp_path / "resumed.jsonl")]
    assert len(ids) == len(set(ids)) == 18
    assert not [f for f in out.rglob(".*") if f.is_file()], "stale temp files removed by merge"
    # identical to a run that was never interrupted
    _mine(data, tmp_path / "clean")
    P.merge(tmp_path / "clean", tmp_path / "clean.jsonl", keep_failed=True)
    assert (tmp_path / "resumed.jsonl").read_bytes() == (tmp_path / "clean.jsonl").read_bytes()


def test_rule_negatives_attach_when_a_parser_is_given(data, tmp_path):
    toks = [
        ("a", "DET", "DT", "a", 3, "det"),
        ("red", "ADJ", "JJ", "red", 3, "amod"),
        ("dog", "NOUN", "NN", "dog", 4, "nsubj"),
        ("sits", "VERB", "VBZ", "sit", 0, "root"),
        ("on", "ADP", "IN", "on", 6, "case"),
        ("mat", "NOUN", "NN", "mat", 4, "obl"),
    ]
    doc = doc_from_dicts(
        [
            {
                "tokens": [
                    dict(id=i + 1, text=t, upos=u, xpos=x, lemma=lem, head=h, deprel=d)
                    for i, (t, u, x, lem, h, d) in enumerate(toks)
                ]
            }
        ]
    )
    root, recs = data
    chain = F.fake_chain(parse=lambda text: doc)
    P.run_shard(recs[:1], root, tmp_path / "o", chain, F.params(variations_per_item=2), seed=0)
    P.merge(tmp_path / "o", tmp_path / "m.jsonl", keep_failed=True)
    types = {n.type for r in read_manifest(tmp_path / "m.jsonl") for n in r.negatives}
    assert {"attribute", "relation_pred", "obj_count"} <= types


def test_missing_input_image_names_the_record(data, tmp_path):
    root, recs = data
    (root / "img_000.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"img_000.png: image not found \(record 'img_000'"):
        _mine(data, tmp_path / "o")


def test_contact_sheet_has_a_row_per_item(data, tmp_path):
    _mine(data, tmp_path / "o")
    part = P.origins_for_sheets(tmp_path / "o", 1)[0]
    sheet = origin_sheet(part, data[0], tmp_path / "o" / P.IMAGES, thumb=64)
    assert sheet.size == (3 * 64, 2 * (64 + 48))  # original + 2 variations; dog and bench rows


def test_tiny_real_models_run_the_whole_chain(data, tmp_path):
    root, recs = data
    p = F.params(backend="tiny", device="cpu", variations_per_item=2, items_per_image=1)
    chain = P.build_chain(p, "cpu", tiny_dir=tmp_path / "tiny")
    stats = P.run_shard(recs[:2], root, tmp_path / "o", chain, p, seed=0)
    assert stats["mined"] == 2
    totals = P.merge(tmp_path / "o", tmp_path / "m.jsonl", keep_failed=True)
    recs_out = read_manifest(tmp_path / "m.jsonl")
    assert totals["origins"] == 2 and len(recs_out) == totals["variations"] > 0
    for r in recs_out:
        im = Image.open(tmp_path / "o" / P.IMAGES / r.image)
        assert im.size == (32, 32)
        assert len(r.meta["itm_score"]) == len(r.meta["captions"]) and np.isfinite(r.meta["itm_score"]).all()


# -- the stage script -----------------------------------------------------------------------------
def _params_file(tmp_path: Path, **mine_real) -> Path:
    import yaml

    raw = frozen_params.raw()  # valid values (ranges are checked)
    raw["mine_real"] = raw["mine_real"] | mine_real
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _stage_args(data, tmp_path, params: Path) -> list[str]:
    root, _ = data
    return [
        "--manifest",
        str(root / "train.jsonl"),
        "--image-root",
        str(root),
        "--work-dir",
        str(tmp_path / "work"),
        "--out",
        str(tmp_path / "variations.jsonl"),
        "--sheets",
        str(tmp_path / "sheets"),
        "--metrics",
        str(tmp_path / "metrics.json"),
        "--params",
        str(params),
    ]


def test_stage_is_off_by_default(data, tmp_path):
    from click.testing import CliRunner

    sys.path.insert(0, str(Path(F.ROOT) / "stages"))
    import mine_real

    args = [*_stage_args(data, tmp_path, _params_file(tmp_path)), "--shard", str(tmp_path / "v.zip")]
    res = CliRunner().invoke(mine_real.main, args)
    assert res.exit_code == 0, res.output
    assert "data.source is not genemi" in res.output and read_manifest(tmp_path / "variations.jsonl") == []
    assert zipfile.ZipFile(tmp_path / "v.zip").namelist() == []  # the declared output exists, empty
    # ... and none is empty as DVC sees it (a 0-byte file or a folder without entries: a warning each run)
    for out in (tmp_path / "variations.jsonl", tmp_path / "v.zip", tmp_path / "sheets"):
        assert (any(out.iterdir()) if out.is_dir() else out.stat().st_size > 0), out


def test_stage_tiny_smoke_run_and_fingerprint_guard(data, tmp_path):
    import json

    from click.testing import CliRunner

    sys.path.insert(0, str(Path(F.ROOT) / "stages"))
    import mine_real

    args = _stage_args(
        data,
        tmp_path,
        _params_file(tmp_path, max_images=2, items_per_image=1, variations_per_item=2, contact_sheets=2,
                     itm_min=-1e9, iva_min=0.0),  # random-init scorers: keep what they mine: a shard to check
    )
    res = CliRunner().invoke(mine_real.main, [*args, "--tiny", "--shard", str(tmp_path / "variations.zip")])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["enabled"] and metrics["origins"] == 2 and metrics["variations"] > 0
    # the kept variations' images are packed into one shard, read as <shard minus .zip>/<image>
    kept = read_manifest(tmp_path / "variations.jsonl")
    names = zipfile.ZipFile(tmp_path / "variations.zip").namelist()
    assert kept and metrics["images_packed"] == len(names) == len({r.image for r in kept})
    assert names == sorted(names) and all(n.startswith("variations/") for n in names)
    for r in kept:
        loose = (tmp_path / "work" / P.IMAGES / r.image).read_bytes()
        assert read_bytes(tmp_path / "variations" / r.image) == loose
    assert sorted(p.name for p in (tmp_path / "sheets").glob("*.png")) == ["img_000.png", "img_001.png"]
    # the work dir remembers its settings: resuming under other params is refused
    args2 = _stage_args(
        data, tmp_path, _params_file(tmp_path, max_images=2, items_per_image=1, variations_per_item=3)
    )
    res = CliRunner().invoke(mine_real.main, [*args2, "--tiny"])
    assert res.exit_code != 0 and "other params/inputs" in res.output


def test_shard_rejects_ids_that_collide_as_file_names():
    from genemi.manifest import Record

    recs = [Record(id="a b", image="1.png", caption="x"), Record(id="a_b", image="2.png", caption="y")]
    with pytest.raises(ValueError, match="'a b' and 'a_b' map to one file name"):
        P.shard(recs, 0, 1)
    with pytest.raises(ValueError, match="duplicate record ids"):
        P.shard([recs[0], recs[0]], 0, 1)
