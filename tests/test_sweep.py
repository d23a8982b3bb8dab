"""Queued sweeps: parallel experiments share nothing that can collide (ports, extension builds),
and `dvc exp run --queue` + `dvc queue start -j 2` runs two tiny experiments to completion."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _env(**extra) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if k not in extra:
            env.pop(k, None)
    return env


@pytest.mark.slow
def test_one_process_run_uses_no_port_and_builds_no_extension(tmp_path):
    """A MASTER_PORT that another process holds (a parallel run, a shell export) does not matter, and
    nothing is compiled into the extensions folder every run shares."""
    ext = tmp_path / "ext"
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = str(held.getsockname()[1])
        r = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "train_worker.py"), str(tmp_path / "out"), "additive"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env=_env(
                PYTHONPATH=str(ROOT), MASTER_PORT=port, MASTER_ADDR="127.0.0.1", TORCH_EXTENSIONS_DIR=str(ext)
            ),
        )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert (tmp_path / "out" / "weights.safetensors").is_file()
    assert not ext.exists() or not any(ext.iterdir()), f"built: {list(ext.rglob('*'))[:5]}"


def _copy_worktree(dst: Path) -> None:
    """The working tree as git sees it (tracked + untracked, not ignored), as a fresh repo."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _dvc(cwd, *args, timeout=120) -> str:
    r = subprocess.run(
        [str(BIN / "dvc"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(PYTHONPATH=str(cwd)),
    )
    assert r.returncode == 0, f"dvc {' '.join(args)}: {r.stdout[-2000:]}{r.stderr[-3000:]}"
    return r.stdout


TINY = {  # a few steps on a small world: the pipeline's plumbing, not its results
    "synth": {"n_train": 64, "n_test": 24, "n_gen": 24},
    "base": {"steps": 2, "batch_size": 16, "warmup_steps": 1},
    "finetune": {"steps": 2, "batch_size": 16, "warmup_steps": 1},
    "eval": {"bootstrap": 10, "monitor_every": 0},
    "threads": 1,
}


def with_tiny(raw: dict, overrides: dict = TINY) -> dict:
    """``raw`` params with each section of ``overrides`` merged in (a dict section key by key)."""
    for section, values in overrides.items():
        if isinstance(values, dict):
            raw[section].update(values)
        else:
            raw[section] = values
    return raw


def commit_params(repo: Path, raw: dict, message: str = "tiny") -> None:
    """Write ``raw`` as the repo's params.yaml, drop its dvc.lock, and make it a one-commit git repo
    (dvclive needs a commit)."""
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (repo / "dvc.lock").unlink(missing_ok=True)
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)


@pytest.mark.slow
def test_queued_sweep_runs_two_experiments_in_parallel(tmp_path):
    if not (BIN / "dvc").is_file():
        pytest.skip("dvc is not installed in this environment")
    repo = tmp_path / "repo"
    _copy_worktree(repo)
    # not the workspace's params.yaml, which `dvc exp run -S` may have changed. The committed weight is
    # neither experiment's, so both queued experiments train and evaluate, at the same time
    raw = with_tiny(frozen_params.raw())
    raw["loss"]["hn_weight"] = 0.5
    commit_params(repo, raw)
    # the README's order: every stage the experiments share is built once (the whole pipeline), then the
    # variations are queued, so no two workers ever build the same stage. Two workers that do (the shared
    # `mine_real`, `base`) collide in DVC's cache and run cache: "unable to remove 'models/base.safetensors'
    # without a confirmation", or a run-cache temp file another worker moved (treeverse/dvc#10673)
    _dvc(repo, "repro", timeout=900)
    _dvc(repo, "status", "--quiet")  # exit 0: every stage is up to date before anything is queued
    _git(repo, "add", "-A")  # dvc.lock and the git-tracked metrics
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "shared stages")
    for w in ("0", "1"):
        _dvc(repo, "exp", "run", "--queue", "--name", f"hn{w}", "-S", f"loss.hn_weight={w}")
    t0 = time.time()
    # the workers are daemons that inherit stdout/stderr: with pipes, run() would wait for them to end
    with open(tmp_path / "queue-start.log", "w") as log:
        r = subprocess.run(
            [str(BIN / "dvc"), "queue", "start", "-j", "2"],
            cwd=repo,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(PYTHONPATH=str(repo)),
            timeout=120,
        )
    assert r.returncode == 0, (tmp_path / "queue-start.log").read_text()
    while time.time() - t0 < 900:
        status = _dvc(repo, "queue", "status")
        if not any(s in status for s in ("Queued", "Running")):
            break
        time.sleep(5)
    status = _dvc(repo, "queue", "status")
    assert status.count("Success") == 2, status + _dvc(repo, "queue", "logs", "hn1")
    from genemi.report import dvc_experiments

    exps = dict(dvc_experiments(repo))
    assert set(exps) == {"hn0", "hn1"}
    heads = {}
    for name, sha in exps.items():
        show = subprocess.run(
            ["git", "show", f"{sha}:metrics/headline/synth_test.json"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
        heads[name] = json.loads(show.stdout)
        params = yaml.safe_load(
            subprocess.run(
                ["git", "show", f"{sha}:params.yaml"], cwd=repo, capture_output=True, text=True, check=True
            ).stdout
        )
        assert params["loss"]["hn_weight"] == float(name[2:])
    # same seed, same data and base model: the base headline agrees, the fine-tuned models differ
    assert heads["hn0"]["base/macro_text"] == heads["hn1"]["base/macro_text"]
    r = subprocess.run(
        [sys.executable, "stages/report.py", "--out", "reports", "--bootstrap", "100"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(PYTHONPATH=str(repo)),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    md = (repo / "reports" / "results.md").read_text()
    assert "**control** loss.hn_weight=0" in md and "| loss.hn_weight=1 | loss.hn_weight=0 |" in md
