"""benchmarks/standin_genemi_effect.py runs the stage scripts itself, outside DVC: its commands against
dvc.yaml's."""

from __future__ import annotations

import benchmark_module


def test_the_genemi_benchmark_trains_its_base_on_what_the_pipeline_base_stage_reads():
    """benchmarks/standin_genemi_effect.py runs the stage scripts itself: its base must be the pipeline's."""
    import re
    from pathlib import Path

    import yaml

    root = Path(__file__).parents[1]
    genemi_effect = benchmark_module.load("standin_genemi_effect")
    cmd = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["base"]["cmd"]
    assert re.search(r"--train (\S+)", cmd).group(1) == genemi_effect.BASE_TRAIN


def _part(seeds: list[str], **settings) -> dict:
    row = {"text": 80.0, "image": 85.0, "group": 75.0}
    return {
        "table": {f"{s}/{arm}": dict(row, seed=s) for s in seeds for arm in ("control", "genemi")},
        "compositional": {f"{s}/genemi": dict(row) for s in seeds},
        "mining": {s: {"genemi": {"variations": int(s)}} for s in seeds},
        "times_s": {"data": {"base": 90.0}, **{s: {"finetune_genemi": 50.0} for s in seeds}},
        "load_average": [1.0],
        "overrides": {},
        "corrupt_as": "unchanged",
        "corrupt_fraction": 1 / 3,
        **settings,
    }


def test_merge_joins_runs_of_other_seeds_and_refuses_runs_that_differ():
    import click
    import pytest

    effect = benchmark_module.load("standin_genemi_effect")
    got = effect.merge_results([_part(["2"]), _part(["0", "1"])])
    assert list(got["mining"]) == ["0", "1", "2"] and got["mining"]["2"] == {"genemi": {"variations": 2}}
    assert list(got["table"]) == [f"{s}/{arm}" for s in "012" for arm in ("control", "genemi")]
    assert all(got["table"][k]["seed"] == k.split("/")[0] for k in got["table"])
    assert set(got["compositional"]) == {"0/genemi", "1/genemi", "2/genemi"}
    assert set(got["times_s"]) == {"data", "0", "1", "2"} and got["corrupt_as"] == "unchanged"
    with pytest.raises(click.UsageError, match="part 2 has corrupt_as 'portrayal'"):
        effect.merge_results([_part(["0"]), _part(["1"], corrupt_as="portrayal")])
    with pytest.raises(click.UsageError, match="part 2 has corrupt_fraction"):
        effect.merge_results([_part(["0"]), _part(["1"], corrupt_fraction=0.667)])
    with pytest.raises(click.UsageError, match=r"part 2 repeats seed\(s\) \['1'\]"):
        effect.merge_results([_part(["0", "1"]), _part(["1", "2"])])


def test_filter_plot_starts_each_line_at_the_clean_arm_and_refuses_clean_arms_that_differ(tmp_path):
    import json

    import click
    import pytest

    plot = benchmark_module.load("standin_genemi_filter_plot")

    def results(name, kind, share, off, on, clean=20.0):
        def cell(g):
            return {"d_group": g, "d_group_lo": g - 9, "d_group_hi": g + 9}

        table = {"0/genemi": cell(clean), "0/corrupt_off": cell(off), "0/corrupt_on": cell(on)}
        table["0/control"] = {"group": 55.0}  # no delta: not a point
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"table": table, "corrupt_as": kind, "corrupt_fraction": share}))
        return path

    files = [results("a", "unchanged", 1 / 3, 24.0, 21.0), results("b", "unchanged", 2 / 3, 6.0, 20.0)]
    pts = plot.points(files)
    assert [p[:2] for p in pts["unchanged"]["corrupt_off"]["0"]] == [(0.0, 20.0), (1 / 3, 24.0), (2 / 3, 6.0)]
    assert [p[1] for p in pts["unchanged"]["corrupt_on"]["0"]] == [20.0, 21.0, 20.0]
    assert pts["portrayal"] == {"corrupt_off": {}, "corrupt_on": {}}
    plot.draw(pts, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000
    with pytest.raises(click.ClickException, match="seed 0's clean arm differs"):
        plot.points([*files, results("c", "portrayal", 2 / 3, 8.0, 18.0, clean=25.0)])


def test_filter_plot_puts_each_filtered_arm_at_the_number_of_variations_its_filter_kept(tmp_path):
    import json

    plot = benchmark_module.load("standin_genemi_filter_plot")

    def cell(g):
        return {"d_group": g, "d_group_lo": g - 9, "d_group_hi": g + 9}

    def results(name, kind, kept, on, clean=None, by=None):
        table = {"1/corrupt_off": cell(-5.0), "1/corrupt_on": cell(on)}
        mining = {"1": {"corrupt_off": {"kept": kept}, "corrupt_on": {"kept": kept}}}
        if clean is not None:
            table["1/genemi"], mining["1"]["genemi"] = cell(clean), {"kept": 2944}
        path = tmp_path / f"{name}.json"
        over = {"mine_real.corrupt_by": by} if by else {}
        path.write_text(json.dumps({"table": table, "mining": mining, "corrupt_as": kind, "overrides": over}))
        return path

    files = [results("a", "unchanged", 1000, 21.0, clean=24.0), results("b", "unchanged", 250, 9.0),
             results("c", "portrayal", 500, 15.0), results("d", "misplaced", 2400, 12.0),
             results("e", "unchanged", 2100, 18.0, by="prompt"),
             results("f", "unchanged", 1500, 17.0, by="variation"),
             results("g", "unchanged", 1900, 11.0, by="color"),
             results("h", "portrayal", 1950, 13.0, by="color")]  # fmt: skip
    got = plot.by_count(files)
    clean = (2944, 24.0, 15.0, 33.0)  # the clean arm: the whole mining, every line's right end
    assert got["unchanged"]["1"] == [(250, 9.0, 0.0, 18.0), (1000, 21.0, 12.0, 30.0), (1500, 17.0, 8.0, 26.0),
                                     clean]  # fmt: skip
    assert got["portrayal"]["1"] == [(500, 15.0, 6.0, 24.0), clean]
    assert got["misplaced"]["1"] == [(2400, 12.0, 3.0, 21.0), clean]
    assert got["unchanged/prompt"]["1"] == [(2100, 18.0, 9.0, 27.0), clean]  # whole prompts failed: its panel
    assert got["unchanged/color"]["1"] == [(1900, 11.0, 2.0, 20.0), clean]
    assert got["portrayal/color"]["1"] == [(1950, 13.0, 4.0, 22.0), clean]  # each kind by colour: its own
    plot.draw(plot.points(files), tmp_path / "f.png", got)
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_clean_arm_joins_a_corrupt_only_run_when_its_control_matches_and_the_rule_is_then_checked():
    import click
    import pytest

    effect = benchmark_module.load("standin_genemi_effect")

    def cell(group, **more):
        return {"text": 80.0, "image": 85.0, "group": group, **more}

    def delta(g):
        return {f"d_{m}": g for m in ("text", "image", "group")} | {
            f"d_{m}_{b}": g for m in ("text", "image", "group") for b in ("lo", "hi")
        }

    corrupt = _part(["0"], corrupt_fraction=0.5)
    corrupt["table"] = {
        "0/base": cell(64.0),
        "0/control": cell(55.0),
        "0/corrupt_off": cell(70.0, **delta(15.0)),
        "0/corrupt_on": cell(80.0, **delta(25.0)),
    }
    corrupt["compositional"] = {"0/control": cell(3.0), "0/corrupt_on": cell(9.0, **delta(6.0))}
    corrupt["mining"] = {
        "0": {"corrupt_on": {"variations": 10, "written": 5, "corrupted": 5, "corrupted_kept": 0}}
    }
    assert effect.verdicts(corrupt["table"], ["0"], 0.5) == [
        "- seed 0: no clean genemi arm in this run, so the filter rule cannot be checked (run with --arms "
        "genemi, or --render --clean RESULTS of such a run)"
    ]
    clean = _part(["0"])
    clean["table"] = {"0/control": cell(55.0), "0/genemi": cell(75.0, **delta(20.0))}
    clean["compositional"] = {"0/control": cell(3.0), "0/genemi": cell(8.0, **delta(5.0))}
    corrupt["overrides"] = {"mine_real.corrupt_as": "portrayal"}  # the clean arm does not depend on it
    got = effect.add_clean(corrupt, clean, "results/clean")
    assert list(got["table"]) == ["0/base", "0/control", "0/genemi", "0/corrupt_off", "0/corrupt_on"]
    assert got["table"]["0/genemi"]["d_group"] == 20.0 and got["compositional"]["0/genemi"]["group"] == 8.0
    (line,) = effect.verdicts(got["table"], ["0"], 0.5)
    assert line.endswith("clean +20.0, 50% corrupted + filter off +15.0, filter on +25.0: the gain shrinks, "
                         "the filter restores 200% -> met")  # fmt: skip
    assert "`results/clean`" in effect.markdown(got)

    other = dict(clean, table={**clean["table"], "0/control": cell(56.0)})
    with pytest.raises(click.UsageError, match="seed 0's control differs"):
        effect.add_clean(corrupt, other, "c")
    with pytest.raises(click.UsageError, match="made with -S"):
        effect.add_clean(corrupt, dict(clean, overrides={"finetune.steps": 100}), "c")
    with pytest.raises(click.UsageError, match="no genemi arm for seed 0"):
        effect.add_clean(corrupt, dict(clean, table={"0/control": cell(55.0)}), "c")
    assert effect.add_clean(got, clean, "results/clean") == got  # joined before: the same arm, again
    own = {**clean["table"], "0/genemi": cell(77.0, **delta(22.0))}
    with pytest.raises(click.UsageError, match="has its own genemi arm for seed 0, with other figures"):
        effect.add_clean(got, dict(clean, table=own), "c")


def test_results_files_that_are_missing_or_not_results_are_refused_in_one_line_naming_them(tmp_path):
    import click
    import pytest

    effect = benchmark_module.load("standin_genemi_effect")
    plot = benchmark_module.load("standin_genemi_filter_plot")
    (tmp_path / "text.json").write_text("not json")
    (tmp_path / "other.json").write_text('{"table": [1]}')
    with pytest.raises(click.UsageError, match=r"--clean: no results at .*gone\.json; give the path without"):
        effect.read_results(str(tmp_path / "gone"), "--clean")
    with pytest.raises(click.UsageError, match=r"--merge: .*text\.json is not a results JSON"):
        effect.read_results(str(tmp_path / "text"), "--merge")
    with pytest.raises(click.UsageError, match=r"--out: .*other\.json is not this script's results"):
        effect.read_results(str(tmp_path / "other"), "--out")
    (tmp_path / "kind.json").write_text('{"table": {}, "corrupt_as": "blurred"}')
    cases = (("text", "not JSON"), ("other", "no results table"), ("kind", "failure kind 'blurred'"))
    for name, why in cases:
        with pytest.raises(click.ClickException, match=f"{name}.json: {why}"):
            plot.load(tmp_path / f"{name}.json")


def test_the_filter_rule_head_to_head_is_merged_by_seed_and_drawn_as_a_table():
    effect = benchmark_module.load("standin_genemi_effect")

    def rule(off, on):
        return {"off_vs_clean": {m: [off, off - 8, off + 8] for m in effect.METRICS},
                "on_vs_off": {m: [on, on - 7, on + 7] for m in effect.METRICS}}  # fmt: skip

    parts = [_part(["2"], rule={"2": rule(-4.0, 6.0)}), _part(["0"], rule={"0": rule(1.0, -2.0)})]
    got = effect.merge_results(parts)
    for part, key in ((p, f"{s}/genemi") for p in ("table", "compositional") for s in "02"):
        got[part][key] |= {f"d_{m}{b}": 20.0 for m in effect.METRICS for b in ("", "_lo", "_hi")}  # verdicts
    for s in "02":  # and the page its mining counts
        got["mining"][s]["genemi"] |= {"variations": 10, "written": 10, "corrupted": 0, "corrupted_kept": 0}
    assert list(got["rule"]) == ["0", "2"]
    page = effect.markdown(got)
    assert "| 0 | +1.0 [-7.0, +9.0] | -2.0 [-9.0, +5.0] |" in page
    assert "| 2 | -4.0 [-12.0, +4.0] | +6.0 [-1.0, +13.0] |" in page
    del got["rule"]
    assert "head to head" not in effect.markdown(got)  # no rule measured: no table


def test_the_page_says_when_whole_prompts_failed():
    effect = benchmark_module.load("standin_genemi_effect")
    data = _part(["0"], overrides={"mine_real.corrupt_by": "prompt"})
    deltas = {f"d_{m}{b}": 20.0 for m in effect.METRICS for b in ("", "_lo", "_hi")}
    for arm in ("genemi", "corrupt_on"):
        data["table"][f"0/{arm}"] = {**data["table"]["0/genemi"], **deltas}
    data["compositional"]["0/genemi"] |= deltas
    counts = {"variations": 10, "written": 10, "corrupted": 3, "corrupted_kept": 0}
    data["mining"]["0"] = {arm: dict(counts) for arm in ("genemi", "corrupt_on")}
    page = effect.markdown(data)
    assert "`mine_real.corrupt_as: unchanged`) shows the object as it was" in page
    assert "drawn per inpainting prompt (`mine_real.corrupt_by: prompt`)" in page
    data["overrides"] = {"mine_real.corrupt_by": "color"}
    assert "every variation whose portrayal names a failing colour failed" in effect.markdown(data)
    data["overrides"] = {}  # drawn per variation, the default: no such sentence
    assert "per inpainting prompt" not in effect.markdown(data)
