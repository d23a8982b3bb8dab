"""Stage `finetune`: CLIP + `loss.hn_weight` x hard-negative terms (docs/method.md) on a DeepSpeed engine;
`loss.hn_weight: 0` is the same-steps control. GPUs/nodes: `deepspeed --num_gpus 8 stages/finetune.py ...`
(N ranks x B/N = one process with B). With `--checkpoint-dir` a killed run resumes with identical results.
"""

from __future__ import annotations

import _checkout  # noqa: F401  (this checkout's genemi first; see _checkout.py)
import click

from genemi.config import load_params, to_dict
from genemi.errors import Output, Stage

_file, _dir = click.Path(dir_okay=False), click.Path(file_okay=False)


@click.command(cls=Stage, help=__doc__)
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--train", "train_path", required=True, type=_file, help="Training manifest with hard negatives.")
@click.option("--image-root", required=True, type=_dir)
@click.option("--hnc-train", type=_file, help="HNC training manifest, used instead when data.source=hnc.")
@click.option("--hnc-image-root", type=_dir, help="GQA image root of --hnc-train.")
@click.option("--base", "base_path", required=True, type=_file, help="Weights to start from (safetensors).")
@click.option("--out", "out_path", required=True, type=Output())
@click.option("--metrics", "metrics_path", required=True, type=Output())
@click.option("--live-dir", default="dvclive/finetune", show_default=True, type=Output(folder=True), help="Curves.")
@click.option("--data", "data_dir", default="data", show_default=True, type=_dir, help="Root of eval.monitor's files (val/*).")
@click.option("--checkpoint-dir", default=None, type=Output(folder=True, state=True),
              help="Resumable checkpoints every finetune.checkpoint_every steps; cleared at the end.")
@click.option("--genemi-train", type=_file, help="Mined variations (mine_real), used instead when data.source=genemi.")
@click.option("--genemi-image-root", type=_dir, help="Image root of --genemi-train.")
@click.option("--regular", "regular_path", type=_file, help="COCO pairs mixed into GeNeMi batches (genemi only).")
@click.option("--regular-image-root", type=_dir, help="Image root of --regular.")
@click.option("--replay", nargs=2, type=click.Path(), help="Manifest and image root (loss.replay_weight).")
@click.option("--local_rank", "--local-rank", type=int, hidden=True, expose_value=False,
              help="Passed by the deepspeed launcher; the rank is read from the environment.")
def main(params_path, base_path, out_path, metrics_path, live_dir, data_dir, checkpoint_dir, replay, **paths):
    from genemi import live, runtime

    p = load_params(params_path)
    runtime.setup(p.seed, p.threads)
    from genemi.clip import Clip
    from genemi.run import finish, make_run, replay_data, training_bank, training_records
    from genemi.train import train

    data, root, inputs = training_records(p, **paths, stream=True)  # a manifest path, or records
    monitor = live.load_monitor(p.eval, data_dir)
    clip = Clip.from_params(p.model, base_path, batch_size=p.eval.batch_size)
    run = make_run(p, "finetune", clip.module, training_bank(p, "finetune", clip, data, root),
                   inputs=[*inputs, base_path], replay=replay_data(p, clip, replay))
    curves = live.open_curves(live_dir, clip, monitor, p.eval.monitor_every, p.finetune.steps)
    tail = train(run, log=curves, log_every=curves.log_every, checkpoint_dir=checkpoint_dir,
                 extra_state=curves.state, on_resume=curves.replay)
    curves.end()
    finish(run, out_path, {**clip.meta, **{s: to_dict(getattr(p, s)) for s in ("finetune", "loss", "batching")}},
           metrics_path, {f"train_{k}": round(v, 4) for k, v in sorted(tail.items())}, checkpoint_dir)


if __name__ == "__main__":
    main()
