"""DeepSpeed config, trainable parts, and N processes x B/N == 1 process x B."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import pytest
import torch

from genemi.engine import deepspeed_config, frozen_copy, reference_weights, set_trainable

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
WORKER = str(ROOT / "tests" / "train_worker.py")


@pytest.fixture(scope="module")
def params():
    return frozen_params.load()


def test_deepspeed_config_from_params(params):
    ds = dataclasses.replace(params.deepspeed, zero_stage=2, precision="bf16", grad_accum=2)
    cfg = deepspeed_config(params.finetune, ds, world_size=4)
    assert cfg["train_batch_size"] == params.finetune.batch_size
    assert cfg["train_micro_batch_size_per_gpu"] * 4 * 2 == params.finetune.batch_size
    assert cfg["zero_optimization"]["stage"] == 2 and cfg["bf16"]["enabled"] and not cfg["fp16"]["enabled"]
    assert cfg["gradient_clipping"] == params.finetune.grad_clip
    assert cfg["scheduler"]["type"] == "WarmupCosineLR"
    with pytest.raises(ValueError, match="divisible"):
        deepspeed_config(params.finetune, ds, world_size=3)
    with pytest.raises(ValueError, match="zero_stage"):
        deepspeed_config(params.finetune, dataclasses.replace(ds, zero_stage=3), world_size=1)


@pytest.mark.parametrize(
    "part,expect,frozen",
    [
        ("full", "logit_scale", None),
        ("vision", "visual.conv1.weight", "token_embedding.weight"),
        ("text", "token_embedding.weight", "visual.conv1.weight"),
        (
            "last_blocks",
            "visual.transformer.resblocks.2.mlp.c_fc.weight",
            "visual.transformer.resblocks.1.mlp.c_fc.weight",
        ),
    ],
)
def test_set_trainable(params, part, expect, frozen):
    from genemi.models import build_model

    model = build_model(params.model)
    names = set(set_trainable(model, dataclasses.replace(params.finetune, trainable=part), params.loss))
    assert expect in names
    if frozen:
        assert frozen not in names and "logit_scale" not in names
    if part == "last_blocks":
        assert "transformer.resblocks.2.attn.in_proj_weight" in names
        assert not any("resblocks.0." in n for n in names)
    assert set(reference_weights(model)) == names


def test_fixed_temperature_and_teacher(params):
    from genemi.models import build_model

    model = build_model(params.model)
    names = set_trainable(model, params.finetune, dataclasses.replace(params.loss, temperature=0.07))
    assert "logit_scale" not in names
    assert float(model.logit_scale.exp()) == pytest.approx(1 / 0.07)
    teacher = frozen_copy(model)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    assert teacher.visual.conv1.weight.data_ptr() != model.visual.conv1.weight.data_ptr()
    assert math.isclose(float(teacher.logit_scale), float(model.logit_scale))


def _run(cmd, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):  # set by in-process runs
        env.pop(k, None)
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]


def _torchrun():
    return [str(Path(PY).parent / "torchrun"), "--nproc_per_node", "2", "--master_port", str(_free_port())]


def _deepspeed():
    port = str(_free_port())
    return [str(Path(PY).parent / "deepspeed"), "--num_accelerators", "2", "--master_port", port]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("config", ["additive", "thesis", "rows", "replay"])
def test_two_processes_equal_one(tmp_path, config):
    """2 CPU processes x 4 samples == 1 process x 8: every loss, the gradient and final weights."""
    from safetensors.torch import load_file

    _run([PY, WORKER, str(tmp_path / "one"), config])
    # one config under torchrun, the other under DeepSpeed's own launcher (passes --local_rank)
    launcher = _torchrun() if config != "thesis" else _deepspeed()
    _run(launcher + [WORKER, str(tmp_path / "two"), config])
    one = json.loads((tmp_path / "one" / "losses.json").read_text())
    two = json.loads((tmp_path / "two" / "losses.json").read_text())
    assert len(one["steps"]) == len(two["steps"]) == 4
    for a, b in zip(one["steps"], two["steps"], strict=True):
        for k in a:
            assert abs(a[k] - b[k]) < 1e-5, (k, a, b)
    files = ["weights"] + (["grads"] if config in ("additive", "replay") else [])  # ZeRO 1/2 keep no p.grad
    for f in files:
        wa = load_file(str(tmp_path / "one" / f"{f}.safetensors"))
        wb = load_file(str(tmp_path / "two" / f"{f}.safetensors"))
        assert set(wa) == set(wb)
        for k in wa:
            assert torch.allclose(wa[k], wb[k], atol=1e-5, rtol=0), (f, k, (wa[k] - wb[k]).abs().max())
    # the run really trained: the final weights moved away from the initial ones
    if config == "thesis":
        assert one["steps"][-1]["l2"] > 0 and one["steps"][-1]["kl"] > 0
    if config == "replay":  # the replayed pairs' term, gathered over both ranks as over one
        assert one["steps"][-1]["replay"] > 0
    if config == "rows":  # the partner rows really act as hard negatives on both sides
        assert one["steps"][-1]["hn_text"] > 0 and one["steps"][-1]["hn_image"] > 0
