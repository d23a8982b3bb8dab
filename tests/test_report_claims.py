"""The claims rows of the results report and the WiSE-FT curve of the trade-off picture, against hand
figures, on fixture runs of the claims sweep's arms (params.yaml + metrics/ files in the evaluate and
wise_eval stages' formats, a `synth_broad` retention benchmark with zero-shot classes); no dvc."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from genemi import sweep
from genemi.headline import headline, headline_parts
from genemi.items import save_items
from genemi.metrics import Outcomes, Sample
from genemi.report import (
    claim_rows,
    dir_reader,
    fill_new_keys,
    find_arms,
    group_runs,
    load_run,
    tradeoff_points,
    wise_curves,
)

N = 10  # units per metric, each its own cluster
COMP, BROAD = "toy", "synth_broad"
HARD = ("swap", "flip")


def _first(k: int) -> np.ndarray:
    return np.r_[np.ones(k), np.zeros(N - k)]


def _outcomes(bench: str, ok: dict) -> Outcomes:
    """``ok``: swap/flip text counts, ``image`` and ``group`` counts (each hard type), ``zs`` zero-shot."""
    o = Outcomes()
    if bench == BROAD:
        o.samples["zeroshot/top1"] = Sample(_first(ok["zs"]), np.arange(N))
        return o
    for t in HARD:
        o.samples[f"{t}/text"] = Sample(_first(ok[t]), np.arange(N))
        o.samples[f"{t}/image"] = Sample(_first(ok["image"]), np.arange(N))
        o.samples[f"{t}/group"] = Sample(_first(ok["group"]), np.arange(N))
    o.macro["macro/text"] = [f"{t}/text" for t in HARD]
    return o


def _files(root, bench: str, outcomes: dict, kind: str) -> None:
    """The evaluate stage's headline/detail/items (kind ``eval``), or wise_eval's (kind ``wise``: models base
    and each a, files keyed by a)."""
    points = {m: {k: s.value for k, s in o.samples.items()} for m, o in outcomes.items()}
    first = next(m for m in outcomes if m != "base")
    parts = headline_parts(points[first], outcomes[first].macro, list(HARD))
    if kind == "eval":
        head = headline(points, parts)
        detail = {f"{m}/{k}": v for m, vals in points.items() for k, v in vals.items()}
        where = root / "metrics"
        items = where / "items" / f"{bench}.npz"
    else:
        head = {a: headline({"base": points["base"], "finetuned": points[a]}, parts)
                for a in outcomes if a != "base"}
        detail = {}
        where = root / "metrics" / "wise"
        items = where / "items" / f"{bench}.npz"
    for sub, data in (("headline", head), ("eval", detail)):
        (where / sub).mkdir(parents=True, exist_ok=True)
        (where / sub / f"{bench}.json").write_text(json.dumps(data))
    save_items(items, outcomes, f"items-of-{bench}", parts)


BASE = {"swap": 5, "flip": 5, "image": 5, "group": 4, "zs": 8}
ARMS = {  # arm -> (params overrides, fine-tuned counts)
    "control": ({"loss": {"hn_weight": 0.0}}, {"swap": 6, "flip": 6, "image": 5, "group": 4, "zs": 6}),
    "hn": ({}, {"swap": 10, "flip": 9, "image": 9, "group": 8, "zs": 4}),
    "l2": ({"loss": {"l2_weight": sweep.ARMS["l2"]["loss.l2_weight"]}},  # the sweep's own value
           {"swap": 9, "flip": 9, "image": 9, "group": 8, "zs": 7}),
    "no_image_negatives": ({"loss": {"image_negatives": False}},
                           {"swap": 10, "flip": 9, "image": 6, "group": 5, "zs": 4}),
    # run after params.yaml gained keys the other arms' runs lack (replay_batch, data.*): still the arm
    "replay": ({"loss": {"replay_weight": sweep.ARMS["replay"]["loss.replay_weight"], "replay_batch": 64},
                "data": {"stand_in_palette": "narrow"}},
               {"swap": 10, "flip": 9, "image": 9, "group": 8, "zs": 7}),
}
# keys the replay arm's runs name and the other arms' runs (made before the keys existed) lack
NEW_KEYS = {"loss.replay_weight": 0.0, "loss.replay_batch": 64, "data.stand_in_palette": "narrow"}
WISE = {  # arm -> its WiSE-FT mixes
    "hn": {"0.5": {"swap": 8, "flip": 7, "image": 7, "group": 6, "zs": 7}},
    "l2": {"0.5": {"swap": 9, "flip": 8, "image": 8, "group": 7, "zs": 8}},
}


def _params(seed: int, overrides: dict, benches) -> dict:
    p = {"seed": seed, "threads": 2, "finetune": {"steps": 600, "trainable": "full"},
         "loss": {"hn_weight": 1.0, "l2_weight": 0.0, "kl_weight": 0.0, "contrastive_weight": 1.0,
                  "dpo_weight": 0.0, "image_negatives": True},
         "eval": {"benchmarks": {b: {"loader": "manifest"} for b in benches}}}
    for section, values in overrides.items():
        p.setdefault(section, {}).update(values)
    return p


def _runs(root, benches=(COMP, BROAD)):
    runs = []
    for arm, (overrides, ft) in ARMS.items():
        for seed in (0, 1):
            d = root / f"{arm}_s{seed}"
            d.mkdir(parents=True)
            (d / "params.yaml").write_text(yaml.safe_dump(_params(seed, overrides, benches)))
            for b in benches:
                _files(d, b, {"base": _outcomes(b, BASE), "finetuned": _outcomes(b, ft)}, "eval")
                if arm in WISE:
                    mixes = {a: _outcomes(b, v) for a, v in WISE[arm].items()}
                    _files(d, b, {"base": _outcomes(b, BASE), **mixes}, "wise")
            runs.append(load_run(d.name, dir_reader(d)))
    fill_new_keys(runs, NEW_KEYS)  # as collect_runs does with the committed params
    return runs


@pytest.fixture
def groups(tmp_path):
    return group_runs(_runs(tmp_path))


def _row(rows, claim, comparison, measure_start=""):
    found = [r for r in rows if r.claim == claim and r.comparison == comparison
             and r.measure.startswith(measure_start)]
    assert len(found) == 1, (claim, comparison, measure_start, rows)
    return found[0]


def test_arms_are_found_by_their_params(groups):
    arms = find_arms(groups)
    assert {a: (g.runs[0].name.rsplit("_", 1)[0] if g else None) for a, g in arms.items()} == {
        "hn": "hn", "control": "control", "l2": "l2", "kl": None, "dpo": None, "last_blocks": None,
        "no_image_negatives": "no_image_negatives", "replay": "replay"}


def test_older_runs_take_the_committed_value_of_keys_they_lack(tmp_path):
    runs = _runs(tmp_path)
    hn = next(r for r in runs if r.name == "hn_s0")
    assert hn.params["loss.replay_weight"] == 0.0 and hn.params["loss.replay_batch"] == 64
    assert not [k for k in hn.params if k.startswith("eval.benchmarks.") and k.split(".")[2] not in (COMP, BROAD)]
    # a one-seed scan beside the arm, replaying 16 pairs a step: another experiment, not the arm
    d = tmp_path / "scan_s0"
    d.mkdir()
    ov = {"loss": {"replay_weight": 1.0, "replay_batch": 16}, "data": {"stand_in_palette": "narrow"}}
    (d / "params.yaml").write_text(yaml.safe_dump(_params(0, ov, (COMP, BROAD))))
    for b in (COMP, BROAD):
        _files(d, b, {"base": _outcomes(b, BASE), "finetuned": _outcomes(b, ARMS["hn"][1])}, "eval")
    scan = load_run(d.name, dir_reader(d))
    fill_new_keys([scan], NEW_KEYS)
    groups = group_runs([scan, *runs])
    arm = find_arms(groups)["replay"]
    assert arm is not None and [r.name for r in arm.runs] == ["replay_s0", "replay_s1"]
    labels = {g.runs[0].name: g.label for g in groups}
    assert labels["scan_s0"] == "loss.replay_batch=16"
    assert labels["replay_s0"] == "loss.replay_batch=64, loss.replay_weight=1"
    # without the committed values the older runs name fewer keys, and no group is the hn arm's twin
    bare = [load_run(r.name, dir_reader(tmp_path / r.name)) for r in runs]
    assert find_arms(group_runs(bare))["replay"] is None


def test_claim_rows_are_the_hand_figures(groups):
    rows = claim_rows(groups, n_boot=300)
    # hn - control, hard = mean(swap, flip): (100 + 90)/2 - (60 + 60)/2 = 35; per type 40 and 30
    r = _row(rows, "hard negatives teach composition", "hn − control (same steps)")
    assert r.seeds == "0,1" and r.result.startswith("+35.0 [") and "yes (lowest +30.0, toy flip" in r.verdict
    # fine-tuning costs retention: 40 - 80 = -40 (retention 50%), control 60 - 80 = -20 (75%)
    r = _row(rows, "fine-tuning costs retention", "hn − its base")
    assert r.result.startswith("-40.0 [") and "retention 50.0%" in r.verdict and r.verdict.endswith("yes")
    assert "retention 75.0%" in _row(rows, "fine-tuning costs retention", "control − its base").verdict
    # l2: hard 90 - 95 = -5, keeps (90 - 60)/(95 - 60) = 86%; retention 70 - 40 = +30, loss left 10/40 = 25%
    r = _row(rows, "l2 reduces the retention loss", "l2 − hn", "hard")
    assert r.result.startswith("-5.0 [") and "keeps 86%" in r.verdict
    r = _row(rows, "l2 reduces the retention loss", "l2 − hn", "synth_broad")
    assert r.result.startswith("+30.0 [") and "25% of hn's loss left (halved: yes)" in r.verdict
    # WiSE-FT a = 0.5 of the hn runs: hard 75 - 95 = -20, keeps (75 - 60)/35 = 43%; retention +30, 25% left
    r = _row(rows, "WiSE-FT a=0.5 reduces the retention loss", "WiSE-FT a=0.5 − hn", "hard")
    assert r.result.startswith("-20.0 [") and "keeps 43%" in r.verdict
    r = _row(rows, "WiSE-FT a=0.5 reduces the retention loss", "WiSE-FT a=0.5 − hn", "synth_broad")
    assert r.result.startswith("+30.0 [") and "(halved: yes)" in r.verdict
    # WiSE-FT a = 0.5 on top of l2: hard 85 - 95 = -10, keeps (85 - 60)/35 = 71%; retention 80 - 40 = +40,
    # no loss left
    claim = "l2 + WiSE-FT a=0.5 reduces the retention loss"
    r = _row(rows, claim, "l2 + WiSE-FT a=0.5 − hn", "hard")
    assert r.result.startswith("-10.0 [") and "keeps 71%" in r.verdict
    r = _row(rows, claim, "l2 + WiSE-FT a=0.5 − hn", "synth_broad")
    assert r.result.startswith("+40.0 [") and "0% of hn's loss left (halved: yes)" in r.verdict
    assert not [r for r in rows if r.claim.startswith("kl + WiSE-FT")]  # no kl runs: no stacked rows
    # replay: hard 95 - 95 = 0, keeps 100%; retention 70 - 40 = +30, 25% of the loss left
    r = _row(rows, "replay reduces the retention loss", "replay − hn", "hard")
    assert r.result.startswith("+0.0 [") and "keeps 100%" in r.verdict
    r = _row(rows, "replay reduces the retention loss", "replay − hn", "synth_broad")
    assert r.result.startswith("+30.0 [") and "25% of hn's loss left (halved: yes)" in r.verdict
    # image negatives: image 90 - 60, group 80 - 50, text equal
    claim = "image negatives help image-side and group accuracy"
    assert _row(rows, claim, "on (hn) − off", "hard-type image").result.startswith("+30.0 [")
    assert _row(rows, claim, "on (hn) − off", "hard-type group").result.startswith("+30.0 [")
    assert _row(rows, claim, "on (hn) − off", "hard-type text").result.startswith("+0.0 [")
    # arms without runs say so, with the command that queues them, and give no number
    r = _row(rows, "kl reduces the retention loss", "kl − hn")
    assert r.result.startswith("no runs of arm kl (`claims-kl-s0`")
    assert "genemi.sweep claims --queue" in r.result
    for r in rows:
        if r.result.startswith("+") or r.result.startswith("-"):
            lo, hi = (float(x) for x in r.result.split("[")[1].split("]")[0].split(","))
            assert lo <= float(r.result.split()[0]) <= hi, r


def test_without_the_retention_benchmark_rows_say_so(tmp_path):
    groups = group_runs(_runs(tmp_path, benches=(COMP,)))
    rows = claim_rows(groups, n_boot=100)
    r = _row(rows, "fine-tuning costs retention", "hn − its base")
    assert "synth_broad is not among the runs' benchmarks" in r.result and r.seeds == "–"
    assert _row(rows, "l2 reduces the retention loss", "l2 − hn", "hard").result.startswith("-5.0 [")
    xlab, _, pts = tradeoff_points(groups)
    assert xlab.startswith("change of R@1") or xlab.startswith("change of")
    from genemi.report_figures import _axes

    assert "not a retention measure" in _axes(groups)[3]


def test_tradeoff_x_is_retention_and_the_wise_curve_runs_from_base_to_finetuned(groups, tmp_path):
    from genemi.report import tradeoff_figure

    xlab, _, pts = tradeoff_points(groups)
    assert xlab.startswith("retention: synth_broad zero-shot top-1")
    by = {label: (x.mean, y.mean) for label, x, y, _ in pts}
    hn = find_arms(groups)["hn"]
    # hn: retention 40/80 = 50%, gain on toy = 95 - 50 = 45
    assert by[hn.label] == (50.0, 45.0)
    (label, curve), (l2_label, _) = wise_curves(groups)  # the reference's curve, then the l2 arm's
    assert label == hn.label and l2_label == find_arms(groups)["l2"].label
    # a = 0: the base (100%, 0); a = 0.5: 70/80 = 87.5%, 75 - 50 = 25; a = 1: the hn point
    want = [("0", 100.0, 0.0), ("0.5", 87.5, 25.0), ("1", 50.0, 45.0)]
    assert [(a, x.mean, y.mean) for a, x, y in curve] == want
    tradeoff_figure(groups, tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_report_command_writes_the_claims_section(tmp_path):
    from click.testing import CliRunner

    from stages.report import main

    runs = _runs(tmp_path / "runs")
    args = [x for r in runs for x in ("--run-dir", str(tmp_path / "runs" / r.name))]
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out"), "--bootstrap", "200"])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "out" / "results.md").read_text()
    claims = md.split("## Claims")[1]
    assert "| hard negatives teach composition | hn − control (same steps) |" in claims
    assert claims.count("\n| ") == 1 + len(claim_rows(group_runs(runs), n_boot=100))
    # l2: 25% of the loss left, 86% of the gain kept; WiSE-FT a=0.5 keeps only 43%
    assert ("(point values over seeds): l2 (25% of the loss left, 86% of the gain kept); replay (25% of the "
            "loss left, 100% of the gain kept); l2 + WiSE-FT a=0.5 (0% of the loss left, 71% of the gain kept)."
            in claims)
