"""The training loop: one DeepSpeed engine, a bank of pairs and negatives, a loss.

Reads top to bottom: sample a global batch, take this rank's micro-batches, encode positives
and negatives in one pass per tower, compute the loss terms, step. Used for both the
synthetic base model (``k = 0``, plain CLIP) and hard-negative fine-tuning.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from genemi.batches import Batch, EpochSampler, PairBank
from genemi.config import LossParams, OptimParams
from genemi.losses import hard_negative_loss


def forward_loss(model: torch.nn.Module, batch: Batch, loss: LossParams) -> dict[str, torch.Tensor]:
    """Encode the batch (positives and negatives together per tower) and return loss terms."""
    dtype = next(model.parameters()).dtype
    b = batch.images.shape[0]
    images = batch.images
    if batch.neg_images is not None:
        images = torch.cat([images, batch.neg_images.flatten(0, 1)])
    texts = batch.texts if batch.neg_texts is None else torch.cat([batch.texts, batch.neg_texts.flatten(0, 1)])
    # the loss runs in fp32 whatever the model's precision: softmax over scaled cosines
    img = F.normalize(model.encode_image(images.to(dtype)).float(), dim=-1)
    txt = F.normalize(model.encode_text(texts).float(), dim=-1)
    kwargs = {}
    if batch.neg_texts is not None:
        kwargs["neg_text_features"] = txt[b:].reshape(b, -1, txt.shape[-1])
        kwargs["neg_mask"] = batch.neg_text_mask
    if batch.neg_images is not None:
        kwargs["neg_image_features"] = img[b:].reshape(b, -1, img.shape[-1])
        kwargs["neg_image_mask"] = batch.neg_image_mask
    return hard_negative_loss(
        img[:b], txt[:b], model.logit_scale.float(), hn_weight=loss.hn_weight, form=loss.form, **kwargs
    )


def train(
    engine,
    bank: PairBank,
    opt: OptimParams,
    loss: LossParams,
    seed: int,
    negatives_per_sample: int,
    log: Callable[[int, dict[str, float]], None] | None = None,
    log_every: int = 25,
    progress: bool = True,
) -> dict[str, float]:
    """Run ``opt.steps`` optimizer steps; returns the mean loss terms of the last 10% of steps.

    With ``hn_weight == 0`` and the additive form, negatives are not encoded at all: the
    control run then costs what plain CLIP costs, with the same batches and steps.
    """
    import torch.distributed as dist
    from tqdm import tqdm

    rank, world = dist.get_rank(), dist.get_world_size()
    accum = engine.gradient_accumulation_steps()
    micro = engine.train_micro_batch_size_per_gpu()
    k = negatives_per_sample
    if loss.hn_weight == 0 and loss.form == "additive":
        k = 0
    sampler = EpochSampler(len(bank), opt.batch_size, seed)
    model = engine.module
    tail_from = int(opt.steps * 0.9)
    tail: dict[str, list[float]] = {}
    engine.train()
    for step in tqdm(range(opt.steps), desc="train", disable=not progress or rank != 0, mininterval=2):
        idx = sampler.indices(step)
        terms_sum: dict[str, float] = {}
        for a in range(accum):
            part = idx[(a * world + rank) * micro : (a * world + rank + 1) * micro]
            g = torch.Generator().manual_seed(((seed * 1_000_003 + step) * 64 + a) * 4096 + rank)
            batch = bank.batch(part, k, g, loss.image_negatives)
            terms = forward_loss(model, batch, loss)
            engine.backward(terms["loss"])
            engine.step()
            for name, v in terms.items():
                terms_sum[name] = terms_sum.get(name, 0.0) + float(v.detach()) / accum
        if step >= tail_from:
            for name, v in terms_sum.items():
                tail.setdefault(name, []).append(v)
        if log is not None and rank == 0 and (step % log_every == 0 or step == opt.steps - 1):
            lr = engine.get_lr()[0]
            log(step, {**terms_sum, "lr": lr, "logit_scale": float(model.logit_scale.exp().float())})
    return {name: sum(v) / len(v) for name, v in tail.items()}
