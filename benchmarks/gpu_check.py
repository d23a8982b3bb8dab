"""The GPU check: one script, one GPU, nothing downloaded, at most ~8 minutes.

Random-init real-size models and generated real-format JPEGs (the GPU machine has no network); random
weights cost what pretrained ones cost. Records, in ``benchmarks/results/gpu_check.json``:

1. ViT-B/32 fine-tuning samples/s, ours (DeepSpeed engine, bf16, hard negatives as batch rows, images
   decoded by ``data.workers`` processes) against open_clip_train's ``train_one_epoch`` (amp_bf16) on the
   same GPU, batch, files and decode workers; our data-wait fraction and peak memory (``perf/*``);
2. evaluation images/s: both models encode every image of a benchmark, each image decoded once;
3. real-size mining images/minute (Grounding DINO -> SAM -> SD inpainting -> BLIP), via
   ``benchmarks/mine_real_throughput.py``.

    python benchmarks/gpu_check.py                      # on the GPU machine
    python benchmarks/gpu_check.py --smoke --device cpu  # plumbing check on a CPU (a few steps, no mining)

Targets: ours >= 0.95x open_clip_train's samples/s; data wait < 5% of step time at batch 256.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _setup  # noqa: E402  (this checkout's genemi; the committed params.yaml)
import torch  # noqa: E402
from input_pipeline import make_jpegs  # noqa: E402


def records(names: list[str]):
    """One record per image pair: caption + a negative with an edited image (its own true pair)."""
    from genemi.manifest import Negative, Record

    half = len(names) // 2
    return [Record(id=str(i), image=names[i], caption=f"a photo of a red dog number {i} on the left",
                   negatives=(Negative("attribute_swap", caption=f"a photo of a dog number {i} on the left "
                                       "next to something red", image=names[half + i]),))
            for i in range(half)]


def ours(p, folder: Path, recs, steps: int) -> dict:
    """samples/s, data-wait fraction and peak memory of genemi's training loop over ``steps`` steps."""
    from genemi.clip import Clip
    from genemi.run import make_run, training_bank
    from genemi.train import train

    torch.manual_seed(0)
    clip = Clip.from_params(p.model)
    run = make_run(p, "finetune", clip.module, training_bank(p, "finetune", clip, recs, folder), recs,
                   fingerprint="")
    logged: list[dict] = []
    train(run, log=lambda step, v: logged.append({"step": step, **v}), log_every=max(1, steps // 4),
          progress=False)
    timed = [r for r in logged if r["step"] > 0]  # the first row includes worker start-up and warm-up
    return {
        "samples_per_s": round(sum(r["perf/samples_per_s"] for r in timed) / len(timed), 1),
        "data_wait": round(sum(r["perf/data_wait"] for r in timed) / len(timed), 4),
        "peak_mem_gib": round(max(r.get("perf/peak_mem_gib", 0.0) for r in logged), 2),
        "workers": run.workers,
        "rows_per_step": p.finetune.batch_size,
    }


class _Files(torch.utils.data.Dataset):
    def __init__(self, folder, recs, transform, tokenizer):
        self.folder, self.recs, self.transform, self.tokenizer = folder, recs, transform, tokenizer

    def __len__(self):
        return len(self.recs)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.folder / self.recs[i].image) as im:
            return self.transform(im.convert("RGB")), self.tokenizer([self.recs[i].caption])[0]


def open_clip_rate(p, folder: Path, recs, steps: int, device: str, workers: int) -> float:
    """samples/s of ``open_clip_train.train.train_one_epoch`` on the same files (after a warm-up epoch)."""
    import open_clip
    from open_clip.loss import ClipLoss
    from open_clip_train.scheduler import cosine_lr
    from open_clip_train.train import train_one_epoch

    from genemi.clip import image_transform

    torch.manual_seed(0)
    model = open_clip.create_model(p.model.arch, output_dict=True).to(device)
    tok = open_clip.get_tokenizer(p.model.arch)
    # open_clip_train.main's batch = our rows: records and their negatives are all pairs to it
    pairs = [*recs, *[dataclasses.replace(r, image=r.negatives[0].image, caption=r.negatives[0].caption)
                      for r in recs]]
    ds = _Files(folder, pairs, image_transform(model, p.model), tok)
    opt = torch.optim.AdamW(model.parameters(), lr=p.finetune.lr, betas=(0.9, 0.98), eps=1e-6,
                            weight_decay=p.finetune.weight_decay)
    batch = p.finetune.batch_size
    args = SimpleNamespace(device=device, precision="amp_bf16" if device != "cpu" else "fp32", distill=False,
                           accum_freq=1, skip_scheduler=False, horovod=False, grad_clip_norm=p.finetune.grad_clip,
                           log_every_n_steps=10**9, batch_size=batch, world_size=1, rank=0, local_rank=0,
                           wandb=False, save_logs=False)
    sched = cosine_lr(opt, p.finetune.lr, p.finetune.warmup_steps, 2 * steps)

    def loader(n):
        cyclic = [i % len(ds) for i in range(n * batch)]
        dl = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, cyclic), batch_size=batch, shuffle=False,
                                         drop_last=True, num_workers=workers, pin_memory=device != "cpu",
                                         persistent_workers=False)
        dl.num_batches, dl.num_samples = n, n * batch
        return {"train": SimpleNamespace(dataloader=dl, set_epoch=lambda epoch: None)}

    loss = ClipLoss()
    train_one_epoch(model, loader(2), loss, 0, opt, None, sched, None, args)
    sync()
    start = time.perf_counter()
    train_one_epoch(model, loader(steps), loss, 1, opt, None, sched, None, args)
    sync()
    return steps * batch / (time.perf_counter() - start)


def eval_rate(p, folder: Path, recs, device: str, workers: int) -> float:
    """Images/s of evaluating two models on a benchmark of ``recs`` (decode once, encode with both)."""
    from genemi.clip import Clip
    from genemi.evalsets import EvalSet, ImageStore
    from genemi.evaluate import evaluate_models

    clips = {n: Clip.from_params(p.model, device=device, batch_size=p.eval.batch_size)
             for n in ("base", "finetuned")}
    for c in clips.values():
        c.module.to(torch.bfloat16 if device != "cpu" else torch.float32)
    es = EvalSet("gpu_check", ImageStore(folder), list(recs))
    evaluate_models(clips, es, workers=workers)  # warm-up
    sync()
    start = time.perf_counter()
    evaluate_models(clips, es, workers=workers)
    sync()
    n_images = len({r.image for r in recs} | {n.image for r in recs for n in r.negatives})
    return n_images / (time.perf_counter() - start)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--images", type=int, default=2048, help="distinct JPEGs generated (640x480-like)")
    ap.add_argument("--workers", type=int, default=-1, help="data.workers (-1: automatic)")
    ap.add_argument("--smoke", action="store_true", help="tiny arch and sizes: a CPU plumbing check")
    ap.add_argument("--no-mining", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_check.json"))
    a = ap.parse_args()
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("Error: --device cuda but torch sees no GPU; run on the GPU machine or pass --smoke --device cpu")
    from genemi import runtime

    p = _setup.shipped_params()  # the committed defaults; the changes below are this benchmark's set-up
    arch = "ViT-B-32"
    if a.smoke:
        a.batch, a.steps, a.images = 4, 3, 16
    p = dataclasses.replace(
        p,
        data=dataclasses.replace(p.data, workers=a.workers),
        model=dataclasses.replace(p.model, arch=arch, pretrained="", tokenizer="open_clip"),
        finetune=dataclasses.replace(p.finetune, steps=a.steps, batch_size=a.batch, lr=1e-5, warmup_steps=2,
                                     checkpoint_every=0),
        loss=dataclasses.replace(p.loss, negatives_per_sample=1, image_negatives=True, hn_weight=1.0),
        deepspeed=dataclasses.replace(p.deepspeed, precision="bf16" if a.device != "cpu" else "fp32"),
    )
    workers = runtime.loader_workers(a.workers, in_memory=False)
    result: dict = {"config": {"device": torch.cuda.get_device_name() if a.device != "cpu" else "cpu",
                               "arch": arch, "batch_rows": a.batch, "steps": a.steps, "images": a.images,
                               "workers": workers, "cpus": os.cpu_count(), "torch": torch.__version__,
                               "precision": p.deepspeed.precision, "params": _setup.params_source()}}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        recs = records(make_jpegs(folder, a.images))
        result["ours"] = ours(p, folder, recs, a.steps)
        print("ours:", result["ours"], flush=True)
        result["open_clip_train_samples_per_s"] = round(open_clip_rate(p, folder, recs, a.steps, a.device, workers), 1)
        result["ratio_vs_open_clip"] = round(result["ours"]["samples_per_s"] / result["open_clip_train_samples_per_s"], 3)
        print("open_clip_train:", result["open_clip_train_samples_per_s"], flush=True)
        result["eval_images_per_s"] = round(eval_rate(p, folder, recs[: min(len(recs), 512)], a.device, workers), 1)
        print("eval images/s:", result["eval_images_per_s"], flush=True)
    if not (a.smoke or a.no_mining):
        mined = Path(tempfile.mkdtemp()) / "mine.json"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mine_real_throughput.py"), "--device", a.device,
                        "--dtype", "float16", "--images", "2", "--steps", "25", "--variations", "2",
                        "--out", str(mined)], check=True, timeout=300)
        result["mining"] = json.loads(mined.read_text())
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["targets"] = {"ratio_vs_open_clip": ">= 0.95", "data_wait": "< 0.05 at batch 256 bf16"}
    out = Path(a.out) if not a.smoke else Path(tempfile.gettempdir()) / "gpu_check_smoke.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
