"""What GeNeMi's filter buys on the stand-in, by how many edits fail: a picture of the corrupt arms.

Reads the results of `benchmarks/standin_genemi_effect.py` (each JSON records its `corrupt_as` and
`corrupt_fraction`; a file without them was made with another portrayal at a third) and draws, per kind of
failed edit, the genemi_val group gain over the same-steps control against the share corrupted: the clean
arm at 0, then the filter off and on, one line per seed, each point with its paired 95% interval.

\b
    python benchmarks/standin_genemi_filter_plot.py    # -> benchmarks/results/standin_genemi_filter.png
"""

from __future__ import annotations

import json
from pathlib import Path

import click

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = {"portrayal": "painted as another portrayal", "unchanged": "left as it was (edit changed nothing)"}
ARMS = {"corrupt_off": ("filter off", "#c83232", "--"), "corrupt_on": ("filter on", "#28a03c", "-")}


def points(files: list[Path]) -> dict:
    """{kind: {arm: {seed: [(share, gain, lo, hi), ...]}}} from every results file with corrupt arms; the
    clean genemi arm is each line's point at share 0."""
    out: dict = {k: {a: {} for a in ARMS} for k in KINDS}
    clean: dict = {}
    for f in files:
        data = json.loads(f.read_text())
        kind, share = data.get("corrupt_as", "portrayal"), data.get("corrupt_fraction", 1 / 3)
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


def draw(pts: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = {k: t for k, t in KINDS.items() if any(pts[k].values())}
    if not kinds:
        raise click.ClickException("no corrupt_off or corrupt_on arm in the results given; pass --results of "
                                   "runs with --arms corrupt_off --arms corrupt_on")  # fmt: skip
    seeds = sorted({seed for k in kinds for arm in pts[k].values() for seed in arm}, key=int)
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4.2), sharey=True, squeeze=False)
    axes = axes[0]
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
        ax.set_xlabel("share of variations corrupted (mine_real.corrupt_fraction)")
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
    draw(points(list(files) or default), out)
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
