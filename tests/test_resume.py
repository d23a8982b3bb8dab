"""SIGKILL mid-training, rerun: resumes from the last checkpoint, ends bit-identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(ROOT / "tests" / "train_worker.py")


def _env():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _run(args):
    r = subprocess.run(
        [sys.executable, WORKER, *args], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-4000:]
    return r.stdout


@pytest.mark.slow
def test_sigkill_then_resume_is_identical(tmp_path):
    from safetensors.torch import load_file

    ck = tmp_path / "ckpt"
    _run([str(tmp_path / "straight"), "additive", "--steps", "6"])
    # slow steps so that the kill lands after the step-2 checkpoint and before the end
    proc = subprocess.Popen(
        [
            sys.executable,
            WORKER,
            str(tmp_path / "killed"),
            "additive",
            "--steps",
            "6",
            "--checkpoint-dir",
            str(ck),
            "--step-sleep",
            "1.5",
        ],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not (ck / "latest.json").is_file():
        assert proc.poll() is None, "worker ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint within 240 s"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "weights.safetensors").exists()
    latest = json.loads((ck / "latest.json").read_text())
    assert latest["step"] == 2
    out = _run([str(tmp_path / "resumed"), "additive", "--steps", "6", "--checkpoint-dir", str(ck)])
    assert "resuming from" in out and "at step 2" in out
    a = load_file(str(tmp_path / "straight" / "weights.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "weights.safetensors"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    ra = json.loads((tmp_path / "straight" / "losses.json").read_text())
    rb = json.loads((tmp_path / "resumed" / "losses.json").read_text())
    assert ra["tail"] == rb["tail"]
    assert [s["step"] for s in rb["steps"]] == [2, 3, 4, 5] and rb["steps"] == ra["steps"][2:]


def test_checkpoint_of_other_params_is_ignored(tmp_path):
    from genemi import checkpoint
    from genemi.io import write_json

    write_json(tmp_path / "latest.json", {"fingerprint": "other", "step": 4, "tag": "step00000004"})
    assert checkpoint.load(object(), tmp_path, "mine") is None
    assert checkpoint.load(object(), tmp_path / "none", "mine") is None
    f = tmp_path / "in.jsonl"
    f.write_text("a")
    assert checkpoint.fingerprint({"x": 1}, f) != checkpoint.fingerprint({"x": 2}, f)
