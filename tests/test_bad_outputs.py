"""Faults on the way out, table-driven (classes 1, 2 and 7 of docs/reliability.md):

1. outputs that collide with each other or with an input (same path, one inside another, a symbolic or
   hard link, an ``a/../b`` spelling), for every kind of stage;
2. model files that load but are not what they claim (cut short, empty, random bytes, a PyTorch pickle,
   another architecture, non-finite values, another ``model.arch``) and damaged resume checkpoints;
3. partial writes: a fault (disk full) in the middle of a stage's writes, or while publishing them.

Every case asserts the exit status (1: one ``Error:`` paragraph, no traceback), that the message names the
file and the option or key, and that nothing under the test's folder changed: every file (outputs written
by an earlier run included) is byte-identical to before, and no temporary is left. docs/reliability.md
lists the cases with the counts on the code before these checks.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import test_bad_inputs
import torch
from click.testing import CliRunner
from test_bad_inputs import _invoke, _params, assert_failed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """test_bad_inputs' tiny valid world: params, 4 records with images, base weights."""
    return test_bad_inputs.world.__wrapped__(tmp_path_factory)


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``: path -> sha256 of its bytes (``dir`` for a folder). The training
    bank's caches (``<manifest>.bank/``) are left out: no output, keyed by the manifest's bytes, so one built
    before a stage fails is as valid as one built after (``genemi.bank_cache``)."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        rel = p.relative_to(root).as_posix()
        if any(part.endswith(".bank") for part in p.relative_to(root).parts):
            continue
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_unchanged(before: dict[str, str], root: Path) -> None:
    after = snapshot(root)
    added, gone = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (added or gone or changed), f"added {added}, removed {gone}, changed {changed}"


def _old(path: Path, text: str = "old output\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ============================================================================ 1. outputs that collide


# the world's records stand in for the benchmark (as in test_bad_inputs)
EVAL_ON_TRAIN = {f"eval.benchmarks.synth_test.{k}": "train.jsonl" for k in ("file", "models")}


def _args(defaults: dict, over: dict) -> list:
    args = {**defaults, **over}
    return [x for k, v in args.items() for x in (k, v() if callable(v) else v)]


def _eval_args(t: Path, world, **over) -> list:
    return _args(
        {
            "--params": lambda: _params(t, world["raw"], **EVAL_ON_TRAIN),
            "--benchmark": "synth_test",
            "--data": world["data"],
            "--base": world["base"],
            "--finetuned": world["base"],
            "--metrics": t / "m.json",
            "--plot-dir": t / "plots",
            "--headline": t / "h.json",
            "--items": t / "i.npz",
        },
        over,
    )


def _ft_args(t: Path, world, **over) -> list:
    return _args(
        {
            "--params": lambda: _params(t, world["raw"]),
            "--train": world["data"] / "train.jsonl",
            "--image-root": world["data"],
            "--base": world["base"],
            "--out": t / "ft.safetensors",
            "--metrics": t / "ft.json",
            "--live-dir": t / "live",
            "--data": world["data"],
        },
        over,
    )


def _base_args(t: Path, world, **over) -> list:
    return _args(
        {
            "--params": lambda: _params(t, world["raw"]),
            "--train": world["data"] / "train.jsonl",
            "--image-root": world["data"],
            "--out": t / "b.safetensors",
            "--metrics": t / "b.json",
        },
        over,
    )


def _same_file_symlink(t: Path) -> Path:
    target = _old(t / "h.json")
    (t / "link.json").symlink_to(target)
    return t / "link.json"


def _hardlink(t: Path) -> Path:
    os.link(_old(t / "m.json"), t / "hard.json")
    return t / "hard.json"


def _stage(name: str):
    sys.path.insert(0, str(ROOT / "stages"))
    import importlib

    return importlib.import_module(name).main


# (id, stage, args builder(t, world), the two names the message must hold)
COLLISIONS = [
    (
        "finetune --out = --metrics",
        "finetune",
        lambda t, w: _ft_args(t, w, **{"--metrics": t / "ft.safetensors"}),
        ["--out", "--metrics"],
    ),
    (
        "base --metrics = --out spelled a/../b",
        "base",
        lambda t, w: _base_args(t, w, **{"--metrics": t / "sub" / ".." / "b.safetensors"}),
        ["--out", "--metrics"],
    ),
    (
        "evaluate --metrics a symlink to --headline",
        "evaluate",
        lambda t, w: _eval_args(t, w, **{"--metrics": _same_file_symlink(t)}),
        ["--metrics", "--headline"],
    ),
    (
        "evaluate --items a hard link of --metrics",
        "evaluate",
        lambda t, w: _eval_args(t, w, **{"--items": _hardlink(t)}),
        ["--metrics", "--items"],
    ),
    (
        "evaluate --metrics = --finetuned (an input)",
        "evaluate",
        lambda t, w: _eval_args(
            t, w, **{"--finetuned": _copy_base(t, w), "--metrics": t / "ft_in.safetensors"}
        ),
        ["--metrics", "--finetuned"],
    ),
    (
        "evaluate --headline inside --plot-dir",
        "evaluate",
        lambda t, w: _eval_args(t, w, **{"--headline": t / "plots" / "h.json"}),
        ["--headline", "--plot-dir"],
    ),
    (
        "evaluate --plot-dir = --data (holds the inputs)",
        "evaluate",
        lambda t, w: _eval_args(t, w, **{"--data": _data_copy(t, w), "--plot-dir": t / "data"}),
        ["--plot-dir", "--data"],
    ),
    (
        "evaluate --metrics = the benchmark's file (a params key)",
        "evaluate",
        lambda t, w: _eval_args(
            t, w, **{"--data": _data_copy(t, w), "--metrics": t / "data" / "train.jsonl"}
        ),
        ["--metrics", "eval.benchmarks.synth_test.file"],
    ),
    (
        "finetune --live-dir = --checkpoint-dir",
        "finetune",
        lambda t, w: _ft_args(t, w, **{"--checkpoint-dir": t / "live"}),
        ["--live-dir", "--checkpoint-dir"],
    ),
    (
        "finetune --out inside --checkpoint-dir",
        "finetune",
        lambda t, w: _ft_args(t, w, **{"--checkpoint-dir": t / "ck", "--out": t / "ck" / "ft.safetensors"}),
        ["--out", "--checkpoint-dir"],
    ),
    (
        "finetune --metrics = --train",
        "finetune",
        lambda t, w: _ft_args(t, w, **{"--train": _train_copy(t, w), "--metrics": t / "train.jsonl"}),
        ["--metrics", "--train"],
    ),
    (
        "base --out = --params",
        "base",
        lambda t, w: _base_args(t, w, **{"--out": t / "params.yaml"}),
        ["--out", "--params"],
    ),
    (
        "mine --out = its input folder synth",
        "mine",
        lambda t, w: [
            "--params",
            _params(t, w["raw"]),
            "--root",
            _synth_root(t),
            "--out",
            "synth",
            "--sheet",
            t / "sheet.png",
        ],
        ["--out", "--root"],
    ),
    (
        "mine --sheet inside its --out folder",
        "mine",
        lambda t, w: [
            "--params",
            _params(t, w["raw"]),
            "--root",
            _synth_root(t),
            "--sheet",
            t / "root" / "negatives" / "sheet.png",
        ],
        ["--sheet", "--out"],
    ),
    (
        "hnc_manifest --stats inside --out",
        "hnc_manifest",
        lambda t, w: [
            "--params",
            _params(t, w["raw"]),
            "--hnc",
            t / "hnc",
            "--images",
            t / "gqa",
            "--out",
            t / "hnc_out",
            "--stats",
            t / "hnc_out" / "stats.json",
        ],
        ["--stats", "--out"],
    ),
    (
        "coco_manifest --out = --stats",
        "coco_manifest",
        lambda t, w: [
            "--params",
            _params(t, w["raw"]),
            "--coco",
            t / "coco",
            "--out",
            t / "k.jsonl",
            "--stats",
            t / "k.jsonl",
        ],
        ["--out", "--stats"],
    ),
    (
        "mine_real --out inside --work-dir",
        "mine_real",
        lambda t, w: [
            "--params",
            _params(t, w["raw"]),
            "--manifest",
            w["data"] / "train.jsonl",
            "--image-root",
            w["data"],
            "--work-dir",
            t / "work",
            "--out",
            t / "work" / "v.jsonl",
            "--sheets",
            t / "sheets",
            "--metrics",
            t / "mr.json",
        ],
        ["--out", "--work-dir"],
    ),
    (
        "mine_real --sheets = --image-root",
        "mine_real",
        lambda t, w: [
            "--params",
            _params(t, w["raw"]),
            "--manifest",
            w["data"] / "train.jsonl",
            "--image-root",
            _data_copy(t, w),
            "--work-dir",
            t / "work",
            "--out",
            t / "v.jsonl",
            "--sheets",
            t / "data",
            "--metrics",
            t / "mr.json",
        ],
        ["--sheets", "--image-root"],
    ),
    (
        "download --lock inside --out",
        "download_hnc",
        lambda t, w: [
            "--params",
            _params(t, w["raw"]),
            "--out",
            t / "raw",
            "--downloads",
            t / "dl",
            "--lock",
            t / "raw" / "lock.json",
        ],
        ["--lock", "--out"],
    ),
    (
        "download --out = --downloads",
        "download_gqa",
        lambda t, w: [
            "--params",
            _params(t, w["raw"]),
            "--out",
            t / "dl",
            "--downloads",
            t / "dl",
            "--lock",
            t / "lock.json",
        ],
        ["--out", "--downloads"],
    ),
    (
        "negclip --out = --csv",
        "negclip_manifest",
        lambda t, w: ["--csv", _old(t / "negclip.tsv", "a\tb\tc\td\n"), "--out", t / "negclip.tsv"],
        ["--out", "--csv"],
    ),
    (
        "report --out = --run-dir",
        "report",
        lambda t, w: ["--run-dir", _run_dir(t), "--out", t / "run"],
        ["--out", "--run-dir"],
    ),
    (
        "base --metrics = a training image under --image-root (found when read)",
        "base",
        lambda t, w: _base_args(
            t,
            w,
            **{
                "--image-root": _data_copy(t, w),
                "--train": t / "data" / "train.jsonl",
                "--metrics": t / "data" / "img" / "2.png",
            },
        ),
        ["--metrics", "2.png"],
    ),
    (
        "evaluate --items = a benchmark image (found when read)",
        "evaluate",
        lambda t, w: _eval_args(
            t, w, **{"--data": _data_copy(t, w), "--items": t / "data" / "img" / "1.png"}
        ),
        ["--items", "1.png"],
    ),
    (
        "synth_data --out a symlink to --params' folder",
        "synth_data",
        lambda t, w: ["--params", _params_in(t, w), "--out", _link_to(t / "cfg", t / "out_link")],
        ["--out", "--params"],
    ),
]


def _copy_base(t: Path, w) -> Path:
    shutil.copy(w["base"], t / "ft_in.safetensors")
    return t / "ft_in.safetensors"


def _data_copy(t: Path, w) -> Path:
    shutil.copytree(w["data"], t / "data")
    return t / "data"


def _train_copy(t: Path, w) -> Path:
    shutil.copy(w["data"] / "train.jsonl", t / "train.jsonl")
    return t / "train.jsonl"


def _synth_root(t: Path) -> Path:
    for split in ("train", "test", "gen"):
        _old(t / "root" / "synth" / f"{split}.jsonl", "")
    _old(t / "root" / "negatives" / "train.jsonl", "old mined\n")
    return t / "root"


def _run_dir(t: Path) -> Path:
    _old(t / "run" / "params.yaml", "seed: 0\n")
    return t / "run"


def _params_in(t: Path, w) -> Path:
    (t / "cfg").mkdir()
    return _params(t / "cfg", w["raw"])


def _link_to(target: Path, link: Path) -> Path:
    link.symlink_to(target, target_is_directory=True)
    return link


@pytest.mark.parametrize("case", COLLISIONS, ids=[c[0] for c in COLLISIONS])
def test_colliding_outputs_are_refused_before_any_work(tmp_path, world, case):
    _, stage, build, names = case
    t = tmp_path / "t"
    t.mkdir()
    args = build(t, world)
    before = snapshot(tmp_path)
    code, text = _invoke(_stage(stage), args)
    assert_failed(code, text, *names)
    error = text.split("Error: ", 1)[1]
    assert len(error.strip().splitlines()) == 2, error  # the message and the GENEMI_DEBUG hint
    assert_unchanged(before, tmp_path)


def test_every_stage_declares_its_paths_as_outputs_or_inputs():
    """The collision check sees a path only through its option's type: every path option of every stage
    is an output (genemi.errors.Output) or an input (click.Path), never a plain string."""
    import click

    for script in sorted((ROOT / "stages").glob("*.py")):
        if script.stem.startswith("_") or script.stem == "download_options":
            continue
        cmd = _stage(script.stem)
        for p in cmd.params:
            looks_like_path = any(
                w in p.name
                for w in (
                    "path",
                    "dir",
                    "out",
                    "root",
                    "file",
                    "metrics",
                    "sheet",
                    "shard",
                    "lock",
                    "downloads",
                    "items",
                    "headline",
                )
            )
            flag = getattr(p, "is_flag", False)
            if (
                looks_like_path and not flag and p.name not in ("out_name",)
            ):  # mine --out: a name under --root
                assert isinstance(p.type, click.Path), f"{script.name} {p.opts}: not a path type"


# ================================================================ 2. model files that are not what they say


def _weights(kind: str, t: Path, world) -> Path:
    """A weights file at ``t`` of ``kind``, for a model of ``world``'s params."""
    from safetensors.torch import save_file

    from genemi.config import params_from_dict
    from genemi.models import build_model, save_weights

    good = Path(world["base"]).read_bytes()
    path = t / f"{kind}.safetensors"
    if kind == "truncated":
        path.write_bytes(good[: len(good) * 2 // 3])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(os.urandom(20000))
    elif kind == "header_only":  # a valid header that promises tensors the file lacks
        n = int.from_bytes(good[:8], "little")
        path.write_bytes(good[: 8 + n])
    elif kind == "resnet":
        import torchvision

        save_file(
            {k: v.contiguous() for k, v in torchvision.models.resnet18().state_dict().items()}, str(path)
        )
    elif kind == "other_width":  # the same names, other shapes: the tiny model with another embed width
        from safetensors.torch import load_file

        state = load_file(str(world["base"]))
        save_file(
            {k: torch.zeros(*(s + 1 for s in v.shape)) if v.ndim else v for k, v in state.items()}, str(path)
        )
    elif kind in ("nan", "inf"):
        from safetensors.torch import load_file

        state = load_file(str(world["base"]))
        k = sorted(k for k in state if state[k].is_floating_point() and state[k].numel() > 1)[3]
        state[k].view(-1)[5] = float("nan") if kind == "nan" else float("inf")
        save_file(state, str(path), metadata={"genemi": json.dumps({"arch": world["raw"]["model"]["arch"]})})
    elif kind == "pickle":  # a PyTorch checkpoint (zip of pickles) under a .safetensors name
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    elif kind == "other_arch_meta":  # shapes fit, but the file says it was written for another model.arch
        p = params_from_dict(world["raw"])
        save_weights(build_model(p.model), path, {"arch": "genemi-synth-vit-quickgelu", "tokenizer": "word"})
    else:
        raise ValueError(kind)
    return path


MODEL_KINDS = [
    "truncated",
    "empty",
    "random",
    "header_only",
    "resnet",
    "other_width",
    "nan",
    "inf",
    "pickle",
    "other_arch_meta",
]


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_bad_finetuned_weights_are_named_with_their_option(tmp_path, world, kind):
    t = tmp_path / "t"
    t.mkdir()
    bad = _weights(kind, t, world)
    _old(t / "m.json")
    args = _eval_args(t, world, **{"--finetuned": bad})
    before = snapshot(tmp_path)
    code, text = _invoke(_stage("evaluate"), args)
    assert_failed(code, text, str(bad), "--finetuned")
    assert "size mismatch" not in text and len(text.split("Error: ", 1)[1].strip().splitlines()) == 2, text
    assert_unchanged(before, tmp_path)


@pytest.mark.parametrize("kind", ["truncated", "resnet", "nan"])
def test_bad_base_weights_fail_finetune_before_training(tmp_path, world, kind):
    t = tmp_path / "t"
    t.mkdir()
    bad = _weights(kind, t, world)
    args = _ft_args(t, world, **{"--base": bad})
    before = snapshot(tmp_path)
    code, text = _invoke(_stage("finetune"), args)
    assert_failed(code, text, str(bad), "--base")
    assert "train" not in text.split("Error: ")[0]  # no progress bar: refused before the first step
    assert_unchanged(before, tmp_path)


def _pt(kind: str, t: Path, world) -> Path:
    """A ``model.pretrained`` checkpoint file of ``kind`` in ``t``'s data/models/pretrained/ (where the
    params check wants it), in PyTorch formats read with weights_only."""
    from safetensors.torch import load_file

    from genemi.config import PRETRAINED_DIR

    state = load_file(str(world["base"]))
    path = t / PRETRAINED_DIR / f"{kind}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "truncated":
        torch.save(state, path)
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "resnet":
        import torchvision

        torch.save(torchvision.models.resnet18().state_dict(), path)
    elif kind == "code":  # a pickle that would run a command when unpickled
        path.write_bytes(b"cos\nsystem\n(S'echo unpickled > " + str(t / "PWNED").encode() + b"'\ntR.")
    elif kind == "nan":
        state["positional_embedding"][0, 0] = float("nan")
        torch.save(state, path)
    return path


@pytest.mark.parametrize("kind", ["truncated", "empty", "resnet", "code", "nan"])
def test_bad_pretrained_checkpoint_file_is_named_with_its_key(tmp_path, world, kind, monkeypatch):
    from genemi.config import PRETRAINED_DIR

    t = tmp_path / "t"
    t.mkdir()
    monkeypatch.chdir(t)  # model.pretrained is relative to the project root
    bad = _pt(kind, t, world)
    rel = f"{PRETRAINED_DIR}/{bad.name}"
    params = _params(
        t, world["raw"], **{"model.pretrained": rel, "model.tokenizer": "word", "finetune.lr": 1e-5}
    )
    _old(t / "b.safetensors")
    args = _base_args(t, world, **{"--params": params})
    before = snapshot(tmp_path)
    code, text = _invoke(_stage("base"), args)
    assert_failed(code, text, f"{rel} (model.pretrained)")  # the loader's message, not a params check
    error = text.split("Error: ", 1)[1]
    assert len(error.strip().splitlines()) == 2 and "weights_only" not in error, error
    assert not (t / "PWNED").exists()
    assert_unchanged(before, tmp_path)


# -------------------------------------------------------------------------------- resume checkpoints


@pytest.fixture(scope="module")
def killed(tmp_path_factory, world):
    """A finetune run killed right after its first checkpoint: (params, its checkpoint folder)."""
    from genemi import checkpoint

    t = tmp_path_factory.mktemp("killed")
    params = _params(t, world["raw"])
    save = checkpoint.save

    class Killed(BaseException):
        pass

    def save_then_die(*a, **k):
        save(*a, **k)
        raise Killed

    checkpoint.save = save_then_die
    try:
        with pytest.raises(Killed):
            CliRunner().invoke(
                _stage("finetune"),
                [str(a) for a in _ft_args(t, world, **{"--params": params, "--checkpoint-dir": t / "ck"})],
                catch_exceptions=False,
            )
    finally:
        checkpoint.save = save
    assert (t / "ck" / checkpoint.LATEST).is_file()
    return params, t / "ck"


def _damage(ck: Path, kind: str) -> None:
    latest = json.loads((ck / "latest.json").read_text())
    folder = ck / latest["tag"]
    if kind.startswith("latest_no_"):
        del latest[kind.removeprefix("latest_no_")]
        (ck / "latest.json").write_text(json.dumps(latest))
    elif kind == "latest_not_json":
        (ck / "latest.json").write_text('{"fingerprint": "ab')
    elif kind == "latest_tag_escapes":
        latest["tag"] = "../../elsewhere"
        (ck / "latest.json").write_text(json.dumps(latest))
    elif kind == "latest_step_text":
        latest["step"] = "2"
        (ck / "latest.json").write_text(json.dumps(latest))
    elif kind == "model_states_truncated":
        f = next(folder.glob("*model_states.pt"))
        f.write_bytes(f.read_bytes()[:1000])
    elif kind == "every_shard_empty":
        for f in folder.glob("*.pt"):
            f.write_bytes(b"")
    elif kind == "model_states_missing":
        next(folder.glob("*model_states.pt")).unlink()
    elif kind == "step_folder_missing":
        shutil.rmtree(folder)
    else:
        raise ValueError(kind)


RESUME_KINDS = [
    "latest_no_tag",
    "latest_no_step",
    "latest_no_fingerprint",
    "latest_not_json",
    "latest_tag_escapes",
    "latest_step_text",
    "model_states_truncated",
    "every_shard_empty",
    "model_states_missing",
    "step_folder_missing",
]


@pytest.mark.parametrize("kind", RESUME_KINDS)
def test_damaged_resume_checkpoint_names_the_folder_to_delete(tmp_path, world, killed, kind):
    params, ck0 = killed
    t = tmp_path / "t"
    shutil.copytree(ck0, t / "ck")
    _damage(t / "ck", kind)
    args = _ft_args(t, world, **{"--params": params, "--checkpoint-dir": t / "ck"})
    before = snapshot(tmp_path)
    code, text = _invoke(_stage("finetune"), args)
    assert_failed(code, text, str(t / "ck"), "rm -r")
    assert_unchanged(before, tmp_path)  # the damaged state is left for the user to look at, outputs untouched


# ========================================================================================= 7. partial writes


def _enospc_on(monkeypatch, module, name: str, when=lambda *a, **k: True):
    """Make ``module.name`` raise ENOSPC (disk full) when ``when(*args)`` holds."""
    real = getattr(module, name)

    def fail(*a, **k):
        if when(*a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(module, name, fail)


def _disk_full_writing(monkeypatch, name: str) -> None:
    """The disk fills while the temporary of output ``name`` is written (``.<name>.<random>.tmp``)."""
    real = Path.write_text

    def write_text(self, *a, **k):
        if self.name.startswith(f".{name}."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", write_text)


def _evaluate_twice(tmp_path, world, monkeypatch, fault) -> tuple[int, str, dict, Path]:
    """Evaluate once (seed 0) to have old outputs, then again with other params under ``fault``."""
    t = tmp_path / "t"
    t.mkdir()
    code, text = _invoke(_stage("evaluate"), _eval_args(t, world))
    assert code == 0, text
    other = _other_weights(tmp_path / "other.safetensors", world)  # every output would change
    before = snapshot(tmp_path)
    fault(monkeypatch)
    code, text = _invoke(_stage("evaluate"), _eval_args(t, world, **{"--finetuned": other}))
    return code, text, before, t


def _other_weights(path: Path, world) -> Path:
    """The world's base weights, perturbed: another model of the same architecture and metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    state = load_file(str(world["base"]))
    with safe_open(str(world["base"]), framework="pt") as f:
        meta = f.metadata()
    g = torch.Generator().manual_seed(1)
    save_file(
        {
            k: v + 0.05 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
            for k, v in state.items()
        },
        str(path),
        metadata=meta,
    )
    return path


def test_evaluate_full_disk_on_the_last_plot_leaves_every_output_old(tmp_path, world, monkeypatch):
    """Metrics, headline, items and the CSVs are written, then the PNG hits a full disk."""
    import genemi.io as gio

    code, text, before, t = _evaluate_twice(
        tmp_path,
        world,
        monkeypatch,
        lambda mp: _enospc_on(mp, gio, "atomic_path", lambda path, *a, **k: str(path).endswith(".png")),
    )
    assert_failed(code, text, "No space left")
    assert_unchanged(before, tmp_path)


def test_evaluate_without_the_fault_would_change_every_output(tmp_path, world, monkeypatch):
    """The reference for the case above: the same second run without a fault rewrites the outputs (so the
    comparison there can fail)."""
    code, text, before, t = _evaluate_twice(tmp_path, world, monkeypatch, lambda mp: None)
    assert code == 0, text
    after = snapshot(tmp_path)
    for rel in ("t/m.json", "t/h.json", "t/i.npz", "t/plots/synth_test.csv"):
        assert after[rel] != before[rel], rel


def test_evaluate_fault_while_publishing_restores_the_outputs_already_moved(tmp_path, world, monkeypatch):
    """The third rename fails (disk full on a metadata update): the two outputs already in place go back."""
    import genemi.io as gio

    calls = {"n": 0}
    real = os.replace

    def replace(src, dst):  # inside a stage, genemi.io renames only when it publishes
        calls["n"] += 1
        if calls["n"] == 5:  # old metrics aside, new in, old headline aside, new in, old items aside: fails
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    code, text, before, t = _evaluate_twice(
        tmp_path, world, monkeypatch, lambda mp: mp.setattr(gio.os, "replace", replace)
    )
    assert_failed(code, text, "No space left", str(t))
    assert_unchanged(before, tmp_path)


def test_finetune_metrics_fail_after_the_weights_are_written(tmp_path, world, monkeypatch):
    """The weights are written, then the metrics hit a full disk: the old weights, metrics and curves stay."""
    t = tmp_path / "t"
    t.mkdir()
    code, text = _invoke(_stage("finetune"), _ft_args(t, world))
    assert code == 0, text
    before = snapshot(tmp_path)
    params = _params(t, world["raw"], **{"finetune.lr": 0.002})
    _disk_full_writing(monkeypatch, "ft.json")
    code, text = _invoke(_stage("finetune"), _ft_args(t, world, **{"--params": params}))
    assert_failed(code, text, str(t / "ft.json"), "No space left")
    before["t/params.yaml"] = snapshot(tmp_path)["t/params.yaml"]
    assert_unchanged(before, tmp_path)


def test_finetune_failure_keeps_the_checkpoints_for_a_resume(tmp_path, world, monkeypatch):
    """Clearing the resume state waits for the outputs: a failure while writing them keeps it."""
    from genemi import checkpoint

    t = tmp_path / "t"
    t.mkdir()
    cleared = []
    monkeypatch.setattr(checkpoint, "clear", lambda d: cleared.append(d))
    _disk_full_writing(monkeypatch, "ft.json")
    code, text = _invoke(_stage("finetune"), _ft_args(t, world, **{"--checkpoint-dir": t / "ck"}))
    assert_failed(code, text, "No space left")
    assert cleared == [] and not (t / "ft.safetensors").exists()


def test_base_weights_fail_and_the_old_metrics_stay(tmp_path, world, monkeypatch):
    from genemi import models

    t = tmp_path / "t"
    t.mkdir()
    code, text = _invoke(_stage("base"), _base_args(t, world))
    assert code == 0, text
    before = snapshot(tmp_path)
    params = _params(t, world["raw"], **{"base.lr": 0.002})

    def save_half(model, path, meta):  # the disk fills in the middle of the weights
        from genemi.io import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(models, "save_weights", save_half)
    code, text = _invoke(_stage("base"), _base_args(t, world, **{"--params": params}))
    assert_failed(code, text, str(t / "b.safetensors"), "No space left")
    before["t/params.yaml"] = snapshot(tmp_path)["t/params.yaml"]
    assert_unchanged(before, tmp_path)


def _tiny_synth(raw: dict) -> dict:
    raw = json.loads(json.dumps(raw))
    raw["synth"].update(n_train=12, n_test=6, n_gen=6)
    return raw


def test_synth_data_failing_on_the_last_split_leaves_every_split_old(tmp_path, world, monkeypatch):
    from genemi.synth import dataset

    t = tmp_path / "t"
    t.mkdir()
    raw = _tiny_synth(world["raw"])
    code, text = _invoke(_stage("synth_data"), ["--params", _params(t, raw), "--out", t / "data"])
    assert code == 0, text
    before = snapshot(tmp_path)
    params = _params(t, raw, seed=5)
    real = dataset.generate_split

    def gen_fails(p, split, seed):
        if split == "gen":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(p, split, seed)

    monkeypatch.setattr(dataset, "generate_split", gen_fails)
    code, text = _invoke(_stage("synth_data"), ["--params", params, "--out", t / "data"])
    assert_failed(code, text, "No space left")
    before["t/params.yaml"] = snapshot(tmp_path)["t/params.yaml"]
    assert_unchanged(before, tmp_path)


def test_mine_failing_on_one_split_leaves_train_test_and_digest_old(tmp_path, world, monkeypatch):
    from genemi.synth import dataset

    t = tmp_path / "t"
    t.mkdir()
    raw = _tiny_synth(world["raw"])
    assert _invoke(_stage("synth_data"), ["--params", _params(t, raw), "--out", t / "data"])[0] == 0
    code, text = _invoke(
        _stage("mine"), ["--params", _params(t, raw), "--root", t / "data", "--sheet", t / "s.png"]
    )
    assert code == 0, text
    before = snapshot(tmp_path)
    params = _params(t, raw, seed=3)
    real = dataset.mine_record

    def fails_on_gen(rec, *a, **k):
        if rec.split == "gen" or rec.id.startswith("gen"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(rec, *a, **k)

    monkeypatch.setattr(dataset, "mine_record", fails_on_gen)
    code, text = _invoke(_stage("mine"), ["--params", params, "--root", t / "data", "--sheet", t / "s.png"])
    assert_failed(code, text, "No space left")
    before["t/params.yaml"] = snapshot(tmp_path)["t/params.yaml"]
    assert_unchanged(before, tmp_path)


def test_evaluate_in_a_subprocess_with_a_failing_write(tmp_path, world):
    """A real process: the plots' PNG writer fails (disk full) after metrics, headline and items were
    written; exit 1, one `Error:` line first on stderr, every output as it was."""
    t = tmp_path / "t"
    t.mkdir()
    args = [str(a) for a in _eval_args(t, world)]
    code, text = _invoke(_stage("evaluate"), args)
    assert code == 0, text
    args[args.index("--finetuned") + 1] = str(_other_weights(tmp_path / "other.safetensors", world))
    before = snapshot(tmp_path)
    script = (
        "import errno, runpy, sys\n"
        "import genemi.io as gio\n"
        "real = gio.atomic_path\n"
        "def fail(path, *a, **k):\n"
        "    if str(path).endswith('.png'):\n"
        "        raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "    return real(path, *a, **k)\n"
        "gio.atomic_path = fail\n"
        "sys.argv = ['stages/evaluate.py'] + sys.argv[1:]\n"
        "runpy.run_path('stages/evaluate.py', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'stages'}"}
    res = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert res.returncode == 1, res.stderr
    first = [line for line in res.stderr.splitlines() if line.startswith("Error: ")]
    assert first and "No space left" in first[0] and "Traceback" not in res.stderr, res.stderr
    assert_unchanged(before, tmp_path)


def test_publish_is_all_or_nothing_for_files_and_folders(tmp_path, monkeypatch):
    """The output set alone: three files and a staged folder; the last rename fails: everything as before,
    no temporary left; without the fault everything new."""
    import genemi.io as gio

    outs = [
        gio.Port("--a", tmp_path / "a.json"),
        gio.Port("--b", tmp_path / "sub" / "b.txt"),
        gio.Port("--c", tmp_path / "c"),
        gio.Port("--live", tmp_path / "live", folder=True),
    ]
    for p in outs[:3]:
        _old(p.path)
    _old(tmp_path / "live" / "old.tsv")
    before = snapshot(tmp_path)

    def write_all():
        gio.write_json(outs[0].path, {"new": 1})
        gio.write_text(outs[1].path, "new\n")
        gio.write_text(outs[2].path, "new\n")
        folder = gio.output_folder(outs[3].path)
        (folder / "new.tsv").write_text("step\n")

    real = os.replace
    seen = []

    def replace(src, dst):
        seen.append(dst)
        if len(seen) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(gio.os, "replace", replace)
    with pytest.raises(gio.OutputError, match="No space left"):
        with gio.OutputSet(outs):
            write_all()
    assert_unchanged(before, tmp_path)
    monkeypatch.setattr(gio.os, "replace", real)
    with gio.OutputSet(outs):
        write_all()
    assert (tmp_path / "c").read_text() == "new\n" and sorted(os.listdir(tmp_path / "live")) == ["new.tsv"]
    assert not [p for p in tmp_path.rglob(".*")], "temporaries left"


def test_default_outputs_are_byte_identical_through_the_output_set(tmp_path, world):
    """synth_data + mine write the same bytes (digests included) as the library writing without a stage:
    the digest computed from the bytes written equals one read back from disk."""
    from genemi.manifest import image_digest

    raw = _tiny_synth(world["raw"])
    t = tmp_path / "t"
    assert _invoke(_stage("synth_data"), ["--params", _params(tmp_path, raw), "--out", t])[0] == 0
    assert (
        _invoke(
            _stage("mine"), ["--params", _params(tmp_path, raw), "--root", t, "--sheet", tmp_path / "s.png"]
        )[0]
        == 0
    )
    # synth_data's digest also covers the broad world's splits (pretrain, broad); mine reads the narrow ones
    for folder, splits in (("synth", ("train", "test", "gen", "pretrain", "broad")),
                           ("negatives", ("train", "test", "gen"))):
        stored = json.loads((t / folder / "digest.json").read_text())
        assert stored == image_digest(t, [t / folder / f"{s}.jsonl" for s in splits])


# ----------------------------------------------------------------------------- mining model files


@pytest.mark.parametrize("kind", ["truncated", "random", "nan"])
def test_bad_blip_folder_names_the_folder_and_its_key(tmp_path, kind):
    """A mining model folder (save_pretrained layout) whose weights file is damaged or non-finite."""
    from safetensors.torch import load_file, save_file

    from genemi.mining import models as M
    from genemi.mining import tiny

    folder = tiny.save_blip_itm(tmp_path / "blip")
    weights = next(folder.glob("*.safetensors"))
    if kind == "truncated":
        weights.write_bytes(weights.read_bytes()[:4096])
    elif kind == "random":
        weights.write_bytes(os.urandom(4096))
    else:
        state = load_file(str(weights))
        k = next(k for k, v in sorted(state.items()) if v.is_floating_point() and v.numel() > 1)
        state[k].view(-1)[0] = float("nan")
        save_file(state, str(weights), metadata={"format": "pt"})
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as e:  # bad content, not a missing file
        M.BlipItmScorer.from_pretrained(str(folder))
    msg = str(e.value)
    assert str(folder) in msg and "mine_real.blip_itm" in msg and "\n" not in msg, msg
    assert "not found" not in msg, msg
    assert_unchanged(before, tmp_path)


@pytest.mark.parametrize("kind", ["truncated", "resnet", "code"])
def test_bad_sam_checkpoint_names_the_file_and_its_key(tmp_path, kind):
    from genemi.mining import models as M
    from genemi.mining import tiny

    tiny.register_tiny_sam()
    path = tiny.save_sam(tmp_path / "sam.pth")
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[:3000])
    elif kind == "resnet":
        import torchvision

        torch.save(torchvision.models.resnet18().state_dict(), path)
    else:
        path.write_bytes(b"cos\nsystem\n(S'echo unpickled > " + str(tmp_path / "PWNED").encode() + b"'\ntR.")
    before = snapshot(tmp_path)
    with pytest.raises(Exception) as e:
        M.SamSegmenter.from_pretrained(path, "tiny")
    msg = str(e.value)
    assert (
        str(path) in msg
        and "mine_real.sam_checkpoint" in msg
        and "\n" not in msg
        and "size mismatch" not in msg
    )
    assert not (tmp_path / "PWNED").exists()
    assert_unchanged(before, tmp_path)


def test_temporaries_of_a_killed_run_are_swept_at_the_next_start(tmp_path, world):
    """SIGKILL runs no cleanup: the weights' temporary, a staged curves folder and a publish backup stay
    beside the outputs. The next run of the stage removes exactly those (not a user's look-alike files)."""
    t = tmp_path / "t"
    t.mkdir()
    script = (
        "import os, signal, sys\n"
        "import genemi.io as gio\n"
        "real = gio.OutputSet.add\n"
        "def add(self, path, tmp):\n"
        "    real(self, path, tmp)\n"
        "    if str(path).endswith('.safetensors'):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "gio.OutputSet.add = add\n"
        "sys.argv = ['stages/finetune.py'] + sys.argv[1:]\n"
        "import runpy; runpy.run_path('stages/finetune.py', run_name='__main__')\n"
    )
    args = [str(a) for a in _ft_args(t, world)]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'stages'}"}
    res = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert res.returncode == -9, res.stderr
    left = sorted(p.name for p in t.iterdir() if p.name.startswith("."))
    assert any(n.startswith(".ft.safetensors.") for n in left) and any(
        n.startswith(".live.") for n in left
    ), left
    assert not (t / "ft.safetensors").exists() and not (t / "live").exists()  # nothing half-published
    _old(t / ".ft.safetensors.keep-me")  # not a temporary's name: stays
    code, text = _invoke(_stage("finetune"), args)
    assert code == 0, text
    assert sorted(p.name for p in t.iterdir() if p.name.startswith(".")) == [".ft.safetensors.keep-me"]


def test_hnc_manifest_stats_fail_and_the_old_manifest_folder_stays(tmp_path, world, monkeypatch):
    """The manifests folder is filled and ready to replace the old one; the stats hit a full disk: the
    old folder stays whole (it is published only with the stats)."""
    t = tmp_path / "t"
    _old(t / "hnc_out" / "train.jsonl", '{"old": 1}\n')
    _old(t / "hnc_data.json", '{"old": 1}\n')
    args = [
        "--params",
        _params(t, world["raw"]),
        "--hnc",
        t / "hnc",
        "--images",
        t / "gqa",
        "--out",
        t / "hnc_out",
        "--stats",
        t / "hnc_data.json",
    ]
    before = snapshot(tmp_path)
    _disk_full_writing(monkeypatch, "hnc_data.json")
    code, text = _invoke(_stage("hnc_manifest"), args)
    assert_failed(code, text, str(t / "hnc_data.json"), "No space left")
    assert_unchanged(before, tmp_path)
    monkeypatch.undo()
    code, text = _invoke(_stage("hnc_manifest"), args)  # the reference: without the fault both are new
    assert code == 0, text
    assert sorted(p.name for p in (t / "hnc_out").iterdir()) == ["test.jsonl", "train.jsonl", "val.jsonl"]
    assert "skipped" in (t / "hnc_data.json").read_text()
