"""The training loop: one DeepSpeed engine, a bank of pairs and negatives, a loss.

Reads top to bottom: sample a global batch, take this rank's micro-batches, encode positives
and negatives in one pass per tower, compute the loss terms, step. Used for both the
synthetic base model (``k = 0``, plain CLIP) and hard-negative fine-tuning.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from genemi.batches import Batch, EpochSampler, PairBank, records_per_step
from genemi.config import LossParams, OptimParams
from genemi.losses import training_loss


def encode(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    """L2-normalised fp32 features of the batch, positives and negatives in one pass per tower.

    Returns ``image_features``/``text_features`` ``[b, D]`` and, when the batch has them,
    ``neg_text_features``/``neg_image_features`` ``[b, K, D]`` with their ``[b, K]`` masks: the
    encoded extra negatives, or the features of the batch rows that ``batch.own`` points at.
    """
    dtype = next(model.parameters()).dtype
    b = batch.images.shape[0]
    images = batch.images
    if batch.neg_images is not None:
        images = torch.cat([images, batch.neg_images.flatten(0, 1)])
    texts = (
        batch.texts if batch.neg_texts is None else torch.cat([batch.texts, batch.neg_texts.flatten(0, 1)])
    )
    # the loss runs in fp32 whatever the model's precision: softmax over scaled cosines
    img = F.normalize(model.encode_image(images.to(dtype)).float(), dim=-1)
    txt = F.normalize(model.encode_text(texts).float(), dim=-1)
    out = {"image_features": img[:b], "text_features": txt[:b]}
    if batch.own is not None:  # negatives are rows of this batch: their features are looked up
        mask, at = batch.own >= 0, batch.own.clamp(min=0)
        out["neg_text_features"], out["neg_mask"] = txt[at], mask
        if batch.own_images:
            out["neg_image_features"], out["neg_image_mask"] = img[at], mask
    if batch.neg_texts is not None:
        out["neg_text_features"] = txt[b:].reshape(b, -1, txt.shape[-1])
        out["neg_mask"] = batch.neg_text_mask
    if batch.neg_images is not None:
        out["neg_image_features"] = img[b:].reshape(b, -1, img.shape[-1])
        out["neg_image_mask"] = batch.neg_image_mask
    return out


def forward_loss(
    model: torch.nn.Module,
    batch: Batch,
    loss: LossParams,
    world_size: int = 1,
    teacher: torch.nn.Module | None = None,
    reference: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Encode this rank's batch and return the loss terms of the *global* batch.

    ``teacher``: frozen model for KL / referenced DPO; ``reference``: initial trainable
    weights for the L2 term (keys = ``model.named_parameters()`` names).
    """
    feats = encode(model, batch)
    t_feats = t_scale = None
    if teacher is not None:
        with torch.no_grad():
            t_feats = encode(teacher, batch)
        t_scale = teacher.logit_scale.float()
    return training_loss(
        feats,
        model.logit_scale.float(),
        loss,
        world_size=world_size,
        teacher_features=t_feats,
        teacher_logit_scale=t_scale,
        model=model,
        reference=reference,
    )


def uses_negatives(loss: LossParams) -> bool:
    """Whether any selected term reads hard negatives (else they are not even encoded)."""
    return not (
        loss.hn_weight == 0 and loss.form == "additive" and loss.kl_weight == 0 and loss.dpo_weight == 0
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
    sampler=None,
    teacher: torch.nn.Module | None = None,
    reference: dict[str, torch.Tensor] | None = None,
    checkpoint_dir=None,
    fingerprint: str = "",
    negative_rows: bool = False,
    extra_state: Callable[[], dict] | None = None,
    on_resume: Callable[[dict], None] | None = None,
) -> dict[str, float]:
    """Run ``opt.steps`` optimizer steps; returns the mean loss terms of the last 10% of steps.

    With ``hn_weight == 0`` and the additive form (and no KL/DPO), negatives are not encoded
    at all: the control run then costs what plain CLIP costs, with the same batches and steps.
    Step ``s``'s rows and negatives depend only on ``(seed, s)``, never on the number of ranks:
    a global micro-batch is drawn whole and rank ``r`` takes its ``r``-th slice.
    With ``checkpoint_dir``, state is saved every ``opt.checkpoint_every`` steps and a rerun
    resumes from the newest checkpoint whose ``fingerprint`` matches.
    With ``negative_rows`` (and negatives in use) a batch of ``B`` rows is ``B/(1+K)`` records
    plus their ``K`` negatives each as rows (:meth:`PairBank.gather_negative_rows`); ``sampler``
    must then draw ``B/(1+K)`` records per step (:func:`genemi.batches.records_per_step`).
    ``extra_state()`` (JSON-like) is saved with every checkpoint and handed to ``on_resume`` when a
    run resumes from it (the stage's logged curves, which DVC may have deleted in between).
    """
    import torch.distributed as dist
    from tqdm import tqdm

    from genemi import checkpoint

    rank, world = dist.get_rank(), dist.get_world_size()
    accum = engine.gradient_accumulation_steps()
    k = negatives_per_sample if uses_negatives(loss) else 0
    as_rows = negative_rows and k > 0
    n_records = records_per_step(opt.batch_size, world * accum, k, as_rows)  # raises if it cannot split
    micro_records = n_records // (world * accum)
    if sampler is None:
        sampler = EpochSampler(len(bank), n_records, seed)
    model = engine.module
    tail_from = int(opt.steps * 0.9)
    tail: dict[str, list[float]] = {}
    start = 0
    if checkpoint_dir is not None:
        state = checkpoint.load(engine, checkpoint_dir, fingerprint)
        if state is not None:
            start, tail = state["step"], state["tail"]
            if rank == 0:
                print(f"resuming from {checkpoint_dir} at step {start}")
            if on_resume is not None:
                on_resume(state)
    engine.train()
    steps = range(start, opt.steps)
    for step in tqdm(steps, desc="train", disable=not progress or rank != 0, mininterval=2):
        idx = sampler.indices(step)
        terms_sum: dict[str, float] = {}
        for a in range(accum):
            rows = idx[a * world * micro_records : (a + 1) * world * micro_records]
            mine = slice(rank * micro_records, (rank + 1) * micro_records)
            if as_rows:
                g = torch.Generator().manual_seed(((seed * 1_000_003 + step) * 64 + a) * 4096)
                sel_t, sel_i, fill = bank.choose_negative_rows(rows, k, g)
                batch = bank.gather_negative_rows(
                    rows[mine], sel_t[mine], sel_i[mine], fill[mine], loss.image_negatives
                )
            elif k:
                g = torch.Generator().manual_seed(((seed * 1_000_003 + step) * 64 + a) * 4096)
                sel_t, sel_i = bank.choose_negatives(rows, k, g)
                batch = bank.gather(rows[mine], sel_t[mine], sel_i[mine], loss.image_negatives)
            else:
                batch = bank.gather(rows[mine], None, None, loss.image_negatives)
            terms = forward_loss(model, batch, loss, world, teacher, reference)
            engine.backward(terms["loss"])
            engine.step()
            for name, v in terms.items():
                terms_sum[name] = terms_sum.get(name, 0.0) + float(v.detach()) / accum
        if step >= tail_from:
            for name, v in terms_sum.items():
                tail.setdefault(name, []).append(v)
        if log is not None and rank == 0 and (step % log_every == 0 or step == opt.steps - 1):
            lr = engine.get_lr()[0]
            log(step, {**terms_sum, "lr": lr, "logit_scale": float(model.logit_scale.detach().exp().float())})
        done = step + 1
        if (
            checkpoint_dir is not None
            and opt.checkpoint_every
            and done % opt.checkpoint_every == 0
            and done < opt.steps
        ):
            extra = extra_state() if extra_state is not None else {}
            checkpoint.save(engine, checkpoint_dir, done, fingerprint, {**extra, "tail": tail})
    return {name: sum(v) / len(v) for name, v in tail.items()}
