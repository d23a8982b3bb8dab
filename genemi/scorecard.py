"""Scoring models outside the pipeline: the library behind `genemi eval` and `genemi compare`.

The same pieces as the evaluate stage -- :func:`genemi.evaluate.load_complete` (the benchmark, with
every file checked first), :func:`genemi.evaluate.evaluate_models` (each image decoded once, encoded by
every model), :func:`genemi.bootstrap.compare` (the flat metrics with cluster-bootstrap intervals) --
plus :func:`genemi.bootstrap.paired` for the differences between models on the same items, and the
tables and picture a person reads.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from genemi.config import EvalParams, EvalSource

# The evaluation settings of params.yaml's `eval` section (tests/test_cli.py holds them equal), used when
# no --params file is given: the same bootstrap, seed, thresholds and prompts as the pipeline.
DEFAULT_EVAL = {
    "batch_size": 512,
    "seed": 0,
    "bootstrap": 200,
    "acc_taus": (1.0, 1.1, 1.2, 1.5, 2.0, 3.0),
    "retrieval_ks": (1, 5, 10),
    "hard_types": ("attribute_swap", "relation_flip"),
    "zeroshot_templates": ("a photo of a {}.",),
    "monitor": "",
    "monitor_every": 0,
    "monitor_records": 0,
}


def eval_params(params_path: str | Path | None = None, **overrides) -> EvalParams:
    """``eval`` settings: from ``params_path``'s ``eval`` section, else :data:`DEFAULT_EVAL`; then the
    given ``overrides`` (``None`` values ignored). ``benchmarks`` starts as the file's (or empty)."""
    if params_path is not None:
        from genemi.config import load_params

        ev = load_params(params_path).eval
    else:
        ev = EvalParams(benchmarks={}, **DEFAULT_EVAL)
    return dataclasses.replace(ev, **{k: v for k, v in overrides.items() if v is not None})


def benchmark_source(
    name: str,
    ev: EvalParams,
    file: str | None = None,
    images: str | None = None,
    loader: str | None = None,
    subset: float | None = None,
) -> tuple[str, EvalSource]:
    """``(benchmark name, its files)`` for ``name``: an entry of ``ev.benchmarks`` (a --params file), else
    of the catalogue (``genemi/benchmarks/catalogue.yaml``), else a file or folder read with ``loader``
    (default ``byo``: the bring-your-own JSONL) whose images lie under ``images`` (default: its folder).
    ``file`` / ``images`` / ``subset`` replace a known entry's."""
    from genemi.benchmarks import catalogue, catalogue_source, loaders

    # paths given on the command line are the caller's (relative to the working folder), not --data's
    file = None if file is None else str(Path(file).expanduser().resolve())
    images = None if images is None else str(Path(images).expanduser().resolve())
    if loader is not None and loader not in loaders():
        raise ValueError(f"--loader {loader!r}: one of {', '.join(loaders())}")
    if name in ev.benchmarks or (name in catalogue() and loader is None):
        src = ev.benchmarks[name] if name in ev.benchmarks else catalogue_source(name)
        if file is not None:
            # a replaced file: the image paths start from the given images folder, not the manifest root
            src = dataclasses.replace(src, file=file, root="" if images is not None else src.root)
        if images is not None:
            src = dataclasses.replace(src, images=images, root="")
    else:
        path = Path(file or name).expanduser().resolve()
        if not path.exists():
            raise FileNotFoundError(
                f"benchmark {name!r}: neither a catalogue benchmark ({', '.join(sorted(catalogue()))}) "
                "nor an existing file; give a catalogue name, or a bring-your-own file (docs/benchmarks.md) "
                "with --images"
            )
        loader = loader or "byo"
        img = images if images is not None else str(path if path.is_dir() else path.parent)
        src = EvalSource(loader, str(path), img, 1.0, models=str(path))
        name = re.sub(r"[^A-Za-z0-9_]", "_", path.stem if path.is_file() else path.name) or "benchmark"
    if subset is not None:
        src = dataclasses.replace(src, subset=subset)
    return name, src


def load_set(name: str, src: EvalSource, ev: EvalParams, data_dir: str | Path):
    """The benchmark as an :class:`genemi.evalsets.EvalSet`, every file and image checked present."""
    from genemi.evaluate import load_complete

    return load_complete(dataclasses.replace(ev, benchmarks={name: src}), name, data_dir)


def score(
    clips: Mapping[str, object],
    es,
    ev: EvalParams,
    workers: int = 0,
    progress: bool = True,
    reference: str | None = None,
) -> tuple[dict, dict[str, float]]:
    """``(outcomes per model, flat metrics)``: the evaluate stage's metrics of every model
    (:func:`genemi.bootstrap.compare`), plus with ``reference`` the paired differences of every other
    model from it (:func:`genemi.bootstrap.paired`)."""
    from genemi.bootstrap import compare, paired
    from genemi.evaluate import evaluate_models

    outcomes, _ = evaluate_models(clips, es, ev.acc_taus, ev.retrieval_ks, ev.seed, workers, progress)
    flat = compare(outcomes, ev.bootstrap, ev.seed)
    if reference is not None and len(outcomes) > 1:
        flat.update(paired(outcomes, reference, ev.bootstrap, ev.seed))
    return outcomes, dict(sorted(flat.items()))


# ------------------------------------------------------------------------------------------ tables

_PRIMARY = ("text", "image", "group")
_SPECIAL = ("all", "macro", "macro_all")


def rows_of(flat: Mapping[str, float], model: str) -> list[tuple[str, str]]:
    """``(row, metric)`` of the table: per negative type the text/image/group accuracies, then the
    overall and macro averages, retrieval R@K and zero-shot top-k."""
    keys = {k[len(model) + 1 :] for k in flat if k.startswith(f"{model}/")}
    rows = []
    types = sorted({k.rsplit("/", 1)[0] for k in keys if k.rsplit("/", 1)[-1] in _PRIMARY} - set(_SPECIAL))
    for t in [*types, *_SPECIAL]:
        rows += [(t, m) for m in _PRIMARY if f"{t}/{m}" in keys]
    for task in ("retrieval", "zeroshot"):
        metrics = sorted(
            (
                k.split("/", 1)[1]
                for k in keys
                if k.startswith(f"{task}/")
                and not k.endswith(("_lo", "_hi"))
                and not k.split("/", 1)[1].startswith("n")
            ),
            key=lambda m: (m.split("@")[0], int(re.sub(r"\D", "", m) or 0)),
        )
        rows += [(task, m) for m in metrics]
    return rows


def _n(flat: Mapping[str, float], model: str, row: str) -> str:
    if row.startswith("macro"):  # a mean over types, not over items
        return ""
    n = flat.get(f"{model}/{row}/n", flat.get(f"{model}/{row}/n_texts", flat.get(f"{model}/all/n")))
    if row in ("retrieval", "zeroshot"):
        n = flat.get(f"{model}/{row}/n_images" if row == "retrieval" else f"{model}/{row}/n")
    return "" if n is None else f"{int(n)}"


def _value(flat: Mapping[str, float], key: str, digits: int = 1) -> str:
    v = flat.get(key)
    if v is None or v != v:
        return "–"
    lo, hi = flat.get(f"{key}_lo"), flat.get(f"{key}_hi")
    return f"{v:.{digits}f}" + (f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None else "")


def _delta(flat: Mapping[str, float], key: str, digits: int = 1) -> str:
    v = flat.get(key)
    if v is None or v != v:
        return "–"
    lo, hi = flat.get(f"{key}_lo"), flat.get(f"{key}_hi")
    return f"{v:+.{digits}f}" + (f" [{lo:+.{digits}f}, {hi:+.{digits}f}]" if lo is not None else "")


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return f"{p:.3f}"


def table(flat: Mapping[str, float], models: Sequence[str], reference: str | None = None) -> str:
    """A markdown table: one row per (type, metric) with each model's value and 95% interval, and each
    other model's difference from ``reference`` with its paired interval and p-value."""
    others = [m for m in models if reference is not None and m != reference]
    head = ["type", "metric", "n", *models]
    for m in others:
        head += [f"{m} − {reference}", "p"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for row, metric in rows_of(flat, models[0]):
        cells = [row, metric, _n(flat, models[0], row)]
        cells += [_value(flat, f"{m}/{row}/{metric}") for m in models]
        for m in others:
            key = f"delta/{m}/{row}/{metric}"
            cells += [_delta(flat, key), _p(flat.get(f"{key}_p"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_markdown(
    per_bench: Mapping[str, Mapping[str, float]],
    models: Mapping[str, str],
    reference: str | None,
    n_boot: int,
    seed: int,
) -> str:
    """The whole comparison: which models, how the intervals were drawn, one table per benchmark."""
    lines = ["# Model comparison" if reference else "# Evaluation", ""]
    for name, what in models.items():
        lines.append(f"- `{name}`: {what}" + (" (reference)" if name == reference else ""))
    lines += [
        "",
        f"Values are percentages with 95% cluster-bootstrap intervals ({n_boot} resamples, seed {seed});"
        + (
            " differences are paired (the same resampled items for every model), with two-sided "
            "bootstrap p-values."
            if reference
            else ""
        ),
        "",
    ]
    for bench, flat in per_bench.items():
        lines += [f"## {bench}", "", table(flat, list(models), reference), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ picture


def difference_figure(
    flat: Mapping[str, float], models: Sequence[str], reference: str, title: str, path
) -> None:
    """Each model's difference from ``reference`` per row of :func:`table` (the first metric of each
    negative type, the averages, R@K, top-k) as points with paired 95% intervals; filled markers where
    p < 0.05. Saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from genemi.io import atomic_path

    others = [m for m in models if m != reference]
    rows = [(r, m) for r, m in rows_of(flat, reference) if f"delta/{others[0]}/{r}/{m}" in flat]
    labels = [f"{r} / {m}" for r, m in rows]
    height = 1.2 + 0.32 * max(1, len(rows)) * max(1, len(others)) ** 0.5
    width = 4.5 + 0.07 * max((len(s) for s in labels), default=10)
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    y = np.arange(len(rows))[::-1]
    step = 0.7 / max(1, len(others))
    for i, m in enumerate(others):
        off = (i - (len(others) - 1) / 2) * step
        for j, (r, metric) in enumerate(rows):
            key = f"delta/{m}/{r}/{metric}"
            d, lo, hi, p = (flat.get(key), flat.get(f"{key}_lo"), flat.get(f"{key}_hi"), flat.get(f"{key}_p"))
            if d is None or (isinstance(d, float) and math.isnan(d)):
                continue
            color = f"C{i}"
            if lo is not None:
                ax.plot([lo, hi], [y[j] + off] * 2, color=color, lw=1.5)
            filled = p is not None and p < 0.05
            ax.plot(
                [d],
                [y[j] + off],
                "o",
                color=color,
                mfc=color if filled else "white",
                label=f"{m} − {reference}" if j == 0 else None,
            )
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("difference (percentage points), paired 95% interval; filled: p < 0.05", fontsize=8)
    ax.set_title(title, fontsize=9)
    if others:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
