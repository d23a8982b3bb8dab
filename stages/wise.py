"""Stage `wise`: WiSE-FT weight-space ensembles of the base and the fine-tuned model (Wortsman et al., 2022).

For each `a` of `wise.alphas` writes `<out>/<a>.safetensors` = (1 - a) * base + a * fine-tuned, with the
fine-tuned file's metadata and `wise_alpha`; `a = 0` is the base model's weights bit for bit, `a = 1` the
fine-tuned model's. Both files must be one architecture (same tensors, shapes and `model.*`), else a
one-line error names them. The folder is replaced whole, so a value dropped from the list leaves no file.
`wise_eval@<benchmark>` scores the models.
"""

from __future__ import annotations

import _checkout  # noqa: F401  (this checkout's genemi first; see _checkout.py)
import click

from genemi.config import load_params
from genemi.errors import Output, Stage


@click.command(cls=Stage, help=__doc__)
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--base", "base_path", required=True, type=click.Path(dir_okay=False),
              help="The model before fine-tuning (safetensors).")
@click.option("--finetuned", "ft_path", required=True, type=click.Path(dir_okay=False),
              help="The fine-tuned model (safetensors).")
@click.option("--out", "out_dir", required=True, type=Output(folder=True),
              help="Folder of the interpolated models, <a>.safetensors each.")
def main(params_path, base_path, ft_path, out_dir) -> None:
    from genemi.io import output_folder
    from genemi.wise import write_interpolations

    p = load_params(params_path)
    paths = write_interpolations(base_path, ft_path, p.wise.alphas, output_folder(out_dir))
    click.echo(f"wise: {len(paths)} interpolated model(s) for a in {list(p.wise.alphas)} -> {out_dir}")


if __name__ == "__main__":
    main()
