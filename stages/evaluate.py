"""Stage `evaluate@<benchmark>`: base vs fine-tuned model on one benchmark.

Writes flat metrics (`base/<type>/<metric>`, `finetuned/...`, `delta/...`) to a JSON file,
a per-type table for `dvc plots`, and a bar chart PNG.
"""

from __future__ import annotations

import click

from genemi.config import load_params
from genemi.io import write_json

SYNTH = {"synth_test": "test", "synth_gen": "gen"}


@click.command(help=__doc__)
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--benchmark", required=True, help="Benchmark name (see eval.benchmarks in params.yaml).")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Image root holding negatives/<split>.jsonl for the synthetic benchmarks.")
@click.option("--base", "base_path", required=True, type=click.Path(dir_okay=False))
@click.option("--finetuned", "ft_path", required=True, type=click.Path(dir_okay=False))
@click.option("--metrics", "metrics_path", required=True, type=click.Path(dir_okay=False))
@click.option("--plot-dir", required=True, type=click.Path(file_okay=False),
              help="Where <benchmark>.csv (per-type table) and <benchmark>.png go.")
def main(params_path, benchmark, data_dir, base_path, ft_path, metrics_path, plot_dir) -> None:
    from pathlib import Path

    from genemi import runtime

    p = load_params(params_path)
    runtime.setup(p.seed, p.threads)
    from genemi.evaluate import compare, encode_all, evaluate_records
    from genemi.manifest import read_manifest
    from genemi.models import Encoder, array_transform, build_model, load_weights, make_tokenizer
    from genemi.plots import type_bars, write_type_table

    if benchmark not in SYNTH:
        raise click.BadParameter(f"unknown benchmark {benchmark!r}; known: {', '.join(SYNTH)}", param_hint="--benchmark")
    records = read_manifest(Path(data_dir) / "negatives" / f"{SYNTH[benchmark]}.jsonl")
    results = {}
    for name, path in (("base", base_path), ("finetuned", ft_path)):
        model = build_model(p.model)
        load_weights(model, path)
        enc = Encoder(model, make_tokenizer(p.model), array_transform, p.eval.batch_size)
        results[name] = evaluate_records(records, *encode_all(enc, records, data_dir))
    flat = compare(results)
    write_json(metrics_path, flat)
    write_type_table(Path(plot_dir) / f"{benchmark}.csv", results)
    type_bars(results, f"{benchmark}: pairwise text accuracy by negative type", Path(plot_dir) / f"{benchmark}.png")
    for key in sorted(k for k in flat if k.startswith("delta/") and k.endswith("/text")):
        click.echo(f"{key}: {flat[key]:+.2f}")


if __name__ == "__main__":
    main()
