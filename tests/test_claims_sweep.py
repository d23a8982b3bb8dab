"""The claims sweep's definition (genemi/sweep.py): which experiments it queues, with which params, and which
stages it builds first -- checked without running DVC's queue."""

import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from genemi import sweep

ROOT = Path(__file__).resolve().parents[1]


def _dotted(raw: dict, key: str):
    for part in key.split("."):
        raw = raw[part]
    return raw


def _overrides(cmd: list[str]) -> dict:
    """The -S key=value pairs of one argv, values read as DVC reads them (YAML)."""
    pairs = [cmd[i + 1] for i, x in enumerate(cmd) if x == "-S"]
    return {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in pairs)}


def test_every_arm_runs_with_every_seed_under_its_own_name():
    cmds = sweep.queue_commands((0, 1, 2))
    assert len(cmds) == len(sweep.ARMS) * 3 == 24
    names = [c[c.index("--name") + 1] for c in cmds]
    assert len(set(names)) == len(names)
    want = {(arm, seed) for arm in sweep.ARMS for seed in (0, 1, 2)}
    got = set()
    for c, name in zip(cmds, names, strict=True):
        assert c[:4] == ["dvc", "exp", "run", "--queue"]
        o = _overrides(c)
        seed = o.pop("seed")
        arm = next(a for a in sweep.ARMS if sweep.exp_name(a, seed) == name)
        assert o == {**sweep.COMMON, **sweep.ARMS[arm]}, name  # the arm's keys and COMMON's, values typed
        got.add((arm, seed))
    assert got == want
    assert [c for c in cmds if "claims-dpo-s1" in c][0][-6:] == [
        "-S", "loss.contrastive_weight=0.0", "-S", "loss.dpo_weight=1.0", "-S", "seed=1"]
    with pytest.raises(ValueError, match="arm 'l3'"):
        sweep.queue_commands((0,), ["l3"])


def test_arms_are_valid_params_and_differ_from_the_reference_in_their_keys_only():
    """Reads the shipped params.yaml (what the queue starts from): the reference values are its values, and
    each arm's overrides make a valid params set that differs from it in exactly those keys."""
    from genemi.config import params_from_dict, to_dict
    from genemi.recipe import apply_to
    from genemi.report_runs import flatten

    shipped = yaml.safe_load((ROOT / "params.yaml").read_text())
    for k, v in sweep.REFERENCE.items():
        assert _dotted(shipped, k) == v, f"{k}: the sweep's reference {v!r} is not the committed value"
    touched = {k for o in sweep.ARMS.values() for k in o}
    assert touched == set(sweep.REFERENCE), "every overridden key has its reference value, and no other"
    ref = flatten(to_dict(params_from_dict(shipped)))
    for arm, o in sweep.ARMS.items():
        for cmd in sweep.queue_commands((2,), [arm]):
            new = flatten(to_dict(params_from_dict(apply_to(shipped, _overrides(cmd)))))
            changed = {k for k in ref if ref[k] != new[k]}
            assert changed == {k for k in {**sweep.COMMON, **o} if new[k] != ref[k]} | {"seed"}, arm
            assert all(new[k] == v for k, v in {**sweep.COMMON, **o}.items()), arm


def test_shared_stages_are_those_the_fine_tuning_does_not_reach():
    """Against `dvc dag`: a stage is shared by one seed's runs when it is not downstream of finetune."""
    from test_pipeline_spec import _dag_edges

    edges = {(a.split("@")[0], b.split("@")[0]) for a, b in _dag_edges()}
    down, todo = {"finetune"}, ["finetune"]
    while todo:
        a = todo.pop()
        for x, y in edges:
            if x == a and y not in down:
                down.add(y)
                todo.append(y)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    shared = sweep.shared_stages(ROOT / "dvc.yaml")
    assert set(shared) == set(stages) - down
    assert {"synth_data", "mine", "base"} <= set(shared)
    assert not {"finetune", "evaluate", "wise", "wise_eval"} & set(shared)


def test_preparation_builds_each_seed_with_the_common_params_once_and_drops_the_experiment():
    cmds = sweep.prepare_commands((0, 1, 2), {"seed": 0, "threads": 2}, dvc_yaml=ROOT / "dvc.yaml")
    assert [c[:4] for c in cmds] == [
        ["dvc", "exp", "run", "--temp"], ["dvc", "exp", "remove", "claims-pre-s0"],
        ["dvc", "exp", "run", "--temp"], ["dvc", "exp", "remove", "claims-pre-s1"],
        ["dvc", "exp", "run", "--temp"], ["dvc", "exp", "remove", "claims-pre-s2"]]
    for i, seed in enumerate((0, 1, 2)):
        assert _overrides(cmds[2 * i]) == {**sweep.COMMON, "seed": seed}
        assert cmds[2 * i + 1] == ["dvc", "exp", "remove", cmds[2 * i][cmds[2 * i].index("--name") + 1]]
    assert "base" in cmds[0] and "finetune" not in cmds[0]
    # a seed that `dvc repro` of the committed params already built with the same COMMON values is skipped
    same = sweep.prepare_commands((0, 1), {"seed": 0, **sweep.COMMON}, dvc_yaml=ROOT / "dvc.yaml")
    assert [c[-1] if c[1] == "exp" and c[2] == "remove" else None for c in same] == [None, "claims-pre-s1"]


def test_without_queue_it_prints_the_commands_and_runs_nothing(capsys, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("ran a command")

    monkeypatch.setattr(sweep, "_committed", lambda *a: {"seed": 0, "threads": 2})
    monkeypatch.setattr(subprocess, "run", refuse)
    assert sweep.main(["claims", "--seeds", "0,1", "--arms", "hn,control"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [shlex.split(x)[:4] for x in lines] == [["dvc", "exp", "run", "--temp"],
                                                   ["dvc", "exp", "remove", "claims-pre-s0"],
                                                   ["dvc", "exp", "run", "--temp"],
                                                   ["dvc", "exp", "remove", "claims-pre-s1"]] + [
        ["dvc", "exp", "run", "--queue"]] * 4
    assert sweep.main(["claims", "--arms", "hn,l3"]) == 2


def test_queue_refuses_params_that_differ_from_the_committed_ones(tmp_path, monkeypatch, capsys):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    subprocess.run(["git", "add", "params.yaml"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "p"], cwd=tmp_path,
                   check=True)
    (tmp_path / "params.yaml").write_text("seed: 5\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="differs from the committed version"):
        sweep._check_clean()


@pytest.mark.slow
def test_every_arm_fine_tunes_on_a_tiny_world(tmp_path):
    """Each arm's overrides on the frozen params train (3 steps): an arm that cannot run would cost a
    queued sweep its rows. The control trains no hard-negative term, no_image_negatives no image side."""
    import json

    import frozen_params
    from click.testing import CliRunner

    from genemi.recipe import apply_to
    from stages import base, finetune, mine, synth_data

    raw = frozen_params.raw()
    raw["synth"].update(n_train=96, n_test=24, n_gen=24)
    raw["base"].update(steps=2, batch_size=32, warmup_steps=1)
    raw["finetune"].update(steps=3, batch_size=16, warmup_steps=1)
    raw["eval"]["monitor"] = ""
    params, data, r = tmp_path / "params.yaml", tmp_path / "data", CliRunner()
    params.write_text(yaml.safe_dump(raw))
    train = ["--train", str(data / "negatives" / "train.jsonl"), "--image-root", str(data)]

    def ok(res):
        assert res.exit_code == 0, f"{res.output}\n{res.exception!r}"

    ok(r.invoke(synth_data.main, ["--params", str(params), "--out", str(data)]))
    sheet = str(tmp_path / "s.png")
    ok(r.invoke(mine.main, ["--params", str(params), "--root", str(data), "--sheet", sheet]))
    ok(r.invoke(base.main, ["--params", str(params), *train, "--out", str(tmp_path / "base.safetensors"),
                            "--metrics", str(tmp_path / "base.json")]))
    for arm, overrides in sweep.ARMS.items():
        p = tmp_path / f"{arm}.yaml"
        p.write_text(yaml.safe_dump(apply_to(raw, overrides)))
        ok(r.invoke(finetune.main, ["--params", str(p), *train, "--base", str(tmp_path / "base.safetensors"),
                                    "--out", str(tmp_path / f"{arm}.safetensors"),
                                    "--metrics", str(tmp_path / f"{arm}.json"),
                                    "--live-dir", str(tmp_path / f"live_{arm}"), "--data", str(data),
                                    "--replay", str(data / "synth" / "pretrain.jsonl"), str(data)]))
        m = json.loads((tmp_path / f"{arm}.json").read_text())
        assert (m["train_hn_text"] == 0) == (arm == "control"), (arm, m)
        assert (m["train_hn_image"] == 0) == (arm in ("control", "no_image_negatives")), (arm, m)
        assert ("train_dpo" in m) == (arm == "dpo") and ("train_kl" in m) == (arm == "kl"), (arm, m)
        assert ("train_l2" in m) == (arm == "l2"), (arm, m)
        assert ("train_replay" in m) == (arm == "replay"), (arm, m)
