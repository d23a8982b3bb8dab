"""What fine-tuning on the narrow synthetic world costs on the broad one, and what it gains, per seed.

For each seed, through the stage scripts (the commands of dvc.yaml) in a work folder: synth_data and mine,
base (pretrained on the broad world), then fine-tuning twice from that base -- with the set-up's loss (hard
negatives, ``hn``) and with ``loss.hn_weight=0`` (the same-steps ``control``) -- each scored against the
base by the evaluate stage on synth_test, synth_gen and synth_broad. Set-up: the committed params.yaml,
``threads: 1`` (results do not depend on it), plus the ``-S key=value`` overrides given. The figures
(headline values and the evaluate stage's bootstrap intervals) are added under ``--label`` to
``benchmarks/results/retention_world.json``.

    python benchmarks/retention_world.py --label default --seed 0
    python benchmarks/retention_world.py --label base_steps_300 --seed 0 -S base.steps=300
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _setup  # this checkout's genemi; the committed params.yaml
import click
import yaml

ROOT = _setup.ROOT
OUT = ROOT / "benchmarks" / "results" / "retention_world.json"
BENCHES = ("synth_test", "synth_gen", "synth_broad")
# detail keys recorded with their intervals (those a benchmark lacks are skipped)
KEYS = ("zeroshot/top1", "retrieval/i2t_r@1", "retrieval/t2i_r@1", "attribute_swap/text", "relation_flip/text")


def _stage(script: str, *args) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, str(ROOT / "stages" / script), *map(str, args)]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"Error: {' '.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")


def _params(work: Path, seed: int, overrides: dict, name: str) -> Path:
    from genemi.recipe import apply_to

    raw, source = _setup.committed_raw()
    raw = apply_to(raw, {"seed": seed, "threads": 1, **overrides}, f"retention_world overrides on {source}")
    path = work / f"params.{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    _setup.shipped_params({"seed": seed, "threads": 1, **overrides})  # refuses a bad override early
    return path


def _figures(metrics: Path, headline: Path) -> dict:
    flat, head = json.loads(metrics.read_text()), json.loads(headline.read_text())
    out = dict(head)
    for k in KEYS:
        for m in ("base", "finetuned", "delta"):
            for suffix in ("", "_lo", "_hi"):
                if f"{m}/{k}{suffix}" in flat:
                    out[f"{m}/{k}{suffix}"] = flat[f"{m}/{k}{suffix}"]
    return out


def run_seed(seed: int, overrides: dict, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    data, t0 = work / "data", time.perf_counter()
    p_hn = _params(work, seed, overrides, "hn")
    p_ctl = _params(work, seed, {**overrides, "loss.hn_weight": 0.0}, "control")
    _stage("synth_data.py", "--params", p_hn, "--out", data)
    _stage("mine.py", "--params", p_hn, "--root", data, "--out", "negatives", "--sheet", work / "negatives.png")
    _stage("base.py", "--params", p_hn, "--train", data / "synth" / "pretrain.jsonl", "--image-root", data,
           "--out", work / "base.safetensors", "--metrics", work / "base.json")
    result: dict = {"seconds": {}}
    for arm, params in (("hn", p_hn), ("control", p_ctl)):
        t = time.perf_counter()
        _stage("finetune.py", "--params", params, "--train", data / "negatives" / "train.jsonl",
               "--image-root", data, "--base", work / "base.safetensors", "--out", work / f"{arm}.safetensors",
               "--metrics", work / f"{arm}.json", "--live-dir", work / f"live_{arm}", "--data", data)
        for bench in BENCHES:
            m, h = work / f"{arm}.{bench}.json", work / f"{arm}.{bench}.headline.json"
            _stage("evaluate.py", "--params", params, "--benchmark", bench, "--data", data,
                   "--base", work / "base.safetensors", "--finetuned", work / f"{arm}.safetensors",
                   "--metrics", m, "--plot-dir", work / f"plots_{arm}", "--headline", h)
            result[f"{arm}/{bench}"] = _figures(m, h)
        result["seconds"][arm] = round(time.perf_counter() - t, 1)
    result["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    return result


def save(label: str, overrides: dict, source: str, seed: int, figures: dict) -> None:
    """Add one seed's figures under ``label``, re-reading the file first (runs of other set-ups may have
    written it meanwhile)."""
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    entry = results.setdefault(label, {"seeds": {}})
    entry.update(overrides=overrides, params=source)
    entry["seeds"][str(seed)] = figures
    OUT.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")


@click.command(help=__doc__)
@click.option("--label", required=True, help="Name of this set-up in the results file.")
@click.option("--seed", "seeds", type=int, multiple=True, default=(0,), show_default=True)
@click.option("-S", "sets", multiple=True, help="Dotted params override key=value (YAML value), repeatable.")
@click.option("--work", default="/tmp/retention_world", show_default=True, type=click.Path(file_okay=False),
              help="Work folder (data, models, metrics of each run).")
def main(label: str, seeds: tuple[int, ...], sets: tuple[str, ...], work: str) -> None:
    overrides = {}
    for s in sets:
        key, sep, value = s.partition("=")
        if not sep:
            raise SystemExit(f"Error: -S {s!r}: expected key=value")
        overrides[key] = yaml.safe_load(value)
    source = _setup.params_source()
    for seed in seeds:
        click.echo(f"{label}: seed {seed} ...")
        load = os.getloadavg()
        r = run_seed(seed, overrides, Path(work) / f"{label}-seed{seed}")
        r["load_before"] = [round(x, 2) for x in load]
        save(label, overrides, source, seed, r)
        for arm in ("hn", "control"):
            b = r[f"{arm}/synth_broad"]
            click.echo(f"  {arm}: synth_broad top1 {b['base/zeroshot_top1']:.1f} -> {b['finetuned/zeroshot_top1']:.1f} "
                       f"[{b['delta/zeroshot/top1_lo']:+.1f}, {b['delta/zeroshot/top1_hi']:+.1f}], r@1 "
                       f"{b['base/r@1']:.1f} -> {b['finetuned/r@1']:.1f}; "
                       + ", ".join(f"{bench} {t} {r[f'{arm}/{bench}'][f'finetuned/{t}/text']:.1f}"
                                   for bench in ("synth_test", "synth_gen")
                                   for t in ("attribute_swap", "relation_flip")))


if __name__ == "__main__":
    main()
