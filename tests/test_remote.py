"""Sharing a run across machines through a DVC remote (docs/remote.md).

One clone runs the pipeline (tiny settings) and pushes to a local-directory remote; a fresh `git clone` of
it pulls and must then have nothing to compute: `dvc status` is up to date, `dvc repro` runs no stage and
touches no file, and its metrics are the first clone's, byte for byte. That is how a second machine reuses
results instead of recomputing them (float results differ across CPUs). Every output is either cached
(pushed) or small and in git; an output that is neither would have to be recomputed, and the test names it."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import pytest
from test_sweep import BIN, ROOT, _copy_worktree, _dvc, _git, commit_params, with_tiny

ID = ("-c", "user.name=t", "-c", "user.email=t@t")


def _tiny_repo(repo: Path) -> None:
    """The working tree with the tiny params, as a fresh git repo with one commit."""
    _copy_worktree(repo)
    commit_params(repo, with_tiny(frozen_params.raw()))


def _unpullable(repo: Path) -> dict[str, list[str]]:
    """stage -> its outputs that neither the DVC remote nor git carries (`cache: false` and git-ignored)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        uncached = {s.name: [o.def_path for o in s.outs if not o.use_cache] for s in r.index.stages}
    found = {}
    for stage, paths in uncached.items():
        ignored = [
            p for p in paths if subprocess.run(["git", "check-ignore", "-q", p], cwd=repo).returncode == 0
        ]
        if ignored:
            found[stage] = ignored
    return found


def _files(repo: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (mtime_ns, size) of every file outside .git and .dvc."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(repo):
        if Path(dirpath) == repo:
            dirnames[:] = [d for d in dirnames if d not in (".git", ".dvc")]
        for f in filenames:
            p = Path(dirpath) / f
            st = p.stat()
            out[p.relative_to(repo).as_posix()] = (st.st_mtime_ns, st.st_size)
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under `folder`, except the training bank's caches
    (`<manifest>.bank/`: built by a training stage beside its manifest, ignored by DVC through .dvcignore,
    so a pulled clone that runs no stage has none)."""
    return {
        p.relative_to(folder).as_posix(): _sha(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.endswith(".bank") for part in p.relative_to(folder).parts)
    }


@pytest.mark.slow
def test_a_pulled_clone_reuses_the_pushed_run(tmp_path):
    if not (BIN / "dvc").is_file():
        pytest.skip("dvc is not installed in this environment")
    config_before = (ROOT / ".dvc" / "config").read_bytes()
    first, second, remote = tmp_path / "first", tmp_path / "second", tmp_path / "remote"
    _tiny_repo(first)
    _dvc(first, "repro", timeout=900)
    # docs/remote.md's steps: a shared remote is committed with the run, so every clone knows where to pull from
    _dvc(first, "remote", "add", "-d", "local", str(remote))
    _git(first, "add", "-A")
    _git(first, *ID, "commit", "-qm", "run + remote")
    assert "up to date" in _dvc(first, "status")
    _dvc(first, "push", timeout=300)
    assert "in sync" in _dvc(first, "status", "--cloud")

    _git(tmp_path, "clone", "-q", str(first), str(second))
    assert str(remote) in (second / ".dvc" / "config").read_text()
    _dvc(second, "pull", timeout=300)
    assert _unpullable(second) == {}, "outputs no remote or git carries: they would be recomputed"
    assert "up to date" in _dvc(second, "status")
    objects = [p for p in (remote / "files").rglob("*") if p.is_file()]
    assert len(objects) < 60, f"{len(objects)} objects pushed: image sets should be a few shards"

    before = _files(second)
    lock_before = (second / "dvc.lock").read_bytes()
    log = _dvc(second, "repro", timeout=900)
    ran = set(re.findall(r"Running stage '([^']+)'", log))
    restored = set(re.findall(r"Stage '([^']+)' is cached", log))
    assert not ran and not restored, log[-3000:]
    after = _files(second)
    touched = sorted(p for p in before if after.get(p) != before[p])
    assert not touched, f"rewritten by the repro on the pulled clone: {touched[:10]}"
    assert set(after) == set(before), sorted(set(after) ^ set(before))[:10]
    assert (second / "dvc.lock").read_bytes() == lock_before
    assert "up to date" in _dvc(second, "status")

    # the same metrics and the same stored outputs, byte for byte
    metrics = _tree(second / "metrics")
    assert {"base.json", "finetune.json", "headline/synth_test.json", "eval/synth_test.json"} <= set(metrics)
    assert metrics == _tree(first / "metrics")
    for out in ("models/base.safetensors", "models/finetuned.safetensors"):
        assert _sha(second / out) == _sha(first / out), out
    for folder in ("data/synth", "data/negatives"):
        mine, theirs = _tree(second / folder), _tree(first / folder)
        assert mine == theirs and mine, folder
    # the test worked on clones: the repository's own DVC config got no remote
    assert (ROOT / ".dvc" / "config").read_bytes() == config_before
