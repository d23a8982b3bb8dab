"""Stage `wise_eval@<benchmark>`: the WiSE-FT models of `wise.alphas` against the base on one benchmark.

Scores `<wise>/<a>.safetensors` (stage `wise`) for every `a`, each in the fine-tuned model's place of the
evaluate stage (`genemi/evaluate.py`: each image decoded once for all models), and writes per `a`: the
detail metrics with bootstrap intervals, the headline (with `retention/zeroshot_top1` where the benchmark
has zero-shot classes) and the per-item outcomes the report pairs with other runs.
"""

from __future__ import annotations

import _checkout  # noqa: F401  (this checkout's genemi first; see _checkout.py)
import click

from genemi.config import load_params
from genemi.errors import Output, Stage


@click.command(cls=Stage, help=__doc__)
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--benchmark", required=True, help="Benchmark name (a key of eval.benchmarks in params.yaml).")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Data folder the eval.benchmarks paths are relative to.")
@click.option("--base", "base_path", required=True, type=click.Path(dir_okay=False))
@click.option("--wise", "wise_dir", required=True, type=click.Path(file_okay=False),
              help="Folder of the interpolated models (<a>.safetensors, stage `wise`).")
@click.option("--metrics", "metrics_path", required=True, type=Output(), help="Detail metrics JSON, per a.")
@click.option("--headline", "headline_path", required=True, type=Output(), help="Headline JSON, per a.")
@click.option("--items", "items_path", required=True, type=Output(), help="Per-item outcomes (.npz).")
@click.option("--device", default="cpu", show_default=True, help="Where the models run (cpu, cuda, cuda:1).")
def main(params_path, benchmark, data_dir, base_path, wise_dir, metrics_path, headline_path, items_path,
         device) -> None:
    from genemi import runtime

    p = load_params(params_path)
    runtime.setup(p.seed, p.threads)
    from genemi.wise_eval import score_wise, write_wise

    heads, detail, outcomes, es = score_wise(p, benchmark, data_dir, base_path, wise_dir, device, params_path)
    write_wise(heads, detail, outcomes, es, p.eval.hard_types, metrics_path, headline_path, items_path)
    for a, h in heads.items():
        shown = ", ".join(f"{k} {v:+.2f}" for k, v in h.items() if k.startswith(("delta/", "retention/")))
        click.echo(f"a={a}: {shown}")


if __name__ == "__main__":
    main()
