"""benchmarks/standin_genemi_training_noise.py: params with only the seed changed, the rule per training
seed and on the means, the page, and its refusals."""

from __future__ import annotations

import json

import benchmark_module
import click
import pytest
import yaml

noise = benchmark_module.load("standin_genemi_training_noise")


def _flat(d: float) -> dict:
    return {f"delta/all/{m}{b}": d + off for m in ("text", "image", "group")
            for b, off in (("", 0.0), ("_lo", -5.0), ("_hi", 5.0))}  # fmt: skip


def _row(clean: float, off: float, on: float) -> dict:
    row = {
        f"gain/{a}": noise.effect.deltas(_flat(v)) for a, v in zip(noise.GAINS, (clean, off, on), strict=True)
    }
    row["rule/off_vs_clean"] = noise.effect.deltas(_flat(off - clean))
    row["rule/on_vs_off"] = noise.effect.deltas(_flat(on - off))
    return row


def test_only_the_seed_of_the_runs_params_changes(tmp_path):
    (tmp_path / "params").mkdir()
    run = {"seed": 0, "threads": 1, "finetune": {"steps": 200}, "mine_real": {"corrupt_by": "color"}}
    (tmp_path / "params" / "s0_genemi.yaml").write_text(yaml.safe_dump(run))
    rel = noise.with_seed(tmp_path, 0, "genemi", 12)
    assert rel == "params/s0_t12_genemi.yaml"
    assert yaml.safe_load((tmp_path / rel).read_text()) == {**run, "seed": 12}
    with pytest.raises(click.ClickException, match="s0_corrupt_on.yaml: missing"):
        noise.with_seed(tmp_path, 0, "corrupt_on", 12)


def test_the_rule_per_training_seed_and_on_the_means():
    assert noise.restored(_row(20, 10, 16)) == pytest.approx(0.6)
    assert noise.restored(_row(20, 10, 12)) == pytest.approx(0.2)
    assert noise.restored(_row(20, 22, 25)) is None  # nothing lost: nothing to restore
    rows = {"0": _row(20, 10, 16), "10": _row(24, 20, 21), "11": _row(22, 24, 20)}
    s = noise.summary(rows)
    # mean 22, sd 2, t(0.975, 2) = 4.303: half-width 4.303 * 2 / sqrt(3) = 4.97
    assert s["gain/genemi"] == [22.0, 2.0, 17.03, 26.97]
    assert s["rule/on_vs_off"][0] == pytest.approx((6 + 1 - 4) / 3, abs=0.01)
    assert s["restored"]["per_seed"] == {"0": pytest.approx(0.6), "10": pytest.approx(0.25), "11": None}
    assert s["restored"]["met"] == 1
    # on the means: clean 22, off 18, on 19 -> a quarter back
    assert s["restored"]["of_means"] == pytest.approx(0.25)


def test_collect_orders_training_seeds_and_the_page_shows_each(tmp_path):
    for t, row in (("10", _row(24, 20, 21)), ("2", _row(20, 10, 16))):
        (tmp_path / f"data/s0/t{t}").mkdir(parents=True)
        (tmp_path / f"data/s0/t{t}/noise.json").write_text(json.dumps(row))
    rows = noise.collect(tmp_path, 0)
    assert list(rows) == ["2", "10"]
    assert noise.reproduces(tmp_path, 0, rows) is None  # training seed 0 not among them
    data = {"mining_seed": 0, "overrides": {"mine_real.corrupt_by": "color"}, "corrupt_as": "unchanged",
            "mining": {"variations": 2944, "corrupted": 879, "kept": 2048},
            "rows": rows, "summary": noise.summary(rows), "reproduces_run": None}  # fmt: skip
    page = noise.markdown(data)
    assert "| 2 | +20.0 [+15.0, +25.0] | +10.0 [+5.0, +15.0] | +16.0 [+11.0, +21.0] |" in page
    assert "| 60% |" in page and "| 25% |" in page
    # two seeds: t(0.975, 1) = 12.706; genemi 20 and 24: sd 2.83, half-width 25.4
    assert "| mean [95% over training seeds] | +22.0 [-3.4, +47.4] | +15.0 [" in page
    assert "| +3.5 [-28.3, +35.3] | 50% of the means |" in page
    assert "includes 0: no measurable loss" in page  # off - clean: -10 and -4, interval [-45.1, +31.1]
    lost = {**data["summary"], "rule/off_vs_clean": [-7.0, 1.0, -9.0, -5.0]}
    assert "no measurable loss" not in noise.markdown({**data, "summary": lost})
    one = noise.summary({"2": rows["2"]})
    assert one["gain/genemi"] == [20.0, None, None, None]
    assert "| +20.0 | +10.0 | +16.0 | -10.0 | +6.0 | 60% of the means |" in noise.markdown(
        {**data, "rows": {"2": rows["2"]}, "summary": one}
    )
    assert "holds on 1 of 2 training seeds" in page
    assert "`mine_real.corrupt_by=color`" in page
    assert "879 of 2944 variations corrupted, 2048 kept by the filter" in page
    with pytest.raises(click.ClickException, match="no training seed scored"):
        noise.collect(tmp_path, 1)
    (tmp_path / "data/s0/tmp").mkdir()  # not a training seed's folder: passed over
    (tmp_path / "data/s0/tmp/noise.json").write_text("{}")
    assert list(noise.collect(tmp_path, 0)) == ["2", "10"]
    (tmp_path / "data/s0/t3").mkdir()
    (tmp_path / "data/s0/t3/noise.json").write_text('{"gain/genemi": ')
    with pytest.raises(click.ClickException, match=r"t3/noise.json: not JSON .*train that seed again"):
        noise.collect(tmp_path, 0)


def test_training_seed_zero_is_checked_against_the_runs_own_figures(tmp_path):
    row = _row(20, 10, 16)
    (tmp_path / "data/s0").mkdir(parents=True)
    (tmp_path / "data/s0/rule_off_vs_clean.json").write_text(json.dumps(_flat(-10)))
    (tmp_path / "data/s0/rule_on_vs_off.json").write_text(json.dumps(_flat(6)))
    assert noise.reproduces(tmp_path, 0, {"0": row}) is True
    (tmp_path / "data/s0/rule_on_vs_off.json").write_text(json.dumps(_flat(5)))
    assert noise.reproduces(tmp_path, 0, {"0": row}) is False
