"""What the output checks cost a stage: one process, no DVC, on this machine's file system.

* ``stage_checks``: what :class:`genemi.errors.Stage` does before a stage's body, for evaluate's eight path
  options (params, data, base, finetuned, metrics, plot dir, headline, items): the collision checks, the
  writability probes and the sweep for a killed run's temporaries;
* ``publish``: evaluate's six output files (metrics JSON, headline JSON, items npz, two CSVs, a PNG; sizes as
  the default pipeline writes them) written atomically inside an :class:`genemi.io.OutputSet` (held back,
  renamed together at the end) against the same writes renamed one by one (no set);
* ``read_bytes``: one read of a zip shard member (the pipeline's layout) with a stage's outputs declared
  (every read is checked against them, once per archive) against none;
* ``load_weights``: loading the default synthetic model's weights with the checks (header, shapes, finite
  values) against safetensors' ``load_file`` + ``load_state_dict`` alone.

Each pair is measured alternately in the same process, best of ``--rounds``.

    python benchmarks/output_set.py --rounds 7

Writes ``benchmarks/results/output_set.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def committed_params_file(folder: Path) -> str:
    """The committed params.yaml (benchmarks/_setup.py), written into ``folder``: the set-up this
    benchmark names, not what `dvc exp run -S` left in the workspace."""
    import yaml

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _setup import committed_raw

    path = folder / "committed-params.yaml"
    if not path.is_file():
        path.write_text(yaml.safe_dump(committed_raw()[0], sort_keys=False))
    return str(path)
sys.path.insert(0, str(ROOT))


def best(fn, rounds: int, n: int) -> float:
    """Best of ``rounds`` of the mean time of ``n`` calls of ``fn``, in microseconds."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n * 1e6)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "output_set.json"))
    args = ap.parse_args()

    import click
    import numpy as np
    import torch

    from genemi import io as gio
    from genemi import outputs as gout
    from genemi.config import load_params
    from genemi.errors import ports
    from genemi.images import read_bytes
    from genemi.models import build_model, load_weights, save_weights

    tmp = Path(tempfile.mkdtemp(prefix="output_set_"))
    (tmp / "data").mkdir()
    for name in ("base", "finetuned"):
        (tmp / f"{name}.safetensors").write_bytes(b"x")
    sys.path.insert(0, str(ROOT / "stages"))
    import evaluate as stage

    values = {
        "params_path": committed_params_file(tmp),
        "data_dir": str(tmp / "data"),
        "base_path": str(tmp / "base.safetensors"),
        "ft_path": str(tmp / "finetuned.safetensors"),
        "metrics_path": str(tmp / "m" / "synth_test.json"),
        "plot_dir": str(tmp / "plots"),
        "headline_path": str(tmp / "h" / "synth_test.json"),
        "items_path": str(tmp / "i" / "synth_test.npz"),
    }

    def checks():
        outs, ins = ports(stage.main, values)
        s = gio.OutputSet(outs, ins)
        for port in outs:
            gio.check_writable(
                *(() if port.folder else (port.path,)), dirs=(port.path,) if port.folder else ()
            )
        s.sweep()

    rng = np.random.default_rng(0)
    files = {
        "m/synth_test.json": 20_000,
        "h/synth_test.json": 1_000,
        "i/synth_test.npz": 60_000,
        "plots/synth_test.csv": 3_000,
        "plots/synth_test_bars.csv": 3_000,
        "plots/synth_test.png": 40_000,
    }
    blobs = {k: rng.integers(0, 255, n, dtype=np.uint8).tobytes() for k, n in files.items()}

    def write_all():
        for rel, data in blobs.items():
            with gio.atomic_path(tmp / rel) as t:
                t.write_bytes(data)

    out_ports = [gio.Port("--x", tmp / rel) for rel in files]

    def in_set():
        with gio.OutputSet(out_ports):
            write_all()

    # a shard of 256 members, read by name as the pipeline reads its images
    shard_dir = tmp / "shards"
    shard_dir.mkdir()
    with zipfile.ZipFile(shard_dir / "test.zip", "w", zipfile.ZIP_STORED) as z:
        for i in range(256):
            z.writestr(f"test/{i}.png", rng.integers(0, 255, 2000, dtype=np.uint8).tobytes())
    names = [shard_dir / "test" / f"{i}.png" for i in range(256)]
    it = iter(range(1 << 62))

    def read_one():
        read_bytes(names[next(it) % 256])

    stage_set = gio.OutputSet(out_ports)

    def read_in_set():  # as inside a running stage: the set is current
        gout._stack.append(stage_set)
        try:
            read_one()
        finally:
            gout._stack.pop()

    p = load_params(committed_params_file(tmp))
    model = build_model(p.model)
    save_weights(model, tmp / "w.safetensors", {"arch": p.model.arch, "tokenizer": p.model.tokenizer})

    def plain_load():
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(tmp / "w.safetensors")), strict=True)

    def checked_load():
        load_weights(
            model, tmp / "w.safetensors", "--base", {"arch": p.model.arch, "tokenizer": p.model.tokenizer}
        )

    torch.set_num_threads(1)
    results = {"machine": f"{os.cpu_count()} CPUs (shared)", "rounds": args.rounds}
    r = args.rounds
    results["stage_checks_us"] = round(best(checks, r, 50), 1)
    pub, direct = [], []
    for _ in range(r):
        pub.append(best(in_set, 1, 20))
        direct.append(best(write_all, 1, 20))
    results["publish_six_files_us"] = {"output_set": round(min(pub), 1), "one_by_one": round(min(direct), 1)}
    a, b = [], []
    for _ in range(r):
        a.append(best(read_in_set, 1, 2000))
        b.append(best(read_one, 1, 2000))
    results["read_bytes_member_us"] = {"outputs_declared": round(min(a), 2), "no_set": round(min(b), 2)}
    a, b = [], []
    for _ in range(r):
        a.append(best(checked_load, 1, 10))
        b.append(best(plain_load, 1, 10))
    results["load_weights_default_model_us"] = {
        "checked": round(min(a), 1),
        "load_file_only": round(min(b), 1),
    }
    Path(args.out).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, indent=2, sort_keys=True))
    click.echo(f"-> {args.out}")


if __name__ == "__main__":
    main()
