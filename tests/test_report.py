"""Headline metrics, per-item files and the report's aggregation, against hand computations.

Runs are fixture folders (params.yaml + metrics/ files in the evaluate stage's formats); no dvc."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from genemi.headline import headline, headline_parts
from genemi.items import Failure, load_items, save_items
from genemi.metrics import Outcomes, Sample
from genemi.report import dir_reader, group_runs, load_run, paired_test, results_markdown, seed_stat, t975


def test_headline_averages_the_named_parts_by_hand():
    points = {
        "base": {
            "attribute_swap/text": 60.0,
            "relation_flip/text": 50.0,
            "object_replace/text": 90.0,
            "retrieval/i2t_r@1": 40.0,
            "retrieval/t2i_r@1": 30.0,
        },
        "finetuned": {
            "attribute_swap/text": 90.0,
            "relation_flip/text": 80.0,
            "object_replace/text": 100.0,
            "retrieval/i2t_r@1": 50.0,
            "retrieval/t2i_r@1": 44.0,
        },
    }
    keys = list(points["base"]) + ["all/text"]
    macro = {"macro/text": ["attribute_swap/text", "object_replace/text", "relation_flip/text"]}
    parts = headline_parts(keys, macro, ["attribute_swap", "relation_flip", "count_change"])
    assert parts == {
        "hard_text": ["attribute_swap/text", "relation_flip/text"],  # count_change absent: skipped
        "macro_text": macro["macro/text"],
        "r@1": ["retrieval/i2t_r@1", "retrieval/t2i_r@1"],
    }
    h = headline(points, parts)
    assert h["base/hard_text"] == 55.0 and h["finetuned/hard_text"] == 85.0 and h["delta/hard_text"] == 30.0
    assert h["base/macro_text"] == pytest.approx(200 / 3, abs=1e-4)
    assert h["finetuned/r@1"] == 47.0 and h["delta/r@1"] == 12.0
    assert "base/zeroshot_top1" not in h


def test_t_quantiles_and_seed_interval_by_hand():
    assert t975(1) == 12.706 and t975(30) == 2.042
    assert t975(60) == pytest.approx(2.000, abs=2e-3) and t975(10_000) == pytest.approx(1.960, abs=1e-3)
    s = seed_stat([80.0, 90.0])  # mean 85, sd = sqrt(50), half = 12.706 * sqrt(50) / sqrt(2) = 63.53
    assert (s.mean, s.n) == (85.0, 2) and s.half == pytest.approx(63.53, abs=1e-2)
    assert np.isnan(seed_stat([70.0]).half)


# ------------------------------------------------------------------------------------- fixture runs

BENCH = "toy"
N = 10  # units per type; each unit its own cluster


def _outcomes(correct: dict[str, int]) -> Outcomes:
    """Outcomes with the first ``correct[type]`` of N units right, for the text metric of each type."""
    o = Outcomes()
    for t, k in correct.items():
        o.samples[f"{t}/text"] = Sample(np.r_[np.ones(k), np.zeros(N - k)], np.arange(N))
    o.macro["macro/text"] = [f"{t}/text" for t in correct]
    return o


def _write_run(root, seed, hn, base_ok, ft_ok, digest="same-items"):
    """A run folder: params, headline (via genemi.headline, as the stage does), detail, items."""
    root.mkdir(parents=True, exist_ok=True)
    params = {
        "seed": seed,
        "threads": 2,
        "loss": {"hn_weight": hn},
        "finetune": {"steps": 600},
        "eval": {"benchmarks": [BENCH]},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    outcomes = {"base": _outcomes(base_ok), "finetuned": _outcomes(ft_ok)}
    points = {m: {k: s.value for k, s in o.samples.items()} for m, o in outcomes.items()}
    parts = headline_parts(points["base"], outcomes["base"].macro, ["swap", "flip"])
    (root / "metrics" / "headline").mkdir(parents=True, exist_ok=True)
    (root / "metrics" / "headline" / f"{BENCH}.json").write_text(json.dumps(headline(points, parts)))
    detail = {f"{m}/{k}": v for m, vals in points.items() for k, v in vals.items()}
    (root / "metrics" / "eval").mkdir(parents=True, exist_ok=True)
    (root / "metrics" / "eval" / f"{BENCH}.json").write_text(json.dumps(detail))
    fails = [
        Failure(
            "flip",
            "x.png",
            "a red circle left of a blue square",
            "a blue square left of a red circle",
            (0.9, 0.5, 0.6, 0.8),
        )
    ]
    thumbs = [np.full((96, 96, 3), 128, np.uint8)]
    save_items(root / "metrics" / "items" / f"{BENCH}.npz", outcomes, digest, parts, fails, thumbs)


@pytest.fixture
def runs(tmp_path):
    # types swap, flip (hard) and color; correct units out of N=10 per type
    base = {0: {"swap": 6, "flip": 5, "color": 9}, 1: {"swap": 7, "flip": 5, "color": 9}}
    ft = {  # (hn_weight, seed) -> fine-tuned correct counts
        (0.0, 0): {"swap": 7, "flip": 5, "color": 10},
        (0.0, 1): {"swap": 8, "flip": 6, "color": 10},
        (1.0, 0): {"swap": 10, "flip": 9, "color": 10},
        (1.0, 1): {"swap": 9, "flip": 10, "color": 10},
    }
    dirs = []
    for (hn, seed), ok in ft.items():
        d = tmp_path / f"hn{hn:g}_s{seed}"
        _write_run(d, seed, hn, base[seed], ok)
        dirs.append(d)
    return [load_run(d.name, dir_reader(d)) for d in dirs]


def test_groups_aggregate_seeds_and_match_the_control(runs):
    groups = group_runs(runs)
    assert [g.label for g in groups] == ["loss.hn_weight=0", "loss.hn_weight=1"]
    control, hn = groups
    assert control.is_control and hn.control is control and hn.seeds() == [0, 1]
    # hand: hn=1 hard_text per seed = (100+90)/2 = 95 and (90+100)/2 = 95 -> 95 ± 0
    s = hn.stat(BENCH, "finetuned/hard_text")
    assert (s.mean, s.half, s.n) == (95.0, 0.0, 2)
    # control: (70+50)/2 = 60 and (80+60)/2 = 70 -> mean 65, half = 12.706 * sd(60,70) / sqrt 2 = 63.53
    s = control.stat(BENCH, "finetuned/hard_text")
    assert s.mean == 65.0 and s.half == pytest.approx(63.53, abs=1e-2)


def test_paired_difference_by_hand(runs):
    control, hn = group_runs(runs)
    t = paired_test(hn, control, BENCH, "hard_text", n_boot=500, seed=0)
    # seed 0: 95 - 60 = 35; seed 1: 95 - 70 = 25 -> mean 30
    assert t.diff == pytest.approx(30.0) and t.seeds == (0, 1)
    assert t.lo < 30 < t.hi and t.p < 0.05
    same = paired_test(control, control, BENCH, "hard_text", n_boot=200)
    assert same.diff == 0 and same.p == 1.0 and same.lo == same.hi == 0


def test_results_markdown_cells_are_the_hand_figures(runs):
    md = results_markdown(group_runs(runs), n_boot=200)
    head = md.split("## Headline")[1].split("##")[0]
    rows = {line.split("|")[1].strip(): line for line in head.splitlines() if line.startswith("| ")}
    assert "| 0,1 | 65.0 ± 63.5 | 76.7 ± 42.4 |" in rows["**control** loss.hn_weight=0"]
    # macro hn=1: seed 0 (100+90+100)/3 = 96.67, seed 1 (90+100+100)/3 = 96.67
    assert "| 0,1 | 95.0 ± 0.0 | 96.7 ± 0.0 |" in rows["loss.hn_weight=1"]
    # base: seed 0 (60+50)/2 = 55, seed 1 (70+50)/2 = 60 -> 57.5 ± 12.706 * 3.536 / 1.414 = 31.8
    assert "57.5 ± 31.8" in rows["base (before fine-tuning)"]
    diff_row = [
        line for line in md.splitlines() if line.startswith("| loss.hn_weight=1 | loss.hn_weight=0 |")
    ]
    assert diff_row and re.search(r"\+30\.0 \[\+\d+\.\d, \+\d+\.\d\] p[<=]0\.0\d\d", diff_row[0])
    # per-type detail: flip of hn=1 = (90 + 100)/2
    flip = md.split("## Per-type text accuracy: toy")[1]
    assert "| loss.hn_weight=1 | 100.0 ± 0.0 | 95.0 ± 63.5 | 95.0 ± 63.5 |" in flip


def test_different_items_are_refused(tmp_path, runs):
    d = tmp_path / "other"
    _write_run(d, 0, 1.0, {"swap": 6, "flip": 5, "color": 9}, {"swap": 9, "flip": 9, "color": 9}, digest="x")
    control = group_runs(runs)[0]
    other = group_runs([load_run("other", dir_reader(d))])[0]
    with pytest.raises(ValueError, match="did not score the same items"):
        paired_test(other, control, BENCH, "hard_text", n_boot=100)


def test_items_file_round_trip_without_pickle(tmp_path):
    o = {"base": _outcomes({"swap": 3}), "finetuned": _outcomes({"swap": 8})}
    save_items(tmp_path / "i.npz", o, "d1", {"hard_text": ["swap/text"]})
    it = load_items(tmp_path / "i.npz")
    assert it.digest == "d1" and it.parts == {"hard_text": ["swap/text"]}
    assert (
        it.outcomes["finetuned"]["swap/text"].sum() == 8
        and it.outcomes["base"]["swap/text"].dtype == np.uint8
    )
    np.savez(tmp_path / "evil.npz", x=np.array([{"a": 1}], dtype=object))  # needs pickle to load
    with pytest.raises(ValueError, match="evil.npz: not a per-item outcomes file"):
        load_items(tmp_path / "evil.npz")


def test_report_command_writes_the_three_outputs(tmp_path, runs):
    from stages.report import main

    out = tmp_path / "reports"
    args = [x for r in runs for x in ("--run-dir", str(tmp_path / r.name))]
    res = CliRunner().invoke(main, [*args, "--out", str(out), "--bootstrap", "200"])
    assert res.exit_code == 0, res.output
    assert "loss.hn_weight=1" in (out / "results.md").read_text()
    for png in (out / "tradeoff.png", out / "failures" / f"{BENCH}.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = CliRunner().invoke(main, ["--run-dir", str(tmp_path), "--out", str(out)])
    assert res.exit_code != 0 and "params.yaml not found" in res.output


def test_evaluate_stage_headline_and_items_agree_with_its_detail(tmp_path):
    """On a tiny synthetic world with random models: the headline equals the hand mean of the detail
    file's keys, the per-item means equal the detail values, and the files are byte-identical reruns."""
    from stages import evaluate as stage
    from tests.test_evaluate import _tiny_world, stage_args

    params, data = _tiny_world(tmp_path)
    args = stage_args(tmp_path, params, data)
    files = []
    for i in range(2):
        out = [tmp_path / f"m{i}.json", tmp_path / f"h{i}.json", tmp_path / f"i{i}.npz"]
        res = CliRunner().invoke(
            stage.main, [*args, "--metrics", str(out[0]), "--headline", str(out[1]), "--items", str(out[2])]
        )
        assert res.exit_code == 0, res.output
        files.append([f.read_bytes() for f in out])
    assert files[0] == files[1]
    flat = json.loads(files[0][0])
    head = json.loads(files[0][1])
    for m in ("base", "finetuned"):
        hard = [flat[f"{m}/{t}/text"] for t in ("attribute_swap", "relation_flip")]
        assert head[f"{m}/hard_text"] == pytest.approx(sum(hard) / 2, abs=2e-4)
        assert head[f"{m}/macro_text"] == pytest.approx(flat[f"{m}/macro/text"], abs=2e-4)
        r1 = (flat[f"{m}/retrieval/i2t_r@1"] + flat[f"{m}/retrieval/t2i_r@1"]) / 2
        assert head[f"{m}/r@1"] == pytest.approx(r1, abs=2e-4)
    assert head["delta/hard_text"] == pytest.approx(
        head["finetuned/hard_text"] - head["base/hard_text"], abs=2e-4
    )
    assert len(head) == 9  # 3 headlines x base/finetuned/delta: no zero-shot in the synthetic sets
    it = load_items(tmp_path / "i0.npz")
    for k in ("relation_flip/text", "all/image", "retrieval/t2i_r@1"):
        for m in ("base", "finetuned"):
            assert 100 * it.outcomes[m][k].mean() == pytest.approx(flat[f"{m}/{k}"], abs=1e-3)
    f = it.failures
    assert len(f["type"]) == len(f["caption"]) == len(f["image"]) and f["image"].shape[1:] == (96, 96, 3)
    assert max(np.unique(f["type"], return_counts=True)[1]) <= 6  # write_summaries' default per type
    assert all(s[3] >= s[2] for s in f["scores"])  # each is a mistake of the fine-tuned model


def test_parse_exp_show_keeps_finished_experiments_only():
    from genemi.report import parse_exp_show

    def exp(name, sha, state, error=None):
        return {
            "name": name,
            "executor": {"state": state} if state else None,
            "revs": [{"rev": sha, "name": name, "error": error, "data": {}}],
        }

    shown = [  # the shape of `dvc exp show --json` (dvc 3.x)
        {"rev": "workspace", "name": None, "data": {}, "error": None, "experiments": None},
        {
            "rev": "b" * 40,
            "name": "main",
            "data": {},
            "error": None,
            "experiments": [
                exp("done", "1" * 40, "success"),
                exp("old", "2" * 40, None),
                exp("wait", "3" * 40, "queued"),
                exp("bad", "4" * 40, "failed"),
                exp("broken", "5" * 40, "success", error={"msg": "x"}),
            ],
        },
    ]
    assert parse_exp_show(shown) == [("done", "1" * 40), ("old", "2" * 40)]


def test_report_reads_runs_from_git_revisions(tmp_path):
    """--exp takes any git revision (an experiment ref, a branch, a commit): files come from git."""
    import shutil
    import subprocess

    from stages.report import main

    repo = tmp_path / "repo"
    _write_run(repo, 0, 0.0, {"swap": 6, "flip": 5}, {"swap": 7, "flip": 5})

    def git(*args):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=repo,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "control")
    git("branch", "control")
    shutil.rmtree(repo / "metrics")  # the next commit's run, in the same paths
    _write_run(repo, 0, 1.0, {"swap": 6, "flip": 5}, {"swap": 10, "flip": 9})
    git("add", "-A")
    git("commit", "-qm", "hard negatives")
    out = tmp_path / "reports"
    res = CliRunner().invoke(
        main,
        ["--repo", str(repo), "--exp", "control", "--exp", "HEAD", "--out", str(out), "--bootstrap", "100"],
    )
    assert res.exit_code == 0, res.output
    md = (out / "results.md").read_text()
    # control 60 (70+50)/2; hard negatives 95 (100+90)/2; paired difference +35 on the same items
    assert "| **control** loss.hn_weight=0 | 0 | 60.0 |" in md and "| loss.hn_weight=1 | 0 | 95.0 |" in md
    assert "| loss.hn_weight=1 | loss.hn_weight=0 | +35.0 [" in md
    res = CliRunner().invoke(main, ["--repo", str(repo), "--exp", "no-such-rev", "--out", str(out)])
    assert res.exit_code != 0
