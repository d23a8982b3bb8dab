"""Bad input and faults, table-driven: every case runs a stage (or a loader under the stages' error
handling) on a tiny input with one thing wrong, and asserts

* the exit status (1, with one ``Error: ...`` paragraph and no traceback),
* that the message names the file / line / record / key (and the remedy where there is one),
* that no output was written, or left half-written (no ``.<name>.*.tmp`` beside it).

The cases are grouped by class: config values, images, manifests, each benchmark format, HNC schemas,
downloads, resume (kills), outputs, messages. docs/reliability.md lists them with before/after.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import click
import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ harness


def _invoke(cmd, args) -> tuple[int, str]:
    r = CliRunner().invoke(cmd, [str(a) for a in args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception  # a crash past the Stage wrapper is a failure of this suite, shown whole
    return r.exit_code, r.output


def as_stage(fn) -> tuple[int, str]:
    """Run ``fn`` as the body of a stage (the :class:`genemi.errors.Stage` command every script uses)."""
    from genemi.errors import Stage

    @click.command(cls=Stage)
    def cmd():
        fn()

    return _invoke(cmd, [])


def assert_failed(code: int, out: str, *names: str) -> None:
    """Exit 1 and one ``Error: ...`` paragraph (after what the stage printed before) naming ``names``."""
    assert code == 1, f"exit {code}\n{out}"
    assert "\nError: " in f"\n{out}", out
    assert "Traceback" not in out, out
    error = f"\n{out}".split("\nError: ", 1)[1]
    for n in names:
        assert n in error, f"{n!r} not named in:\n{error}"


def assert_not_written(*paths: Path) -> None:
    for p in paths:
        p = Path(p)
        assert not p.exists() or (p.is_dir() and not any(p.iterdir())), f"{p} was written"
        if p.parent.is_dir():
            left = [x.name for x in p.parent.iterdir() if x.name.startswith(f".{p.name}.")]
            assert not left, f"half-written temp files beside {p}: {left}"


# ---------------------------------------------------------------------------------------- fixtures


def _png(path: Path, size: int = 48, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, format="PNG")
    return path


COLORS = ("red", "green", "blue", "yellow", "purple", "white")


def _rows(n: int = 4) -> list[dict]:
    """``n`` records in the synthetic world's vocabulary, each with one image+caption negative."""
    return [
        {
            "id": f"r{i}",
            "image": f"img/{i}.png",
            "caption": f"a {COLORS[i]} circle",
            "negatives": [
                {"type": "attribute_swap", "caption": f"a {COLORS[i + 1]} square", "image": f"img/n{i}.png"}
            ],
        }
        for i in range(n)
    ]


def _write_rows(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny valid world: params (small steps, no monitor), 4 records + images, base weights."""
    root = tmp_path_factory.mktemp("world")
    raw = frozen_params.raw()
    raw["base"].update(steps=2, batch_size=4, warmup_steps=1, checkpoint_every=1)
    raw["finetune"].update(steps=4, batch_size=4, warmup_steps=1, checkpoint_every=2)
    raw["eval"].update(monitor="", bootstrap=0)
    raw["loss"]["negatives_per_sample"] = 1
    raw["threads"] = 1
    data = root / "data"
    for i in range(4):
        _png(data / "img" / f"{i}.png", seed=i)
        _png(data / "img" / f"n{i}.png", seed=10 + i)
    _write_rows(data / "train.jsonl", _rows())
    from genemi.config import params_from_dict
    from genemi.models import build_model, save_weights

    p = params_from_dict(raw)
    save_weights(build_model(p.model), root / "base.safetensors", {"arch": p.model.arch})
    return {"root": root, "raw": raw, "data": data, "base": root / "base.safetensors"}


def _with(raw: dict, **dotted) -> dict:
    """A copy of ``raw`` with dotted keys (``loss.hn_weight``) set."""
    raw = json.loads(json.dumps(raw))
    for key, value in dotted.items():
        *path, last = key.split(".")
        d = raw
        for k in path:
            d = d[k]
        d[last] = value
    return raw


def _params(tmp: Path, raw: dict, **dotted) -> Path:
    out = tmp / "params.yaml"
    out.write_text(yaml.safe_dump(_with(raw, **dotted)))
    return out


# ------------------------------------------------------------------------------ stage invocations


def run_base(tmp, params, train, image_root):
    from stages import base

    out, metrics = tmp / "out" / "base.safetensors", tmp / "out" / "base.json"
    code, text = _invoke(
        base.main,
        [
            "--params",
            params,
            "--train",
            train,
            "--image-root",
            image_root,
            "--out",
            out,
            "--metrics",
            metrics,
        ],
    )
    return code, text, [out, metrics]


def run_finetune(tmp, params, train, image_root, base_path, **extra):
    from stages import finetune

    out, metrics = tmp / "out" / "ft.safetensors", tmp / "out" / "ft.json"
    live, ck = extra.get("live", tmp / "live"), extra.get("checkpoint_dir")
    args = [
        "--params",
        params,
        "--train",
        train,
        "--image-root",
        image_root,
        "--base",
        base_path,
        "--out",
        out,
        "--metrics",
        metrics,
        "--live-dir",
        live,
        "--data",
        image_root,
    ]
    if ck:
        args += ["--checkpoint-dir", ck]
    code, text = _invoke(finetune.main, args)
    return code, text, [out, metrics]


def run_evaluate(tmp, params, data, benchmark, world):
    from stages import evaluate

    metrics, plots = tmp / "out" / f"{benchmark}.json", tmp / "plots"
    code, text = _invoke(
        evaluate.main,
        [
            "--params",
            params,
            "--benchmark",
            benchmark,
            "--data",
            data,
            "--base",
            world["base"],
            "--finetuned",
            world["base"],
            "--metrics",
            metrics,
            "--plot-dir",
            plots,
        ],
    )
    return code, text, [metrics, plots / f"{benchmark}.csv", plots / f"{benchmark}.png"]


def run_synth(tmp, params):
    from stages import synth_data

    code, text = _invoke(synth_data.main, ["--params", params, "--out", tmp / "sdata"])
    return code, text, [tmp / "sdata" / "synth"]


def run_mine(tmp, params, root):
    from stages import mine

    sheet = tmp / "out" / "sheet.png"
    code, text = _invoke(mine.main, ["--params", params, "--root", root, "--sheet", sheet])
    return code, text, [sheet, Path(root) / "negatives" / "train.jsonl"]


def run_mine_real(tmp, params, world):
    from stages import mine_real

    out, metrics = tmp / "out" / "variations.jsonl", tmp / "out" / "mine_real.json"
    code, text = _invoke(
        mine_real.main,
        [
            "--params",
            params,
            "--manifest",
            world["data"] / "train.jsonl",
            "--image-root",
            world["data"],
            "--work-dir",
            tmp / "work",
            "--out",
            out,
            "--sheets",
            tmp / "sheets",
            "--metrics",
            metrics,
        ],
    )
    return code, text, [out, metrics]


def run_hnc_manifest(tmp, params, hnc_dir, images):
    from stages import hnc_manifest

    out, stats = tmp / "hnc_out", tmp / "out" / "hnc_data.json"
    code, text = _invoke(
        hnc_manifest.main,
        [
            "--params",
            params,
            "--hnc",
            hnc_dir,
            "--images",
            images,
            "--out",
            out,
            "--stats",
            stats,
        ],
    )
    return code, text, [out / "train.jsonl", out / "val.jsonl", out / "test.jsonl", stats]


# ===================================================================================== 1. config values

CONFIG_CASES = [  # (dotted key, bad value, what the message must say, stage)
    ("finetune.steps", -5, "finetune.steps = -5: must be >= 1", "finetune"),
    ("finetune.steps", 0, "finetune.steps = 0: must be >= 1", "finetune"),
    ("loss.hn_weight", -1, "loss.hn_weight = -1.0: must be >= 0", "finetune"),
    ("finetune.checkpoint_every", -1, "finetune.checkpoint_every = -1: must be >= 0", "finetune"),
    ("base.batch_size", 0, "base.batch_size = 0: must be >= 1", "base"),
    ("finetune.lr", -0.1, "finetune.lr = -0.1: must be > 0", "finetune"),
    ("base.lr", float("nan"), "base.lr = nan: must be a finite number", "base"),
    ("data.hnc_subset", 0.0, "data.hnc_subset = 0.0: must be in (0, 1]", "hnc_manifest"),
    (
        "eval.benchmarks.synth_test.subset",
        1.5,
        "eval.benchmarks.synth_test.subset = 1.5: must be in (0, 1]",
        "evaluate",
    ),
    ("eval.acc_taus", [1.0, -1.0], "eval.acc_taus[1] = -1.0: must be > 0", "evaluate"),
    ("deepspeed.zero_stage", 4, "deepspeed.zero_stage = 4: must be in [0, 3]", "base"),
    ("synth.n_train", 0, "synth.n_train = 0: must be >= 1", "synth_data"),
    ("mine.max_per_type", 0, "mine.max_per_type = 0: must be >= 1", "mine"),
    ("mine_real.sd_window", 100, "mine_real.sd_window = 100: must be >= 64 and a multiple of 8", "mine_real"),
    ("loss.form", "inverse", "loss.form: must be one of ['additive', 'in_softmax']", "finetune"),
    ("eval.monitor", "nope", "eval.monitor = 'nope': must be", "finetune"),
    (
        "eval.benchmarks.synth_test",
        {"loader": "manifest", "images": "negatives/test"},
        "missing key(s): eval.benchmarks.synth_test.file, eval.benchmarks.synth_test.subset",
        "evaluate",
    ),
    ("eval.benchmarks", ["synth_test"], "eval.benchmarks: expected a mapping", "evaluate"),
    (
        "eval.benchmarks",
        {"my bench": {"loader": "byo", "file": "b.jsonl", "images": "img", "subset": 1.0}},
        "eval.benchmarks.my bench: a benchmark name may hold only letters, digits and _",
        "evaluate",
    ),
]


@pytest.mark.parametrize(
    "key,value,message,stage", CONFIG_CASES, ids=[f"{c[0]}={c[1]}" for c in CONFIG_CASES]
)
def test_config_value_is_rejected_at_load(tmp_path, world, key, value, message, stage):
    params = _params(tmp_path, world["raw"], **{key: value})
    train, data = world["data"] / "train.jsonl", world["data"]
    code, text, outs = {
        "base": lambda: run_base(tmp_path, params, train, data),
        "finetune": lambda: run_finetune(tmp_path, params, train, data, world["base"]),
        "evaluate": lambda: run_evaluate(tmp_path, params, data, "synth_test", world),
        "synth_data": lambda: run_synth(tmp_path, params),
        "mine": lambda: run_mine(tmp_path, params, tmp_path),
        "mine_real": lambda: run_mine_real(tmp_path, params, world),
        "hnc_manifest": lambda: run_hnc_manifest(tmp_path, params, tmp_path / "hnc", tmp_path / "gqa"),
    }[stage]()
    assert_failed(code, text, str(params), message)
    assert_not_written(*outs)


def test_every_numeric_knob_declares_a_range():
    """The class, not the list: a new int/float field without a declared range fails here."""
    from genemi import config

    def numeric(tp) -> bool:
        if tp in (int, float):
            return True
        return typing.get_origin(tp) is tuple and typing.get_args(tp)[0] in (int, float)

    missing = []
    todo, seen = [config.Params], set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for f in dataclasses.fields(cls):
            tp = typing.get_type_hints(cls)[f.name]
            inner = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
            if dataclasses.is_dataclass(tp):
                todo.append(tp)
            todo += inner
            if numeric(tp) and f.name not in config.RANGES.get(cls, {}):
                missing.append(f"{cls.__name__}.{f.name}")
    assert not missing, f"numeric knobs without a declared range in genemi/config.py RANGES: {missing}"
    assert config.ModelSource in seen and config.EvalSource in seen


def test_the_shipped_params_are_in_range():
    """Checks the shipped file itself, so it reads the live params.yaml (not the frozen test copy)."""
    from genemi.config import load_params

    load_params(ROOT / "params.yaml")


# ============================================================================================ 2. images


def _bad_image(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "truncated":  # a valid PNG header and half its body: PIL opens it, decoding fails
        _png(path, size=64)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "not_an_image":
        path.write_text("<html>404 not found</html>")
    elif kind == "missing":
        path.unlink(missing_ok=True)
    elif kind == "folder":
        path.unlink(missing_ok=True)
        path.mkdir()


IMAGE_KINDS = ["truncated", "empty", "not_an_image", "missing", "folder"]


def _world_copy(tmp: Path, world) -> Path:
    import shutil

    data = tmp / "data"
    shutil.copytree(world["data"], data)
    return data


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_bad_training_image_names_the_file_base_stage(tmp_path, world, kind):
    data = _world_copy(tmp_path, world)
    _bad_image(data / "img" / "2.png", kind)
    code, text, outs = run_base(tmp_path, _params(tmp_path, world["raw"]), data / "train.jsonl", data)
    assert_failed(code, text, str(data / "img" / "2.png"), "training image")
    assert_not_written(*outs)


@pytest.mark.parametrize("kind", ["truncated", "not_an_image", "missing"])
def test_bad_image_on_the_real_data_path_names_the_file(tmp_path, world, kind):
    """Real data (open_clip transform): images are read per batch by ImageFiles.pixels."""
    import torch

    from genemi.bank import ImageFiles

    data = _world_copy(tmp_path, world)
    _bad_image(data / "img" / "1.png", kind)
    files = ImageFiles(data, ["img/0.png", "img/1.png"], lambda im: torch.zeros(3, 2, 2))
    code, text = as_stage(lambda: files.pixels(torch.tensor([0, 1])))
    assert_failed(code, text, str(data / "img" / "1.png"))


@pytest.mark.parametrize("kind", ["truncated", "empty", "not_an_image", "missing"])
def test_bad_evaluation_image_names_the_file_and_writes_nothing(tmp_path, world, kind):
    """Missing images fail before any model is built (a stat per file); a truncated or corrupt one fails
    while the one decoding pass runs (each image is decoded once, for both models), naming it."""
    data = _world_copy(tmp_path, world)
    _bad_image(data / "img" / "n3.png", kind)
    moved = {f"eval.benchmarks.synth_test.{k}": "train.jsonl" for k in ("file", "models")}
    params = _params(tmp_path, world["raw"], **moved)
    code, text, outs = run_evaluate(tmp_path, params, data, "synth_test", world)
    assert_failed(code, text, str(data / "img" / "n3.png"))
    assert_not_written(*outs)


def _shard_with_fault(folder: Path, member: str, fault: str) -> Path:
    """Pack the loose ``folder`` into ``<folder>.zip`` (the pipeline's shard layout) and damage ``member``."""
    import shutil
    import zipfile

    from genemi.images import ShardWriter

    files = sorted(f for f in folder.iterdir() if f.is_file())
    blobs = {f.name: f.read_bytes() for f in files}
    shutil.rmtree(folder)
    with ShardWriter(folder) as shard:
        for name, data in blobs.items():
            if not (fault == "missing_member" and name == member):
                shard.write(folder / name, data)
    zip_path = folder.with_name(folder.name + ".zip")
    raw = bytearray(zip_path.read_bytes())
    info = zipfile.ZipFile(zip_path).getinfo(f"{folder.name}/{member}") if fault != "missing_member" else None
    if fault == "bad_crc":  # flip a byte inside the member's data
        raw[info.header_offset + 30 + len(info.filename) + info.file_size // 2] ^= 0xFF
    elif fault == "cut":  # the end of the zip (its central directory) is gone
        raw = raw[: len(raw) // 2]
    elif fault == "deflate64":  # what Windows Explorer writes for big zips; zipfile cannot inflate it
        raw[info.header_offset + 8 : info.header_offset + 10] = (9).to_bytes(2, "little")
        central = raw.find(b"PK\x01\x02" + raw[raw.find(b"PK\x01\x02") + 4 : raw.find(b"PK\x01\x02") + 6])
        while central != -1:
            if raw[central + 46 : central + 46 + len(info.filename)] == info.filename.encode():
                raw[central + 10 : central + 12] = (9).to_bytes(2, "little")
            central = raw.find(b"PK\x01\x02", central + 4)
    zip_path.write_bytes(bytes(raw))
    return zip_path


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        ("bad_crc", ["img.zip:img/n3.png", "Bad CRC-32", "replace img.zip"]),
        ("cut", ["img.zip: not a readable zip archive", "replace the file"]),
        ("missing_member", ["1 referenced image file(s) are missing", "img.zip has no member img/n3.png"]),
        ("deflate64", ["img.zip:img/n3.png: compressed with a method", "re-zip img.zip"]),
    ],
)
def test_a_faulty_image_shard_in_evaluation_names_archive_member(tmp_path, world, fault, named):
    data = _world_copy(tmp_path, world)
    _shard_with_fault(data / "img", "n3.png", fault)
    moved = {f"eval.benchmarks.synth_test.{k}": "train.jsonl" for k in ("file", "models")}
    params = _params(tmp_path, world["raw"], **moved)
    code, text, outs = run_evaluate(tmp_path, params, data, "synth_test", world)
    assert_failed(code, text, *named)
    assert_not_written(*outs)


def test_truncated_scene_in_the_mine_stage_names_file_and_record(tmp_path, world):
    root = tmp_path / "mroot"
    rows = [
        {"id": f"s{i}", "image": f"synth/train/{i}.png", "caption": "a red circle", "meta": {}}
        for i in range(1)
    ]
    _png(root / "synth" / "train" / "0.png")
    _bad_image(root / "synth" / "train" / "0.png", "truncated")
    for split in ("train", "test", "gen"):
        _write_rows(root / "synth" / f"{split}.jsonl", rows)
    code, text, outs = run_mine(tmp_path, _params(tmp_path, world["raw"]), root)
    assert_failed(code, text, str(root / "synth" / "train" / "0.png"), "record 's0'")
    assert_not_written(*outs)


# ========================================================================================= 3. manifests

MANIFEST_CASES = [  # (row 3 replaced by, what the message must name)
    ({"id": "r2", "image": "img/2.png", "caption": ""}, ":3 (record id='r2'): field 'caption' is empty"),
    ({"id": "r2", "image": "img/2.png", "caption": "  \t "}, ":3 (record id='r2'): field 'caption' is empty"),
    (
        {"id": "r2", "image": "img/2.png", "caption": "x", "negatives": [{"type": "t", "caption": " "}]},
        ":3 (record id='r2'): field 'negatives[0].caption' is empty",
    ),
    (
        {"id": "r2", "image": "img/2.png", "caption": "x", "negatives": {"type": "t"}},
        ":3 (record id='r2'): field 'negatives' must be a list",
    ),
    ({"id": "r2", "image": "img/2.png", "caption": "x", "meta": ["a"]}, ":3 (record id='r2'): field 'meta'"),
    ({"id": "r2", "image": "", "caption": "x"}, ":3 (record id='r2'): field 'image' is empty"),
    (
        {"id": "r2", "image": "img/2.png", "caption": 7},
        ":3 (record id='r2'): field 'caption' must be a string",
    ),
    ('{"id": "r2", "image": "img/2.png", "caption": "x"', ":3: invalid JSON"),
    ('["r2", "img/2.png"]', ":3: expected a JSON object, got list"),
]


@pytest.mark.parametrize(
    "row,message", MANIFEST_CASES, ids=[m[1].split(": ", 1)[-1][:40] for m in MANIFEST_CASES]
)
def test_bad_manifest_row_names_file_line_and_field(tmp_path, world, row, message):
    rows = _rows()
    rows.insert(2, row)
    train = _write_rows(tmp_path / "train.jsonl", rows)
    code, text, outs = run_base(tmp_path, _params(tmp_path, world["raw"]), train, world["data"])
    assert_failed(code, text, f"{train}{message}")
    assert_not_written(*outs)


def test_caption_the_tokenizer_refuses_names_its_record(tmp_path, world):
    rows = _rows()
    rows[3]["caption"] = "a red zebra"  # not a word of the synthetic world
    train = _write_rows(tmp_path / "train.jsonl", rows)
    code, text, outs = run_base(tmp_path, _params(tmp_path, world["raw"]), train, world["data"])
    assert_failed(code, text, "record 'r3'", "'zebra'", "model.tokenizer=open_clip")
    assert_not_written(*outs)


@pytest.mark.parametrize("stage", ["base", "finetune"])
@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_training_on_zero_records_is_an_error_naming_the_manifest(tmp_path, world, stage, content):
    train = tmp_path / "train.jsonl"
    train.write_text(content)
    params = _params(tmp_path, world["raw"])
    if stage == "base":
        code, text, outs = run_base(tmp_path, params, train, world["data"])
    else:
        code, text, outs = run_finetune(tmp_path, params, train, world["data"], world["base"])
    assert_failed(code, text, str(train), "has no records")
    assert_not_written(*outs)


# ================================================================================ 4. benchmark formats


def _sugarcrepe(folder: Path, bad: dict) -> None:
    from genemi.benchmarks.pairwise import SUGARCREPE

    folder.mkdir(parents=True)
    for cat in SUGARCREPE:
        row = {"filename": "0.png", "caption": "a red circle", "negative_caption": "a blue circle"}
        if cat == "swap_att":
            row.update(bad)
        (folder / f"{cat}.json").write_text(json.dumps({"0": row}))


BENCH_CASES = [  # (loader, annotation writer(file path), what the message must name)
    (
        "byo",
        lambda f: _write_rows(
            f,
            [
                {"image": "img/0.png", "positive": "a", "negatives": ["b"]},
                {"image": "img/1.png", "positive": "  ", "negatives": ["b"]},
            ],
        ),
        ":2: field 'positive' must be a non-empty string",
    ),
    (
        "byo",
        lambda f: _write_rows(f, [{"image": "img/0.png", "positive": "a", "negatives": ["b", ""]}]),
        ":1: field 'negatives[1]' must be a non-empty string",
    ),
    (
        "byo",
        lambda f: _write_rows(f, ["", '{"image": "img/0.png", "positive": "a", "negatives": []}']),
        ":2: 'negatives' must be a non-empty list",
    ),
    (
        "coco_neg",
        lambda f: f.write_text(json.dumps([{"image": "0.png", "text": "a", "neg_text": ""}])),
        ": item 0: field 'neg_text' must be a non-empty string",
    ),
    ("coco_neg", lambda f: f.write_text(json.dumps({"image": "0.png"})), ": expected a JSON list"),
    ("sugarcrepe", lambda f: _sugarcrepe(f, {"caption": " "}), "swap_att.json: item '0': field 'caption'"),
    (
        "aro_relation",
        lambda f: f.write_text(
            json.dumps(
                [
                    {
                        "image_path": "0.png",
                        "bbox_x": 0,
                        "bbox_y": 0,
                        "bbox_w": 4,
                        "bbox_h": 4,
                        "true_caption": "a",
                        "false_caption": "",
                        "relation_name": "on",
                    }
                ]
            )
        ),
        ": item 0: field 'false_caption' must be a non-empty string",
    ),
    (
        "aro_attribution",
        lambda f: f.write_text(json.dumps([{"image_path": "0.png", "true_caption": "a"}])),
        ": item 0: not an ARO attribution test case",
    ),
    (
        "winoground",
        lambda f: _write_rows(
            f, [{"id": 0, "image_0": "a", "image_1": "b", "caption_0": "x", "caption_1": "\t"}]
        ),
        ":1: field 'caption_1' must be a non-empty string",
    ),
    (
        "genemi_val",
        lambda f: f.write_text(json.dumps([{"num_sample": 0}])),
        ": row 0: 'num_sample' must be a positive integer",
    ),
    (
        "karpathy_retrieval",
        lambda f: f.write_text(json.dumps({"images": []})),
        "no images of Karpathy split 'test'",
    ),
    ("manifest", lambda f: f.write_text(""), "benchmark 'bad' yields 0 items"),
    ("hnc", lambda f: f.write_text("[]"), "top level must be an object"),
]


@pytest.mark.parametrize(
    "loader,write,message", BENCH_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(BENCH_CASES)]
)
def test_bad_benchmark_file_names_file_and_record_before_scoring(tmp_path, world, loader, write, message):
    data = _world_copy(tmp_path, world)
    name = "annotations" if loader == "sugarcrepe" else "annotations.json"
    write(data / name)
    params = _params(
        tmp_path,
        world["raw"],
        **{"eval.benchmarks.bad": {"loader": loader, "file": name, "images": ".", "models": name,
                                   "subset": 1.0}},  # fmt: skip
    )
    code, text, outs = run_evaluate(tmp_path, params, data, "bad", world)
    assert_failed(code, text, str(data / name), message)
    assert_not_written(*outs)


def test_a_subset_that_draws_nothing_is_an_error_not_empty_metrics(tmp_path, world):
    data = _world_copy(tmp_path, world)
    _write_rows(data / "one.jsonl", _rows(1))
    src = {"loader": "manifest", "file": "one.jsonl", "images": ".", "models": "one.jsonl", "subset": 1e-9}
    params = _params(tmp_path, world["raw"], **{"eval.benchmarks.bad": src})
    code, text, outs = run_evaluate(tmp_path, params, data, "bad", world)
    assert_failed(code, text, str(data / "one.jsonl"), "0 items", "eval.benchmarks.bad.subset")
    assert_not_written(*outs)


# ============================================================================================== 5. HNC

HNC_TRAIN = {
    "1": {
        "captions": {
            "0": {"caption": "a dog", "label": 1, "type": "t", "cpt_p_id": None},
            "1": {"caption": "a cat", "label": 0, "type": "t", "cpt_p_id": 0},
        }
    }
}
HNC_TEST = {
    "n1.jpg": {"0": {"caption": "a dog", "label": 1, "type": "t"}, "1": {"caption": "a cat", "label": 0}}
}

HNC_CASES = [  # (train file content, what the message must say)
    ("[]", "top level must be an object of image entries"),
    ('[{"captions": {}}]', "found a list"),
    ('"hnc_clean_strict_train.json"', "found a string"),
    ("{}", "no image entries (found {})"),
    ("", "found an empty file"),
    (json.dumps({"1": ["a dog"]}), "entry '1' must be an object of captions"),
    (
        json.dumps({"1": {"captions": [{"caption": "a dog", "label": 1}]}}),
        "image '1': 'captions' must be an object of caption id -> {caption, label, type, cpt_p_id}; "
        "found a list",
    ),
    (json.dumps({"1": {"captions": {}}}), "image '1': 'captions' is empty"),
    (
        json.dumps({"1": {"captions": {"0": {"caption": " ", "label": 1}}}}),
        "image '1' caption 0: field 'caption'",
    ),
    (
        json.dumps({"1": {"captions": {"0": {"caption": "a", "label": "yes"}}}}),
        "image '1' caption 0: 'label' must be",
    ),
    (json.dumps({**HNC_TRAIN, **HNC_TEST}), "image 'n1.jpg': entry in the test schema, but the file's first"),
    (json.dumps({"2": HNC_TRAIN["1"]}), "0 records: none of the 1 drawn images is under"),
    ('{"1": {"captions": ', "invalid JSON"),
]


@pytest.mark.parametrize("content,message", HNC_CASES, ids=[f"hnc-{i}" for i in range(len(HNC_CASES))])
def test_hnc_schema_errors_say_what_was_expected_and_found(tmp_path, world, content, message):
    hnc, gqa = tmp_path / "hnc", tmp_path / "gqa"
    _png(gqa / "1.jpg")
    _png(gqa / "n1.jpg")
    hnc.mkdir()
    (hnc / "hnc_clean_strict_train.json").write_text(content)
    (hnc / "hnc_clean_strict_val.json").write_text(json.dumps(HNC_TRAIN))
    (hnc / "hnc_clean_strict_test.json").write_text(json.dumps(HNC_TEST))
    params = _params(tmp_path, world["raw"], **{"data.source": "hnc", "data.hnc_subset": 1.0})
    code, text, outs = run_hnc_manifest(tmp_path, params, hnc, gqa)
    assert_failed(code, text, str(hnc / "hnc_clean_strict_train.json"), message)
    assert_not_written(*outs)


def test_valid_hnc_files_convert(tmp_path, world):
    """The reference for the table above: the same files, valid, convert with exit 0."""
    hnc, gqa = tmp_path / "hnc", tmp_path / "gqa"
    _png(gqa / "1.jpg")
    _png(gqa / "n1.jpg")
    hnc.mkdir()
    for split, content in (("train", HNC_TRAIN), ("val", HNC_TRAIN), ("test", HNC_TEST)):
        (hnc / f"hnc_clean_strict_{split}.json").write_text(json.dumps(content))
    params = _params(
        tmp_path, world["raw"], **{"data.source": "hnc", "data.hnc_subset": 1.0, "real.hnc_val_subset": 1.0}
    )
    code, text, outs = run_hnc_manifest(tmp_path, params, hnc, gqa)
    assert code == 0, text
    assert json.loads(outs[0].read_text().splitlines()[0])["negatives"][0]["caption"] == "a cat"


# ======================================================================================== 6. downloads


def _fetch(tmp: Path, dest: Path, relock=False):
    from genemi.download import fetch
    from genemi.lockfile import Lock

    src = tmp / "server" / "weights.bin"
    return fetch(
        src.as_uri(), dest, key="weights", lock=Lock(tmp / "lock.json", relock=relock), progress=False
    )


@pytest.fixture
def published(tmp_path):
    src = tmp_path / "server" / "weights.bin"
    src.parent.mkdir()
    src.write_bytes(b"the right weights" * 100)
    return src


def test_wrong_file_pinned_then_replaced_names_the_entry_and_the_offline_remedy(tmp_path, published):
    from genemi.lockfile import Lock

    dest = tmp_path / "dl" / "weights.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"W" * len(published.read_bytes()))  # wrong file, right size: pinned on first use
    _fetch(tmp_path, dest)
    dest.write_bytes(published.read_bytes())  # the user puts the right file in place
    code, text = as_stage(lambda: _fetch(tmp_path, dest))
    assert_failed(
        code,
        text,
        str(dest),
        "'weights'",
        "GENEMI_RELOCK=weights",
        str(tmp_path / "lock.json"),
        '"weights" entry',
    )
    # the remedy works offline: relock re-pins to the file now in place
    code, text = as_stage(lambda: _fetch(tmp_path, dest, relock=["weights"]))
    assert code == 0, text
    import hashlib

    assert (
        Lock(tmp_path / "lock.json").get("weights")["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest()
    )


def test_relock_refuses_a_file_of_other_size_than_published(tmp_path, published):
    dest = tmp_path / "dl" / "weights.bin"
    dest.parent.mkdir()
    dest.write_bytes(published.read_bytes())
    _fetch(tmp_path, dest)
    dest.write_bytes(b"truncated")
    lock_before = (tmp_path / "lock.json").read_text()
    code, text = as_stage(lambda: _fetch(tmp_path, dest, relock=True))
    assert_failed(code, text, str(dest), f"published with {len(published.read_bytes())} bytes")
    assert (tmp_path / "lock.json").read_text() == lock_before  # nothing re-pinned


def test_hand_placed_file_of_wrong_size_is_not_pinned(tmp_path, published):
    dest = tmp_path / "dl" / "weights.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"an html error page")
    code, text = as_stage(lambda: _fetch(tmp_path, dest))
    assert_failed(code, text, str(dest), "published with")
    assert_not_written(tmp_path / "lock.json")


def test_relock_through_the_stage_flag_and_environment(tmp_path, monkeypatch):
    """Every download stage takes --relock; GENEMI_RELOCK=1 or =<key>,<key> does the same under dvc repro."""
    sys.path.insert(0, str(ROOT / "stages"))
    from download_options import download_command

    from genemi.lockfile import RELOCK_ENV

    for argv, env, want in (
        ([], None, []),
        (["--relock"], None, True),
        ([], "a,b", {"a", "b"}),
        ([], "1", True),
    ):
        if env is None:
            monkeypatch.delenv(RELOCK_ENV, raising=False)
        else:
            monkeypatch.setenv(RELOCK_ENV, env)
        seen = {}

        def fetch(real, out, downloads, lock, seen=seen):
            seen["lock"] = lock

        raw = frozen_params.raw()
        raw["data"]["source"] = "hnc"  # the fetcher runs only for a real source
        raw["eval"]["monitor"] = ""
        params = tmp_path / "params.yaml"
        params.write_text(yaml.safe_dump(raw))
        cmd = download_command("download_hnc", fetch, "probe", progress=False)  # needed on the hnc road
        code, text = _invoke(cmd, [*argv, "--params", params, "--lock", tmp_path / "lock.json",
                                   "--out", tmp_path / "out"])
        assert code == 0, text
        got = seen["lock"].relock
        assert (got is want) if isinstance(want, bool) else (set(got) == set(want))


def test_corrupt_lock_file_names_itself(tmp_path, published):
    dest = tmp_path / "dl" / "weights.bin"
    (tmp_path / "lock.json").write_text("{not json")
    code, text = as_stage(lambda: _fetch(tmp_path, dest))
    assert_failed(code, text, str(tmp_path / "lock.json"), "not valid JSON")
    assert_not_written(dest)


# ====================================================================================== 7. resume/kills


def test_fingerprint_covers_the_training_code(tmp_path, monkeypatch):
    from genemi import checkpoint

    names = {f.name for f in checkpoint.code_files()}
    assert {"losses.py", "train.py", "bank.py", "samplers.py", "run.py", "clip.py", "engine.py", "models.py", "config.py"} <= names
    assert any(f.suffix == ".json" for f in checkpoint.code_files())  # architectures are data
    (tmp_path / "model_configs").mkdir()
    (tmp_path / "model_configs" / "arch.json").write_text("{}")
    (tmp_path / "losses.py").write_text("w = 1\n")
    monkeypatch.setattr(checkpoint, "PKG", tmp_path)
    assert [f.name for f in checkpoint.code_files()] == ["losses.py", "arch.json"]
    before = checkpoint.fingerprint({"a": 1})
    assert checkpoint.fingerprint({"a": 1}, code=False) != before
    (tmp_path / "losses.py").write_text("w = -1\n")  # the loss changed: an old checkpoint must not resume
    assert checkpoint.fingerprint({"a": 1}) != before


def test_fingerprint_covers_the_image_digest(tmp_path):
    from genemi import checkpoint

    m = _write_rows(tmp_path / "train.jsonl", _rows())
    (tmp_path / "digest.json").write_text('{"sha256": "a"}')
    files = checkpoint.data_files(m)
    assert files == [m, tmp_path / "digest.json"]
    before = checkpoint.fingerprint({}, *files)
    (tmp_path / "digest.json").write_text('{"sha256": "b"}')  # an image changed, the manifest did not
    assert checkpoint.fingerprint({}, *files) != before


@pytest.mark.slow
def test_killed_finetune_resumes_and_its_curves_survive_dvc_deleting_them(tmp_path, world, monkeypatch):
    """Kill after the first checkpoint, delete the dvclive folder as `dvc repro` does, rerun: the curves
    are those of an uninterrupted run, step for step (perf/* are wall-clock timings: same steps only)."""
    import shutil

    from genemi import checkpoint

    params = _params(tmp_path, world["raw"])
    train, data = world["data"] / "train.jsonl", world["data"]
    code, text, _ = run_finetune(
        tmp_path / "straight", params, train, data, world["base"], live=tmp_path / "straight_live"
    )
    assert code == 0, text
    save = checkpoint.save

    class Killed(BaseException):
        pass

    def save_then_die(*a, **k):
        save(*a, **k)
        raise Killed

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    ck, live = tmp_path / "ck", tmp_path / "live"
    with pytest.raises(Killed):
        from stages import finetune

        CliRunner().invoke(
            finetune.main,
            [
                str(a)
                for a in [
                    "--params",
                    params,
                    "--train",
                    train,
                    "--image-root",
                    data,
                    "--base",
                    world["base"],
                    "--out",
                    tmp_path / "out" / "ft.safetensors",
                    "--metrics",
                    tmp_path / "out" / "ft.json",
                    "--live-dir",
                    live,
                    "--data",
                    data,
                    "--checkpoint-dir",
                    ck,
                ]
            ],
            catch_exceptions=False,
        )
    monkeypatch.setattr(checkpoint, "save", save)
    assert (ck / checkpoint.LATEST).is_file()
    shutil.rmtree(live, ignore_errors=True)  # what DVC does to the plots output before rerunning the stage
    code, text, _ = run_finetune(tmp_path, params, train, data, world["base"], live=live, checkpoint_dir=ck)
    assert code == 0, text
    assert "resuming" in text
    tsvs = sorted((tmp_path / "straight_live" / "plots").rglob("*.tsv"))
    assert any("train" in t.parts for t in tsvs) and any("perf" in t.parts for t in tsvs)
    for tsv in tsvs:
        rel = tsv.relative_to(tmp_path / "straight_live")
        if "perf" in rel.parts:
            steps = [[row.split("\t")[0] for row in f.read_text().splitlines()] for f in (live / rel, tsv)]
            assert steps[0] == steps[1], rel
        else:
            assert (live / rel).read_text() == tsv.read_text(), rel


# =========================================================================================== 8. outputs


def test_output_under_a_file_fails_before_training(tmp_path, world, monkeypatch):
    import genemi.train

    monkeypatch.setattr(genemi.train, "train", lambda *a, **k: pytest.fail("trained before checking outputs"))
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should be")
    code, text, _ = run_base(
        tmp_path, _params(tmp_path, world["raw"]), world["data"] / "train.jsonl", world["data"]
    )
    assert_failed(code, text, str(tmp_path / "out" / "base.safetensors"), "cannot write")


def test_metrics_path_that_is_a_folder_fails_before_training(tmp_path, world):
    (tmp_path / "out" / "base.json").mkdir(parents=True)
    code, text, outs = run_base(
        tmp_path, _params(tmp_path, world["raw"]), world["data"] / "train.jsonl", world["data"]
    )
    assert (
        code == 2 and str(tmp_path / "out" / "base.json") in text and "is a directory" in text
    )  # click's check
    assert_not_written(outs[0])


def test_output_file_that_is_a_folder_is_refused_by_the_library_check(tmp_path):
    from genemi.io import check_writable

    (tmp_path / "m.json").mkdir()
    (tmp_path / "plots").write_text("")
    for kwargs, name in (
        ({"paths": [tmp_path / "m.json"]}, "m.json: this output file is a folder"),
        ({"dirs": (tmp_path / "plots",)}, "plots: this output folder is a file"),
    ):
        code, text = as_stage(
            lambda kwargs=kwargs: check_writable(*kwargs.get("paths", []), dirs=kwargs.get("dirs", ()))
        )
        assert_failed(code, text, name)


@pytest.mark.parametrize("errno_,name", [(13, "Permission denied"), (30, "Read-only file system")])
def test_unwritable_output_folder_fails_before_work(tmp_path, world, monkeypatch, errno_, name):
    """Root ignores permission bits, so the refusal is simulated where the probe writes."""
    import tempfile

    real = tempfile.mkstemp

    def refuse(*a, dir=None, **k):
        if str(dir).startswith(str(tmp_path / "out")):
            raise OSError(errno_, name)
        return real(*a, dir=dir, **k)

    (tmp_path / "out").mkdir()  # an existing output folder that refuses new files
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code, text, outs = run_evaluate(
        tmp_path, _params(tmp_path, world["raw"]), world["data"], "synth_test", world
    )
    assert_failed(code, text, str(tmp_path / "out" / "synth_test.json"), name)
    assert_not_written(*outs)


def test_hnc_manifest_checks_its_outputs_before_converting(tmp_path, world, monkeypatch):
    import genemi.data.hnc

    monkeypatch.setattr(genemi.data.hnc, "convert_hnc", lambda *a, **k: pytest.fail("converted first"))
    (tmp_path / "out").write_text("a file where the stats folder should be")
    params = _params(tmp_path, world["raw"], **{"data.source": "hnc"})
    code, text, outs = run_hnc_manifest(tmp_path, params, tmp_path / "hnc", tmp_path / "gqa")
    assert_failed(code, text, str(tmp_path / "out" / "hnc_data.json"), "cannot write")
    assert_not_written(*outs[:3])


def test_disk_full_names_the_path_and_keeps_the_old_file(tmp_path):
    from genemi.io import OutputError, atomic_path, write_json

    path = tmp_path / "metrics.json"
    write_json(path, {"old": 1})

    def fill():
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=f"{path}: cannot write \\(No space left on device\\); free disk"):
        fill()
    code, text = as_stage(fill)
    assert_failed(code, text, str(path), "No space left")
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_atomic_writes_respect_the_umask(tmp_path, umask):
    from genemi.io import write_json

    old = os.umask(umask)
    try:
        write_json(tmp_path / "m.json", {})
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777


def test_an_input_read_error_is_not_reported_as_an_output_error(tmp_path):
    from genemi.io import atomic_path

    with pytest.raises(PermissionError) as e, atomic_path(tmp_path / "out.json"):
        raise PermissionError(13, "Permission denied", str(tmp_path / "input.json"))
    assert "cannot write" not in str(e.value)


# ========================================================================================== 9. messages


def test_debug_switch_shows_the_traceback(monkeypatch):
    from genemi.errors import DEBUG_ENV

    def boom():
        raise ValueError("x.jsonl:3: field 'caption' is empty")

    code, text = as_stage(boom)
    assert_failed(code, text, "x.jsonl:3: field 'caption' is empty", f"{DEBUG_ENV}=1")
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(ValueError, match="x.jsonl:3"):
        as_stage(boom)


def test_unexpected_errors_keep_their_type_in_one_line():
    def boom():
        raise RuntimeError("CUDA out of memory")

    code, text = as_stage(boom)
    assert_failed(code, text, "RuntimeError: CUDA out of memory")


def test_a_stage_process_prints_one_error_line_and_no_traceback(tmp_path):
    raw = frozen_params.raw()
    raw["finetune"]["steps"] = -5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("GENEMI_DEBUG", None)
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "stages" / "synth_data.py"),
            "--params",
            str(tmp_path / "params.yaml"),
            "--out",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == (
        f"Error: {tmp_path / 'params.yaml'}: finetune.steps = -5: must be >= 1"
    )
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "data").exists()


def test_pretrained_offline_hint_names_the_hub_repository():
    from genemi.pretrained import hub_files

    assert hub_files("timm/vit_base_patch32_clip_224.openai/") == (
        "timm/vit_base_patch32_clip_224.openai",
        "open_clip_pytorch_model.bin",
    )
    assert hub_files("laion/CLIP-ViT-B-32-laion2B-s34B-b79K/open_clip_model.safetensors") == (
        "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        "open_clip_model.safetensors",
    )
