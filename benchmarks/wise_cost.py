"""What the WiSE-FT stages add to the default `dvc repro`, and what they show.

Runs `dvc repro -f -s wise` and then each `wise_eval@<benchmark>` (forced, single stage: the upstream models
are those the workspace's last `dvc repro` left) and times each, with the load average before and after (the
machine may be shared). Then reads, per `a` of `wise.alphas` and the end points (a = 0: the base, a = 1: the
fine-tuned model, from `metrics/headline/`), the headline of every benchmark. Writes
`benchmarks/results/wise_cost.json` and prints a markdown table.

Usage (after `dvc repro`, with the committed params.yaml): python benchmarks/wise_cost.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from _setup import ROOT, params_source, shipped_params, workspace_is_committed


def _dvc() -> str:
    return shutil.which("dvc") or os.path.join(os.path.dirname(sys.executable), "dvc")


def main() -> int:
    if not workspace_is_committed():
        raise SystemExit("Error: params.yaml differs from the committed one; `git checkout params.yaml` first")
    p = shipped_params()
    from genemi.wise import alpha_name

    stages = ["wise", *(f"wise_eval@{b}" for b in p.eval.benchmarks)]
    times = {}
    load0 = os.getloadavg()
    for st in stages:
        t0 = time.perf_counter()
        r = subprocess.run([_dvc(), "repro", "-f", "-s", st], cwd=ROOT, capture_output=True, text=True)
        times[st] = round(time.perf_counter() - t0, 1)
        if r.returncode != 0:
            raise SystemExit(f"Error: dvc repro -f -s {st} failed: {r.stderr.strip()[-600:]}")
    load1 = os.getloadavg()
    figures = {}
    for b in p.eval.benchmarks:
        head = json.loads((ROOT / "metrics" / "headline" / f"{b}.json").read_text())
        wise = json.loads((ROOT / "metrics" / "wise" / "headline" / f"{b}.json").read_text())
        rows = {"0": {k.split("/", 1)[1]: v for k, v in head.items() if k.startswith("base/")}}
        for a in p.wise.alphas:
            h = wise[alpha_name(a)]
            rows[alpha_name(a)] = {k.split("/", 1)[1]: v for k, v in h.items() if k.startswith("finetuned/")}
        rows["1"] = {k.split("/", 1)[1]: v for k, v in head.items() if k.startswith("finetuned/")}
        figures[b] = rows
    out = {"params": params_source(), "alphas": list(p.wise.alphas), "seconds": times,
           "total_s": round(sum(times.values()), 1), "loadavg_before": [round(x, 2) for x in load0],
           "loadavg_after": [round(x, 2) for x in load1], "cpus": os.cpu_count(), "figures": figures}
    path = ROOT / "benchmarks" / "results" / "wise_cost.json"
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"added stages: {times}, total {out['total_s']} s (load {load0[0]:.1f} -> {load1[0]:.1f})")
    names = sorted({n for rows in figures.values() for r in rows.values() for n in r})
    print("| a | " + " | ".join(f"{b} {n}" for b in figures for n in names) + " |")
    print("|---|" + "---|" * (len(figures) * len(names)))
    for a in figures[next(iter(figures))]:
        cells = [f"{figures[b][a].get(n, float('nan')):.1f}" for b in figures for n in names]
        print(f"| {a} | " + " | ".join(cells) + " |")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
