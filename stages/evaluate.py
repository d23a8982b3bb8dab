"""Stage `evaluate@<benchmark>`: base vs fine-tuned model on one registered benchmark.

The benchmark's files come from `eval.sources.<benchmark>` in params.yaml (paths relative to --data),
so the command is the same for every benchmark. Missing files fail before any model is built, naming
each file and where it goes (docs/benchmarks.md). Each image is decoded once and encoded by both models.
Writes flat metrics (`base/<type>/<metric>`, `finetuned/...`, `delta/...`, bootstrap `..._lo`/`..._hi`)
to a JSON file, a per-type table for `dvc plots` (`<bench>.csv`, `<bench>_bars.csv`) and a bar chart PNG.
"""

from __future__ import annotations

import click

from genemi.config import load_params
from genemi.errors import Output, Stage


@click.command(cls=Stage, help=__doc__)
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--benchmark", required=True, help="Benchmark name (a key of eval.sources in params.yaml).")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Data folder the eval.sources paths are relative to (the synthetic splits live here).")
@click.option("--base", "base_path", required=True, type=click.Path(dir_okay=False))
@click.option("--finetuned", "ft_path", required=True, type=click.Path(dir_okay=False))
@click.option("--metrics", "metrics_path", required=True, type=Output())
@click.option("--plot-dir", required=True, type=Output(folder=True),
              help="Where <benchmark>.csv, <benchmark>_bars.csv (dvc bar plot) and .png go.")
@click.option("--device", default="cpu", show_default=True,
              help="Where the models run (cpu, cuda, cuda:1); GPU results may differ in the last digits.")
def main(params_path, benchmark, data_dir, base_path, ft_path, metrics_path, plot_dir, device) -> None:
    from genemi import runtime

    p = load_params(params_path)
    runtime.setup(p.seed, p.threads)
    from genemi.bootstrap import compare
    from genemi.clip import Clip
    from genemi.evaluate import evaluate_models, headline_deltas, load_complete
    from genemi.io import write_json
    from genemi.metrics import summarize
    from genemi.plots import eval_plots

    es = load_complete(p.eval, benchmark, data_dir)
    clips = {n: Clip.from_params(p.model, w, device, p.eval.batch_size)
             for n, w in (("base", base_path), ("finetuned", ft_path))}
    outcomes = evaluate_models(clips, es, p.eval.acc_taus, p.eval.retrieval_ks, p.eval.seed,
                               runtime.loader_workers(p.data.workers, in_memory=False), progress=True)
    flat = compare(outcomes, p.eval.bootstrap, p.eval.seed)
    write_json(metrics_path, flat)
    eval_plots(plot_dir, benchmark, {m: summarize(o) for m, o in outcomes.items()}, flat)
    click.echo("\n".join(headline_deltas(flat)))


if __name__ == "__main__":
    main()
