"""Wall time of `genemi eval` and `genemi compare` on the synthetic test split (the target: seconds).

Writes the synthetic world's test split at params.yaml's size (synth.n_test scenes, mined negatives;
training scenes cut to 8, which the test split does not depend on) into a temporary folder, saves
random-init weights of the default architecture (genemi-synth-vit, with genemi metadata so the file
names its architecture), then runs, as a user would, each command in a fresh process ``--repeats``
times and records the wall times (process start, imports, model load, decoding, encoding, metrics with
params.yaml's bootstrap, files written):

    genemi eval --model w.safetensors -b synth_test --data <tmp>/data --device cpu
    genemi compare base=w.safetensors other=w2.safetensors -b synth_test --data <tmp>/data --device cpu
    genemi --help

    PYTHONPATH=. python benchmarks/cli_eval.py [--repeats 3] [--out benchmarks/results/cli_eval.json]
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _timed(args: list[str], cwd: Path) -> tuple[float, float | None, float]:
    """``(wall seconds of the process, seconds it reports for scoring the benchmark, its CPU seconds)``;
    the CPU seconds (user + system) depend far less on what else the machine runs than the wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "genemi", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if res.returncode != 0:
        raise SystemExit(f"genemi {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    scored = re.search(r"^## synth_test \(([\d.]+) s\)", res.stdout, re.M)
    return round(wall, 2), float(scored.group(1)) if scored else None, round(cpu, 2)


@click.command()
@click.option("--params", "params_path", default=None, help="params file [default: the committed params.yaml]")
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--out", default=str(ROOT / "benchmarks/results/cli_eval.json"), show_default=True)
def main(params_path: str, repeats: int, out: str) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "stages"))
    import mine
    import synth_data

    from genemi.config import load_params
    from genemi.models import build_model, save_weights

    if params_path is None:  # the set-up this benchmark names, not what `dvc exp run -S` left behind
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _setup import committed_raw

        raw = committed_raw()[0]
    else:
        raw = yaml.safe_load(Path(params_path).read_text())
    raw["synth"]["n_train"] = 8
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        params = tmp / "bench-params.yaml"
        params.write_text(yaml.safe_dump(raw))
        data = tmp / "data"
        t0 = time.perf_counter()
        synth_data.main.main(["--params", str(params), "--out", str(data)], standalone_mode=False)
        mine.main.main(
            ["--params", str(params), "--root", str(data), "--sheet", str(tmp / "sheet.png")],
            standalone_mode=False,
        )
        prep = time.perf_counter() - t0
        p = load_params(params)
        meta = {"arch": p.model.arch, "pretrained": "", "tokenizer": p.model.tokenizer}
        for seed, name in ((0, "w"), (1, "w2")):
            torch.manual_seed(seed)
            save_weights(build_model(p.model), tmp / f"{name}.safetensors", meta)
        n_records = sum(1 for _ in open(data / "negatives/test.jsonl", encoding="utf-8"))
        common = ["-b", "synth_test", "--data", str(data), "--device", "cpu", "-q"]
        runs = {
            "help": ["--help"],
            "eval": ["eval", "--model", str(tmp / "w.safetensors"), *common, "--out", str(tmp / "ev")],
            "compare": [
                "compare",
                f"base={tmp / 'w.safetensors'}",
                f"other={tmp / 'w2.safetensors'}",
                *common,
                "--out",
                str(tmp / "cmp"),
            ],
        }
        load = os.getloadavg()[0]
        measured = {k: [_timed(a, tmp) for _ in range(repeats)] for k, a in runs.items()}
        times = {k: [m[0] for m in v] for k, v in measured.items()}
        scoring = {k: [m[1] for m in v] for k, v in measured.items() if k != "help"}
        cpu = {k: [m[2] for m in v] for k, v in measured.items()}
        flat = json.loads((tmp / "ev/synth_test.json").read_text())
    result = {
        "what": "wall seconds of `genemi eval` / `genemi compare` (fresh process each), synthetic test split",
        "records": n_records,
        "n_test_scenes": p.synth.n_test,
        "bootstrap": p.eval.bootstrap,
        "split_written_s": round(prep, 1),
        "seconds": times,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "scoring_s": scoring,  # decoding, encoding, metrics and bootstrap, as the command reports it
        "cpu_s": cpu,  # user + system CPU seconds of each process
        "median_cpu_s": {k: statistics.median(v) for k, v in cpu.items()},
        "load_average_1min_before": round(load, 1),
        "model_all_text": flat["model/all/text"],
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.platform(),
    }
    Path(out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    click.echo(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
