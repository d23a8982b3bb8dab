"""Stage `evaluate@<benchmark>`: base vs fine-tuned model on `eval.benchmarks.<benchmark>` (docs/benchmarks.md).

Missing files fail before any model is built; each image is decoded once for both models. Writes the flat
metrics (`base/...`, `finetuned/...`, `delta/...`, bootstrap `_lo`/`_hi`), per-type plots, the headline
and the per-item outcomes.
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
              help="Data folder the eval.benchmarks paths are relative to (the synthetic splits live here).")
@click.option("--base", "base_path", required=True, type=click.Path(dir_okay=False))
@click.option("--finetuned", "ft_path", required=True, type=click.Path(dir_okay=False))
@click.option("--metrics", "metrics_path", required=True, type=Output())
@click.option("--plot-dir", required=True, type=Output(folder=True),
              help="Where <benchmark>.csv, <benchmark>_bars.csv (dvc bar plot) and .png go.")
@click.option("--headline", "headline_path", type=Output(), help="Headline metrics (a dozen numbers) JSON.")
@click.option("--items", "items_path", type=Output(), help="Per-item outcomes + worst mistakes (.npz).")
@click.option("--device", default="cpu", show_default=True,
              help="Where the models run (cpu, cuda, cuda:1); GPU results may differ in the last digits.")
def main(params_path, benchmark, data_dir, base_path, ft_path, metrics_path, plot_dir, headline_path, items_path,
         device) -> None:
    from genemi import runtime

    p = load_params(params_path)
    runtime.setup(p.seed, p.threads)
    from genemi.bootstrap import compare
    from genemi.clip import Clip
    from genemi.evaluate import evaluate_models, headline_deltas, load_complete
    from genemi.io import write_json
    from genemi.items import write_summaries
    from genemi.metrics import summarize
    from genemi.plots import eval_plots

    es = load_complete(p.eval, benchmark, data_dir, where=params_path)
    clips = {n: Clip.from_params(p.model, w, device, p.eval.batch_size)
             for n, w in (("base", base_path), ("finetuned", ft_path))}
    outcomes, feats = evaluate_models(clips, es, p.eval.acc_taus, p.eval.retrieval_ks, p.eval.seed,
                                      runtime.loader_workers(p.data.workers, in_memory=False), progress=True)
    flat = compare(outcomes, p.eval.bootstrap, p.eval.seed)
    write_json(metrics_path, flat)
    write_summaries(es, outcomes, feats, p.eval.hard_types, headline_path, items_path)
    eval_plots(plot_dir, benchmark, {m: summarize(o) for m, o in outcomes.items()}, flat)
    click.echo("\n".join(headline_deltas(flat)))


if __name__ == "__main__":
    main()
