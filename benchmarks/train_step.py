"""Training-step throughput: our DeepSpeed step vs open_clip's own training loop, one run.

open_clip_torch 3.3.0's wheel ships ``open_clip_train`` (the ``main.py`` training package), so
the reference is its real ``train_one_epoch`` (ClipLoss, autocast context, backward, grad
clipping, AdamW step, cosine LR, logit-scale clamp) over an in-memory DataLoader of already
preprocessed tensors -- no JPEG decoding on either side.

Ours is ``genemi.train.train`` on a DeepSpeed engine (fp32, ZeRO 0, one CPU process) reading
a :class:`~genemi.bank.PairBank` (uint8 images scaled per batch), measured (a) as plain CLIP,
and with one caption and one edited-image hard negative per sample (additive form, w = 1):
(b) ``negative_rows`` (the default way negatives train): the negative (edited image, its
caption) is itself a true pair and a row of the batch, so a batch of B rows is B/2 records plus
their B/2 negatives, each row's partner is its hard negative on both sides, and nothing is
encoded twice; (c) negatives as extra inputs: B rows plus B negative captions and B negative
images encoded on top, about 2x the encoder work (forward + backward dominate).

Same architecture (``genemi-synth-vit``), batch, optimizer settings, threads. Rounds alternate
the three set-ups and the median is reported, since the host is shared. The params are the committed
``params.yaml``'s (``benchmarks/_setup.py``), not the workspace's. Writes
``benchmarks/results/train_step.json``.

    OMP_NUM_THREADS=2 python benchmarks/train_step.py --threads 2 --batch 128 --steps 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import _setup  # this checkout's genemi; the committed params.yaml

ROOT = _setup.ROOT

import torch  # noqa: E402

from genemi.bank import PairBank  # noqa: E402

N_IMAGES, WARM = 1024, 3


def make_bank(n: int, image_size: int, context: int) -> PairBank:
    """``n`` random pairs, each with one caption negative and one edited-image negative."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2 * n, image_size, image_size, 3), generator=g, dtype=torch.uint8)
    tokens = torch.zeros(2 * n, context, dtype=torch.long)
    tokens[:, 0], tokens[:, 6] = 1, 2
    tokens[:, 1:6] = torch.randint(3, 32, (2 * n, 5), generator=g)
    idx = torch.arange(n)
    return PairBank(
        images=images,
        tokens=tokens,
        pos_image=idx,
        pos_text=idx,
        neg_text=(idx + n)[:, None],
        neg_image=(idx + n)[:, None],
    )


def open_clip_rate(p, bank: PairBank, batch: int, steps: int) -> float:
    """samples/s of ``open_clip_train.train.train_one_epoch`` over ``steps`` batches (after warm-up)."""
    import open_clip
    from open_clip.loss import ClipLoss
    from open_clip_train.scheduler import cosine_lr
    from open_clip_train.train import train_one_epoch

    from genemi.models import preprocess_array, register_configs

    register_configs()
    torch.manual_seed(0)
    model = open_clip.create_model(p.model.arch, output_dict=True)  # as open_clip_train.main does
    images = preprocess_array(bank.images[bank.pos_image])
    texts = bank.tokens[bank.pos_text]
    ds = torch.utils.data.TensorDataset(images, texts)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=p.finetune.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
        weight_decay=p.finetune.weight_decay,
    )
    args = SimpleNamespace(
        device="cpu",
        precision="fp32",
        distill=False,
        accum_freq=1,
        skip_scheduler=False,
        horovod=False,
        grad_clip_norm=p.finetune.grad_clip,
        log_every_n_steps=10**9,
        batch_size=batch,
        world_size=1,
        rank=0,
        local_rank=0,
        wandb=False,
        save_logs=False,
    )
    total = WARM + steps
    sched = cosine_lr(opt, p.finetune.lr, p.finetune.warmup_steps, total)

    def loader(n):
        cyclic = [i % len(ds) for i in range(n * batch)]  # epochs over the same pairs, like ours
        dl = torch.utils.data.DataLoader(
            torch.utils.data.Subset(ds, cyclic),
            batch_size=batch,
            shuffle=False,
            drop_last=True,
            num_workers=0,
        )
        dl.num_batches, dl.num_samples = n, n * batch
        # open_clip_train.data.DataInfo, minus that module's webdataset/braceexpand imports
        return {"train": SimpleNamespace(dataloader=dl, set_epoch=lambda epoch: None)}

    loss = ClipLoss()
    train_one_epoch(model, loader(WARM), loss, 0, opt, None, sched, None, args)
    start = time.perf_counter()
    train_one_epoch(model, loader(steps), loss, 1, opt, None, sched, None, args)
    return steps * batch / (time.perf_counter() - start)


def our_rate(p, bank: PairBank, batch: int, steps: int, negatives: bool, rows: bool = False) -> float:
    """samples/s of ``genemi.train.train`` (DeepSpeed engine) over ``steps`` steps after warm-up."""
    from genemi.models import build_model
    from genemi.run import make_run
    from genemi.train import train

    torch.manual_seed(0)
    opt = dataclasses.replace(p.finetune, steps=WARM + steps, batch_size=batch)
    loss = dataclasses.replace(
        p.loss,
        hn_weight=1.0 if negatives else 0.0,
        form="additive",
        image_negatives=negatives,
        negatives_per_sample=1,
    )
    p = dataclasses.replace(p, seed=0, finetune=opt, loss=loss,
                            batching=dataclasses.replace(p.batching, negative_rows=rows))
    run = make_run(p, "finetune", build_model(p.model), bank, fingerprint="")
    stamps: dict[int, float] = {}
    train(run, progress=False, log_every=1, log=lambda step, _: stamps.__setitem__(step, time.perf_counter()))
    return steps * batch / (stamps[WARM + steps - 1] - stamps[WARM - 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_step.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    p = _setup.shipped_params()  # the default set-up; each rate function states its own changes
    import open_clip

    from genemi.models import register_configs

    register_configs()
    cfg = open_clip.get_model_config(p.model.arch)
    bank = make_bank(N_IMAGES, cfg["vision_cfg"]["image_size"], cfg["text_cfg"]["context_length"])
    rates: dict[str, list[float]] = {
        "open_clip": [],
        "ours_plain": [],
        "ours_hn_rows": [],
        "ours_hn_extra": [],
    }
    for r in range(a.rounds):
        rates["open_clip"].append(open_clip_rate(p, bank, a.batch, a.steps))
        rates["ours_plain"].append(our_rate(p, bank, a.batch, a.steps, negatives=False))
        rates["ours_hn_rows"].append(our_rate(p, bank, a.batch, a.steps, negatives=True, rows=True))
        rates["ours_hn_extra"].append(our_rate(p, bank, a.batch, a.steps, negatives=True))
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()), flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "config": {
            "arch": p.model.arch,
            "params": _setup.params_source(),
            "batch": a.batch,
            "steps_timed": a.steps,
            "warmup_steps": WARM,
            "threads": a.threads,
            "rounds": a.rounds,
            "precision": "fp32",
            "device": "cpu",
            "negatives": "1 caption + 1 edited image per sample (additive, w=1); rows: B/2 records + "
            "their B/2 negatives as rows; extra: B rows + B negative captions + B negative images",
            "torch": torch.__version__,
            "open_clip": open_clip.__version__,
            "cpu": platform.processor() or platform.machine(),
        },
        "samples_per_s": {k: round(v, 1) for k, v in med.items()},
        "samples_per_s_rounds": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "ratio_plain_vs_open_clip": round(med["ours_plain"] / med["open_clip"], 3),
        "ratio_hn_step_time_vs_plain": round(med["ours_plain"] / med["ours_hn_rows"], 3),
        "ratio_hn_extra_step_time_vs_plain": round(med["ours_plain"] / med["ours_hn_extra"], 3),
        "targets": {"ratio_plain_vs_open_clip": ">= 1.0", "ratio_hn_step_time_vs_plain": "<= 1.5"},
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
