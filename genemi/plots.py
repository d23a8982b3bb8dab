"""Pictures people would rather look at than read: contact sheets and per-type bar charts."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

KEPT, DROPPED, ORIGINAL = (40, 160, 60), (200, 40, 40), (90, 90, 90)  # tile frames


@dataclass(frozen=True)
class Tile:
    """One cell of a contact sheet: an image, its caption, a frame colour and an optional box."""

    image: Image.Image
    caption: str
    frame: tuple[int, int, int] = ORIGINAL
    box: tuple[float, float, float, float] | None = None  # the grounded box, in image pixels


def _tile(t: Tile, thumb: int, text_h: int, font: ImageFont.ImageFont) -> Image.Image:
    """One ``thumb``-wide cell: the image letterboxed in a coloured frame, caption below."""
    cell = Image.new("RGB", (thumb, thumb + text_h), "white")
    # contain() scales up as well as down, so small images stay legible
    im = ImageOps.contain(t.image.convert("RGB"), (thumb - 6, thumb - 6), Image.NEAREST)
    if t.box is not None:
        f = im.width / t.image.width
        ImageDraw.Draw(im).rectangle([v * f for v in t.box], outline=(255, 215, 0), width=2)
    draw = ImageDraw.Draw(cell)
    draw.rectangle([0, 0, thumb - 1, thumb - 1], outline=t.frame, width=3)
    cell.paste(im, ((thumb - im.width) // 2, (thumb - im.height) // 2))
    chars = max(8, thumb // 6)  # ~6 px per character at size 11
    lines = textwrap.wrap(t.caption, chars)[: max(1, text_h // 11)]
    draw.multiline_text((3, thumb + 2), "\n".join(lines), fill="black", font=font, spacing=1)
    return cell


def contact_sheet(rows: Sequence[Sequence[Tile]], thumb: int = 160, text_h: int = 48) -> Image.Image:
    """RGB sheet with ``rows`` of tiles (first tile of a row = the original)."""
    if not rows:
        raise ValueError("contact_sheet: no rows to draw")
    font = ImageFont.load_default(size=11)  # Pillow's bundled TrueType font: same on every machine
    cols = max(len(r) for r in rows)
    sheet = Image.new("RGB", (cols * thumb, len(rows) * (thumb + text_h)), "white")
    for i, row in enumerate(rows):
        for j, t in enumerate(row):
            sheet.paste(_tile(t, thumb, text_h, font), (j * thumb, i * (thumb + text_h)))
    return sheet


# Summary rows that are not negative types; kept out of the per-type charts (as is every "macro_*" average,
# e.g. VL-CheckList's macro_object).
NOT_TYPES = {"all", "macro", "macro_all", "retrieval", "zeroshot"}


def is_type(name: str) -> bool:
    """Whether ``name`` (the part of a metric key before its metric) is a negative type, not a summary."""
    return name not in NOT_TYPES and not name.startswith("macro_")


def per_type(
    results: dict[str, dict[str, float]], metric: str = "text"
) -> tuple[list[str], dict[str, list[float]]]:
    """Negative types present in any model's results, and each model's ``metric`` per type (NaN if absent)."""
    types = sorted(
        t for t in {k.rsplit("/", 1)[0] for r in results.values() for k in r if k.endswith(f"/{metric}")}
        if is_type(t)
    )
    return types, {m: [r.get(f"{t}/{metric}", float("nan")) for t in types] for m, r in results.items()}


# Headline metrics of benchmarks without negative types: retrieval R@K both ways, zero-shot top-k, and the
# overall text/image/group scores of sets whose items share one type (GeNeMi validation: type "all")
_HEADLINE = re.compile(r"^(retrieval|zeroshot)/((?:i2t|t2i)_r@\d+|top\d+)$")
_OVERALL = re.compile(r"^all/(text|image|group)$")


def _row_key(key: str) -> str | None:
    """``retrieval/i2t_r@1`` -> ``i2t_r@1/text``; ``all/image`` -> ``overall/image``; else None."""
    if mt := _HEADLINE.match(key):
        return f"{mt.group(2)}/text"
    if mt := _OVERALL.match(key):
        return f"overall/{mt.group(1)}"
    return None


def plot_rows(
    results: dict[str, dict[str, float]], flat: dict[str, float] | None = None
) -> tuple[dict[str, dict[str, float]], dict[str, float], str]:
    """What the per-type plots draw: ``(results, flat, y label)``.

    Benchmarks with negative types come back unchanged (rows = types, value = text accuracy). Retrieval,
    zero-shot and single-type sets have no types to draw, so their tables would hold only a header: their
    rows become the headline metrics instead (``i2t_r@1``, ``t2i_r@5``, ``top1``..., ``overall`` for the
    all-items text/image/group scores), stored as ``<row>/text`` with their bootstrap intervals, so the same
    CSV columns and the same ``dvc plots`` template apply.
    """
    flat = flat or {}
    if per_type(results)[0]:
        return results, flat, "text accuracy (%)"
    rows = {m: {rk: v for k, v in r.items() if (rk := _row_key(k))} for m, r in results.items()}
    rows_flat = {}
    for k, v in flat.items():
        model, _, rest = k.partition("/")
        base, suffix = (rest[:-3], rest[-3:]) if rest.endswith(("_lo", "_hi")) else (rest, "")
        if rk := _row_key(base):
            rows_flat[f"{model}/{rk}{suffix}"] = v
    if not any(rows.values()):
        raise ValueError("no per-type, overall, retrieval or zero-shot metric to plot")
    label = "recall (%)" if any("_r@" in k for r in rows.values() for k in r) else "accuracy (%)"
    return rows, rows_flat, label


def write_type_table(
    path, results: dict[str, dict[str, float]], flat: dict[str, float] | None = None
) -> None:
    """CSV for ``dvc plots``: one row per negative type; columns ``<model>_<metric>`` for text, image and
    group, then ``delta_text`` and, when ``flat`` (from :func:`genemi.bootstrap.compare`) has bootstrap
    intervals, ``<model>_text_lo`` / ``_hi``. Empty cell = metric not defined for that type."""
    from genemi.io import write_text

    types, _ = per_type(results)
    metrics = ("text", "image", "group")
    cols = [(f"{m}_{x}", m, x) for m in results for x in metrics]
    flat = flat or {}
    extra = []
    if "base" in results and "finetuned" in results:
        extra.append(("delta_text", "delta/{t}/text"))
    for m in results:
        if any(k.startswith(f"{m}/") and k.endswith("/text_lo") for k in flat):
            extra += [(f"{m}_text_lo", f"{m}/{{t}}/text_lo"), (f"{m}_text_hi", f"{m}/{{t}}/text_hi")]
    lines = ["type," + ",".join([c for c, _, _ in cols] + [c for c, _ in extra])]
    for t in types:
        vals = [results[m].get(f"{t}/{x}") for _, m, x in cols]
        if extra and extra[0][0] == "delta_text":
            d = [results["finetuned"].get(f"{t}/text"), results["base"].get(f"{t}/text")]
            vals.append(None if None in d else d[0] - d[1])
            rest = extra[1:]
        else:
            rest = extra
        vals += [flat.get(key.format(t=t)) for _, key in rest]
        lines.append(t + "," + ",".join("" if v is None else f"{v:.4f}" for v in vals))
    write_text(path, "\n".join(lines) + "\n")


def write_bar_table(
    path, results: dict[str, dict[str, float]], flat: dict[str, float] | None = None, metric: str = "text"
) -> None:
    """Long-form CSV for a ``dvc plots`` bar chart (stage-level ``template: bar_horizontal``, ``x: <metric>``,
    ``y: label``): one row per (type, model), ``label`` = ``"<type> | <model>"`` so base and fine-tuned
    sit side by side, with the bootstrap interval when ``flat`` has one."""
    from genemi.io import write_text

    flat = flat or {}
    types, values = per_type(results, metric)
    lines = [f"label,type,model,{metric},{metric}_lo,{metric}_hi"]
    for j, t in enumerate(types):
        for m, vals in values.items():
            if vals[j] != vals[j]:  # NaN: metric undefined for this type
                continue
            lo, hi = flat.get(f"{m}/{t}/{metric}_lo"), flat.get(f"{m}/{t}/{metric}_hi")
            cells = [f"{t} | {m}", t, m, f"{vals[j]:.4f}"] + [
                "" if v is None else f"{v:.4f}" for v in (lo, hi)
            ]
            lines.append(",".join(cells))
    write_text(path, "\n".join(lines) + "\n")


def type_bars(
    results: dict[str, dict[str, float]],
    title: str,
    path,
    metric: str = "text",
    flat: dict[str, float] | None = None,
    ylabel: str | None = None,
) -> None:
    """Grouped bar chart (one bar per model) of ``metric`` per negative type, saved as PNG; with ``flat``
    holding bootstrap intervals (``<model>/<type>/<metric>_lo|_hi``), 95% error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from genemi.io import atomic_path

    types, values = per_type(results, metric)
    flat = flat or {}
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * max(1, len(types)), 3.6), dpi=100)
    x = np.arange(len(types))
    width = 0.8 / max(1, len(values))
    for i, (model, vals) in enumerate(values.items()):
        lo = [flat.get(f"{model}/{t}/{metric}_lo") for t in types]
        hi = [flat.get(f"{model}/{t}/{metric}_hi") for t in types]
        yerr = None
        if types and all(v is not None for v in lo + hi):
            yerr = np.array(
                [
                    [max(0.0, v - a) for v, a in zip(vals, lo, strict=True)],
                    [max(0.0, b - v) for v, b in zip(vals, hi, strict=True)],
                ]
            )
        bars = ax.bar(x + (i - (len(values) - 1) / 2) * width, vals, width, label=model, yerr=yerr, capsize=2)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.axhline(50, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, [t.replace("_", "\n") for t in types], fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel(ylabel or f"{metric} accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def eval_plots(plot_dir, benchmark: str, results: dict[str, dict[str, float]], flat: dict[str, float]) -> None:
    """The evaluate stage's plots of one benchmark: ``<benchmark>.csv`` (wide per-type table),
    ``<benchmark>_bars.csv`` (the dvc bar plot) and ``<benchmark>.png`` (bars with intervals)."""
    plot_dir = Path(plot_dir)
    # rows = negative types, or the R@K / top-k metrics of retrieval and zero-shot benchmarks
    rows, rows_flat, ylabel = plot_rows(results, flat)
    write_type_table(plot_dir / f"{benchmark}.csv", rows, rows_flat)
    write_bar_table(plot_dir / f"{benchmark}_bars.csv", rows, rows_flat)
    type_bars(rows, f"{benchmark}: base vs fine-tuned", plot_dir / f"{benchmark}.png", flat=rows_flat, ylabel=ylabel)
