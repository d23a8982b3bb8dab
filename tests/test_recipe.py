"""Recipes are complete: a recipe's result does not depend on what params.yaml held before it.

``dvc exp run -S key=value`` leaves its values in params.yaml (DVC applies an experiment to the workspace),
so a recipe that started from the file would inherit them: ``standin_hnc`` once ran as plain CLIP because an
earlier run had left ``loss.hn_weight: 0``. ``apply`` and ``flags`` start from the committed params instead.
The reference for what ``-S`` does is DVC's own override code (``dvc.utils.hydra.apply_overrides``), the code
``dvc exp run`` runs. No test here reads the live params.yaml: the start is the frozen fixture.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import pytest
import yaml

from genemi import recipe
from genemi.config import ConfigError, params_from_dict

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml"))


def _write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _dirty() -> dict:
    """What earlier experiments leave behind: `-S` values no recipe names, a benchmark added by `+`, and a
    changed value that some recipes do name."""
    raw = frozen_params.raw()
    raw["loss"]["hn_weight"] = 0.0
    raw["loss"]["kl_temperature"] = 3.0
    raw["synth"]["n_train"] = 64
    raw["eval"]["bootstrap"] = 7
    raw["eval"]["benchmarks"]["extra"] = dict(raw["eval"]["benchmarks"]["synth_test"], subset=0.5)
    return raw


def _expected(name: str) -> dict:
    return recipe.target(recipe.load_recipe(name, ROOT / "recipes"), frozen_params.raw())


def test_every_recipe_names_the_loss_weight_and_its_data():
    """The keys a recipe's result hangs on are in the recipe itself, not only in the committed defaults."""
    for name in NAMES:
        keys = recipe.load_recipe(name, ROOT / "recipes").params
        for key in ("loss.hn_weight", "loss.form", "data.source", "finetune.steps", "eval.benchmarks"):
            assert key in keys, f"recipes/{name}.yaml does not set {key}"


@pytest.mark.parametrize("second", NAMES)
def test_applying_a_then_b_equals_applying_b(tmp_path, second):
    fresh = _write(tmp_path / "fresh.yaml", frozen_params.raw())
    recipe.apply(recipe.load_recipe(second, ROOT / "recipes"), fresh, base=frozen_params.raw())
    want = yaml.safe_load(fresh.read_text())
    assert want == _expected(second)
    for first in NAMES:  # params.yaml as recipe A left it, with an experiment's -S values on top
        both = _write(tmp_path / "both.yaml", frozen_params.raw())
        recipe.apply(recipe.load_recipe(first, ROOT / "recipes"), both, base=_dirty())
        recipe.apply(recipe.load_recipe(second, ROOT / "recipes"), both, base=frozen_params.raw())
        got = yaml.safe_load(both.read_text())
        assert got == want, (first, second)
        assert list(got["eval"]["benchmarks"]) == list(want["eval"]["benchmarks"])  # same order too


def test_apply_resets_leftovers_and_reports_them(tmp_path):
    path = _write(tmp_path / "params.yaml", _dirty())
    changed = recipe.apply(
        recipe.load_recipe("standin_hnc", ROOT / "recipes"), path, base=frozen_params.raw()
    )
    by_key = {k: (old, new) for k, old, new in changed}
    want = _expected("standin_hnc")
    assert by_key["loss.hn_weight"] == (0.0, want["loss"]["hn_weight"]) and want["loss"]["hn_weight"] > 0
    assert by_key["loss.kl_temperature"] == (3.0, 1.0) and by_key["synth.n_train"] == (64, 10000)
    assert by_key["eval.bootstrap"] == (7, 200)
    assert yaml.safe_load(path.read_text()) == want
    assert (
        recipe.apply(recipe.load_recipe("standin_hnc", ROOT / "recipes"), path, base=frozen_params.raw())
        == []
    )


@pytest.mark.parametrize("name", NAMES)
def test_flags_make_dvc_run_the_recipe_whatever_params_yaml_held(tmp_path, name):
    """``dvc exp run $(... flags NAME)`` on a dirty params.yaml gives committed params + recipe: the flags go
    through DVC's own override code."""
    from dvc.utils.hydra import apply_overrides

    r = recipe.load_recipe(name, ROOT / "recipes")
    for start in (_dirty(), frozen_params.raw(), _expected(NAMES[(NAMES.index(name) + 1) % len(NAMES)])):
        path = _write(tmp_path / "params.yaml", start)
        args = recipe.flags(r, start, frozen_params.raw())
        assert args[::2] == ["-S"] * (len(args) // 2)
        apply_overrides(path, args[1::2])
        assert params_from_dict(yaml.safe_load(path.read_text())) == params_from_dict(_expected(name)), name


def test_flags_without_a_base_only_set_the_recipe_keys():
    r = recipe.load_recipe("standin_hnc", ROOT / "recipes")
    keys = {a.split("=")[0].lstrip("+~") for a in recipe.flags(r, _dirty())[1::2]}
    assert "synth.n_train" not in keys  # left dirty by _dirty() and named by no recipe: only a base resets it
    assert "synth.n_train=" + str(frozen_params.raw()["synth"]["n_train"]) in recipe.flags(
        r, _dirty(), frozen_params.raw())


def test_the_start_is_the_committed_params_file(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    path = _write(repo / "params.yaml", frozen_params.raw())
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    with pytest.raises(ConfigError, match="no committed version at 'HEAD'.*--from current"):
        recipe.start_params(path)  # not a git repository yet: say so, never fall back silently
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "params.yaml"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "params"], cwd=repo, check=True)
    _write(path, _dirty())  # what `dvc exp run -S ...` leaves behind
    assert recipe.start_params(path) == frozen_params.raw()
    assert recipe.start_params(path, "current") == _dirty()
    other = _write(tmp_path / "other.yaml", _expected("negclip"))
    assert recipe.start_params(path, str(other)) == _expected("negclip")
    cli = [sys.executable, "-m", "genemi.recipe"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # this checkout's genemi, run from the other repository
    out = subprocess.run(
        [*cli, "apply", "standin_hnc"], cwd=repo, capture_output=True, text=True, env=env, check=True
    )
    assert "loss.hn_weight: 0.0 ->" in out.stdout and "synth.n_train: 64 -> 10000" in out.stdout
    assert yaml.safe_load(path.read_text()) == _expected("standin_hnc")


def test_recipe_list_finds_the_recipes_from_any_folder_and_fails_loudly_without(tmp_path):
    cli = [sys.executable, "-m", "genemi.recipe"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([*cli, "list"], cwd=tmp_path, capture_output=True, text=True, env=env, check=True)
    assert [line.split(":")[0] for line in out.stdout.splitlines()] == NAMES
    for folder in (tmp_path / "absent", tmp_path):  # a folder that is not there, and one without recipes
        r = subprocess.run(
            [*cli, "list", "--dir", str(folder)], cwd=tmp_path, capture_output=True, text=True, env=env
        )
        assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith("Error: ")
        assert len(r.stderr.strip().splitlines()) == 1 and str(folder) in r.stderr
    with pytest.raises(FileNotFoundError, match="no recipes folder"):
        recipe.available(tmp_path / "absent")


def test_the_default_recipes_folder_is_the_checkouts_and_a_recipe_file_loads_from_anywhere(tmp_path):
    assert recipe.available() == NAMES
    shutil.copy(ROOT / "recipes" / "standin_hnc.yaml", tmp_path / "mine.yaml")
    assert recipe.load_recipe(str(tmp_path / "mine.yaml")).params == recipe.load_recipe("standin_hnc").params
