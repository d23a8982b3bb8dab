"""Measure the method's effect on the synthetic world: hard-negative fine-tuning vs the same-steps
plain-CLIP control (``loss.hn_weight=0``), on several seeds, through the real pipeline.

Each run is ``dvc exp run -S seed=S -S loss.hn_weight=W`` with W = the committed params.yaml's weight, then
0, from the committed defaults (the script refuses a workspace params.yaml that differs from them);
the metrics of the workspace are read right after it (restore it afterwards with
``git checkout -- . && dvc checkout``). Results go to ``benchmarks/results/synthetic_effect_seeds.{json,md}``.

    python benchmarks/synthetic_effect.py 0 1     # seeds (default: 0 1)
"""

from __future__ import annotations

import json
import subprocess
import time

import _setup  # this checkout's genemi; the committed params.yaml
import click

ROOT = _setup.ROOT
KEYS = ("attribute_swap/text", "relation_flip/text", "attribute_replace/text", "object_replace/text",
        "count_change/text", "retrieval/i2t_r@1", "retrieval/t2i_r@1")
BENCHES = ("synth_test", "synth_gen")


def run(seed: int, hn_weight: float) -> dict:
    # both keys every time: `dvc exp run` applies each result to the workspace, so an unset key
    # would inherit the previous run's value (a "hard negatives" run after a control would be a control)
    args = ["dvc", "exp", "run", "-S", f"seed={seed}", "-S", f"loss.hn_weight={hn_weight}"]
    start = time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True)
    seconds = time.perf_counter() - start
    out = {"seconds": round(seconds, 1)}
    for bench in BENCHES:
        m = json.loads((ROOT / "metrics" / "eval" / f"{bench}.json").read_text())
        for k in KEYS:
            out[f"{bench}/base/{k}"] = m[f"base/{k}"]
            out[f"{bench}/finetuned/{k}"] = m[f"finetuned/{k}"]
    return out


def target_verdict(
    results: dict, seeds, bench: str = "synth_test", margin: float = 10.0, r1_drop: float = 2.0
) -> dict:
    """The target: on every seed, HN beats the control by >= ``margin`` points on attribute
    swap and relation flip, and neither R@1 falls more than ``r1_drop`` points below the control's."""
    worst = {}
    for k in ("attribute_swap/text", "relation_flip/text", "retrieval/i2t_r@1", "retrieval/t2i_r@1"):
        key = f"{bench}/finetuned/{k}"
        worst[k] = min(results[f"seed{s}/hn"][key] - results[f"seed{s}/control"][key] for s in seeds)
    met = (worst["attribute_swap/text"] >= margin and worst["relation_flip/text"] >= margin
           and worst["retrieval/i2t_r@1"] >= -r1_drop and worst["retrieval/t2i_r@1"] >= -r1_drop)
    text = (f"Target on {bench} over seeds {', '.join(map(str, seeds))} (HN − control >= {margin:g} on swap "
            f"and flip; R@1 no more than {r1_drop:g} below): **{'met' if met else 'NOT met'}**. "
            "Smallest differences: "
            + ", ".join(f"{k} {v:+.1f}" for k, v in worst.items()) + ".")
    return {"met": met, "worst": worst, "text": text}


@click.command(help=__doc__)
@click.argument("seeds", type=int, nargs=-1)
def main(seeds: tuple[int, ...]) -> None:
    seeds = seeds or (0, 1)
    from genemi.io import write_json, write_text

    if not _setup.workspace_is_committed():  # `dvc exp run` starts from the workspace's params.yaml
        raise click.UsageError(
            "params.yaml differs from the committed one (a recipe or `dvc exp run -S` left values there), so "
            "these runs would not measure the defaults; restore it first: git checkout -- params.yaml"
        )
    hn_weight = _setup.shipped_params().loss.hn_weight
    if hn_weight <= 0:
        raise click.UsageError(f"params.yaml has loss.hn_weight={hn_weight}; the method's runs need a weight > 0")
    results = {}
    for seed in seeds:
        results[f"seed{seed}/hn"] = run(seed, hn_weight)
        results[f"seed{seed}/control"] = run(seed, 0.0)
    rows = ["| seed | benchmark | metric | base | control (w=0) | hard negatives | HN − control |",
            "|---|---|---|---|---|---|---|"]
    for seed in seeds:
        hn, ctl = results[f"seed{seed}/hn"], results[f"seed{seed}/control"]
        for bench in BENCHES:
            for k in KEYS:
                b, c, h = (hn[f"{bench}/base/{k}"], ctl[f"{bench}/finetuned/{k}"], hn[f"{bench}/finetuned/{k}"])
                rows.append(f"| {seed} | {bench} | {k} | {b:.1f} | {c:.1f} | {h:.1f} | {h - c:+.1f} |")
    times = ", ".join(f"{k}: {v['seconds']:.0f}s" for k, v in results.items())
    verdict = target_verdict(results, seeds)
    results["target"] = verdict
    write_json(ROOT / "benchmarks" / "results" / "synthetic_effect_seeds.json", results)
    write_text(ROOT / "benchmarks" / "results" / "synthetic_effect_seeds.md",
               "# Hard negatives vs same-steps control on the synthetic world\n\n"
               "Measured with `python benchmarks/synthetic_effect.py` on the repository defaults "
               "(2-core CPU). Pairwise text accuracy `s(I,T) > s(I,T-)` and R@1, in %.\n\n"
               + "\n".join(rows) + f"\n\n{verdict['text']}\n\nWall time per `dvc exp run`: {times} "
               "(a run whose stages are in DVC's run cache takes seconds).\n")
    click.echo("\n".join(rows) + "\n" + verdict["text"])


if __name__ == "__main__":
    main()
