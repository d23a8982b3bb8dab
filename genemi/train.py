"""The training loop: one DeepSpeed engine, a bank of pairs and negatives, a loss.

Reads top to bottom: sample a global batch, take this rank's micro-batches, move them to the
engine's device, encode positives and negatives in one pass per tower, compute the loss terms,
step. Used for both phases of :mod:`genemi.run` (the plain-CLIP base and hard-negative
fine-tuning). A step's batches depend only on ``(seed, step)``, so they can be built ahead of
time in worker processes without changing a bit of the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from genemi import seeding
from genemi.bank import Batch
from genemi.config import LossParams
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
    replayed = encode(model, batch.replay) if batch.replay is not None else None
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
        replay_features=replayed,
    )


def micro_batches(run, step: int, rank: int, world: int) -> list[Batch]:
    """This rank's ``run.accum`` micro-batches of optimizer step ``step`` (CPU tensors).

    A global micro-batch is drawn whole, negatives included, and rank ``r`` takes its ``r``-th
    slice: the rows never depend on the number of ranks or workers.
    """
    bank, k, accum = run.bank, run.negatives, run.accum
    idx = run.sampler.indices(step)
    m = run.records_per_step // (world * accum)  # records per rank and micro-batch
    mine = slice(rank * m, (rank + 1) * m)
    out = []
    for a in range(accum):
        rows = idx[a * world * m : (a + 1) * world * m]
        g = seeding.torch_generator(run.seed, "negatives", step, a)
        if run.negative_rows:
            sel_t, sel_i, fill = bank.choose_negative_rows(rows, k, g)
            out.append(bank.gather_negative_rows(rows[mine], sel_t[mine], sel_i[mine], fill[mine],
                                                 run.loss.image_negatives))
        elif k:
            sel_t, sel_i = bank.choose_negatives(rows, k, g)
            out.append(bank.gather(rows[mine], sel_t[mine], sel_i[mine], run.loss.image_negatives))
        else:
            out.append(bank.gather(rows[mine], None, None, run.loss.image_negatives))
    if run.replay is not None:  # the step's replayed pairs, split over ranks and micro-batches the same way
        r = run.replay.rows // (world * accum)
        ridx = run.replay.sampler.indices(step)
        for a, batch in enumerate(out):
            rows = ridx[a * world * r : (a + 1) * world * r][rank * r : (rank + 1) * r]
            batch.replay = run.replay.bank.gather(rows, None, None, False)
    return out


class _Steps(torch.utils.data.Dataset):
    """Step ``start + i``'s micro-batches: what a DataLoader worker builds ahead of the training loop."""

    def __init__(self, run, start: int, rank: int, world: int):
        self.run, self.start, self.rank, self.world = run, start, rank, world

    def __len__(self) -> int:
        return self.run.opt.steps - self.start

    def __getitem__(self, i: int):
        from genemi.errors import Raised

        try:
            return micro_batches(self.run, self.start + i, self.rank, self.world)
        except Exception as e:  # a bad image: re-raised as itself by step_batches, not as a worker traceback
            return Raised(e)


def step_batches(run, start: int, rank: int, world: int, pin: bool = False) -> Iterator[list[Batch]]:
    """Micro-batches of steps ``start, start + 1, ...``: built here, or by ``run.workers`` processes that
    decode images and gather rows two steps ahead (pinned for a fast copy to a GPU)."""
    if run.workers == 0:
        for step in range(start, run.opt.steps):
            yield micro_batches(run, step, rank, world)
        return
    from genemi.errors import Raised

    for item in torch.utils.data.DataLoader(
        _Steps(run, start, rank, world), batch_size=None, shuffle=False, num_workers=run.workers,
        prefetch_factor=2, pin_memory=pin, persistent_workers=False,
    ):
        if isinstance(item, Raised):
            raise item.error
        yield item


def optimizer_step(run, micro: list[Batch], device: torch.device, world: int) -> dict[str, torch.Tensor]:
    """One optimizer step over this rank's micro-batches, moved to ``device`` (the model's); returns each
    loss term averaged over the micro-batches, detached, on ``device`` (one sync when the caller reads it)."""
    model, engine = run.engine.module, run.engine
    terms_sum: dict[str, torch.Tensor] = {}
    for batch in micro:
        terms = forward_loss(model, batch.to(device), run.loss, world, run.teacher, run.reference)
        engine.backward(terms["loss"])
        engine.step()
        for name, v in terms.items():
            terms_sum[name] = terms_sum.get(name, 0) + v.detach() / run.accum
    return terms_sum


def train(
    run,
    log: Callable[[int, dict[str, float]], None] | None = None,
    log_every: int = 25,
    progress: bool = True,
    checkpoint_dir=None,
    extra_state: Callable[[], dict] | None = None,
    on_resume: Callable[[dict], None] | None = None,
) -> dict[str, float]:
    """Run ``run.opt.steps`` optimizer steps of a :class:`genemi.run.TrainingRun`; returns the mean
    loss terms of the last 10% of steps.

    ``log(step, values)`` (rank 0, every ``log_every`` steps and the last) gets ``train/<term>``,
    ``train/lr``, ``train/logit_scale`` and the input pipeline's ``perf/*``: samples/s, the fraction
    of the time spent waiting for batches, and peak device memory (GiB, CUDA only).
    With ``checkpoint_dir``, state is saved every ``opt.checkpoint_every`` steps and a rerun
    resumes from the newest checkpoint whose fingerprint matches.
    ``extra_state()`` (JSON-like) is saved with every checkpoint and handed to ``on_resume`` when a
    run resumes from it (the logged curves, which DVC deletes before rerunning a stage).
    """
    import torch.distributed as dist
    from tqdm import tqdm

    from genemi import checkpoint

    engine, opt = run.engine, run.opt
    rank, world = dist.get_rank(), dist.get_world_size()
    model = engine.module
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    tail_from = int(opt.steps * 0.9)
    tail: dict[str, list[float]] = {}
    start = 0
    if checkpoint_dir is not None:
        state = checkpoint.load(engine, checkpoint_dir, run.fingerprint)
        if state is not None:
            start, tail = state["step"], state["tail"]
            if rank == 0:
                print(f"resuming from {checkpoint_dir} at step {start}")
            if on_resume is not None:
                on_resume(state)
    engine.train()
    batches = step_batches(run, start, rank, world, pin=cuda)
    waited = busy = 0.0
    samples = 0
    for step in tqdm(range(start, opt.steps), desc="train", disable=not progress or rank != 0, mininterval=2):
        t0 = time.perf_counter()
        micro = next(batches)
        t1 = time.perf_counter()
        terms_sum = {name: float(v) for name, v in optimizer_step(run, micro, device, world).items()}
        samples += sum(len(b.texts) + (0 if b.replay is None else len(b.replay.texts)) for b in micro) * world
        t2 = time.perf_counter()
        waited, busy = waited + t1 - t0, busy + t2 - t1
        if step >= tail_from:
            for name, v in terms_sum.items():
                tail.setdefault(name, []).append(v)
        if log is not None and rank == 0 and (step % log_every == 0 or step == opt.steps - 1):
            values = {f"train/{k}": v for k, v in terms_sum.items()}
            values["train/lr"] = engine.get_lr()[0]
            values["train/logit_scale"] = float(model.logit_scale.detach().exp().float())
            values["perf/samples_per_s"] = samples / max(waited + busy, 1e-9)
            values["perf/data_wait"] = waited / max(waited + busy, 1e-9)
            if cuda:
                values["perf/peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            log(step, values)
            waited = busy = 0.0
            samples = 0
        done = step + 1
        if checkpoint_dir is not None and opt.checkpoint_every and done % opt.checkpoint_every == 0 \
                and done < opt.steps:
            extra = extra_state() if extra_state is not None else {}
            checkpoint.save(engine, checkpoint_dir, done, run.fingerprint, {**extra, "tail": tail})
    return {name: sum(v) / len(v) for name, v in tail.items()}
