"""How far the GeNeMi stand-in's arms move with the training seed alone: the noise under the filter rule.

In a run of `benchmarks/standin_genemi_effect.py` one seed drives both the mining (portrayals, which
variations fail) and the training (batch order) of each arm. Its paired intervals resample genemi_val's
rows; they do not see how much another batch order would have moved a trained arm. This script keeps one
seed's minings, as that run left them in its `--work` folder, and fine-tunes the arms again under other
training seeds: each arm's own params file from the run, with only `seed` changed. For each training seed
it scores every arm against the control of that training seed and the filter rule's two pairs head to head
(filter off against the clean arm, filter on against filter off), each with its paired interval.

The spread over training seeds is the training noise; the mean is the mining's effect with that noise
averaged out. A training seed equal to the mining seed retrains the run's own models, and the page says
whether they reproduce the run's head-to-head figures exactly (same machine).

\b
    python benchmarks/standin_genemi_effect.py --seeds 0 --work /tmp/c -S mine_real.corrupt_by=color \\
        --arms genemi --arms corrupt_off --arms corrupt_on --out /tmp/c
    python benchmarks/standin_genemi_training_noise.py --work /tmp/c --seed 0 -t 0 -t 10 -t 11 &
    python benchmarks/standin_genemi_training_noise.py --work /tmp/c --seed 0 -t 12 -t 13 -t 14; wait
    python benchmarks/standin_genemi_training_noise.py --work /tmp/c --seed 0 --render   # every -t trained

Each training seed takes four fine-tunings and five evaluations (about 4 min on one core). Writes
benchmarks/results/standin_genemi_training_noise.{json,md} (--out).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import click
import yaml

from genemi.io import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
import standin_genemi_effect as effect  # noqa: E402  (its stage runner, arms and the rule's pairs)

ARMS = ("control", "genemi", "corrupt_off", "corrupt_on")
GAINS = ("genemi", "corrupt_off", "corrupt_on")  # each against the control of its training seed
COLUMNS = (*(f"gain/{a}" for a in GAINS), *(f"rule/{r}" for r in effect.RULE))


def run_params(work: Path, seed: int, name: str) -> dict:
    """The run's params file ``params/s<seed>_<name>.yaml``, or a one-line error naming it."""
    f = work / "params" / f"s{seed}_{name}.yaml"
    if not f.is_file():
        raise click.ClickException(f"{f}: missing; pass the --work folder of a standin_genemi_effect.py "
                                   f"run of seed {seed} with the genemi and both corrupt arms")  # fmt: skip
    return yaml.safe_load(f.read_text(encoding="utf-8"))


def with_seed(work: Path, seed: int, name: str, t: int) -> str:
    """The run's params of ``name`` with ``seed: t``, written beside them; its path relative to ``work``."""
    raw = {**run_params(work, seed, name), "seed": t}
    rel = f"params/s{seed}_t{t}_{name}.yaml"
    (work / rel).write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return rel


def train_seed(work: Path, seed: int, t: int) -> dict:
    """The four arms of mining seed ``seed`` fine-tuned with training seed ``t``, scored; also written to
    ``data/s<seed>/t<t>/noise.json``."""
    s, d = f"data/s{seed}", f"data/s{seed}/t{t}"
    mined = {"clean": f"{s}/clean", "corrupt_off": f"{s}/corrupt_off", "corrupt_on": f"{s}/corrupt_on"}
    for m in mined.values():
        if not (work / m / "variations.jsonl").is_file():
            raise click.ClickException(f"{work / m}/variations.jsonl: missing; the run of seed {seed} needs "
                                       "--arms genemi --arms corrupt_off --arms corrupt_on")  # fmt: skip
    prm = f"params/s{seed}.yaml"  # the run's evaluation params, checked before any training
    if not (work / prm).is_file():
        raise click.ClickException(f"{work / prm}: missing; pass the --work folder of the run of seed {seed}")
    times: dict = {}
    for arm in ARMS:  # the effect script's own fine-tuning, with the run's params but the seed
        effect.train(work, times, seed, arm, mined, prm=with_seed(work, seed, arm, t), into=d)
    pairs = {**{f"gain/{a}": ("control", a) for a in GAINS},
             **{f"rule/{r}": pair for r, pair in effect.RULE.items()}}  # fmt: skip
    out: dict = {"times_s": times}
    for key, (ref, arm) in pairs.items():
        name = key.replace("/", "_")
        m = f"{d}/{name}.json"
        effect.stage(work, times, f"evaluate_{key}", "evaluate", "--params", prm, "--benchmark", "genemi_val",
                     "--data", "data", "--base", f"{d}/{ref}.safetensors", "--finetuned",
                     f"{d}/{arm}.safetensors", "--metrics", m, "--plot-dir", f"{d}/plots_{name}")  # fmt: skip
        out[key] = effect.deltas(json.loads((work / m).read_text(encoding="utf-8")))
    write_json(work / d / "noise.json", out)  # atomic: a cut-short run leaves no half-written file
    return out


def restored(row: dict) -> float | None:
    """The share of the clean gain lost with the filter off that the filter wins back (the effect script's
    rule), from the group gains; None when nothing was lost."""
    clean, off, on = (row[f"gain/{a}"]["group"][0] for a in GAINS)
    return (on - off) / (clean - off) if clean > off else None


def collect(work: Path, seed: int) -> dict:
    """Every training seed's ``noise.json`` of mining seed ``seed``, by training seed."""
    found = [p for p in (work / f"data/s{seed}").glob("t*/noise.json") if p.parent.name[1:].isdigit()]
    if not found:
        raise click.ClickException(f"{work}/data/s{seed}: no training seed scored yet; run with -t first")
    rows = {}
    for p in sorted(found, key=lambda p: int(p.parent.name[1:])):
        try:
            rows[p.parent.name[1:]] = json.loads(p.read_text(encoding="utf-8"))
        except ValueError as e:  # JSON or UTF-8
            raise click.ClickException(f"{p}: not JSON ({e}); train that seed again with -t") from None
    return rows


def reproduces(work: Path, seed: int, rows: dict) -> bool | None:
    """Whether training seed = mining seed gave the run's own head-to-head figures (None: not trained)."""
    if str(seed) not in rows:
        return None
    for r in effect.RULE:
        f = work / f"data/s{seed}/rule_{r}.json"
        if not f.is_file():
            return False
        if effect.deltas(json.loads(f.read_text(encoding="utf-8"))) != rows[str(seed)][f"rule/{r}"]:
            return False
    return True


# Student's t, 0.975 quantile, by degrees of freedom (the standard table); past 30, the normal's 1.96
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)  # fmt: skip


def summary(rows: dict) -> dict:
    """Per column, over training seeds: ``[mean, sample standard deviation, 95% t-interval of the mean (lo,
    hi)]`` of its group delta (None past the mean for one seed); and the rule on the means and per seed."""
    out = {}
    for c in COLUMNS:
        xs = [r[c]["group"][0] for r in rows.values()]
        mean, n = statistics.mean(xs), len(xs)
        if n < 2:
            out[c] = [round(mean, 2), None, None, None]
            continue
        sd = statistics.stdev(xs)
        half = (T975[n - 2] if n - 1 <= len(T975) else 1.96) * sd / n**0.5
        out[c] = [round(mean, 2), round(sd, 2), round(mean - half, 2), round(mean + half, 2)]
    mean_row = {f"gain/{a}": {"group": [out[f"gain/{a}"][0]]} for a in GAINS}
    per = {t: restored(r) for t, r in rows.items()}
    out["restored"] = {"of_means": restored(mean_row), "per_seed": per,
                       "met": sum(1 for v in per.values() if v is not None and v >= 0.5)}  # fmt: skip
    return out


def mean_cell(v: list) -> str:
    """A column's mean over training seeds with its t-interval (the mean alone for one seed)."""
    return f"{v[0]:+.1f}" if v[1] is None else f"{v[0]:+.1f} [{v[2]:+.1f}, {v[3]:+.1f}]"


def cell(v: list) -> str:
    return f"{v[0]:+.1f} [{v[1]:+.1f}, {v[2]:+.1f}]"


REPRODUCES = {
    None: "not among these.",
    True: "its head-to-head figures equal the run's.",
    False: "its head-to-head figures differ from the run's (another machine or code).",
}


def markdown(data: dict) -> str:
    rows, summ, seed = data["rows"], data["summary"], data["mining_seed"]
    lines = [
        "# GeNeMi stand-in: the arms under other training seeds, one mining fixed",
        "",
        f"`python benchmarks/standin_genemi_training_noise.py --seed {seed}` on the work folder of a "
        "`standin_genemi_effect.py` run (overrides on the recipe: "
        + (", ".join(f"`{k}={v}`" for k, v in data["overrides"].items()) or "none")
        + f"; corrupt_as `{data['corrupt_as']}`; {data['mining']['corrupted']} of "
        f"{data['mining']['variations']} variations corrupted, {data['mining']['kept']} kept by the filter). "
        f"The minings of seed {seed} are kept; each arm is "
        "fine-tuned again with its run's params and only `seed` changed. genemi_val group accuracy, points, "
        "paired bootstrap 95% intervals over its rows. Gains are each arm minus the control of the same "
        "training seed; off - clean and on - off are the filter rule head to head; restored is the rule's "
        "share, (on - off) / (clean - off) of the gains, which it asks to be >= 50 %. The mean row's "
        "interval is Student's t over the training seeds: how well the mean over batch orders is known.",
        "",
        "| training seed | genemi - control | off - control | on - control | off - clean | on - off "
        "| restored |",
        "|---|---|---|---|---|---|---|",
    ]
    for t, r in rows.items():
        back = summ["restored"]["per_seed"][t]
        lines.append(f"| {t} | " + " | ".join(cell(r[c]["group"]) for c in COLUMNS)
                     + f" | {'nothing lost' if back is None else f'{back:.0%}'} |")  # fmt: skip
    back = summ["restored"]["of_means"]
    means = " | ".join(mean_cell(summ[c]) for c in COLUMNS)
    lines.append(f"| mean [95% over training seeds] | {means} | "
                 + ("nothing lost" if back is None else f"{back:.0%} of the means") + " |")  # fmt: skip
    if len(rows) > 1:
        lines.append("| standard deviation | " + " | ".join(f"{summ[c][1]:.1f}" for c in COLUMNS) + " | |")
    rep = data["reproduces_run"]
    lines += [
        "",
        f"- The rule (restored >= 50 %) holds on {summ['restored']['met']} of {len(rows)} training seeds.",
        f"- Training seed {seed} retrains the run's own models: " + REPRODUCES[rep],
    ]
    cost = summ["rule/off_vs_clean"]
    if cost[3] is not None and cost[3] >= 0:
        span = f"[{cost[2]:+.1f}, {cost[3]:+.1f}]"
        lines.append(f"- The mean cost's interval, {span}, includes 0: no measurable loss, so the restored "
                     "shares above are ratios of noise, not readings of the rule.")  # fmt: skip
    return "\n".join(lines) + "\n"


@click.command(help=__doc__)
@click.option("--work", type=click.Path(file_okay=False, exists=True), required=True,
              help="The --work folder of a finished standin_genemi_effect.py run.")  # fmt: skip
@click.option("--seed", type=int, required=True, help="Its seed whose minings are kept.")
@click.option("-t", "--train-seed", "train_seeds", type=int, multiple=True,
              help="Fine-tune every arm again with this seed (repeatable).")  # fmt: skip
@click.option("--render", is_flag=True, help="Only gather the training seeds scored in --work into OUT.")
@click.option("--out", default=str(effect.REPO / "benchmarks/results/standin_genemi_training_noise"),
              show_default=True, help="Results path without suffix (.json and .md are written).")  # fmt: skip
def main(work, seed, train_seeds, render, out):
    wdir = Path(work)
    if not train_seeds and not render:
        raise click.UsageError("give -t SEED (repeatable) to train, or --render to gather what is trained")
    run = run_params(wdir, seed, "corrupt_on")["mine_real"]
    for t in train_seeds:
        click.echo(f"training seed {t}")
        train_seed(wdir, seed, t)
    if not render:
        return
    rows = collect(wdir, seed)
    overrides = {"mine_real.corrupt_by": run.get("corrupt_by", "variation")}
    # the arms' params files hold what training read (the mining's corrupt_fraction is not among it): the
    # share corrupted is the mining's own count
    mining = json.loads((wdir / f"data/s{seed}/corrupt_on/mine_real.json").read_text(encoding="utf-8"))
    data = {"mining_seed": seed, "corrupt_as": run["corrupt_as"], "overrides": overrides,
            "mining": {k: mining[k] for k in ("variations", "corrupted", "kept")},
            "threads": run_params(wdir, seed, "genemi").get("threads"), "rows": rows,
            "summary": summary(rows), "reproduces_run": reproduces(wdir, seed, rows)}  # fmt: skip
    write_json(f"{out}.json", data)
    Path(f"{out}.md").write_text(markdown(data), encoding="utf-8")
    click.echo(Path(f"{out}.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
