"""The `genemi` command: score any CLIP on any benchmark, compare models with paired tests, and the
hand-run tools of the pipeline.

\b
    genemi eval --model ViT-B-32-quickgelu --checkpoint negclip.pt --benchmark sugarcrepe
    genemi compare ViT-B-32-quickgelu:openai negclip=ViT-B-32-quickgelu:negclip.pt -b sugarcrepe -b winoground
    genemi recipe list
    genemi show --manifest data/negatives/test.jsonl --first 8 --out shown/
    genemi report --out reports/

The DVC pipeline (`dvc repro`) trains and evaluates its own models; these commands call the same
library code (docs/cli.md). `python -m genemi` is the same command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from genemi.errors import Output, Stage

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group("genemi", help=__doc__, context_settings=CONTEXT)
@click.version_option(package_name="genemi", prog_name="genemi")
def main() -> None:
    pass


def _benchmark_options(fn):
    """The options `eval` and `compare` share: what to score on, where, how fast, where the results go."""
    options = [
        click.option(
            "--benchmark",
            "-b",
            "benchmarks",
            multiple=True,
            required=True,
            metavar="NAME|FILE",
            help="A benchmark of the catalogue (genemi/benchmarks/catalogue.yaml, docs/benchmarks.md; "
            "its files under --data) or a bring-your-own file; repeatable.",
        ),
        click.option(
            "--data",
            "data_dir",
            default="data",
            show_default=True,
            type=click.Path(file_okay=False),
            help="Folder the catalogue's paths are relative to (the pipeline's data/).",
        ),
        click.option(
            "--images",
            default=None,
            type=click.Path(),
            help="Image folder (or zip) of the benchmark, replacing the catalogue's; for a "
            "bring-your-own file, default: the file's folder.",
        ),
        click.option(
            "--loader",
            default=None,
            help="Format of a benchmark given as a file (default byo: the bring-your-own JSONL); "
            "e.g. winoground, sugarcrepe, image_folder (docs/benchmarks.md).",
        ),
        click.option(
            "--subset",
            default=None,
            type=click.FloatRange(0, 1, min_open=True),
            help="Fraction of items kept, drawn by a hash of the item id (default: the catalogue's).",
        ),
        click.option(
            "--params",
            "params_path",
            default=None,
            type=click.Path(dir_okay=False, exists=True),
            help="Take the evaluation settings (bootstrap, seed, thresholds, prompts, benchmark "
            "entries) from this params.yaml's eval section instead of the pipeline's defaults.",
        ),
        click.option(
            "--device",
            default="auto",
            show_default=True,
            help="cpu, cuda, cuda:1, ...; auto = cuda when available.",
        ),
        click.option(
            "--batch-size",
            default=None,
            type=click.IntRange(min=1),
            help="Images / captions per forward pass [default: 512, or --params' eval.batch_size].",
        ),
        click.option(
            "--workers",
            default=-1,
            show_default=True,
            type=click.IntRange(min=-1),
            help="Image-decoding worker processes (0 = this process; -1 = the CPUs less one, at most 8).",
        ),
        click.option(
            "--precision",
            default="fp32",
            show_default=True,
            type=click.Choice(["fp32", "fp16", "bf16", "amp"]),
            help="fp16/bf16: weights and inputs in that type; amp: fp32 weights under autocast "
            "(fp16 on CUDA, bf16 on the CPU).",
        ),
        click.option(
            "--bootstrap",
            "n_boot",
            default=None,
            type=click.IntRange(min=0),
            help="Cluster-bootstrap resamples of the 95% intervals [default: 200, or --params']; 0 = none.",
        ),
        click.option(
            "--seed",
            default=None,
            type=int,
            help="Evaluation seed: subsets, ARO Order shuffles, bootstrap [default: 0, or --params'].",
        ),
        click.option(
            "--tokenizer",
            default=None,
            type=click.Choice(["word", "open_clip"]),
            help="Tokenizer of open_clip models [default: the weights' metadata; word for genemi's "
            "synthetic-world architectures, else open_clip's].",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        d = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"--device {device!r}: not a device name (cpu, cuda, cuda:1, ...)") from e
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available here; use --device cpu")
    return device


def _run(specs, opts: dict, out_dir: str, reference: str | None) -> None:
    """Load every model, score every benchmark, write ``<out>/<benchmark>.json`` (+ the picture of a
    comparison) and a markdown summary, and print the tables."""
    import time

    from genemi import runtime, scorecard, zoo
    from genemi.io import write_json, write_text

    if opts["images"] is not None and len(opts["benchmarks"]) > 1:
        raise click.UsageError("--images applies to one benchmark; run one command per image folder")
    ev = scorecard.eval_params(
        opts["params_path"], batch_size=opts["batch_size"], bootstrap=opts["n_boot"], seed=opts["seed"]
    )
    runtime.setup(ev.seed)
    # every benchmark's files are checked before any model is loaded (a ViT-L takes a while)
    sets = []
    for b in opts["benchmarks"]:
        name, src = scorecard.benchmark_source(
            b, ev, images=opts["images"], loader=opts["loader"], subset=opts["subset"]
        )
        sets.append(scorecard.load_set(name, src, ev, opts["data_dir"]))
    names = [es.name for es in sets]
    if len(set(names)) < len(names):
        raise ValueError(f"--benchmark: two benchmarks are both named {names}; give each once")
    device = _device(opts["device"])
    clips = {}
    for s in specs:
        t0 = time.perf_counter()
        clips[s.name] = zoo.load(s, device, ev.batch_size, opts["precision"])
        click.echo(
            f"{s.name}: {s.describe()} on {device}, {opts['precision']} "
            f"({time.perf_counter() - t0:.1f} s to load)",
            err=True,
        )
    workers = runtime.loader_workers(opts["workers"], in_memory=False)
    out = Path(out_dir)
    per_bench = {}
    for es in sets:
        t0 = time.perf_counter()
        _, flat = scorecard.score(clips, es, ev, workers, not opts["quiet"], reference)
        per_bench[es.name] = flat
        write_json(out / f"{es.name}.json", flat)
        written = [out / f"{es.name}.json"]
        if reference is not None:
            png = out / f"{es.name}.png"
            scorecard.difference_figure(
                flat, list(clips), reference, f"{es.name}: difference from {reference}", png
            )
            written.append(png)
        click.echo(
            f"\n## {es.name} ({time.perf_counter() - t0:.1f} s)\n\n"
            + scorecard.table(flat, list(clips), reference)
            + "\n"
        )
        click.echo("-> " + ", ".join(map(str, written)), err=True)
    md = out / ("comparison.md" if reference else "results.md")
    write_text(
        md,
        scorecard.report_markdown(
            per_bench, {s.name: s.describe() for s in specs}, reference, ev.bootstrap, ev.seed
        ),
    )
    click.echo(f"-> {md}", err=True)


@main.command("eval", cls=Stage, context_settings=CONTEXT)
@click.option(
    "--model",
    "-m",
    "model",
    required=True,
    metavar="ARCH|SPEC",
    help="An open_clip architecture (ViT-B-32, an open_clip config .json), with --pretrained or "
    "--checkpoint; or a whole spec: ARCH:TAG, ARCH:FILE, a genemi weights file, a "
    "transformers CLIPModel folder.",
)
@click.option(
    "--pretrained",
    default=None,
    metavar="TAG",
    help="open_clip pretrained tag (e.g. laion2b_s34b_b79k), read from the local cache.",
)
@click.option(
    "--checkpoint",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="Checkpoint file: an open_clip or OpenAI-layout state dict (.safetensors, or "
    ".pt/.bin/.pth read with torch.load(weights_only=True)).",
)
@click.option(
    "--name",
    default="model",
    show_default=True,
    help="The model's name in the metric keys (<name>/<type>/text ...).",
)
@_benchmark_options
@click.option(
    "--out",
    "out_dir",
    default="eval-results",
    show_default=True,
    type=Output(folder=True),
    help="Folder for <benchmark>.json (the evaluate stage's metrics, for this model) and results.md.",
)
def eval_cmd(model, pretrained, checkpoint, name, out_dir, **opts) -> None:
    """Score one model on benchmarks: per-type accuracies, retrieval R@K, zero-shot top-k, with 95%
    cluster-bootstrap intervals. No params.yaml, DVC or training needed; weights are read offline
    (an open_clip tag must be in the local cache).

    \b
    genemi eval --model ViT-B-32-quickgelu --checkpoint negclip.pt --benchmark sugarcrepe
    genemi eval --model ViT-B-32 --pretrained laion2b_s34b_b79k -b winoground -b aro_vg_relation
    genemi eval --model models/clip-vit-base-patch32 -b my_pairs.jsonl --images my_images/
    genemi eval --model data/models/finetuned.safetensors -b synth_test
    """
    from genemi import zoo

    if pretrained and checkpoint:
        raise click.UsageError("give --pretrained or --checkpoint, not both")
    source = pretrained or checkpoint
    if not source and ":" not in model and not Path(model).exists():
        raise click.UsageError(
            f"--model {model}: give its weights, --pretrained TAG (a cached open_clip tag) or "
            "--checkpoint FILE"
        )
    if source and ":" in model and not Path(model).exists():
        raise click.UsageError(f"--model {model} already names its weights; drop --pretrained/--checkpoint")
    spec = zoo.parse_spec(f"{model}:{source}" if source else model, name, opts["tokenizer"])
    _run([spec], opts, out_dir, None)


@main.command("compare", cls=Stage, context_settings=CONTEXT)
@click.argument("models", nargs=-1, required=True, metavar="MODEL MODEL [MODEL ...]")
@click.option(
    "--reference", default=None, help="Name of the model the others are compared with [default: the first]."
)
@_benchmark_options
@click.option(
    "--out",
    "out_dir",
    default="compare-results",
    show_default=True,
    type=Output(folder=True),
    help="Folder for <benchmark>.json (all models' metrics and the paired differences), "
    "<benchmark>.png (the differences) and comparison.md (the tables).",
)
def compare_cmd(models, reference, out_dir, **opts) -> None:
    """Score several models on the same items and test their differences: per negative type, each
    model's difference from the reference with a paired 95% cluster-bootstrap interval and p-value
    (the same resampled items for every model; the evaluate stage's bootstrap and seed).

    Each MODEL is [NAME=]ARCH:TAG, [NAME=]ARCH:FILE, a genemi weights file or a transformers
    CLIPModel folder (docs/cli.md).

    \b
    genemi compare ViT-B-32-quickgelu:openai negclip=ViT-B-32-quickgelu:negclip.pt -b sugarcrepe -b winoground
    genemi compare base=data/models/base.safetensors finetuned=data/models/finetuned.safetensors -b synth_test
    """
    from genemi import zoo

    if len(models) < 2:
        raise click.UsageError("compare needs at least two models (use `genemi eval` for one)")
    specs = zoo.unique_names([zoo.parse_spec(m, tokenizer=opts["tokenizer"]) for m in models])
    reference = reference or specs[0].name
    if reference not in [s.name for s in specs]:
        raise click.UsageError(f"--reference {reference!r} is not one of {[s.name for s in specs]}")
    _run(specs, opts, out_dir, reference)


_PASS = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@main.command("recipe", context_settings=_PASS, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def recipe_cmd(args) -> None:
    """Published set-ups as params.yaml keys: list, show NAME, apply NAME, flags NAME (-h for more)."""
    from genemi.recipe import main as recipe_main

    raise SystemExit(recipe_main(list(args)))


@main.command("report", context_settings=_PASS, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def report_cmd(args) -> None:
    """Results table, trade-off picture and failure galleries over DVC experiments (--help for more)."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "stages" / "report.py"
    if not script.is_file():
        raise click.ClickException(
            f"{script}: not found; `genemi report` runs stages/report.py of a genemi checkout "
            "(pip install -e . from the repository)"
        )
    sys.path.insert(0, str(script.parent))  # the script imports its neighbour _checkout
    spec = importlib.util.spec_from_file_location("genemi_report_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main.main(args=list(args), prog_name="genemi report")


def _add_show() -> None:
    from genemi.show import main as show_main

    main.add_command(show_main, "show")


_add_show()

if __name__ == "__main__":
    main()
