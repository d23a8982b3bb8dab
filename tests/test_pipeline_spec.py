"""The pipeline spec itself: dvc.yaml <-> params.yaml <-> stage scripts <-> registries."""

import re
from pathlib import Path

import pytest
import yaml

from genemi.config import load_params

ROOT = Path(__file__).resolve().parent.parent
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def _stages():
    for name, stage in DVC["stages"].items():
        yield name, stage.get("do", stage)


def _lookup(dotted: str):
    node = PARAMS
    for part in dotted.split("."):
        if "${item}" in part:
            return True  # foreach-templated key, checked per benchmark below
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@pytest.mark.parametrize("name,stage", list(_stages()))
def test_every_stage_lists_its_script_and_existing_params(name, stage):
    cmd = " ".join(stage["cmd"]) if isinstance(stage["cmd"], list) else stage["cmd"]
    scripts = re.findall(r"python (stages/\w+\.py)", cmd)
    assert scripts, f"{name}: cmd runs no stage script"
    for script in scripts:
        assert (ROOT / script).is_file(), f"{name}: {script} missing"
        assert script in stage["deps"], f"{name}: {script} not in deps"
    for dep in stage["deps"]:
        if dep.startswith(("genemi/", "stages/")):
            assert (ROOT / dep).exists(), f"{name}: dep {dep} does not exist"
    for key in stage.get("params", []):
        key = key if isinstance(key, str) else next(iter(key))
        assert _lookup(key) is not None, f"{name}: params key {key!r} not in params.yaml"


def test_default_pipeline_is_the_synthetic_one():
    p = load_params(ROOT / "params.yaml")
    assert p.data.source == "synthetic"
    assert p.model.pretrained == ""
    assert set(p.eval.benchmarks) == {"synth_test", "synth_gen"}


def test_every_benchmark_is_registered_and_configured():
    from genemi.benchmarks import _registry

    registry = _registry()
    p = load_params(ROOT / "params.yaml")
    for bench in p.eval.benchmarks:
        assert bench in p.eval.sources, f"eval.benchmarks names {bench!r} but eval.sources has no entry"
    for name, src in p.eval.sources.items():
        assert src.loader in registry, f"eval.sources.{name}: loader {src.loader!r} is not registered"


def test_metrics_are_small_uncached_files_under_metrics():
    for name, stage in _stages():
        for m in stage.get("metrics", []):
            path, opts = next(iter(m.items())) if isinstance(m, dict) else (m, {})
            assert path.startswith("metrics/"), f"{name}: metrics file {path} outside metrics/"
            assert opts.get("cache") is False, f"{name}: {path} must be cache: false (git-tracked)"
