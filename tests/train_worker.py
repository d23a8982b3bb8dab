"""A tiny training run for the multi-process and resume tests (not collected by pytest).

Usage: ``python tests/train_worker.py OUT_DIR CONFIG [--checkpoint-dir D] [--step-sleep S]``,
also under ``torchrun --nproc_per_node N``. Writes ``OUT_DIR/weights.safetensors`` and
``OUT_DIR/losses.json`` (rank 0). CONFIG names a loss/ZeRO set-up below.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import frozen_params  # noqa: E402  (tests/fixtures/params.yaml, not the live params.yaml)
import torch  # noqa: E402

from genemi.bank import PairBank  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N, M, KMAX = 48, 80, 3  # records, distinct images, negative slots


def tiny_bank(seed: int = 0) -> PairBank:
    """Random 48 px images and word-id captions with up to 3 text/image negatives per record."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (M, 48, 48, 3), generator=g, dtype=torch.uint8)
    tokens = torch.zeros(N * 4, 12, dtype=torch.long)
    tokens[:, 0] = 1
    tokens[:, 1:6] = torch.randint(3, 32, (N * 4, 5), generator=g)
    tokens[:, 6] = 2
    neg_text = torch.arange(N, N + N * KMAX).reshape(N, KMAX)
    neg_image = torch.randint(N, M, (N, KMAX), generator=g)
    neg_text[::5, 2] = -1  # some records with fewer negatives
    neg_image[::3, 1] = -1  # caption negatives without an edited image
    return PairBank(
        images=images,
        tokens=tokens,
        pos_image=torch.arange(N),
        pos_text=torch.arange(N),
        neg_text=neg_text,
        neg_image=neg_image,
    )


CONFIGS = {
    # the default: additive, text + image negatives, ZeRO 0
    "additive": dict(loss={}, zero=0),
    # negatives as batch rows: 8 rows = 4 records + their negative (caption + edited image)
    "rows": dict(loss=dict(negatives_per_sample=1), zero=1, negative_rows=True),
    # thesis-style: in-softmax, KL to teacher, DPO with reference, L2, ZeRO 2, vision tower only
    "thesis": dict(
        loss=dict(form="in_softmax", kl_weight=0.5, dpo_weight=0.5, l2_weight=0.01, temperature=0.07),
        zero=2,
        trainable="vision",
    ),
    # replay: plain CLIP over 8 pairs of another bank each step, beside the training batch
    "replay": dict(loss=dict(replay_weight=1.0, replay_batch=8), zero=0),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("config", choices=sorted(CONFIGS))
    ap.add_argument("--checkpoint-dir")
    ap.add_argument("--step-sleep", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--local_rank", type=int, default=None)  # passed by the deepspeed launcher
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cfg = CONFIGS[args.config]

    from genemi.models import build_model, save_weights
    from genemi.run import make_run
    from genemi.train import train

    p = frozen_params.load()
    opt = dataclasses.replace(
        p.finetune,
        steps=args.steps,
        batch_size=8,
        warmup_steps=1,
        lr=1e-3,
        trainable=cfg.get("trainable", "full"),
        checkpoint_every=2,
    )
    p = dataclasses.replace(
        p,
        seed=3,
        finetune=opt,
        loss=dataclasses.replace(p.loss, **{"negatives_per_sample": 2, **cfg["loss"]}),
        deepspeed=dataclasses.replace(p.deepspeed, zero_stage=cfg["zero"]),
        batching=dataclasses.replace(p.batching, negative_rows=cfg.get("negative_rows", False)),
    )
    torch.manual_seed(0)
    replay = (tiny_bank(seed=7), "replay") if p.loss.replay_weight > 0 else None
    run = make_run(p, "finetune", build_model(p.model), tiny_bank(), fingerprint=args.config, replay=replay)
    engine = run.engine
    losses: list[dict] = []
    grads: dict[str, torch.Tensor] = {}
    step_fn = engine.step

    def step_and_keep_first_grads():
        # the all-reduced gradient of optimizer step 1 (step 0 has lr 0 under warmup)
        if (
            len(losses) == 1
            and not grads
            and opt.batch_size == engine.train_micro_batch_size_per_gpu() * engine.world_size
        ):
            grads.update(
                {
                    n: p.grad.detach().clone()
                    for n, p in engine.module.named_parameters()
                    if p.grad is not None
                }
            )
        step_fn()

    engine.step = step_and_keep_first_grads

    def log(step, values):
        # the loss terms, lr and logit scale; perf/* are timings, which differ run to run
        losses.append({"step": step, **{k[6:]: v for k, v in values.items() if k.startswith("train/")}})
        if args.step_sleep:
            time.sleep(args.step_sleep)

    tail = train(run, log=log, log_every=1, progress=False, checkpoint_dir=args.checkpoint_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        save_weights(engine.module, out / "weights.safetensors", {})
        if grads:
            from safetensors.torch import save_file

            save_file({n: g.contiguous() for n, g in grads.items()}, str(out / "grads.safetensors"))
        (out / "losses.json").write_text(json.dumps({"steps": losses, "tail": tail}, sort_keys=True))


if __name__ == "__main__":
    main()
