"""Stage `evaluate@<benchmark>`: base vs fine-tuned model on one registered benchmark.

The benchmark's files come from `eval.sources.<benchmark>` in params.yaml (paths relative to --data),
so the command is the same for every benchmark. Missing files fail before any model is built, naming
each file and where it goes (docs/benchmarks.md). Writes flat metrics (`base/<type>/<metric>`,
`finetuned/...`, `delta/...`, bootstrap `..._lo`/`..._hi`) to a JSON file, a per-type table for
`dvc plots` (wide `<bench>.csv`, long `<bench>_bars.csv`) and a bar chart PNG. With --headline, a
handful of numbers (hard-type and macro text accuracy, R@1, zero-shot top-1; base, fine-tuned, delta)
for `dvc exp show`; with --items, per-item 0/1 outcomes and the fine-tuned model's most confident
mistakes (.npz, no pickle) for the report's paired tests and failure gallery.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

# this checkout's genemi first: `dvc exp` runs stages in temporary copies of the repo, and an editable
# install or PYTHONPATH would otherwise import the workspace's code, not the experiment's
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genemi.config import load_params  # noqa: E402
from genemi.io import write_json  # noqa: E402


@click.command(help=__doc__)
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--benchmark", required=True, help="Benchmark name (a key of eval.sources in params.yaml).")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Data folder the eval.sources paths are relative to (the synthetic splits live here).",
)
@click.option("--base", "base_path", required=True, type=click.Path(dir_okay=False))
@click.option("--finetuned", "ft_path", required=True, type=click.Path(dir_okay=False))
@click.option("--metrics", "metrics_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--plot-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Where <benchmark>.csv (wide per-type table), <benchmark>_bars.csv (dvc bar plot) and .png go.",
)
@click.option(
    "--headline",
    "headline_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Short headline metrics JSON (eval.hard_types, macro, R@1, zero-shot; base/finetuned/delta).",
)
@click.option(
    "--items",
    "items_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Per-item outcomes (.npz) for paired bootstrap tests between experiments (stages/report.py).",
)
@click.option(
    "--failures",
    default=6,
    show_default=True,
    type=click.IntRange(min=0),
    help="Fine-tuned mistakes saved per negative type in --items (most confident first).",
)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="Where the models run (cpu, cuda, cuda:1); GPU results may differ in the last digits.",
)
def main(
    params_path, benchmark, data_dir, base_path, ft_path, metrics_path, plot_dir, headline_path, items_path,
    failures, device
) -> None:
    from pathlib import Path

    from genemi import runtime

    p = load_params(params_path)
    runtime.setup(p.seed, p.threads)
    from genemi.benchmarks import load_benchmark, missing_images
    from genemi.evaluate import (
        DeviceEncoder,
        compare,
        distinct_inputs,
        encode_set,
        evaluate_set,
        image_transform_for,
        summarize,
    )
    from genemi.headline import headline, headline_parts
    from genemi.items import items_digest, save_items, text_failures, thumbnail
    from genemi.models import build_model, load_weights, make_tokenizer
    from genemi.plots import type_bars, write_bar_table, write_type_table

    try:
        es = load_benchmark(p.eval, benchmark, data_dir, seed=p.eval.seed)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    n_missing, first = missing_images(es)
    if n_missing:
        raise click.ClickException(
            f"benchmark {benchmark!r}: {n_missing} referenced image file(s) are missing under "
            f"{es.store.root}, e.g. {', '.join(first)}; complete the image folder (docs/benchmarks.md) "
            f"or fix eval.sources.{benchmark}.images"
        )
    for path in (base_path, ft_path):
        if not Path(path).is_file():
            raise click.ClickException(
                f"{path}: model weights not found; run the stage that produces it (dvc repro)"
            )
    outcomes, feats = {}, {}
    for name, path in (("base", base_path), ("finetuned", ft_path)):
        model = build_model(p.model)
        load_weights(model, path)
        transform = image_transform_for(model, p.model.tokenizer)
        enc = DeviceEncoder(model, make_tokenizer(p.model), transform, p.eval.batch_size, device)
        feats[name] = encode_set(enc, es)
        outcomes[name] = evaluate_set(es, feats[name], p.eval.acc_taus, p.eval.retrieval_ks, p.eval.seed)
    flat = compare(outcomes, p.eval.bootstrap, p.eval.seed)
    write_json(metrics_path, flat)
    results = {m: summarize(o) for m, o in outcomes.items()}
    parts = headline_parts(outcomes["finetuned"].samples, outcomes["finetuned"].macro, p.eval.hard_types)
    if headline_path:
        write_json(headline_path, headline(results, parts))
    if items_path:
        wrong = text_failures(es.records, feats["base"], feats["finetuned"], failures)
        thumbs = [thumbnail(es.store.load(f.image)) for f in wrong]
        save_items(items_path, outcomes, items_digest(*distinct_inputs(es)), parts, wrong, thumbs)
    write_type_table(Path(plot_dir) / f"{benchmark}.csv", results, flat)
    write_bar_table(Path(plot_dir) / f"{benchmark}_bars.csv", results, flat)
    type_bars(
        results, f"{benchmark}: base vs fine-tuned by type", Path(plot_dir) / f"{benchmark}.png", flat=flat
    )
    for key in sorted(
        k for k in flat if k.startswith("delta/") and k.endswith(("/text", "/group", "r@1", "/top1"))
    ):
        lo, hi = flat.get(f"{key}_lo"), flat.get(f"{key}_hi")
        ci = f"  [{lo:+.2f}, {hi:+.2f}]" if lo is not None else ""
        click.echo(f"{key}: {flat[key]:+.2f}{ci}")


if __name__ == "__main__":
    main()
