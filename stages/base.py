"""Stage `base`: the model that fine-tuning starts from.

Synthetic default (`model.pretrained: ""`): trains the tiny CLIP from scratch with the plain
CLIP loss on the synthetic training pairs (no hard negatives), so that it learns colours,
shapes and counts but, like real CLIP, has no reason to learn binding or word order.
Real runs (`model.pretrained: <open_clip tag or a checkpoint file in data/models/pretrained/>`, e.g.
`ViT-B-32-quickgelu` + `openai`): loads those weights and saves them unchanged. Offline, missing
weights fail with a message naming the file and where to place it.
"""

from __future__ import annotations

import _checkout  # noqa: F401  (this checkout's genemi first; see _checkout.py)
import click

from genemi.config import load_params, to_dict
from genemi.errors import Output, Stage


@click.command(cls=Stage, help=__doc__)
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--train", "train_path", required=True, type=click.Path(dir_okay=False),
              help="Training manifest (JSONL).")
@click.option("--image-root", required=True, type=click.Path(file_okay=False))
@click.option("--out", "out_path", required=True, type=Output(),
              help="Weights file to write (safetensors).")
@click.option("--metrics", "metrics_path", required=True, type=Output())
@click.option("--checkpoint-dir", default=None, type=Output(folder=True, state=True),
              help="Resumable checkpoints every base.checkpoint_every steps (not a DVC output: it must "
                   "survive a killed run); a rerun resumes from it. Cleared when the stage finishes.")
@click.option("--local_rank", "--local-rank", "local_rank", type=int, default=None, hidden=True,
              help="Passed by the deepspeed launcher; the rank is read from the environment.")
def main(params_path, train_path, image_root, out_path, metrics_path, checkpoint_dir, local_rank) -> None:
    from genemi import runtime
    from genemi.run import check_base, finish, make_run, save_pretrained, training_bank

    p = load_params(params_path)
    runtime.setup(p.seed, p.threads)
    check_base(p)
    meta = {"arch": p.model.arch, "pretrained": p.model.pretrained, "tokenizer": p.model.tokenizer}
    if p.model.pretrained:
        return save_pretrained(p.model, out_path, meta, metrics_path)
    from genemi.clip import Clip
    from genemi.train import train

    clip = Clip.from_params(p.model)  # the bank streams the manifest into a cache beside it (genemi.tables)
    run = make_run(p, "base", clip.module, training_bank(p, "base", clip, train_path, image_root),
                   inputs=[train_path])
    tail = train(run, checkpoint_dir=checkpoint_dir)
    finish(run, out_path, {**meta, "base": to_dict(p.base)}, metrics_path, {"train_loss": round(tail["loss"], 4)},
           checkpoint_dir)


if __name__ == "__main__":
    main()
