"""What a no-op `dvc status` / `dvc repro` costs, and how much of it the pipeline's shape could ever save.

`benchmarks/dvc_noop.py` showed that after the move to shards no image file is looked at any more,
yet a no-op still takes about 2 s. This script measures where the floor is, by ablation: each
variant is a clone of HEAD with the default pipeline's outputs checked out of an existing DVC
cache (nothing recomputed), `dvc.yaml` edited as below, and `dvc commit -f` so that the edited
pipeline is itself up to date. Then the same no-op commands are timed in all of them, rounds
alternating so that machine load hits every variant alike.

* ``shipped``         -- the pipeline as it is: every stage lists the modules it imports, one by one,
  and the params keys it reads.
* ``code-as-folders`` -- each stage's code deps replaced by the two folders ``genemi`` and ``stages``
  (fewer deps, but an edit to any module would rerun every stage).
* ``+param-sections`` -- also each stage's params reduced to the top-level sections they sit in
  (``synth`` for ``synth.colors``): fewer keys for DVC to look up, coarser again.
* ``synthetic-only``  -- only the six stages of the default (synthetic) road; the real-road stages
  deleted, their outputs left in place as plain files the kept stages depend on.
* ``synthetic-only+coarse`` -- both of the above at once: the least DVC could be asked to check for
  the default job.
* ``one-stage``       -- a new repository with one stage writing one file: DVC's own start-up cost.

None of the edited variants is proposed: they only bound what changing the pipeline's shape could
buy. Every variant must be a no-op (the script stops if `dvc status` is not clean or `dvc repro`
runs a stage).

    python benchmarks/dvc_floor.py --rounds 5

Writes ``benchmarks/results/dvc_floor.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC: dict[str, str] = {}  # variant folder -> dvc executable, when not the one on PATH
# commands a user can run instead, timed on the shipped variant: one stage, or one stage and its upstream
TARGETED = (("status", "evaluate@synth_test"), ("status", "base"), ("repro", "evaluate@synth_test"))
SYNTHETIC_ROAD = {"synth_data", "mine", "base", "finetune", "evaluate"}


def sh(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    if cmd[0] == "dvc":  # the DVC under test (--also-dvc adds another)
        cmd = [DVC.get(str(cwd), "dvc"), *cmd[1:]]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} in {cwd} failed ({r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
        )
    return r


def stage_bodies(spec: dict) -> list[dict]:
    return [s.get("do", s) for s in spec["stages"].values()]


def code_as_folders(spec: dict) -> None:
    for s in stage_bodies(spec):
        kept = [d for d in s.get("deps", []) if not d.startswith(("genemi/", "stages/"))]
        s["deps"] = ["genemi", "stages", *kept]


def param_sections(spec: dict) -> None:
    for s in stage_bodies(spec):
        if "params" in s:
            s["params"] = list(dict.fromkeys(str(p).split(".")[0] for p in s["params"]))


def synthetic_only(spec: dict) -> None:
    spec["stages"] = {k: v for k, v in spec["stages"].items() if k in SYNTHETIC_ROAD}


VARIANTS: dict[str, list[Callable[[dict], None]]] = {
    "shipped": [],
    "code-as-folders": [code_as_folders],
    "+param-sections": [code_as_folders, param_sections],
    "synthetic-only": [synthetic_only],
    "synthetic-only+coarse": [synthetic_only, code_as_folders, param_sections],
}


def make_variant(name: str, edits: list, where: Path, cache: Path) -> Path:
    sh(["git", "clone", "-q", str(ROOT), str(where)], ROOT)
    sh(["dvc", "cache", "dir", "--local", str(cache)], where)
    sh(["dvc", "config", "--local", "cache.type", "hardlink,copy"], where)
    sh(["dvc", "checkout", "-q"], where, check=False)
    if sh(["dvc", "status", "-q"], where, check=False).returncode != 0:
        raise SystemExit(f"{name}: the cache does not hold HEAD's outputs; run `dvc repro` in {ROOT} first")
    if edits:
        spec = yaml.safe_load((where / "dvc.yaml").read_text())
        for edit in edits:
            edit(spec)
        (where / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        lock = yaml.safe_load((where / "dvc.lock").read_text())
        lock["stages"] = {
            k: v for k, v in lock["stages"].items() if k.split("@")[0] in spec["stages"]
        }  # a deleted stage's entry would still be parsed
        (where / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
        sh(["dvc", "commit", "-f", "-q"], where)
    return where


def one_stage(where: Path) -> Path:
    where.mkdir()
    sh(["git", "init", "-q"], where)
    sh(["dvc", "init", "-q"], where)
    sh(["dvc", "config", "core.analytics", "false"], where)  # as this project's .dvc/config has it
    (where / "dvc.yaml").write_text("stages:\n  one:\n    cmd: echo one > one.txt\n    outs: [one.txt]\n")
    sh(["dvc", "repro", "-q"], where)
    return where


def shape(repo: Path) -> dict:
    """Stages (``foreach`` expanded), file/folder deps and params keys, as DVC itself counts them."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        stages = list(r.index.stages)
        deps = [d for st in stages for d in st.deps]
    return {
        "stages": len(stages),
        "deps": sum(not isinstance(d, ParamsDependency) for d in deps),
        "param_keys": sum(len(d.params) for d in deps if isinstance(d, ParamsDependency)),
        "dvc_lock_bytes": (repo / "dvc.lock").stat().st_size if (repo / "dvc.lock").exists() else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--cache", type=Path, default=ROOT / ".dvc" / "cache", help="DVC cache holding HEAD's outputs"
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--also-dvc",
        help="another dvc executable (e.g. an older release in its own venv) to time on the shipped pipeline",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dvc_floor.json")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dvc_floor."))
    try:
        cache = args.cache.resolve()
        repos = {n: make_variant(n, e, work / n, cache) for n, e in VARIANTS.items()}
        repos["one-stage"] = one_stage(work / "one-stage")
        if args.also_dvc:
            other = sh([args.also_dvc, "--version"], ROOT).stdout.strip()
            repos[f"shipped, dvc {other}"] = there = work / "shipped-other-dvc"
            shutil.copytree(repos["shipped"], there, symlinks=True)
            DVC[str(there)] = args.also_dvc
        for name, repo in repos.items():  # warm DVC's state db, and check each is a no-op
            out = sh(["dvc", "status"], repo).stdout
            if "up to date" not in out:
                raise SystemExit(f"{name}: `dvc status` is not clean:\n{out[-2000:]}")
        times = {n: {"status": [], "repro": []} for n in repos}
        targeted: dict[str, list[float]] = {" ".join(c): [] for c in TARGETED}
        runs = [(n, [w], times[n][w]) for n in repos for w in ("status", "repro")]
        runs += [("shipped", list(c), targeted[" ".join(c)]) for c in TARGETED]
        for i in range(args.rounds):
            for name, cmd, into in runs:
                t = time.perf_counter()
                r = sh(["dvc", *cmd], repos[name])
                into.append(round(time.perf_counter() - t, 3))
                if "Running stage" in r.stdout + r.stderr:
                    raise SystemExit(f"{name}: `dvc repro` ran a stage; not a no-op:\n{r.stdout[-2000:]}")
            print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)
        result = {
            "what": "no-op dvc status / dvc repro: the shipped pipeline against coarser or smaller variants",
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "dvc": sh(["dvc", "--version"], ROOT).stdout.strip(),
                "loadavg_after": os.getloadavg(),
            },
            "rev": sh(["git", "rev-parse", "--short", "HEAD"], ROOT).stdout.strip(),
            "shape": {n: shape(r) for n, r in repos.items()},  # counted by the DVC on PATH
            "seconds": times,
            "median": {n: {w: statistics.median(v) for w, v in d.items()} for n, d in times.items()},
            "targeted_on_shipped": {
                c: {"seconds": v, "median": statistics.median(v)} for c, v in targeted.items()
            },
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print("| variant | stages | deps | param keys | dvc status (s) | dvc repro (s) |")
        print("|---|---|---|---|---|---|")
        for n, m in result["median"].items():
            s = result["shape"][n]
            counts = f"{s['stages']} | {s['deps']} | {s['param_keys']}"
            print(f"| {n} | {counts} | {m['status']:.2f} | {m['repro']:.2f} |")
        for c, v in result["targeted_on_shipped"].items():
            print(f"shipped, `dvc {c}`: {v['median']:.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
