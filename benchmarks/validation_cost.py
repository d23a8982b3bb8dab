"""What the bad-data validation (docs/reliability.md, classes 3-6) costs the default `dvc repro`.

Times, on the default params and the default pipeline's data, each step whose code the validation
touches, for this checkout and for a baseline checkout of the code before it (``--baseline DIR``, e.g.
``git archive 9c6e886 | tar -x -C /tmp/base``), in alternating subprocesses so machine load hits both
alike; the best of ``--rounds`` per step is reported:

* ``load_params``: params.yaml -> checked dataclasses (the duplicate-key scan, the cross-key rules);
  every stage does it once;
* ``read_records``: the training manifest ``negatives/train.jsonl`` (UTF-8 per line, identical
  negatives, paths, held-out splits); base and finetune each read it once;
* ``load_benchmark``: ``synth_test`` + ``synth_gen`` (item checks); the two evaluate stages and the
  fine-tuning monitor;
* ``read_image``: ``--images`` decodes of the pipeline's own PNGs from their shard (the viewer's-eye
  conversion; RGB images take ``convert("RGB")`` as before); per image, in microseconds.

    python benchmarks/validation_cost.py --baseline /tmp/base --data data --rounds 5

Writes ``benchmarks/results/validation_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
root, data, n_images, params = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, root)
from pathlib import Path
from genemi.config import load_params
from genemi.manifest import read_records, iter_manifest
from genemi.benchmarks import load_benchmark
from genemi.images import read_image
out = {}
t = time.perf_counter(); p = load_params(params); out["load_params"] = time.perf_counter() - t
t = time.perf_counter(); read_records(Path(data) / "negatives" / "train.jsonl")
out["read_records"] = time.perf_counter() - t
t = time.perf_counter()
for name in ("synth_test", "synth_gen"):
    load_benchmark(p.eval, name, data, seed=p.eval.seed)
out["load_benchmark"] = time.perf_counter() - t
refs = [r.image for r in iter_manifest(Path(data) / "negatives" / "test.jsonl")][:n_images]
read_image(Path(data) / refs[0])  # open the shard once
t = time.perf_counter()
for ref in refs:
    read_image(Path(data) / ref)
out["read_image_us"] = 1e6 * (time.perf_counter() - t) / len(refs)
print(json.dumps(out))
"""


def committed_params_file() -> str:
    """The committed params.yaml (benchmarks/_setup.py) in a temporary file both code versions load."""
    import tempfile

    import yaml

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _setup import committed_raw

    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="validation-cost-", delete=False)
    with f:
        f.write(yaml.safe_dump(committed_raw()[0], sort_keys=False))
    return f.name


def run(root: Path, data: Path, images: int, params: str) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(root), str(data), str(images), params], capture_output=True,
                       text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    if r.returncode:
        raise SystemExit(f"{root}: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", required=True, help="a checkout of the code before the validation")
    ap.add_argument("--data", default="data", help="the default pipeline's data folder (after dvc repro)")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/validation_cost.json")
    a = ap.parse_args()
    trees = {"current": Path(__file__).resolve().parents[1], "baseline": Path(a.baseline).resolve()}
    best: dict[str, dict[str, float]] = {k: {} for k in trees}
    params = committed_params_file()
    for _ in range(a.rounds):
        for name, root in trees.items():
            for k, v in run(root, Path(a.data).resolve(), a.images, params).items():
                best[name][k] = min(v, best[name].get(k, float("inf")))
    # per default `dvc repro`: load_params in 6 stages, the training manifest read by base and finetune,
    # the two benchmarks loaded by their evaluate stages (and synth_test once more by the monitor)
    uses = {"load_params": 6, "read_records": 2, "load_benchmark": 1.5}
    extra = sum(n * (best["current"][k] - best["baseline"][k]) for k, n in uses.items())
    result = {"rounds": a.rounds, "images": a.images, "best": best,
              "per_repro_s_excluding_image_decodes": round(extra, 3),
              "read_image_us_delta": round(best["current"]["read_image_us"] - best["baseline"]["read_image_us"], 2)}
    Path(a.out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
