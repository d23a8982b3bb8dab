"""What GeNeMi's filter buys on the stand-in, by how many edits fail: a picture of the corrupt arms.

Reads the results of `benchmarks/standin_genemi_effect.py` (each JSON records its `corrupt_as` and
`corrupt_fraction`; a file without them was made with another portrayal at a third; one made with
`mine_real.corrupt_by: prompt` or `color` has a panel of its own) and draws, per kind of failed edit, the
genemi_val group gain over the same-steps control against the share corrupted: the clean arm at 0, then
the filter off and on, one line per seed, each point with its paired 95% interval; and, filter on, the
same gain against the number of variations the filter kept (all of them right).

\b
    python benchmarks/standin_genemi_filter_plot.py    # -> benchmarks/results/standin_genemi_filter.png
"""

from __future__ import annotations

import json
from pathlib import Path

import click

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = {  # mine_real.corrupt_as (+ "/<corrupt_by>" unless by variation): title, marker and line of by-count
    "portrayal": ("painted as another portrayal", "s", ":"),
    "unchanged": ("left as it was (edit changed nothing)", "o", "-"),
    "misplaced": (
        "painted over another object\n(a wrong box; an image of one shape cannot fail so)",
        "^",
        "-.",
    ),
    "unchanged/prompt": (
        "left as it was, by prompt\n(every variation asking for a failing prompt)",
        "D",
        "--",
    ),
    "portrayal/prompt": (
        "painted as another portrayal, by prompt\n(every variation asking for a failing prompt)",
        "v",
        (0, (3, 1, 1, 1)),
    ),
    "unchanged/color": (
        "left as it was, by colour\n(every variation naming one of a third of the colours)",
        "P",
        (0, (1, 1)),
    ),
    "portrayal/color": (
        "painted as another portrayal, by colour\n(every variation naming one of a third of the colours)",
        "X",
        (0, (5, 2)),
    ),
}
ARMS = {"corrupt_off": ("filter off", "#c83232", "--"), "corrupt_on": ("filter on", "#28a03c", "-")}


def load(f: Path) -> dict:
    """A results JSON of standin_genemi_effect.py, or a one-line error naming the file."""
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except ValueError as e:  # JSON or UTF-8
        raise click.ClickException(f"{f}: not JSON ({e}); pass results of standin_genemi_effect.py") from None
    if not isinstance(data, dict) or not isinstance(data.get("table"), dict):
        raise click.ClickException(f"{f}: no results table; pass results of standin_genemi_effect.py")
    if kind_of(data) not in KINDS:
        raise click.ClickException(f"{f}: failure kind {kind_of(data)!r} is none of {', '.join(KINDS)}; "
                                   "pass results made with one of them")  # fmt: skip
    return data


def kind_of(data: dict) -> str:
    """The panel of a results file: its ``corrupt_as``, with ``/<corrupt_by>`` unless drawn per variation."""
    kind = data.get("corrupt_as", "portrayal")
    by = data.get("overrides", {}).get("mine_real.corrupt_by", "variation")  # the effect script's -S
    return kind if by == "variation" else f"{kind}/{by}"


def points(files: list[Path]) -> dict:
    """{kind: {arm: {seed: [(share, gain, lo, hi), ...]}}} from every results file with corrupt arms; the
    clean genemi arm is each line's point at share 0."""
    out: dict = {k: {a: {} for a in ARMS} for k in KINDS}
    clean: dict = {}
    for f in files:
        data = load(f)
        kind, share = kind_of(data), data.get("corrupt_fraction", 1 / 3)
        for key, e in data["table"].items():
            seed, arm = key.split("/")
            cell = (e["d_group"], e["d_group_lo"], e["d_group_hi"]) if "d_group" in e else None
            if arm == "genemi" and cell:
                if clean.setdefault(seed, cell) != cell:
                    raise click.ClickException(f"{f}: seed {seed}'s clean arm differs from another file's; "
                                               "pass --results of runs with one recipe and -S")  # fmt: skip
            elif arm in ARMS and cell:
                out[kind][arm].setdefault(seed, []).append((share, *cell))
    for kind in out.values():
        for arm in kind.values():
            for seed, pts in arm.items():
                if seed not in clean:
                    where = ", ".join(map(str, files))
                    raise click.ClickException(f"seed {seed}: no clean genemi arm in {where}; add a run "
                                               "with --arms genemi for that seed")  # fmt: skip
                pts.append((0.0, *clean[seed]))
                pts.sort()
    return out


def by_count(files: list[Path]) -> dict:
    """{kind: {seed: [(variations trained on, gain, lo, hi), ...]}}: each filter-on arm at the number of
    variations its filter kept (all of them right), and the clean arm at its whole mining."""
    out: dict = {k: {} for k in KINDS}
    clean: dict = {}
    for f in files:
        data = load(f)
        kind = kind_of(data)
        for key, e in data["table"].items():
            seed, arm = key.split("/")
            kept = data.get("mining", {}).get(seed, {}).get(arm, {}).get("kept")
            if "d_group" not in e or kept is None:
                continue
            cell = (kept, e["d_group"], e["d_group_lo"], e["d_group_hi"])
            if arm == "genemi":
                clean[seed] = cell
            elif arm == "corrupt_on":
                out[kind].setdefault(seed, []).append(cell)
    for kind in out.values():
        for seed, pts in kind.items():
            pts.extend([clean[seed]] if seed in clean else [])
            pts.sort()
    return out


def draw_counts(ax, counts: dict, legend_ax=None) -> None:
    """Filter on: the group gain against how many right variations the arm trained on (log axis); colour
    is the seed, marker and line the kind, each named once in the legend (in ``legend_ax``, an empty cell
    of the grid, where there is one, so that it covers no point)."""
    from matplotlib.lines import Line2D

    colours = ["#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]
    seeds, kinds = set(), []
    for kind, (title, marker, style) in KINDS.items():
        for seed, line in sorted(counts[kind].items(), key=lambda kv: int(kv[0])):
            err = [[g - lo for _, g, lo, _ in line], [hi - g for _, g, _, hi in line]]
            colour = colours[int(seed) % len(colours)]
            ax.errorbar([n for n, *_ in line], [g for _, g, _, _ in line], yerr=err, marker=marker, ms=4,
                        ls=style, lw=1, capsize=2, alpha=0.8, color=colour)  # fmt: skip
            seeds.add(int(seed))
        if counts[kind]:
            kinds.append(Line2D([], [], color="#444444", marker=marker, ls=style, lw=1, ms=4,
                                label=title.split("(")[0].strip().replace("\n", " ")))  # fmt: skip
    handles = [
        Line2D([], [], color=colours[s % len(colours)], lw=2, label=f"seed {s}") for s in sorted(seeds)
    ]
    ax.set_xscale("log")
    ax.set_xticks([250, 500, 1000, 2000, 3000], ["250", "500", "1000", "2000", "3000"])
    ax.minorticks_off()
    ax.axhline(0, color="#888888", lw=0.8)
    ax.set_title("filter on: gain by right variations trained on", fontsize=10)
    ax.set_xlabel("variations kept by the filter (all right; log scale)")
    ax.grid(alpha=0.3, which="both")
    if legend_ax is not None:
        legend_ax.set_visible(True)
        legend_ax.axis("off")
        legend_ax.legend(handles=handles + kinds, loc="upper left", fontsize=9, title="filter on, by count",
                         title_fontsize=9)  # fmt: skip
    else:
        ax.legend(handles=handles + kinds, loc="lower right", fontsize=7)


def draw(pts: dict, path: Path, counts: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = {k: t for k, (t, *_) in KINDS.items() if any(pts[k].values())}
    if not kinds:
        raise click.ClickException("no corrupt_off or corrupt_on arm in the results given; pass --results of "
                                   "runs with --arms corrupt_off --arms corrupt_on")  # fmt: skip
    seeds = sorted({seed for k in kinds for arm in pts[k].values() for seed in arm}, key=int)
    extra = 1 if counts and any(counts.values()) else 0
    n = len(kinds) + extra
    cols = n if n <= 3 else 2 if n == 4 else 3  # four panels in a row are too wide to read
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.2 * rows), sharey=True, squeeze=False)
    axes = list(axes.flat)
    spare = axes[n:]
    for ax in spare:
        ax.set_visible(False)
    axes = axes[:n]
    if extra:
        draw_counts(axes[-1], counts, spare[0] if spare else None)
        axes = axes[:-1]
    for ax, (kind, title) in zip(axes, kinds.items(), strict=True):
        for arm, (label, colour, style) in ARMS.items():
            for i, (_, line) in enumerate(sorted(pts[kind][arm].items())):
                x = [s + (i - 1) * 0.012 + (0.004 if arm == "corrupt_on" else -0.004) for s, *_ in line]
                y = [g for _, g, _, _ in line]
                err = [[g - lo for _, g, lo, _ in line], [hi - g for _, g, _, hi in line]]
                ax.errorbar(x, y, yerr=err, color=colour, ls=style, marker="o", ms=4, lw=1.2, capsize=2,
                            alpha=0.85, label=label if i == 0 else None)  # fmt: skip
        ax.axhline(0, color="#888888", lw=0.8)
        ax.set_title(f"corrupted variations {title}", fontsize=10)
        ax.set_xlabel("mine_real.corrupt_fraction (the share asked to fail)")
        shares = sorted({x for arm in pts[kind].values() for line in arm.values() for x, *_ in line})
        ax.set_xticks(shares, ["0 (clean)" if x == 0 else f"{x:.2f}" for x in shares])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("genemi_val group gain over the control (points)")
    title = f"one line per seed ({', '.join(seeds)}); bars: 95% paired intervals"
    axes[0].legend(loc="lower left", fontsize=9, title=title, title_fontsize=8)
    fig.suptitle("GeNeMi stand-in: what the ITM/IVA filter buys as edits fail", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


@click.command(help=__doc__)
@click.option(
    "--results", "files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Results JSON of standin_genemi_effect.py (repeatable; default: standin_genemi_effect.json and "
    "every standin_genemi_corrupt_*.json in benchmarks/results).",
)  # fmt: skip
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=RESULTS / "standin_genemi_filter.png",
    show_default=True,
)  # fmt: skip
def main(files, out):
    default = [RESULTS / "standin_genemi_effect.json", *RESULTS.glob("standin_genemi_corrupt_*.json")]
    files = list(files) or default
    draw(points(files), out, by_count(files))
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
