"""The run recipe: params (+ data) -> everything one training phase needs, decided in one place.

The two phases differ only in their params section and their data:

* ``base``: ``p.base`` with the plain CLIP loss (:meth:`~genemi.config.LossParams.plain`), uniform
  batches, no negatives;
* ``finetune``: ``p.finetune`` with ``p.loss`` and ``p.batching``.

Stages and test harnesses both call :func:`make_run`, so they cannot drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from genemi.bank import PairBank
from genemi.config import BatchingParams, LossParams, OptimParams, Params, to_dict
from genemi.losses import needs_teacher, uses_negatives
from genemi.manifest import Record
from genemi.samplers import SampleSampler, make_sampler, records_per_step


@dataclass
class TrainingRun:
    """A DeepSpeed engine over the model, its data and the loss settings of one phase."""

    engine: Any
    bank: PairBank
    sampler: Any  # .indices(step) -> [records_per_step] long
    opt: OptimParams
    loss: LossParams
    seed: int
    negatives: int  # hard negatives per record that reach the loss (0: none are even encoded)
    negative_rows: bool  # negatives enter the batch as rows (genemi.bank.PairBank.gather_negative_rows)
    records_per_step: int
    accum: int  # micro-batches per optimizer step on each rank
    teacher: torch.nn.Module | None = None  # frozen copy for KL / referenced DPO, on the engine's device
    reference: dict[str, torch.Tensor] | None = None  # initial trainable weights for L2
    fingerprint: str = ""  # what a checkpoint must match to be resumed
    workers: int = 0  # processes that decode and gather batches ahead of the step (0: this process)
    replay: Replay | None = None  # replayed pretraining pairs (loss.replay_weight > 0)


@dataclass
class Replay:
    """The pretraining pairs replayed beside fine-tuning: ``rows`` per optimizer step, in their own order."""

    bank: PairBank
    sampler: Any  # .indices(step) -> [rows] long
    rows: int


def phase(p: Params, name: str) -> tuple[OptimParams, LossParams, BatchingParams | None]:
    """``(optimisation, loss, batching)`` of phase ``name`` (``base`` or ``finetune``)."""
    if name == "base":
        return p.base, p.loss.plain(), None
    if name == "finetune":
        return p.finetune, p.loss, p.batching
    raise ValueError(f"unknown training phase {name!r}; use base or finetune")


def training_bank(p: Params, name: str, clip, records: Sequence[Record] | str | os.PathLike,
                  image_root) -> PairBank:
    """The bank of phase ``name``: only the negative types it trains (none when no term reads them).

    ``records``: the records, or a manifest file, whose bank is built once into a cache beside it and
    memory-mapped (:meth:`~genemi.bank.PairBank.from_manifest`: shared by every rank of a node).
    """
    _, loss, _ = phase(p, name)
    types = (loss.negative_types or None) if uses_negatives(loss) else ()
    transform = None if clip.fixed_size else clip.transform
    if isinstance(records, (str, os.PathLike)):
        import torch.distributed as dist

        progress = not dist.is_initialized() or dist.get_rank() == 0
        bank = PairBank.from_manifest(records, image_root, clip.tokenizer, types=types, transform=transform,
                                      progress=progress, held_out=held_out_splits(p))
        # the bank keeps exactly the negatives of the trained types: none there is none in the records
        check_negatives(loss, has_negative=bool((bank.neg_text >= 0).any() or (bank.neg_image >= 0).any()))
        return bank
    check_negatives(loss, records)
    return PairBank.from_records(records, image_root, clip.tokenizer, types=types, transform=transform)


def replay_data(p: Params, clip, replay: tuple[str, str] | None) -> tuple[PairBank, str] | None:
    """``(bank, manifest)`` of the pairs replayed during fine-tuning (``replay``: the base's training
    manifest and its image root), or None when ``loss.replay_weight`` is 0 (nothing is read)."""
    if p.loss.replay_weight == 0:
        return None
    if not replay:
        raise ValueError(f"loss.replay_weight = {p.loss.replay_weight:g} needs the pairs to replay: pass "
                         "--replay <base's training manifest> <its image root>")
    path, root = replay
    return training_bank(p, "base", clip, path, root), path  # the base phase's own bank: pairs, no negatives


def held_out_splits(p: Params) -> tuple[str, ...]:
    """The splits no training record may come from (what evaluation scores). The genemi road mines the COCO
    images of ``real.coco_splits``, whose records keep their Karpathy split, so nothing is held out there."""
    from genemi.manifest import HELD_OUT_SPLITS

    return () if p.data.source == "genemi" else tuple(HELD_OUT_SPLITS)


def check_negatives(loss: LossParams, records: Sequence[Record] = (), has_negative: bool | None = None) -> None:
    """A hard-negative term (``hn_weight``, ``dpo_weight`` > 0) on records without a single negative (of the
    trained types) would train plain CLIP and report it as the hard-negative run: refused. ``has_negative``:
    the answer already known (a bank built from a manifest), else read from ``records``."""
    terms = [k for k in ("hn_weight", "dpo_weight") if getattr(loss, k) > 0]
    if not terms:
        return
    types = set(loss.negative_types)
    if has_negative is None:
        has_negative = any(not types or n.type in types for r in records for n in r.negatives)
    if has_negative:
        return
    which = f" of loss.negative_types {sorted(types)}" if types else ""
    raise ValueError(
        f"loss.{terms[0]} = {getattr(loss, terms[0]):g}, but no training record has a hard negative{which}: "
        f"the run would be plain CLIP; mine negatives (mine.types), or train the control: loss.{terms[0]}=0"
    )


def make_run(p: Params, name: str, model: torch.nn.Module, bank: PairBank,
             records: Sequence[Record] | None = None, inputs: Sequence = (), fingerprint: str | None = None,
             replay: tuple[PairBank, str] | None = None) -> TrainingRun:
    """Freeze what does not train, wrap ``model`` in a DeepSpeed engine and pick the batches.

    ``records`` (the bank's rows, else its ``keys``) are read by GeNeMi's group samplers only. The checkpoint
    fingerprint covers the params and the bytes of ``inputs`` unless ``fingerprint`` is given. ``replay``:
    :func:`replay_data`'s bank and manifest, drawn ``loss.replay_batch`` pairs a step.
    """
    import torch.distributed as dist

    from genemi import checkpoint, runtime
    from genemi.engine import frozen_copy, init_engine, reference_weights, set_trainable

    opt, loss, batching = phase(p, name)
    set_trainable(model, opt, loss)
    engine, _ = init_engine(model, opt, p.deepspeed)
    module = engine.module  # on the engine's device and in its precision
    k = loss.negatives_per_sample if uses_negatives(loss) else 0
    rows = batching is not None and batching.negative_rows and k > 0
    if rows and not bank.has_negative_pairs():
        rows = False
        if dist.get_rank() == 0:
            print(f"{name}: no training negative has an edited image (caption-only, e.g. HNC), so "
                  "batching.negative_rows does not apply: negatives are encoded as extra inputs")
    splits = dist.get_world_size() * p.deepspeed.grad_accum
    n = records_per_step(opt.batch_size, splits, k, rows)
    feed = None
    if replay is not None and loss.replay_weight > 0:
        if loss.replay_batch % splits:
            raise ValueError(f"loss.replay_batch = {loss.replay_batch} must be divisible by ranks x "
                             f"deepspeed.grad_accum = {splits}")
        total = len(replay[0])
        if loss.replay_pairs > total:
            raise ValueError(f"loss.replay_pairs = {loss.replay_pairs} exceeds the {total} pairs of "
                             f"{replay[1]}; lower it (0 = all of them)")
        kept = loss.replay_pairs or total
        if loss.replay_batch > kept:
            which = f"loss.replay_pairs = {kept}" if loss.replay_pairs else f"the {kept} pairs of {replay[1]}"
            raise ValueError(f"loss.replay_batch = {loss.replay_batch} exceeds {which}; lower it")
        # a sample of every row is the rows in order: the same batches as an EpochSampler over all of them
        feed = Replay(replay[0], SampleSampler(total, kept, loss.replay_batch, p.seed, "replay"),
                      loss.replay_batch)
        inputs = [*inputs, replay[1]]
    elif loss.replay_weight > 0:
        raise ValueError(f"loss.replay_weight = {loss.replay_weight:g} in phase {name}, but no replay pairs "
                         "were given; pass them (the finetune stage's --replay), or set loss.replay_weight=0")
    if fingerprint is None:
        # the files, and beside a manifest its image digest: replaced images change the fingerprint too
        files = [f for i in inputs for f in checkpoint.data_files(i)]
        fingerprint = checkpoint.fingerprint({"stage": name, "params": to_dict(p)}, *files)
    return TrainingRun(
        engine=engine,
        bank=bank,
        sampler=make_sampler(batching, n, p.seed, bank.pos_image, bank.keys if records is None else records),
        opt=opt,
        loss=loss,
        seed=p.seed,
        negatives=k,
        negative_rows=rows,
        records_per_step=n,
        accum=p.deepspeed.grad_accum,
        teacher=frozen_copy(module) if needs_teacher(loss) else None,
        reference=reference_weights(module) if loss.l2_weight > 0 else None,
        fingerprint=fingerprint,
        workers=runtime.loader_workers(p.data.workers, in_memory=not bank.reads_files),
        replay=feed,
    )


def training_records(p: Params, train_path, image_root, hnc_train=None, hnc_image_root=None, genemi_train=None,
                     genemi_image_root=None, regular_path=None, regular_image_root=None, stream=False):
    """``(records, image_root, inputs)`` of the data ``data.source`` selects, checked before any model is
    built: the finetune stage's paths, one (manifest, image root) pair per road (synthetic: ``train_path``),
    and the ``regular`` pairs mixed into GeNeMi batches (COCO), read on the genemi road only.

    ``stream``: ``records`` is the manifest's path where one manifest is all the data (for
    :func:`training_bank` to build a memory-mapped bank from), not a list of records.
    """
    from genemi.data import training_set
    from genemi.manifest import read_manifest, read_records
    from genemi.samplers import add_regular

    check_base(p)  # the base stage does not rerun on a data.source switch (its weights do not depend on it)
    path, root = training_set(p.data.source, synthetic=(train_path, image_root), hnc=(hnc_train, hnc_image_root),
                              genemi=(genemi_train, genemi_image_root))
    held_out, inputs = held_out_splits(p), [path]
    if p.data.source == "genemi" and regular_path:
        if not regular_image_root:
            raise ValueError("--regular needs --regular-image-root")
        records, root = add_regular(read_records(path, held_out=held_out), root, read_manifest(regular_path),
                                    regular_image_root)
        inputs.append(regular_path)
        return records, root, inputs
    if stream:
        from genemi.manifest import iter_manifest

        if next(iter_manifest(path), None) is None:  # the first record is checked here, the rest by the bank
            read_records(path)  # raises: no records
        return path, root, inputs  # held-out splits: refused by the bank's build (training_bank)
    return read_records(path, held_out=held_out), root, inputs


def check_base(p: Params) -> None:
    """Real data needs a pretrained model and its tokenizer: the synthetic base knows 41 words. A road fed
    by the synthetic stand-in (``data.stand_in: synthetic``) speaks the synthetic world's words, so it
    fine-tunes the synthetic base."""
    stand_in = p.data.stand_in == "synthetic"
    if p.data.source != "synthetic" and not stand_in and (not p.model.pretrained or p.model.tokenizer == "word"):
        raise ValueError(
            f"data.source={p.data.source} needs a pretrained model and its tokenizer, e.g. "
            "-S model.arch=ViT-B-32-quickgelu -S model.pretrained=openai -S model.tokenizer=open_clip "
            "(the synthetic base only knows the synthetic world's 41 words)"
        )


def finish(run: TrainingRun, out_path, meta: dict, metrics_path, metrics: dict, checkpoint_dir=None) -> None:
    """Rank 0 writes the trained weights (safetensors, ``meta`` attached) and the metrics, then, once the
    stage's outputs are published (:func:`genemi.io.after_publish`), drops the resumable checkpoints."""
    import torch.distributed as dist

    from genemi import checkpoint
    from genemi.io import after_publish, write_json
    from genemi.models import save_weights

    if dist.get_rank() != 0:
        return
    save_weights(run.engine.module, out_path, meta)
    write_json(metrics_path, metrics)
    if checkpoint_dir:  # only once the outputs are in place: a failure before keeps the resume state
        after_publish(lambda: checkpoint.clear(checkpoint_dir))


def save_pretrained(p_model, out_path, meta: dict, metrics_path) -> None:
    """A real run's base: the pretrained weights (open_clip tag or checkpoint file), saved unchanged."""
    from genemi.io import write_json
    from genemi.models import save_weights
    from genemi.pretrained import load_pretrained

    save_weights(load_pretrained(p_model), out_path, meta)
    write_json(metrics_path, {"pretrained": 1})
