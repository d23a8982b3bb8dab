"""Headline metrics, per-item files and the report's aggregation, against hand computations.

Runs are fixture folders (params.yaml + metrics/ files in the evaluate stage's formats); no dvc."""

from __future__ import annotations

import json
import re
from pathlib import Path

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


def _write_run(root, seed, hn, base_ok, ft_ok, digest="same-items", bench=BENCH, steps=600, params=None,
               mistakes=True):
    """A run folder: params, headline (via genemi.headline, as the stage does), detail, items. ``params``
    (nested) are merged over the defaults; ``bench`` names the benchmark its files are for."""
    root.mkdir(parents=True, exist_ok=True)
    base_params = {
        "seed": seed,
        "threads": 2,
        "loss": {"hn_weight": hn},
        "finetune": {"steps": steps},
        "eval": {"benchmarks": [bench]},
    }
    for section, values in (params or {}).items():
        if isinstance(values, dict):
            base_params.setdefault(section, {}).update(values)
        else:
            base_params[section] = values
    (root / "params.yaml").write_text(yaml.safe_dump(base_params))
    outcomes = {"base": _outcomes(base_ok), "finetuned": _outcomes(ft_ok)}
    points = {m: {k: s.value for k, s in o.samples.items()} for m, o in outcomes.items()}
    parts = headline_parts(points["base"], outcomes["base"].macro, ["swap", "flip"])
    (root / "metrics" / "headline").mkdir(parents=True, exist_ok=True)
    (root / "metrics" / "headline" / f"{bench}.json").write_text(json.dumps(headline(points, parts)))
    detail = {f"{m}/{k}": v for m, vals in points.items() for k, v in vals.items()}
    (root / "metrics" / "eval").mkdir(parents=True, exist_ok=True)
    (root / "metrics" / "eval" / f"{bench}.json").write_text(json.dumps(detail))
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
    if not mistakes:
        fails, thumbs = [], []
    save_items(root / "metrics" / "items" / f"{bench}.npz", outcomes, digest, parts, fails, thumbs)


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


# ------------------------------------------------------- labels, controls, written files, the picture


def _standin_runs(tmp_path):
    """The README's default experiment list in miniature: the two stand-in recipes (their own data,
    benchmarks and steps; GeNeMi's with loss.hn_weight=0) and a same-steps control of the synthetic
    default."""
    hnc_entry = {
        "loader": "hnc",
        "file": "raw/hnc/hnc_clean_strict_test.json",
        "images": "raw/gqa/images.zip",
        "models": "raw/hnc/hnc_clean_strict_test.json",
        "subset": 1.0,
    }
    val_entry = {
        "loader": "genemi_val",
        "file": "raw/eval/genemi_val/test.jsonl",
        "images": "raw/eval/genemi_val",
        "models": "raw/eval/genemi_val/test.jsonl",
        "subset": 1.0,
    }
    toy_entry = {
        "loader": "manifest",
        "file": "negatives/test.jsonl",
        "images": "negatives/test.zip",
        "models": "negatives/test.jsonl",
        "root": ".",
        "subset": 1.0,
    }
    ok = {"swap": 6, "flip": 5, "color": 9}
    specs = {
        "standin_hnc": dict(
            hn=1.0,
            steps=200,
            bench="hnc_test",
            digest="hnc",
            params={
                "data": {"source": "hnc"},
                "loss": {"form": "in_softmax"},
                "eval": {"benchmarks": {"hnc_test": hnc_entry}},
            },
        ),
        "standin_genemi": dict(
            hn=0.0,
            steps=200,
            bench="genemi_val",
            digest="gval",
            params={
                "data": {"source": "genemi"},
                "batching": {"mode": "item_based"},
                "eval": {"benchmarks": {"genemi_val": val_entry}},
            },
        ),
        "control": dict(
            hn=0.0, steps=600, bench="toy", digest="toy", params={"eval": {"benchmarks": {"toy": toy_entry}}}
        ),
        "default": dict(
            hn=1.0, steps=600, bench="toy", digest="toy", params={"eval": {"benchmarks": {"toy": toy_entry}}}
        ),
    }
    runs = {}
    for name, spec in specs.items():
        ft = {"swap": 7, "flip": 6, "color": 10} if name == "control" else {"swap": 9, "flip": 8, "color": 10}
        _write_run(
            tmp_path / name,
            0,
            spec["hn"],
            ok,
            ft,
            digest=spec["digest"],
            bench=spec["bench"],
            steps=spec["steps"],
            params=spec["params"],
        )
        runs[name] = load_run(name, dir_reader(tmp_path / name))
    return runs


def test_labels_name_only_what_differs_among_the_runs_read(tmp_path):
    """Runs listing different benchmark mappings are labelled by the benchmark names, never by each key of
    each entry (``eval.benchmarks.hnc_test.file=None``, ...)."""
    runs = _standin_runs(tmp_path)
    groups = group_runs(list(runs.values()))
    labels = {g.runs[0].name: g.label for g in groups}
    # the HNC stand-in is nearest to the default run: named by what sets it apart from that one
    assert labels["standin_hnc"] == (
        "data.source=hnc, eval.benchmarks=[hnc_test], finetune.steps=200, loss.form=in_softmax"
    )
    assert labels["control"] == "loss.hn_weight=0" and labels["default"] == "loss.hn_weight=1"
    assert "eval.benchmarks=[genemi_val]" in labels["standin_genemi"]
    assert max(map(len, labels.values())) < 150 and "eval.benchmarks." not in "".join(labels.values())
    # runs that agree on the benchmarks: only the differing param
    two = group_runs([runs["control"], runs["default"]])
    assert [g.label for g in two] == ["loss.hn_weight=0", "loss.hn_weight=1"]
    # an entry's own key counts when every run lists the benchmark
    _write_run(
        tmp_path / "half",
        0,
        1.0,
        {"swap": 6},
        {"swap": 9},
        digest="other",
        bench="toy",
        params={"eval": {"benchmarks": {"toy": {"loader": "manifest", "subset": 0.5}}}},
    )
    _write_run(
        tmp_path / "full",
        0,
        1.0,
        {"swap": 6},
        {"swap": 9},
        digest="toy",
        bench="toy",
        params={"eval": {"benchmarks": {"toy": {"loader": "manifest", "subset": 1.0}}}},
    )
    pair = group_runs([load_run(n, dir_reader(tmp_path / n)) for n in ("half", "full")])
    assert sorted(g.label for g in pair) == ["eval.benchmarks.toy.subset=0.5", "eval.benchmarks.toy.subset=1"]


def test_controls_follow_the_readme_rule(tmp_path):
    """README: a group's control has `loss.hn_weight=0` and the same `finetune.steps` and scores the same
    items. The GeNeMi stand-in (hn_weight 0, 200 steps) is no control of the HNC stand-in (200 steps): they
    share no benchmark; the 600-step control is the default's. Only a group some group compares against
    is marked control."""
    root = Path(__file__).parents[1]
    readme = " ".join(((root / "README.md").read_text() + (root / "docs/sweeps.md").read_text()).split())
    assert "(`loss.hn_weight=0` with the same `finetune.steps`, scored on the same items;" in readme
    runs = _standin_runs(tmp_path)
    groups = {g.runs[0].name: g for g in group_runs(list(runs.values()))}
    assert groups["standin_hnc"].control is None and groups["standin_genemi"].control is None
    assert groups["default"].control is groups["control"]
    assert [n for n, g in groups.items() if g.is_control] == ["control"]
    md = results_markdown(list(groups.values()), n_boot=100)
    diff = md.split("## Difference from the control")[1].split("##")[0]
    rows = [line for line in diff.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 1 and rows[0].startswith(f"| {groups['default'].label} | {groups['control'].label} |")
    assert "+20.0 [" in rows[0]  # hard (swap, flip): (90+80)/2 - (70+60)/2 on the same items
    # a same-steps hn_weight=0 run on different items (another seed of the data) is no control either
    _write_run(
        tmp_path / "other_items",
        0,
        0.0,
        {"swap": 6},
        {"swap": 7},
        digest="elsewhere",
        bench="toy",
        params={"eval": {"benchmarks": {"toy": {"loader": "manifest"}}}, "synth": {"n_test": 5}},
    )
    g2 = group_runs([runs["default"], load_run("o", dir_reader(tmp_path / "other_items"))])
    assert all(g.control is None for g in g2)


def test_report_writes_every_file_it_names_and_no_gallery_it_cannot(tmp_path):
    from stages.report import main

    for name, mistakes in (("a", True), ("b", False)):
        _write_run(
            tmp_path / name,
            0,
            1.0 if name == "a" else 0.0,
            {"swap": 6, "flip": 5},
            {"swap": 9, "flip": 8},
            mistakes=mistakes,
        )
    out = tmp_path / "reports"
    res = CliRunner().invoke(
        main,
        [
            "--run-dir",
            str(tmp_path / "a"),
            "--run-dir",
            str(tmp_path / "b"),
            "--out",
            str(out),
            "--bootstrap",
            "100",
        ],
    )
    assert res.exit_code == 0, res.output
    named = [x.strip() for x in res.output.split("->", 1)[1].splitlines()[0].split(", ")]
    assert {Path(p).name for p in named} == {"results.md", "tradeoff.png", "toy.png"}
    assert all(Path(p).is_file() for p in named)
    res = CliRunner().invoke(
        main,
        [
            "--run-dir",
            str(tmp_path / "b"),
            "--out",
            str(tmp_path / "r2"),
            "--gallery-run",
            str(tmp_path / "b"),
            "--bootstrap",
            "100",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "failures" not in res.output.split("\n")[0] and "no failure gallery" in res.output
    assert not (tmp_path / "r2" / "failures").exists()


def test_tradeoff_picture_keeps_every_label_whole(tmp_path):
    """Long labels go into a wrapped key below the axes: each label's full text is in the picture's text,
    and nothing reaches the PNG's border (a cut label would run off the canvas)."""
    from PIL import Image as PILImage

    from genemi.report import Group, Stat, tradeoff_figure

    long = {
        "loss.hn_weight": 1.0,
        "loss.form": "in_softmax",
        "data.source": "hnc",
        "finetune.steps": 200,
        "batching.negative_rows": False,
        "data.stand_in": "synthetic",
        "eval.monitor": "",
        "x" * 40: "y" * 60,
    }
    groups = []
    for hn in (0.0, 1.0):
        g = Group(
            tuple(sorted({**long, "loss.hn_weight": hn}.items())),
            [],
            label=", ".join(f"{k}={v}" for k, v in {**long, "loss.hn_weight": hn}.items()),
        )
        groups.append(g)
    import genemi.report as rep

    def fake_points(gs):
        return (
            "x",
            "y",
            [(g.label, Stat(1.0 + i, 0.5, 2), Stat(2.0 * i, 0.4, 2), i == 0) for i, g in enumerate(gs)],
        )

    texts = []
    orig = rep.tradeoff_points
    import matplotlib.figure

    orig_text = matplotlib.figure.Figure.text

    def spy(self, x, y, s, *a, **k):
        texts.append(s)
        return orig_text(self, x, y, s, *a, **k)

    try:
        rep.tradeoff_points = fake_points
        matplotlib.figure.Figure.text = spy
        tradeoff_figure(groups, tmp_path / "t.png")
    finally:
        rep.tradeoff_points = orig
        matplotlib.figure.Figure.text = orig_text
    key = " ".join(" ".join(texts).split())
    for g in groups:
        assert " ".join(g.label.split()) in key.replace("\n", " ")
    im = np.asarray(PILImage.open(tmp_path / "t.png").convert("L"))
    border = np.concatenate([im[:3].ravel(), im[-3:].ravel(), im[:, :3].ravel(), im[:, -3:].ravel()])
    assert border.min() > 250, "something runs off the edge of the picture"


def test_readme_exp_show_commands_are_the_measured_ones_that_fit_200_columns():
    """Every `dvc exp show` the README suggests was measured after its sweep
    (benchmarks/results/exp_show_columns.json): at most 200 characters wide, every headline column it keeps
    readable on a 200-column terminal."""
    import shlex

    root = Path(__file__).parents[1]
    text = ((root / "README.md").read_text() + (root / "docs/sweeps.md").read_text()).replace("\\\n", " ")
    commands = [line.split("#")[0].strip() for line in text.splitlines() if line.startswith("dvc exp show")]
    assert len(commands) >= 2
    measured = json.loads((root / "benchmarks/results/exp_show_columns.json").read_text())["variants"]
    by_args = {tuple(shlex.split(v["args"])): v for v in measured}
    for cmd in commands:
        v = by_args.get(tuple(shlex.split(cmd)[3:]))
        assert v is not None, f"README command not measured: {cmd}"
        assert v["width"] <= 200 and v["headline_columns"] >= 3, v
        assert v["headline_columns_readable_at_200"] == v["headline_columns"], v


def test_default_experiment_list_with_full_params_and_the_stand_in_recipes(tmp_path):
    """The case with every params.yaml key: the two stand-in recipes, the default run and its
    control. Labels name only what differs (the stand-ins' benchmark lists by name: no
    `eval.benchmarks.*=None`), the default's control is found, and no stand-in is anyone's control."""
    from genemi.recipe import apply_to, load_recipe

    import frozen_params

    live = frozen_params.raw()  # the shipped params (the live file may hold an earlier -S)
    ok = {"swap": 6, "flip": 5, "color": 9}
    runs = []
    specs = {"standin_hnc": ("hnc_test", "h"), "standin_genemi": ("genemi_val", "g"),
             "default": ("synth_test", "s"), "control": ("synth_test", "s")}  # fmt: skip
    for name, (bench, digest) in specs.items():
        raw = live
        if name.startswith("standin"):
            raw = apply_to(live, load_recipe(name).params)
        elif name == "control":
            raw = apply_to(live, {"loss.hn_weight": 0.0})
        ft = {"swap": 7, "flip": 6, "color": 10} if name == "control" else {"swap": 9, "flip": 9, "color": 10}
        for b in raw["eval"]["benchmarks"]:  # every benchmark the run lists (the default: synth_broad too)
            _write_run(tmp_path / name, 0, 1.0, ok, ft, digest=digest + b, bench=b)
        (tmp_path / name / "params.yaml").write_text(yaml.safe_dump(raw))  # the full params of that run
        runs.append(load_run(name, dir_reader(tmp_path / name)))
    groups = {g.runs[0].name: g for g in group_runs(runs)}
    labels = {n: g.label for n, g in groups.items()}
    # a stand-in recipe sets every key its result depends on, so its label names each key it changes once
    # (~15 keys, a few hundred characters), never every entry of a benchmark mapping (~1,300 characters)
    assert all("eval.benchmarks." not in lab and len(lab) < 600 for lab in labels.values()), labels
    assert "eval.benchmarks=[hnc_test]" in labels["standin_hnc"]
    assert "eval.benchmarks=[genemi_val]" in labels["standin_genemi"]
    assert labels["control"] == "loss.hn_weight=0" and labels["default"] == "loss.hn_weight=1"
    assert groups["default"].control is groups["control"]
    assert [n for n, g in groups.items() if g.is_control] == ["control"]
    assert groups["standin_hnc"].control is None
