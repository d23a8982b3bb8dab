"""Stage `synth_data`: generate the synthetic world's train/test/gen splits (images + manifests)."""

from __future__ import annotations

import _checkout  # noqa: F401  (this checkout's genemi first; see _checkout.py)
import click

from genemi.config import load_params
from genemi.errors import Output, Stage
from genemi.synth.dataset import write_synth_data


@click.command(cls=Stage, help=__doc__)
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--out", "out_dir", required=True, type=Output(folder=True),
              help="Image root: images go to <out>/synth/<split>/, manifests to <out>/synth/<split>.jsonl.")
def main(params_path: str, out_dir: str) -> None:
    p = load_params(params_path)
    write_synth_data(p.synth, p.seed, out_dir, log=click.echo)


if __name__ == "__main__":
    main()
