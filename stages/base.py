"""Stage `base`: the model that fine-tuning starts from.

Synthetic default (`model.pretrained: ""`): trains the tiny CLIP from scratch with the plain
CLIP loss on the synthetic training pairs (no hard negatives), so that it learns colours,
shapes and counts but, like real CLIP, has no reason to learn binding or word order.
Real runs (`model.pretrained: <open_clip tag or checkpoint file>`, e.g. `ViT-B-32-quickgelu` +
`openai`): loads those weights and saves them unchanged. Offline, missing weights fail with a
message naming the file and where to place it.
"""

from __future__ import annotations

import dataclasses
import sys
import time
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
              help="Training manifest (JSONL).")
@click.option("--image-root", required=True, type=click.Path(file_okay=False))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Weights file to write (safetensors).")
@click.option("--metrics", "metrics_path", required=True, type=click.Path(dir_okay=False))
@click.option("--checkpoint-dir", default=None, type=click.Path(file_okay=False),
              help="Resumable checkpoints every base.checkpoint_every steps (not a DVC output: it must "
                   "survive a killed run); a rerun resumes from it. Cleared when the stage finishes.")
@click.option("--local_rank", "--local-rank", "local_rank", type=int, default=None, hidden=True,
              help="Passed by the deepspeed launcher; the rank is read from the environment.")
def main(params_path, train_path, image_root, out_path, metrics_path, checkpoint_dir, local_rank) -> None:
    from genemi import runtime

    p = load_params(params_path)
    runtime.setup(p.seed, p.threads)
    from genemi.models import build_model, make_tokenizer, save_weights

    if p.data.source != "synthetic" and (not p.model.pretrained or p.model.tokenizer == "word"):
        raise click.UsageError(
            f"data.source={p.data.source} needs a pretrained model and its tokenizer, e.g. "
            "-S model.arch=ViT-B-32-quickgelu -S model.pretrained=openai -S model.tokenizer=open_clip "
            "(the synthetic base only knows the synthetic world's 27 words)"
        )
    meta = {"arch": p.model.arch, "pretrained": p.model.pretrained, "tokenizer": p.model.tokenizer}
    if p.model.pretrained:
        from genemi.pretrained import load_pretrained

        save_weights(load_pretrained(p.model), out_path, meta)
        write_json(metrics_path, {"pretrained": 1})
        return

    import torch.distributed as dist

    from genemi import checkpoint
    from genemi.batches import PairBank, model_transform
    from genemi.engine import init_engine, set_trainable
    from genemi.manifest import read_manifest
    from genemi.train import train

    model = build_model(p.model)
    # plain CLIP with a learnable temperature, whatever the fine-tuning loss is
    plain = dataclasses.replace(p.loss, hn_weight=0.0, form="additive", image_negatives=False,
                                contrastive_weight=1.0, temperature=0.0, l2_weight=0.0, kl_weight=0.0,
                                dpo_weight=0.0)
    set_trainable(model, p.base, plain)
    transform = None if p.model.tokenizer == "word" else model_transform(model)  # real images: per batch
    bank = PairBank.from_records(read_manifest(train_path), image_root, make_tokenizer(p.model), types=(),
                                 transform=transform)
    engine, _ = init_engine(model, p.base, p.deepspeed)
    fp = checkpoint.fingerprint({"stage": "base", "params": to_dict(p)}, train_path)
    start = time.perf_counter()
    tail = train(engine, bank, p.base, plain, p.seed, negatives_per_sample=0,
                 checkpoint_dir=checkpoint_dir, fingerprint=fp)
    seconds = time.perf_counter() - start
    if dist.get_rank() == 0:
        click.echo(f"base: {p.base.steps} steps in {seconds:.0f}s, final loss {tail['loss']:.4f}")
        save_weights(engine.module, out_path, {**meta, "base": to_dict(p.base)})
        write_json(metrics_path, {"train_loss": round(tail["loss"], 4)})
        if checkpoint_dir:
            checkpoint.clear(checkpoint_dir)


if __name__ == "__main__":
    main()
