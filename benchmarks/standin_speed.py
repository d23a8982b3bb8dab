"""Wall time of writing each synthetic stand-in (genemi/data/standin.py) at the default size.

The stand-ins exist so the real roads run offline in minutes; writing them must take seconds. This
writes HNC, GQA, COCO and genemi_val stand-ins for the committed params.yaml's synth section and
real.subset_seed (``--params`` names another file) at ``--size`` scenes (default: data.stand_in_size) into
a temporary folder, times each writer, counts the files and bytes written, and records the figures as JSON.

    python benchmarks/standin_speed.py [--size 500] [--out benchmarks/results/standin_speed.json]
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
import zipfile
from pathlib import Path

import _setup  # this checkout's genemi; the committed params.yaml
import click

from genemi.config import load_params
from genemi.data import standin


def _jpegs(f: Path) -> int:
    """JPEGs in file ``f``: itself, or its members when it is a zip."""
    if f.suffix == ".zip":
        with zipfile.ZipFile(f) as z:
            return sum(n.endswith(".jpg") for n in z.namelist())
    return int(f.suffix == ".jpg")


@click.command()
@click.option("--params", "params_path", default=None,
              help="A params file to measure [the committed params.yaml, not the workspace's].")
@click.option("--size", type=int, default=None, help="Scenes of the largest split [data.stand_in_size].")
@click.option("--out", default="benchmarks/results/standin_speed.json", show_default=True)
def main(params_path: str, size: int | None, out: str) -> None:
    p = load_params(params_path) if params_path else _setup.shipped_params()
    size = size or p.data.stand_in_size
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for write in (standin.write_hnc, standin.write_gqa, standin.write_coco, standin.write_genemi_val):
            folder = Path(tmp) / write.__name__
            t = time.perf_counter()
            result = write(p.synth, p.real.subset_seed, size, folder)
            seconds = time.perf_counter() - t
            files = [f for f in folder.rglob("*") if f.is_file()]
            rows[write.__name__] = {
                "seconds": round(seconds, 2),
                "files": len(files),  # GQA and COCO images sit in one zip each, as published
                "jpeg_images": sum(_jpegs(f) for f in files),
                "mbytes": round(sum(f.stat().st_size for f in files) / 2**20, 2),
                "result": result,
            }
            click.echo(f"{write.__name__}: {rows[write.__name__]}")
    record = {
        "size": size,
        "params": params_path or _setup.params_source(),
        "image_size": p.synth.image_size,
        "writers": rows,
        "total_seconds": round(sum(r["seconds"] for r in rows.values()), 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}",
        "load_average_1min": round(os.getloadavg()[0], 2),  # > CPUs: the figures include waiting for a core
    }
    Path(out).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
