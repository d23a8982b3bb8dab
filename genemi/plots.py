"""Pictures people would rather look at than read: contact sheets and per-type bar charts."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw


def contact_sheet(
    rows: Sequence[tuple[Image.Image, str, Sequence[tuple[Image.Image, str]]]],
    tile: int = 96,
    label_width: int = 200,
) -> Image.Image:
    """A grid: each row is an original image beside its variations, each captioned below.

    ``rows`` holds ``(original, caption, [(variation, label), ...])``. Labels wrap at the
    tile width. Returns an RGB PIL image.
    """
    if not rows:
        return Image.new("RGB", (tile, tile), "white")
    cols = 1 + max(len(r[2]) for r in rows)
    cell_w = max(tile, label_width)
    text_h = 40
    sheet = Image.new("RGB", (cols * cell_w, len(rows) * (tile + text_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (orig, caption, variants) in enumerate(rows):
        y = r * (tile + text_h)
        for c, (img, label) in enumerate([(orig, "TRUE: " + caption), *variants]):
            x = c * cell_w
            sheet.paste(img.convert("RGB").resize((tile, tile), Image.NEAREST), (x + (cell_w - tile) // 2, y))
            words, lines, line = label.split(), [], ""
            for w in words:
                if len(line) + len(w) + 1 > cell_w // 6:
                    lines.append(line)
                    line = w
                else:
                    line = f"{line} {w}".strip()
            lines.append(line)
            for i, text in enumerate(lines[:3]):
                draw.text((x + 2, y + tile + 1 + 12 * i), text, fill=(0, 0, 0))
    return sheet


def per_type(results: dict[str, dict[str, float]], metric: str = "text") -> tuple[list[str], dict[str, list[float]]]:
    """Negative types present in every model's results, and each model's ``metric`` per type."""
    types = sorted({k.split("/")[0] for r in results.values() for k in r if k.endswith(f"/{metric}")} - {"all"})
    return types, {m: [r.get(f"{t}/{metric}", float("nan")) for t in types] for m, r in results.items()}


def write_type_table(path, results: dict[str, dict[str, float]]) -> None:
    """CSV for ``dvc plots``: one row per negative type, a column per model x metric."""
    from genemi.io import write_text

    types, _ = per_type(results)
    metrics = ("text", "image", "group")
    cols = [f"{m}_{x}" for m in results for x in metrics]
    lines = ["type," + ",".join(cols)]
    for t in types:
        vals = [results[m].get(f"{t}/{x}") for m in results for x in metrics]
        lines.append(t + "," + ",".join("" if v is None else f"{v:.4f}" for v in vals))
    write_text(path, "\n".join(lines) + "\n")


def type_bars(results: dict[str, dict[str, float]], title: str, path, metric: str = "text") -> None:
    """Grouped bar chart (one bar per model) of ``metric`` per negative type, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from genemi.io import atomic_path

    types, values = per_type(results, metric)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(types), 3.6), dpi=100)
    x = np.arange(len(types))
    width = 0.8 / max(1, len(values))
    for i, (model, vals) in enumerate(values.items()):
        bars = ax.bar(x + (i - (len(values) - 1) / 2) * width, vals, width, label=model)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.axhline(50, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, [t.replace("_", "\n") for t in types], fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel(f"{metric} accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
