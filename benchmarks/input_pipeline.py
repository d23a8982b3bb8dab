"""Input pipeline throughput: training batches built in the main process vs in decode workers.

Generates real-format JPEGs (640x480 and similar, like COCO/GQA), indexes them as a file-backed
:class:`~genemi.bank.PairBank` with one hard negative (caption + edited image) per record, and times
:func:`genemi.train.step_batches` -- sampling, negative drawing, JPEG decoding and ViT-B/32's eval
preprocessing -- with ``data.workers`` = 0 and = N, side by side in one run. No model step: this is
the rate at which the pipeline can feed a GPU. Writes ``benchmarks/results/input_pipeline.json``.

    python benchmarks/input_pipeline.py --images 384 --workers 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import _setup  # this checkout's genemi; the committed params.yaml

ROOT = _setup.ROOT

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402


def make_jpegs(folder: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` smooth random JPEGs of COCO-like sizes (quality 90), so decoding costs what real photos cost."""
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        w, h = (640, 480) if i % 3 else (int(rng.integers(480, 641)), int(rng.integers(360, 481)))
        small = rng.integers(0, 255, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        im = Image.fromarray(small).resize((w, h), Image.BILINEAR)
        names.append(f"{i:05d}.jpg")
        im.save(folder / names[-1], quality=90)
    return names


class _StaticSampler:
    def __init__(self, n: int, per_step: int, seed: int):
        self.n, self.per_step, self.seed = n, per_step, seed

    def indices(self, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return torch.randperm(self.n, generator=g)[: self.per_step]


def rate(run, steps: int, warm: int) -> float:
    """Images per second delivered by ``step_batches`` over ``steps`` steps, after ``warm`` steps."""
    from genemi.train import step_batches

    it = step_batches(run, 0, 0, 1)
    for _ in range(warm):
        next(it)
    start = time.perf_counter()
    n = 0
    for _ in range(steps):
        n += sum(len(b.images) for b in next(it))
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=384, help="distinct JPEGs generated")
    ap.add_argument("--batch", type=int, default=64, help="rows per step (records + their negatives)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--arch", default="ViT-B-32")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "input_pipeline.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)

    from genemi.bank import PairBank
    from genemi.clip import Clip
    from genemi.config import ModelParams, OptimParams
    from genemi.manifest import Negative, Record
    from genemi.run import TrainingRun

    transform = Clip.from_params(ModelParams(a.arch, "", "open_clip")).transform
    with tempfile.TemporaryDirectory() as tmp:
        names = make_jpegs(Path(tmp), a.images)
        half = len(names) // 2
        recs = [Record(id=str(i), image=names[i], caption=f"photo {i}",
                       negatives=(Negative("swap", caption=f"other {i}", image=names[half + i]),))
                for i in range(half)]
        bank = PairBank.from_records(recs, tmp, lambda t: torch.zeros(len(t), 8, dtype=torch.long),
                                     transform=transform)
        opt = OptimParams(steps=a.warm + a.steps, batch_size=a.batch, lr=0.0, weight_decay=0.0, warmup_steps=0,
                          grad_clip=0.0, trainable="full", last_blocks=1, checkpoint_every=0)
        loss = dataclasses.replace(_setup.shipped_params().loss, negatives_per_sample=1,
                                   image_negatives=True)
        results = {}
        for workers in (0, a.workers):
            run = TrainingRun(engine=None, bank=bank, sampler=_StaticSampler(half, a.batch // 2, 0), opt=opt,
                              loss=loss, seed=0, negatives=1, negative_rows=True, records_per_step=a.batch // 2,
                              accum=1, workers=workers)
            results[workers] = rate(run, a.steps, a.warm)
            print(f"workers={workers}: {results[workers]:.1f} images/s", flush=True)
    out = {
        "config": {"images": a.images, "batch_rows": a.batch, "steps_timed": a.steps, "warmup_steps": a.warm,
                   "arch_preprocess": a.arch, "cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                   "torch": torch.__version__},
        "images_per_s": {f"workers_{w}": round(r, 1) for w, r in results.items()},
        "speedup": round(results[a.workers] / results[0], 3),
        "target": f"workers={a.workers} >= 1.7x workers=0 (2-core CPU)",
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(json.dumps(out, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
