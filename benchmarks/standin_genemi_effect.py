"""GeNeMi's claim on its road: the COCO stand-in mined exactly, fine-tuned, scored on genemi_val.

Runs the stage scripts (the code `dvc exp run` runs) into a work folder, one arm after another, with
`recipes/standin_genemi.yaml` applied to the committed params.yaml and, per arm, these overrides:

\b
==============  ================================================================================  ===========
arm             training data                                                                     batching
==============  ================================================================================  ===========
control         the regular COCO pairs alone (same steps, same batch size)                         records
genemi          mined variations (filter on) + regular pairs                                      item_based
shuffled        the same records as genemi (62 % variations per batch, item_based 20 %)           records
allinone        the same records; 24 x (1 variation + 4 regular): item_based's share, spread        allinone
corrupt_off     variations, a third (--corrupt) of them corrupted, filter off + regular             item_based
corrupt_on      the same mining, filter on + regular                                              item_based
==============  ================================================================================  ===========

A corrupted variation's image is what `mine_real.corrupt_as` says (committed params, or -S): `unchanged`,
the object as it was (an inpainting that changed nothing), `portrayal`, another portrayal of the object, or
`misplaced`, the portrayal painted over another object of the image (a wrong box). Which variations fail is
a draw per variation, or, with `-S mine_real.corrupt_by=prompt`, per inpainting prompt (every variation
asking for a failing prompt fails), or with `color`, that share of the colours (every variation naming one).

Every arm is scored on genemi_val, and on diagnostic rows in its format, against the control
(`stages/evaluate.py --base control --finetuned arm`), so each delta comes with its paired bootstrap
interval. A run that trains genemi and both corrupt arms also scores the filter rule head to head: filter
off against genemi (what the failed edits cost) and filter on against filter off (what the filter buys).
The stand-in data do not depend on the training seed (real.subset_seed), so they are written
once, and so is the synthetic base (synth_data -> base on the pretraining split with seed 0, as the default
pipeline's base stage; mine writes the training manifest finetune reads): the seeds vary the mining
(portrayals, which variations are corrupted), the batches and the fine-tuning of every arm. Stages run with
`threads: 1`, every arm alike (the thread count sets the order of float sums; on a shared machine two
spinning threads per process waste the cores). Wall time is measured per stage; one arm's road is the shared
stages plus its mining, fine-tuning and evaluation.

\b
    python benchmarks/standin_genemi_effect.py                       # seeds 0 1 2; ~25 min on 2 quiet cores
    python benchmarks/standin_genemi_effect.py --seeds 0 --work /tmp/g # one seed, keep the work folder
    python benchmarks/standin_genemi_effect.py -S data.stand_in_palette=broad --out /tmp/broad  # + overrides
    python benchmarks/standin_genemi_effect.py --arms genemi --out /tmp/g  # the control and genemi only
    python benchmarks/standin_genemi_effect.py --corrupt 0.667 --arms corrupt_on --arms corrupt_off  # 2/3
    # the corrupt arms alone, then the clean arm of a finished run joined in (its control must match):
    python benchmarks/standin_genemi_effect.py --corrupt 0.5 --arms corrupt_on --arms corrupt_off --out /tmp/h
    python benchmarks/standin_genemi_effect.py --out /tmp/h --render --clean /tmp/g  # /tmp/g: a genemi run
    # seeds in parallel (one process per core), then joined into one results file:
    python benchmarks/standin_genemi_effect.py --seeds 0 --seeds 1 --out /tmp/a &
    python benchmarks/standin_genemi_effect.py --seeds 2 --out /tmp/b; wait
    python benchmarks/standin_genemi_effect.py --merge /tmp/a --merge /tmp/b

Writes benchmarks/results/standin_genemi_effect.{json,md}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ARMS = ("control", "genemi", "shuffled", "allinone", "corrupt_off", "corrupt_on")
METRICS = ("text", "image", "group")
COMPOSITIONAL = "data_compositional"  # the diagnostic genemi_val-format rows (compositional_val)
BASE_TRAIN = "data/synth/pretrain.jsonl"  # what the pipeline's base stage trains on (dvc.yaml; tested)
OVERRIDES: dict = {}  # -S key=value: applied after the recipe, for every stage of every arm (main sets it)
CORRUPT = {"fraction": 1 / 3}  # the corrupt arms' mine_real.corrupt_fraction (--corrupt sets it)


def write_params(path: Path, overrides: dict) -> Path:
    """The committed params.yaml + recipe standin_genemi + ``threads: 1`` + the -S ``OVERRIDES`` +
    ``overrides``, checked like load_params."""
    from genemi.config import params_from_dict
    from genemi.recipe import apply_to, load_recipe

    sys.path.insert(0, str(REPO / "benchmarks"))
    from _setup import committed_raw  # the committed params, not what `dvc exp run -S` left in the file

    raw = committed_raw()[0]
    new = apply_to(raw, load_recipe("standin_genemi", REPO / "recipes").params)
    new = apply_to(new, {"threads": 1, **OVERRIDES, **overrides})
    params_from_dict(new)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(new, sort_keys=False), encoding="utf-8")
    return path


def corrupt_as() -> str:
    """What the corrupt arms' corrupted variations show: the committed ``mine_real.corrupt_as`` or -S's."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from _setup import committed_raw

    return str(OVERRIDES.get("mine_real.corrupt_as", committed_raw()[0]["mine_real"]["corrupt_as"]))


CORRUPT_AS = {
    "unchanged": "the object as it was, an inpainting that changed nothing",
    "portrayal": "another portrayal of the object than the caption names",
    "misplaced": "the portrayal painted over another object of the image, the named one left as it was",
}


def stage(work: Path, times: dict, key: str, script: str, *args: str) -> None:
    """Run ``stages/<script>.py args`` in ``work``; record its wall time under ``key``; fail loudly."""
    t = time.perf_counter()
    cmd = [sys.executable, str(REPO / "stages" / f"{script}.py"), *args]
    res = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if res.returncode:
        sys.exit(
            f"Error: {' '.join(cmd[1:])} failed (rc {res.returncode}):\n"
            f"{res.stdout[-3000:]}{res.stderr[-3000:]}"
        )
    times[key] = round(time.perf_counter() - t, 1)
    click.echo(f"  {key}: {times[key]} s")


def shared_data(work: Path, times: dict) -> None:
    """The stand-in COCO files, their manifest and genemi_val (independent of the training seed), and the
    synthetic base (seed 0)."""
    prm = str(write_params(work / "params" / "data.yaml", {"seed": 0}))
    lock = ["--downloads", "data/downloads", "--lock", "downloads.lock.json"]
    stage(work, times, "download_coco", "download_coco", "--params", prm, "--out", "data/raw/coco", *lock)
    stage(
        work,
        times,
        "coco_manifest",
        "coco_manifest",
        "--params",
        prm,
        "--coco",
        "data/raw/coco",
        "--out",
        "data/coco/karpathy.jsonl",
        "--stats",
        "metrics/coco_data.json",
    )
    stage(
        work,
        times,
        "download_genemi_val",
        "download_genemi_val",
        "--params",
        prm,
        "--out",
        "data/raw/eval/genemi_val",
        *lock,
    )
    stage(work, times, "synth_data", "synth_data", "--params", prm, "--out", "data")
    stage(
        work,
        times,
        "mine",
        "mine",
        "--params",
        prm,
        "--root",
        "data",
        "--out",
        "negatives",
        "--sheet",
        "data/negatives.png",
    )
    stage(
        work,
        times,
        "base",
        "base",
        "--params",
        prm,
        "--train",
        BASE_TRAIN,
        "--image-root",
        "data",
        "--out",
        "data/base.safetensors",
        "--metrics",
        "data/base.json",
    )


def mine(work: Path, times: dict, seed: int, name: str, corrupt: float, filt: bool, merge_only: bool) -> str:
    """mine_real into data/s<seed>/<name>; returns the variation manifest. ``merge_only``: re-merge the
    work folder another setting mined (the filter acts at the merge only)."""
    prm = str(
        write_params(
            work / "params" / f"s{seed}_{name}.yaml",
            {"seed": seed, "mine_real.corrupt_fraction": corrupt, "mine_real.filter": filt},
        )
    )
    d, wd = f"data/s{seed}/{name}", f"data/s{seed}/mine_{corrupt:g}"
    stage(
        work,
        times,
        f"mine_real_{name}",
        "mine_real",
        "--params",
        prm,
        "--manifest",
        "data/coco/karpathy.jsonl",
        "--image-root",
        "data/raw/coco/images",
        "--work-dir",
        wd,
        "--out",
        f"{d}/variations.jsonl",
        "--shard",
        f"{d}/images.zip",
        "--sheets",
        f"{d}/sheets",
        "--metrics",
        f"{d}/mine_real.json",
        *(["--merge-only"] if merge_only else []),
    )
    return d


# per arm: the batching overrides (besides seed) and which mining feeds it (None: the regular pairs alone)
ARM_SETUP = {
    "control": ({"batching.mode": "records"}, None),
    "genemi": ({}, "clean"),
    "shuffled": ({"batching.mode": "records"}, "clean"),
    # GeNeMi's allinone grouping: 24 groups of (1 variation + 4 regular pairs), the same 24 : 96 share as
    # item_based's 12 x (2 + 8), but no two variations of one object in a batch: batching alone differs
    "allinone": (
        {"batching.mode": "allinone", "batching.variations_per_group": 1, "batching.regular_per_group": 4},
        "clean",
    ),  # fmt: skip
    "corrupt_off": ({}, "corrupt_off"),
    "corrupt_on": ({}, "corrupt_on"),
}


def run_seed(work: Path, seed: int, times: dict, arms=ARMS) -> dict:
    """Mining and the ``arms`` of one seed; returns genemi_val (and diagnostic rows') metrics per arm."""
    need = {ARM_SETUP[a][1] for a in arms}
    mined = {}  # only the mining the arms read; corrupt_off re-merges corrupt_on's work folder
    if "clean" in need:
        mined["clean"] = mine(work, times, seed, "clean", 0.0, True, False)
    if need & {"corrupt_on", "corrupt_off"}:
        mined["corrupt_on"] = mine(work, times, seed, "corrupt_on", CORRUPT["fraction"], True, False)
    if "corrupt_off" in need:
        mined["corrupt_off"] = mine(work, times, seed, "corrupt_off", CORRUPT["fraction"], False, True)
    mining = {a: json.loads((work / mined[m] / "mine_real.json").read_text())
              for a, (_, m) in ARM_SETUP.items() if m and a in arms}  # fmt: skip
    out = {"mining": mining}
    for arm in arms:
        train(work, times, seed, arm, mined)
    out.update(evaluate_arms(work, seed, times, "data", arms))
    out["compositional"] = evaluate_arms(work, seed, times, COMPOSITIONAL, arms)
    out["rule"] = evaluate_rule(work, seed, times, arms)
    return out


def train(work: Path, times: dict, seed: int, arm: str, mined: dict, prm: str | None = None,
          into: str | None = None) -> None:  # fmt: skip
    """finetune of one arm from the shared base into data/s<seed>/<arm>.safetensors, or into ``into`` with
    the params file ``prm`` (relative to ``work``; default: written here for the arm and seed)."""
    s = into or f"data/s{seed}"
    over, source = ARM_SETUP[arm]
    aprm = prm or str(write_params(work / "params" / f"s{seed}_{arm}.yaml", {"seed": seed, **over}))
    coco = ["data/coco/karpathy.jsonl", "data/raw/coco/images"]
    mined_in = [f"{mined[source]}/variations.jsonl", f"{mined[source]}/images"] if source else []
    data = (["--genemi-train", coco[0], "--genemi-image-root", coco[1]] if source is None else
            ["--genemi-train", mined_in[0], "--genemi-image-root", mined_in[1],
             "--regular", coco[0], "--regular-image-root", coco[1]])  # fmt: skip
    stage(work, times, f"finetune_{arm}", "finetune", "--params", aprm,
          "--train", "data/negatives/train.jsonl", "--image-root", "data", *data,
          "--base", "data/base.safetensors", "--out", f"{s}/{arm}.safetensors",
          "--metrics", f"{s}/{arm}_ft.json", "--live-dir", f"{s}/live_{arm}", "--data", "data")  # fmt: skip


def evaluate_arms(work: Path, seed: int, times: dict, data: str, arms=ARMS) -> dict:
    """Every arm of ``seed`` on the genemi_val rows under ``data`` (control vs base, each arm vs control)."""
    s, base, tag = f"data/s{seed}", "data/base.safetensors", "" if data == "data" else "c"
    prm = str(write_params(work / "params" / f"s{seed}.yaml", {"seed": seed}))
    out = {}
    for arm in arms:
        m = f"{s}/eval{tag}_{arm}.json"
        ref = base if arm == "control" else f"{s}/control.safetensors"
        stage(work, times, f"evaluate{tag}_{arm}", "evaluate", "--params", prm, "--benchmark", "genemi_val",
              "--data", data, "--base", ref, "--finetuned", f"{s}/{arm}.safetensors", "--metrics", m,
              "--plot-dir", f"{s}/plots{tag}_{arm}")  # fmt: skip
        out[arm] = json.loads((work / m).read_text())
    return out


# the filter rule head to head on genemi_val, each arm scored against the other on the same rows:
RULE = {
    "off_vs_clean": ("genemi", "corrupt_off"),  # what the failed edits cost (below 0: the gain shrinks)
    "on_vs_off": ("corrupt_off", "corrupt_on"),  # what the filter buys back
}


def deltas(flat: dict) -> dict:
    """``{metric: [d, lo, hi]}`` of one evaluation's ``delta/all/*`` (finetuned minus base)."""
    return {m: [flat[f"delta/all/{m}{b}"] for b in ("", "_lo", "_hi")] for m in METRICS}


def evaluate_rule(work: Path, seed: int, times: dict, arms=ARMS) -> dict:
    """:data:`RULE`'s deltas of ``seed`` with their paired intervals, ``{name: {metric: [d, lo, hi]}}``;
    {} unless the clean arm and both corrupt arms were trained."""
    if not {a for pair in RULE.values() for a in pair} <= set(arms):
        return {}
    s = f"data/s{seed}"
    prm = str(write_params(work / "params" / f"s{seed}.yaml", {"seed": seed}))
    out = {}
    for name, (ref, arm) in RULE.items():
        m = f"{s}/rule_{name}.json"
        stage(work, times, f"evaluate_{name}", "evaluate", "--params", prm, "--benchmark", "genemi_val",
              "--data", "data", "--base", f"{s}/{ref}.safetensors", "--finetuned", f"{s}/{arm}.safetensors",
              "--metrics", m, "--plot-dir", f"{s}/plots_{name}")  # fmt: skip
        flat = json.loads((work / m).read_text())
        out[name] = deltas(flat)
    return out


def rule_lines(rule: dict) -> list[str]:
    """The head-to-head table of the results page."""
    lines = [
        "The filter rule head to head on genemi_val: each arm scored against the other on the same rows "
        "(`stages/evaluate.py --base A --finetuned B`), group accuracy, paired bootstrap 95% intervals. "
        "Filter off - clean is what the failed edits cost (below 0: the gain shrinks); filter on - filter "
        "off is what the filter buys back. (Text and image are in the JSON, under `rule`.)",
        "",
        "| seed | filter off - clean [95%] | filter on - filter off [95%] |",
        "|---|---|---|",
    ]
    for seed, r in rule.items():
        cells = [f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]" for d, lo, hi in (r[k]["group"] for k in RULE)]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return lines


def compositional_val(work: Path) -> None:
    """The diagnostic rows (:func:`genemi.data.standin.compositional_val_row`: the scene and the synthetic
    miner's negatives of it) in genemi_val's format, under ``<work>/<COMPOSITIONAL>``."""
    from genemi.config import load_params
    from genemi.data import standin

    p = load_params(work / "params" / "data.yaml")
    out = work / COMPOSITIONAL / "raw" / "eval" / "genemi_val"
    out.mkdir(parents=True, exist_ok=True)
    standin.write_genemi_val(
        p.synth, p.real.subset_seed, p.data.stand_in_size, out, standin.compositional_val_row
    )


def row(flat: dict, who: str, metric: str) -> float:
    return flat[f"{who}/all/{metric}"]


def summarise(results: dict, which: str | None = None) -> dict:
    """Per seed and arm: genemi_val text/image/group, and each arm's delta to the control with its
    interval."""
    table = {}
    for seed, res in results.items():
        for arm in ARMS:
            if arm not in (res[which] if which else res):
                continue
            flat = res[which][arm] if which else res[arm]
            if arm == "control":  # evaluated against the base: its finetuned side is the control
                table[f"{seed}/base"] = {m: row(flat, "base", m) for m in METRICS}
                table[f"{seed}/control"] = {m: row(flat, "finetuned", m) for m in METRICS}
                continue
            entry = {m: row(flat, "finetuned", m) for m in METRICS}
            for m in METRICS:
                entry[f"d_{m}"] = flat[f"delta/all/{m}"]
                entry[f"d_{m}_lo"], entry[f"d_{m}_hi"] = flat[f"delta/all/{m}_lo"], flat[f"delta/all/{m}_hi"]
            table[f"{seed}/{arm}"] = entry
    return table


CORRUPT_BY = {
    "prompt": "Which variations fail was drawn per inpainting prompt (`mine_real.corrupt_by: prompt`): every "
    "variation asking for a failing prompt failed, as with an editor that cannot paint it; so the share "
    "corrupted is the failing prompts' share of the variations, not the fraction asked.",
    "color": "Which variations fail was that share of the lexicon's colours (`mine_real.corrupt_by: color`): "
    "every variation whose portrayal names a failing colour failed, as with an editor that cannot paint it.",
}


def verdicts(table: dict, seeds: list[str], fraction: float = 1 / 3) -> list[str]:
    """The recipe's targets, per seed: genemi >= 10 points over the control on group, text and image; with a
    third (``fraction``) corrupted and the filter off the group gain shrinks or reverses; the filter
    restores >= half."""
    out = []
    for seed in seeds:
        g, off, on = (table.get(f"{seed}/{a}") for a in ("genemi", "corrupt_off", "corrupt_on"))
        if not g:
            if off or on:
                why = "run with --arms genemi, or --render --clean RESULTS of such a run"
                out.append(f"- seed {seed}: no clean genemi arm in this run, so the filter rule cannot be "
                           f"checked ({why})")  # fmt: skip
            continue
        gain = all(g[f"d_{m}"] >= 10 for m in METRICS)
        line = f"- seed {seed}: genemi - control " + ", ".join(f"{m} {g[f'd_{m}']:+.1f}" for m in METRICS)
        line += f" -> {'met' if gain else 'NOT met'} (>= +10 each)"
        if off and on:
            lost = g["d_group"] - off["d_group"]
            line += (f"; group gain clean {g['d_group']:+.1f}, {fraction:.0%} corrupted + filter off "
                     f"{off['d_group']:+.1f}, filter on {on['d_group']:+.1f}: ")  # fmt: skip
            if lost > 0:
                back = (on["d_group"] - off["d_group"]) / lost
                ok = "met" if back >= 0.5 else "NOT met"
                line += f"the gain shrinks, the filter restores {back:.0%} -> {ok}"
            else:
                line += "the gain does NOT shrink -> NOT met (nothing to restore)"
        out.append(line)
    return out


NOTES = """What the road sets, and why (the first three before any arm was trained):

- `mine_real.backend: synthetic` instead of `tiny`: the tiny models paint noise, so a variation's caption
  was false of its image (genemi_val group 28 -> 1 after fine-tuning). The exact backend reads each stand-in
  JPEG back into its scene (700 of 700 exact) and paints and scores from it.
- `real.coco_splits: [restval]`: the recipe inherited `[test]`, so the road mined and trained on the 100
  Karpathy test images that genemi_val is made from. GeNeMi mined COCO train; restval is the stand-in's
  largest split (500 images, 1788 captions, 2944 variations).
- `mine_real.iva_min: 2.0`: with 14 (GeNeMi's, on COCO photos) 104 of 108 variations of the first 20
  origins were dropped: one stand-in object covers 2.5-5 % of its 48 px image, so IVA is 4 % for one object
  and 10.5 % for a group of two.
- `data.stand_in_coco_colors: 0.15`: at 1.0 the stand-in's COCO captions name every object's colour in
  every caption, where 16.5 % of 200 human COCO captions name a colour at all; at 0.15, 18.5 % of the
  stand-in's captions do (`benchmarks/results/caption_colors.md`). GeNeMi's variations name the colour and
  shape they paint, so this share sets how much of what genemi_val asks the regular pairs teach too. The
  value was read off that COCO sample after the control-vs-genemi runs at 0, 0.1, 0.25 and 0.5 had been
  seen (`standin_genemi_share_*.md`); with every colour named (1.0) the gains were those of
  `standin_genemi_every_color.md`.
- genemi_val rows are GeNeMi's construction: the miner's variations of one object of a Karpathy test image
  (GeNeMi: 4 portrayals per object, filtered, rows of 2-4), mined from its first caption. Each row's
  captions differ in the varied object's colour or shape word, so a model that recognises the words an
  image shows can rank them (`genemi_val_words.md`). The diagnostic rows score the same models on the scene
  and the synthetic miner's swap / change / place / count negatives, which also need binding and order.
- The `allinone` arm isolates the batching: shuffled batches hold three times item_based's share of
  variations, so only an arm with item_based's share and no two variations of an object together compares
  the batching alone.
"""


def markdown(data: dict) -> str:
    """The results page from the JSON this script writes."""
    table, seeds = data["table"], list(data["mining"])
    lines = [
        "# GeNeMi stand-in: variations vs the regular-pairs control on genemi_val",
        "",
        "`python benchmarks/standin_genemi_effect.py` (recipe standin_genemi: mine_real.backend synthetic, "
        "COCO captions that keep `data.stand_in_coco_colors` of their colour words, plain CLIP loss, "
        "200 steps of 120; arms in the script's docstring). Accuracy = % of rows whose "
        "every caption (text), every image (image) or both (group) rank first, GeNeMi's Text/Image/Group "
        "All; deltas are arm - control (base row: the synthetic base, control row: the same steps on the "
        "regular pairs alone), paired bootstrap 95% intervals over rows."
        + (" Overrides on the recipe: " + ", ".join(f"`{k}={v}`" for k, v in data["overrides"].items()) + "."
           if data.get("overrides") else ""),
        "",
    ]
    lines += table_lines(table)
    if data.get("compositional"):
        lines += ["", "The same models on the diagnostic rows (`compositional_val_row`: the scene and the "
                  "synthetic miner's colour swap, colour/shape change, place swap and count change):", "",
                  *table_lines(data["compositional"])]  # fmt: skip
    frac = data.get("corrupt_fraction", 1 / 3)
    targets = "Targets (the recipe's, recipes/standin_genemi.yaml) on genemi_val:"
    lines += ["", targets, "", *verdicts(table, seeds, frac)]
    if data.get("rule"):
        lines += ["", *rule_lines(data["rule"])]
    if data.get("clean_from"):
        lines += ["", f"The clean `genemi` rows are those of `{data['clean_from']}` (same recipe and -S, the "
                  "same control to the digit)."]  # fmt: skip
    if data.get("corrupt_as") and any(k.endswith("/corrupt_on") for k in table):
        how = data["corrupt_as"]
        lines += ["", f"A corrupted variation (`mine_real.corrupt_as: {how}`) shows {CORRUPT_AS[how]}."]
        by = data.get("overrides", {}).get("mine_real.corrupt_by", "variation")
        if by != "variation":
            lines[-1] += " " + CORRUPT_BY[by]
    if data.get("compositional"):
        diag = verdicts(data["compositional"], seeds, frac)
        lines += ["", "The same checks on the diagnostic rows:", "", *diag]
    lines += ["", NOTES.rstrip()]
    return finish_markdown(lines, data, seeds)


SAME = ("overrides", "corrupt_as", "corrupt_fraction")  # what runs joined by --merge must agree on


def read_results(path: str, option: str) -> dict:
    """The results JSON at ``path`` + .json, or a one-line error naming the option and the file."""
    file = Path(f"{path}.json")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise click.UsageError(f"{option}: no results at {file}; give the path without .json") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise click.UsageError(f"{option}: {file} is not a results JSON ({e})") from None
    if not isinstance(data, dict) or not {"table", "mining", "times_s"} <= data.keys():
        raise click.UsageError(f"{option}: {file} is not this script's results (no table, mining, times_s)")
    return data


def add_clean(data: dict, clean: dict, source: str) -> dict:
    """``data`` (a run of the corrupt arms only) with the clean genemi arm of each of its seeds taken from
    ``clean``, a run with the same recipe and -S: that arm does not depend on the corrupt settings. Refused
    unless the two runs' controls scored the same, row for row of the table (same code, same machine), and
    unless a genemi arm ``data`` already holds (joined before, say to one of the parts ``--merge`` joins) is
    the same as ``clean``'s."""
    def kept(run):  # what the clean arm depends on: not the corrupt settings
        return {k: v for k, v in run.get("overrides", {}).items() if not k.startswith("mine_real.corrupt_")}

    if (theirs := kept(clean)) != (mine := kept(data)):
        raise click.UsageError(f"--clean {source}: made with -S {theirs!r}, this run with {mine!r}; "
                               "take the clean arm from a run with the same -S")  # fmt: skip
    out = {**data, "clean_from": source}
    for part in ("table", "compositional"):
        if part not in data:
            continue
        out[part] = {}
        for seed in data["mining"]:
            arm, control = (clean.get(part, {}).get(f"{seed}/{a}") for a in ("genemi", "control"))
            own = data[part].get(f"{seed}/genemi")
            if own is not None and own != arm:  # an arm joined before (by --clean, then --merge) is the same
                raise click.UsageError(f"--clean {source}: this run has its own genemi arm for seed {seed}, "
                                       "with other figures; render it without --clean")  # fmt: skip
            if arm is None:
                raise click.UsageError(f"--clean {source}: no genemi arm for seed {seed} in its {part}; run "
                                       f"it with --seeds {seed} --arms genemi")  # fmt: skip
            if control != data[part].get(f"{seed}/control"):
                raise click.UsageError(f"--clean {source}: seed {seed}'s control differs from this run's "
                                       "(other code or machine); run --arms genemi here instead")  # fmt: skip
            for key, entry in data[part].items():
                if key.split("/")[0] == seed and not key.endswith("/genemi"):
                    out[part][key] = entry
                    if key.endswith("/control"):
                        out[part][f"{seed}/genemi"] = arm
    return out


def merge_results(parts: list[dict]) -> dict:
    """The results of runs on disjoint seeds with the same settings, as one run's: per-seed entries joined
    in seed order, the shared stages' times and the load average of the first."""
    first, seen = parts[0], set()
    for i, part in enumerate(parts, 1):
        for key in SAME:
            if (mine := part.get(key)) != first.get(key):
                raise click.UsageError(f"--merge: part {i} has {key} {mine!r}, part 1 {first.get(key)!r}; "
                                       "join only runs made with the same settings")  # fmt: skip
        if seen & set(part["mining"]):
            again = sorted(seen & set(part["mining"]))
            raise click.UsageError(f"--merge: part {i} repeats seed(s) {again}; join runs of other --seeds")
        seen |= set(part["mining"])

    def by_seed(kv):
        return int(kv[0].split("/")[0])

    out = dict(first)
    for key in ("table", "compositional", "mining", "rule"):
        out[key] = dict(sorted({k: v for p in parts for k, v in p.get(key, {}).items()}.items(), key=by_seed))
    times = {k: v for p in parts for k, v in p["times_s"].items() if k != "data"}
    out["times_s"] = {"data": first["times_s"]["data"], **dict(sorted(times.items(), key=by_seed))}
    return out


def table_lines(table: dict) -> list[str]:
    lines = [
        "| seed | arm | text | image | group | Δtext [95%] | Δimage [95%] | Δgroup [95%] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, e in table.items():
        seed, arm = key.split("/")
        d = [
            f"{e[f'd_{m}']:+.1f} [{e[f'd_{m}_lo']:+.1f}, {e[f'd_{m}_hi']:+.1f}]" if f"d_{m}" in e else ""
            for m in METRICS
        ]
        lines.append(
            f"| {seed} | {arm} | " + " | ".join(f"{e[m]:.1f}" for m in METRICS) + " | " + " | ".join(d) + " |"
        )
    return lines


def finish_markdown(lines: list[str], data: dict, seeds: list[str]) -> str:
    mining, times = data["mining"], data["times_s"]
    lines += [
        "",
        "Mining per seed (variations mined / in the training manifest / corrupted / corrupted kept):",
        "",
    ]
    for seed in seeds:
        for name, m in mining[seed].items():
            lines.append(
                f"- seed {seed}, {name}: {m['variations']} / {m['written']} / {m['corrupted']} / "
                f"{m['corrupted_kept']}"
            )
    load = data.get("load_average")
    lines += [
        "",
        "Wall time per stage (s)" + (f"; 1/5/15-min load average at the end {load}" if load else "") + ":",
        "",
    ]
    lines.append(
        "- shared (stand-in data, synthetic base): " + ", ".join(f"{k} {v}" for k, v in times["data"].items())
    )
    for seed in seeds:
        lines.append(f"- seed {seed}: " + ", ".join(f"{k} {v}" for k, v in times[seed].items()))
    return "\n".join(lines) + "\n"


@click.command(help=__doc__)
@click.option("--seeds", multiple=True, type=int, default=(0, 1, 2), show_default=True)
@click.option("--work", type=click.Path(file_okay=False), help="Work folder (default: a temporary one).")
@click.option(
    "--out",
    default=str(REPO / "benchmarks" / "results" / "standin_genemi_effect"),
    show_default=True,
    help="Results path without suffix (.json and .md are written).",
)
@click.option("--render", is_flag=True, help="Only rewrite OUT.md from OUT.json (no runs).")
@click.option(
    "--merge", "parts", multiple=True, metavar="RESULTS",
    help="Only join the results (path without suffix) of runs on other seeds with the same settings into "
    "OUT (repeatable; runs of disjoint --seeds in parallel, one process per core).",
)  # fmt: skip
@click.option(
    "--clean", "clean_from", metavar="RESULTS",
    help="With --render or --merge: take the clean genemi arm from RESULTS (path without suffix), a run "
    "with the same recipe and -S, for a run of the corrupt arms only (refused unless its control matches).",
)  # fmt: skip
@click.option(
    "--compositional-only",
    is_flag=True,
    help="Only score the trained arms of --seeds in --work on the diagnostic rows; add them to OUT.",
)
@click.option(
    "--add-arm",
    multiple=True,
    type=click.Choice(ARMS[1:]),
    help="Only train and score this arm (repeatable) of --seeds in --work; merge it into OUT (with the rule "
    "head to head once genemi and both corrupt arms are trained there).",
)
@click.option(
    "--arms", "only", multiple=True, type=click.Choice(ARMS[1:]),
    help="Train only these arms besides the control (repeatable; default: every arm).",
)
@click.option(
    "--corrupt", default=1 / 3, type=click.FloatRange(0, 1, min_open=True), show_default="1/3",
    help="mine_real.corrupt_fraction of the corrupt_off and corrupt_on arms.",
)  # fmt: skip
@click.option(
    "-S", "sets", multiple=True, metavar="KEY=VALUE",
    help="Override a param after the recipe, for every arm (repeatable; the value is read as YAML).",
)  # fmt: skip
def main(seeds, work, out, render, clean_from, compositional_only, add_arm, only, corrupt, sets, parts):
    from genemi.io import write_json

    CORRUPT["fraction"] = corrupt
    if parts:
        write_json(f"{out}.json", merge_results([read_results(p, "--merge") for p in parts]))
        render = True
    if clean_from:
        if not render:
            raise click.UsageError("--clean joins finished runs: use it with --render or --merge")
        data = add_clean(read_results(out, "--out"), read_results(clean_from, "--clean"), clean_from)
        write_json(f"{out}.json", data)

    for item in sets:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="-S")
        OVERRIDES[key] = yaml.safe_load(value)

    if add_arm:  # train and score more arms of --seeds in --work; merge them into OUT
        data, wdir = read_results(out, "--out"), Path(work)
        for seed in seeds:
            click.echo(f"seed {seed}")
            res = {str(seed): run_seed(wdir, seed, data["times_s"][str(seed)], arms=add_arm)}
            data["table"].update(summarise(res))
            data["compositional"].update(summarise(res, "compositional"))
            data["mining"][str(seed)].update(res[str(seed)]["mining"])
            # the rule head to head once genemi and both corrupt arms are trained in --work, whichever run
            # trained them (a finished run's folder, as for --compositional-only)
            trained = [a for a in ARMS if (wdir / f"data/s{seed}/{a}.safetensors").is_file()]
            times = data["times_s"][str(seed)]
            if rule := res[str(seed)]["rule"] or evaluate_rule(wdir, seed, times, trained):
                data.setdefault("rule", {})[str(seed)] = rule
        write_json(f"{out}.json", data)
        render = True
    if compositional_only:  # add the diagnostic rows' table to a finished run's results
        data, wdir = read_results(out, "--out"), Path(work)
        if not (wdir / COMPOSITIONAL).is_dir():
            compositional_val(wdir)
        trained = {s: [a for a in ARMS if (wdir / f"data/s{s}/{a}.safetensors").is_file()] for s in seeds}
        done = {str(s): {"compositional": evaluate_arms(wdir, s, data["times_s"][str(s)], COMPOSITIONAL,
                                                        trained[s])} for s in seeds}  # fmt: skip
        data["compositional"] = {**data.get("compositional", {}), **summarise(done, "compositional")}
        write_json(f"{out}.json", data)
        render = True
    if render:
        Path(f"{out}.md").write_text(markdown(read_results(out, "--out")), encoding="utf-8")
        click.echo(Path(f"{out}.md").read_text())
        return

    tmp = None if work else tempfile.TemporaryDirectory(prefix="genemi_effect_")
    wdir = Path(work or tmp.name)
    wdir.mkdir(parents=True, exist_ok=True)
    times: dict = {"data": {}}
    click.echo("stand-in data")
    shared_data(wdir, times["data"])
    compositional_val(wdir)
    results = {}
    for seed in seeds:  # results are written after each seed, so a cut-short run keeps what it measured
        click.echo(f"seed {seed}")
        times[str(seed)] = {}
        results[str(seed)] = run_seed(wdir, seed, times[str(seed)], arms=("control", *only) if only else ARMS)
        data = {
            "table": summarise(results),
            "compositional": summarise(results, "compositional"),
            "mining": {s: r["mining"] for s, r in results.items()},
            "rule": {s: r["rule"] for s, r in results.items() if r.get("rule")},
            "times_s": times,
            "load_average": [round(x, 1) for x in os.getloadavg()],
            "overrides": dict(OVERRIDES),
            "corrupt_as": corrupt_as(),
            "corrupt_fraction": CORRUPT["fraction"],
        }
        write_json(f"{out}.json", data)
        Path(f"{out}.md").write_text(markdown(data), encoding="utf-8")
    click.echo(Path(f"{out}.md").read_text())
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
