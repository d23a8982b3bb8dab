"""Stage `finetune`: hard-negative fine-tuning of the base model on a DeepSpeed engine.

Loss: CLIP plus `loss.hn_weight` x the hard-negative terms (see genemi/losses.py); with
`loss.hn_weight: 0` this is the same-steps plain-CLIP control. Runs as one CPU process by
default; for several GPUs or nodes launch it with DeepSpeed's launcher, e.g.
`deepspeed --num_gpus 8 stages/finetune.py ...` (same arguments): features are gathered across
ranks, so N ranks x B/N compute the loss and update of one process with B.
Batches follow `batching.mode` (GeNeMi groups or a uniform shuffle); `finetune.trainable` picks
the parameters that train; L2/KL/DPO terms use the weights loaded from `--base` as reference.
With `--checkpoint-dir`, a killed run resumes from its last checkpoint with identical results.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

# this checkout's genemi first: `dvc exp` runs stages in temporary copies of the repo, and an editable
# install or PYTHONPATH would otherwise import the workspace's code, not the experiment's
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genemi.config import load_params, to_dict  # noqa: E402
from genemi.io import write_json  # noqa: E402


@click.command(help=__doc__)
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--train", "train_path", required=True, type=click.Path(dir_okay=False),
              help="Training manifest with hard negatives (JSONL).")
@click.option("--image-root", required=True, type=click.Path(file_okay=False))
@click.option("--hnc-train", type=click.Path(dir_okay=False),
              help="HNC training manifest, used instead of --train when data.source=hnc.")
@click.option("--hnc-image-root", type=click.Path(file_okay=False), help="GQA image root of --hnc-train.")
@click.option("--base", "base_path", required=True, type=click.Path(dir_okay=False),
              help="Weights to start from (safetensors, from the base stage).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
@click.option("--metrics", "metrics_path", required=True, type=click.Path(dir_okay=False))
@click.option("--live-dir", default="dvclive/finetune", show_default=True,
              help="dvclive folder for the training curves.")
@click.option("--data", "data_dir", default="data", show_default=True, type=click.Path(file_okay=False),
              help="Where eval.monitor's benchmark files live (its val/* curves); see eval.sources.")
@click.option("--checkpoint-dir", default=None, type=click.Path(file_okay=False),
              help="Resumable checkpoints every finetune.checkpoint_every steps (not a DVC output: it must "
                   "survive a killed run); a rerun resumes from it. Cleared when the stage finishes.")
@click.option("--regular", "regular_path", default=None, type=click.Path(dir_okay=False),
              help="Regular pairs mixed into GeNeMi batches (e.g. the COCO manifest; see batching).")
@click.option("--regular-image-root", default=None, type=click.Path(file_okay=False),
              help="Image root of --regular.")
@click.option("--local_rank", "--local-rank", "local_rank", type=int, default=None, hidden=True,
              help="Passed by the deepspeed launcher; the rank is read from the environment.")
def main(params_path, train_path, image_root, hnc_train, hnc_image_root, base_path, out_path, metrics_path, live_dir,
         data_dir, checkpoint_dir, regular_path, regular_image_root, local_rank) -> None:
    from genemi import runtime

    p = load_params(params_path)
    runtime.setup(p.seed, p.threads)
    import torch.distributed as dist

    from genemi import checkpoint
    from genemi.batches import PairBank, add_regular, make_sampler, model_transform, records_per_step
    from genemi.benchmarks import load_benchmark
    from genemi.data import training_set
    from genemi.engine import frozen_copy, init_engine, reference_weights, set_trainable
    from genemi.evaluate import image_transform_for, monitor_scores, monitor_set
    from genemi.manifest import read_manifest
    from genemi.models import build_model, load_weights, make_tokenizer, save_weights
    from genemi.train import train, uses_negatives

    # which data trains is decided (and checked) before any model is built
    train_path, image_root = training_set(p.data.source, (train_path, image_root), (hnc_train, hnc_image_root))
    monitored = None  # a fixed subset of eval.monitor, scored every eval.monitor_every steps (val/* curves)
    if p.eval.monitor and p.eval.monitor_every > 0:
        try:
            es = load_benchmark(p.eval, p.eval.monitor, data_dir, seed=p.eval.seed)
            monitored = monitor_set(es, p.eval.monitor_records)
        except (FileNotFoundError, ValueError) as e:
            raise click.ClickException(f"eval.monitor={p.eval.monitor!r}: {e}") from None
    model = build_model(p.model)
    meta = load_weights(model, base_path)
    set_trainable(model, p.finetune, p.loss)
    needs_teacher = p.loss.kl_weight > 0 or (p.loss.dpo_weight > 0 and p.loss.dpo_reference)
    teacher = frozen_copy(model) if needs_teacher else None
    reference = reference_weights(model) if p.loss.l2_weight > 0 else None
    records = read_manifest(train_path)
    inputs = [train_path, base_path]
    if regular_path:
        if not regular_image_root:
            raise click.UsageError("--regular needs --regular-image-root")
        records = add_regular(records, image_root, read_manifest(regular_path), regular_image_root)
        inputs.append(regular_path)
    # real models read (differently sized) images per batch through open_clip's preprocess
    transform = None if p.model.tokenizer == "word" else model_transform(model)
    types = p.loss.negative_types or None  # train on these mined types only
    tok = make_tokenizer(p.model)
    bank = PairBank.from_records(records, image_root, tok, types=types, transform=transform)
    engine, _ = init_engine(model, p.finetune, p.deepspeed)
    k = p.loss.negatives_per_sample if uses_negatives(p.loss) else 0
    rows = p.batching.negative_rows and bank.has_negative_pairs()
    if p.batching.negative_rows and not rows and k and dist.get_rank() == 0:
        click.echo("finetune: no training negative has an edited image (caption-only, e.g. HNC), so "
                   "batching.negative_rows does not apply: negatives are encoded as extra inputs")
    splits = dist.get_world_size() * p.deepspeed.grad_accum
    n_records = records_per_step(p.finetune.batch_size, splits, k, rows)
    sampler = make_sampler(records, p.batching, n_records, p.seed, bank.pos_image)
    del records
    fp = checkpoint.fingerprint({"stage": "finetune", "params": to_dict(p)}, *inputs)
    live = None
    if dist.get_rank() == 0:
        from dvclive import Live

        # a resumed run appends to its curves instead of wiping them
        resuming = checkpoint_dir is not None and (Path(checkpoint_dir) / checkpoint.LATEST).is_file()
        live = Live(live_dir, dvcyaml=False, save_dvc_exp=False, report=None, resume=resuming)

    log_every = 25 if monitored is None else math.gcd(25, p.eval.monitor_every)
    val_transform = None if monitored is None else image_transform_for(model, p.model.tokenizer)

    def log(step: int, values: dict[str, float]) -> None:
        live.step = step
        for name, v in values.items():
            live.log_metric(f"train/{name}", v)
        if monitored is not None and (step % p.eval.monitor_every == 0 or step == p.finetune.steps - 1):
            for name, v in monitor_scores(engine.module, monitored, tok, val_transform, p.eval.batch_size).items():
                live.log_metric(f"val/{name}", v)
        live.next_step()

    tail = train(engine, bank, p.finetune, p.loss, p.seed, p.loss.negatives_per_sample, log_every=log_every,
                 log=log if live else None, sampler=sampler, teacher=teacher, reference=reference,
                 checkpoint_dir=checkpoint_dir, fingerprint=fp, negative_rows=rows)
    if dist.get_rank() == 0:
        live.end()
        run = {"finetune": to_dict(p.finetune), "loss": to_dict(p.loss), "batching": to_dict(p.batching)}
        save_weights(engine.module, out_path, {**meta, **run})
        write_json(metrics_path, {f"train_{k}": round(v, 4) for k, v in sorted(tail.items())})
        click.echo(f"finetune: final loss {tail['loss']:.4f}")
        if checkpoint_dir:
            checkpoint.clear(checkpoint_dir)


if __name__ == "__main__":
    main()
