"""`dvc status` on a GQA-sized image set: one tracked zip versus the same images loose in a folder.

Issue 17: DVC looks at every file of every output on each `dvc status`, and GQA has 148k images.
The download stages now keep the published zip as their output (genemi/data/sources.py) and the
image reader reads members from it (genemi/images.py). This builds ``--files`` tiny JPEGs (distinct
``--pixels`` x ``--pixels`` images, GQA's member layout ``images/<id>.jpg``) in one stored zip
written with :class:`genemi.images.ShardWriter`, inside a scratch git + DVC repository; tracks it
with ``dvc add``; times ``dvc status`` ``--runs`` times (median) and checks that a member reads back.
For comparison it does the same with ``--loose-files`` of those images as loose files in a folder
(0 skips it). Target (issue 17): ``dvc status`` <= 3 s once the zip is tracked.

The load average is recorded beside each timing: on a shared machine a figure includes waiting
for a core. Every command runs in scratch folders under ``--workdir`` (removed afterwards).

    PYTHONPATH=. nice -n 19 python benchmarks/dvc_status_scale.py \
        [--files 150000] [--loose-files 150000] [--out benchmarks/results/dvc_status_scale.json]
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
from PIL import Image

from genemi.images import ShardWriter, read_rgb

ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@example.com",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@example.com"}  # fmt: skip


def _jpegs(n: int, pixels: int):
    """``(name, bytes)`` of ``n`` distinct tiny JPEGs (each a different flat colour plus a dot)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        img = np.full((pixels, pixels, 3), [(i >> 16) & 255, (i >> 8) & 255, i & 255], np.uint8)
        img[rng.integers(pixels), rng.integers(pixels)] = rng.integers(256, size=3, dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=90)
        yield f"{1_000_000 + i}.jpg", buf.getvalue()


def _run(repo: Path, *args: str) -> float:
    """Seconds ``args`` took in ``repo``; a failure stops the benchmark with its output."""
    t = time.perf_counter()
    r = subprocess.run(args, cwd=repo, env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if r.returncode != 0:
        raise click.ClickException(f"{' '.join(args)} failed in {repo}:\n{r.stdout}\n{r.stderr}")
    return seconds


def _dvc(repo: Path, *args: str) -> float:
    return _run(repo, sys.executable, "-m", "dvc", *args)


def _scratch_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    _run(root, "git", "init", "-q")
    _dvc(root, "init", "-q")
    _dvc(root, "config", "core.analytics", "false")
    _run(root, "git", "commit", "-qm", "init")
    return root


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _track_and_time(repo: Path, target: str, runs: int) -> dict:
    """``dvc add`` ``target``, commit, then ``dvc status`` ``runs`` times; the figures as a dict."""
    load_before = _load()
    add = _dvc(repo, "add", "-q", target)
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", f"track {target}")
    status = []
    for _ in range(runs):
        status.append(round(_dvc(repo, "status", "-q"), 3))  # -q: exit 0 means up to date
    return {
        "dvc_add_s": round(add, 2),
        "dvc_status_s": status,
        "dvc_status_median_s": statistics.median(status),
        "load_average_1min": {"before": load_before, "after": _load()},
    }


@click.command()
@click.option("--files", type=int, default=150_000, show_default=True, help="Images in the zip (GQA: 148k).")
@click.option("--loose-files", type=int, default=150_000, show_default=True,
              help="Of those, how many to also track loose in a folder for comparison (0 = skip).")
@click.option("--pixels", type=int, default=16, show_default=True, help="Image side.")
@click.option("--runs", type=int, default=3, show_default=True, help="Timed `dvc status` runs (median).")
@click.option("--workdir", type=click.Path(file_okay=False), default=None, help="Scratch parent [temp].")
@click.option("--out", default="benchmarks/results/dvc_status_scale.json", show_default=True)
def main(files: int, loose_files: int, pixels: int, runs: int, workdir: str | None, out: str) -> None:
    record: dict = {
        "files": files,
        "pixels": pixels,
        "runs": runs,
        "dvc": subprocess.run([sys.executable, "-m", "dvc", "--version"], capture_output=True, text=True,
                              env=ENV).stdout.strip(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}",
        "uptime_start": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        repo = _scratch_repo(Path(tmp) / "zipped")
        folder = repo / "data" / "gqa" / "images"
        t = time.perf_counter()
        with ShardWriter(folder) as shard:
            for name, data in _jpegs(files, pixels):
                shard.write(folder / name, data)
        zip_path = folder.with_name("images.zip")
        record["zip"] = {"write_s": round(time.perf_counter() - t, 2),
                         "mbytes": round(zip_path.stat().st_size / 2**20, 1)}
        last = folder / f"{1_000_000 + files - 1}.jpg"
        assert read_rgb(last).shape == (pixels, pixels, 3)  # a member reads back through the reader
        record["zip"].update(_track_and_time(repo, "data/gqa/images.zip", runs))
        click.echo(f"zip: {record['zip']}")
        shutil.rmtree(repo)

        if loose_files:
            repo = _scratch_repo(Path(tmp) / "loose")
            folder = repo / "data" / "gqa" / "images"
            folder.mkdir(parents=True)
            t = time.perf_counter()
            for name, data in _jpegs(loose_files, pixels):
                (folder / name).write_bytes(data)
            record["loose"] = {"files": loose_files, "write_s": round(time.perf_counter() - t, 2)}
            record["loose"].update(_track_and_time(repo, "data/gqa/images", runs))
            click.echo(f"loose: {record['loose']}")
    record["uptime_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    Path(out).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
