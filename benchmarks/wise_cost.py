"""What the WiSE-FT stages add to the default `dvc repro`, and what they show.

Runs `dvc repro -f -s wise` and then each `wise_eval@<benchmark>` (forced, single stage: the upstream models
are those the workspace's last `dvc repro` left) and times each, with the load average before and after (the
machine may be shared). Then reads, per `a` of `wise.alphas` and the end points (a = 0: the base, a = 1: the
fine-tuned model, from `metrics/headline/`), the headline of every benchmark. Writes
`benchmarks/results/wise_cost.json` and prints a markdown table.

``noop``: what the WiSE-FT stages add to a no-op ``dvc status`` / ``dvc repro`` (an up-to-date workspace):
rounds alternate between the shipped ``dvc.yaml`` and one without the ``wise`` and ``wise_eval`` stages
(written in place and restored after every round, also on Ctrl-C), medians with the load average.

Usage (after `dvc repro`, with the committed params.yaml):
    python benchmarks/wise_cost.py             # the stages' run time and figures
    python benchmarks/wise_cost.py noop 5      # the no-op cost, 5 rounds
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
        raise SystemExit("Error: params.yaml differs from the committed one; `git checkout params.yaml` "
                         "first")
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


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([_dvc(), *cmd], cwd=ROOT, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0 or "Running stage" in r.stdout or ("status" in cmd and "up to date" not in r.stdout):
        raise SystemExit(f"Error: `dvc {' '.join(cmd)}` is not a no-op here; run `dvc repro` first:\n"
                         f"{r.stdout[-400:]}{r.stderr[-400:]}")
    return dt


def noop(rounds: int) -> int:
    import statistics

    import yaml

    path = ROOT / "dvc.yaml"
    shipped = path.read_text(encoding="utf-8")
    spec = yaml.safe_load(shipped)
    for name in ("wise", "wise_eval"):
        spec["stages"].pop(name)
    without = yaml.safe_dump(spec, sort_keys=False)
    runs = {k: {"status": [], "repro": []} for k in ("shipped", "without_wise")}
    load0 = os.getloadavg()
    try:
        for _ in range(rounds):
            for variant, text in (("shipped", shipped), ("without_wise", without)):
                path.write_text(text, encoding="utf-8")
                runs[variant]["status"].append(round(_timed(["status"]), 2))
                runs[variant]["repro"].append(round(_timed(["repro"]), 2))
    finally:
        path.write_text(shipped, encoding="utf-8")
    med = {v: {c: statistics.median(t) for c, t in d.items()} for v, d in runs.items()}
    out = {"rounds": rounds, "runs": runs, "median_s": med, "loadavg_before": [round(x, 2) for x in load0],
           "loadavg_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    dest = ROOT / "benchmarks" / "results" / "wise_noop.json"
    dest.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    for c in ("status", "repro"):
        a, b = med["without_wise"][c], med["shipped"][c]
        more = 100 * (b / a - 1)
        print(f"no-op dvc {c}: {a:.2f} s without the WiSE-FT stages, {b:.2f} s with them ({more:+.0f}%)")
    print(f"-> {dest}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["noop"]:
        raise SystemExit(noop(int(sys.argv[2]) if len(sys.argv) > 2 else 5))
    raise SystemExit(main())
