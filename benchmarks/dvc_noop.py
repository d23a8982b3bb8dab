"""No-op `dvc status` / `dvc repro` on the default pipeline: loose image files vs zip shards, side by side.

Two clones of this repository, each with its default pipeline's outputs checked out of an existing
DVC cache (the one a `dvc repro` filled; nothing is recomputed):

* ``loose``  -- ``--loose-rev`` (default 6ef6a14, the last commit that wrote 63,430 loose PNGs under
  data/synth and data/negatives);
* ``shards`` -- ``--shards-rev`` (default HEAD: one zip shard per split).

With ``--full``, each clone instead runs the whole default pipeline from scratch (``dvc repro``, its own
cache; the two one after the other), records the time, and checks that both layouts give byte-identical
weights and metrics. Then the no-op rounds below.

Each clone is timed with DVC's YAML parsing in pure Python (what ruamel.yaml 0.19.1 gives without
``ruamel.yaml.clib``) and with the C parser, so the two changes are measured apart. Rounds alternate
between the set-ups so that a change in machine load hits all of them alike; medians are reported.
Both clones must be up to date after checkout (a no-op is what is timed); the script stops otherwise.

    python benchmarks/dvc_noop.py --cache .dvc/cache --rounds 3
    python benchmarks/dvc_noop.py --full --rounds 3      # ~20 min on 2 cores

Writes ``benchmarks/results/dvc_noop.json`` (and prints a markdown table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# a sitecustomize that hides the C parser: ruamel.yaml then falls back to pure Python
PURE = "import sys\nsys.modules['_ruamel_yaml'] = None\n"
FULL: dict[str, float] = {}


def sh(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} in {cwd} failed ({r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
        )
    return r


COMPARED = [
    "models/base.safetensors",
    "models/finetuned.safetensors",
    "metrics/base.json",
    "metrics/finetune.json",
    "metrics/eval/synth_test.json",
    "metrics/eval/synth_gen.json",
    "metrics/headline/synth_test.json",
    "metrics/headline/synth_gen.json",
]


def clone(rev: str, where: Path, cache: Path | None) -> Path:
    sh(["git", "clone", "-q", "--no-checkout", str(ROOT), str(where)], ROOT)
    sh(["git", "checkout", "-q", rev], where)
    if cache is None:  # --full: build everything here
        t = time.perf_counter()
        sh(["dvc", "repro", "-f"], where)
        FULL[where.name] = round(time.perf_counter() - t, 1)
        print(f"{where.name}: full dvc repro of {rev} in {FULL[where.name]} s", file=sys.stderr)
        return where
    sh(["dvc", "cache", "dir", "--local", str(cache)], where)
    sh(["dvc", "config", "--local", "cache.type", "hardlink,copy"], where)
    t = time.perf_counter()
    sh(["dvc", "checkout", "-q"], where, check=False)
    # outputs the cache cannot hold (`cache: false` before d45662e: the download stages' notes) are rebuilt
    ran = re.findall(r"Running stage '([^']+)'", sh(["dvc", "repro"], where).stdout)
    print(
        f"{where.name}: checked out {rev} in {time.perf_counter() - t:.1f} s; rebuilt {ran}", file=sys.stderr
    )
    return where


def files_under(repo: Path) -> int:
    return sum(len(f) for _, _, f in os.walk(repo / "data"))


def timed(cmd: list[str], repo: Path, env: dict) -> tuple[float, str]:
    t = time.perf_counter()
    r = sh(cmd, repo, env)
    return time.perf_counter() - t, r.stdout + r.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--cache",
        type=Path,
        default=ROOT / ".dvc" / "cache",
        help="DVC cache holding both revisions' outputs",
    )
    ap.add_argument("--loose-rev", default="6ef6a14")
    ap.add_argument("--shards-rev", default="HEAD")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="build both pipelines from scratch and time that too")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dvc_noop.json")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dvc_noop."))
    pure_dir = work / "pure"
    pure_dir.mkdir()
    (pure_dir / "sitecustomize.py").write_text(PURE)
    try:
        cache = None if args.full else args.cache.resolve()
        revs = {
            k: sh(["git", "rev-parse", "--short", r], ROOT).stdout.strip()
            for k, r in (("loose", args.loose_rev), ("shards", args.shards_rev))
        }
        repos = {k: clone(rev, work / k, cache) for k, rev in revs.items()}
        same = {f: (repos["loose"] / f).read_bytes() == (repos["shards"] / f).read_bytes() for f in COMPARED}
        base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        envs = {"pure-yaml": {**base_env, "PYTHONPATH": str(pure_dir)}, "c-yaml": base_env}
        for name, repo in repos.items():  # warm DVC's state db (file hashes) and check it is a no-op
            _, out = timed(["dvc", "status"], repo, base_env)
            if "up to date" not in out:
                raise SystemExit(f"{name}: `dvc status` is not clean after checkout:\n{out[-2000:]}")
        setups = [(r, y) for r in repos for y in envs]
        times: dict[str, dict[str, list[float]]] = {
            f"{r}/{y}": {"status": [], "repro": []} for r, y in setups
        }
        for i in range(args.rounds):
            for r, y in setups:
                for what, cmd in (("status", ["dvc", "status"]), ("repro", ["dvc", "repro"])):
                    s, out = timed(cmd, repos[r], envs[y])
                    if what == "repro" and "Running stage" in out:
                        raise SystemExit(f"{r}: `dvc repro` ran a stage; not a no-op:\n{out[-2000:]}")
                    times[f"{r}/{y}"][what].append(round(s, 3))
            print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)
        result = {
            "what": "no-op dvc status / dvc repro on the default pipeline (outputs in place, nothing to run)",
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "loadavg_after": os.getloadavg(),
            },
            "revs": revs,
            "files_under_data": {r: files_under(p) for r, p in repos.items()},
            "full_repro_seconds": FULL,
            "identical_outputs": same,
            "seconds": times,
            "median": {k: {w: statistics.median(v) for w, v in d.items()} for k, d in times.items()},
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print("| set-up | files under data/ | dvc status (s) | dvc repro (s) |\n|---|---|---|---|")
        for k, m in result["median"].items():
            files = result["files_under_data"][k.split("/")[0]]
            print(f"| {k} | {files} | {m['status']:.2f} | {m['repro']:.2f} |")
        print(f"full repro: {FULL}; identical outputs: {same}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
