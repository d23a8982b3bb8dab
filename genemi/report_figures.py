"""The report's pictures: the gain-versus-retention trade-off plot (one numbered point per group, the full
labels in a key below) and the failure galleries (the fine-tuned model's most confident mistakes per type,
beside the base model's verdict on the same pair).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from genemi.items import Items
from genemi.report_claims import RETENTION  # the broad world's zero-shot top-1
from genemi.report_groups import Group
from genemi.report_runs import Run, benchmarks_of, headline_names
from genemi.report_stats import Stat, seed_stat


def _axes(groups: Sequence[Group]) -> tuple[str, str, str, str]:
    """``(mode, x label, y label, note)``: x is retention (``retention/zeroshot_top1`` of synth_broad, %) when
    a run has it, else the change of zero-shot top-1 (or R@1) from base on the benchmarks read, with a note
    saying so; y is the compositional gain (``delta/hard_text``, mean over the other benchmarks)."""
    runs = [r for g in groups for r in g.runs]
    benches = benchmarks_of(runs)
    ylab = "compositional gain: change of hard-type text accuracy from base (points)"
    if any(f"finetuned/{RETENTION[1]}" in r.headline.get(RETENTION[0], {}) for r in runs):
        return ("retention", f"retention: {RETENTION[0]} zero-shot top-1, fine-tuned / base (%)", ylab, "")
    x_key = "zeroshot_top1" if any("zeroshot_top1" in headline_names(runs, b) for b in benches) else "r@1"
    xlab = {"zeroshot_top1": "zero-shot top-1", "r@1": "R@1 (mean of both directions)"}[x_key]
    note = (f"{RETENTION[0]} is not among the runs' benchmarks: x is the change of {xlab} on the benchmarks "
            "read, not a retention measure")
    return x_key, f"change of {xlab} from base (points)", ylab, note


def _xy(heads: dict[str, dict[str, float]], mode: str) -> tuple[float, float] | None:
    """One model's point from its headlines (benchmark -> flat headline), or None without both values."""
    y = [h["delta/hard_text"] for b, h in heads.items() if b != RETENTION[0] and "delta/hard_text" in h]
    if mode == "retention":
        h = heads.get(RETENTION[0], {})
        b, f = h.get(f"base/{RETENTION[1]}"), h.get(f"finetuned/{RETENTION[1]}")
        x = [h.get(f"retention/{RETENTION[1]}", 100.0 * f / b if b and f is not None else None)]
        x = [v for v in x if v is not None]
    else:
        x = [h[f"delta/{mode}"] for h in heads.values() if f"delta/{mode}" in h]
    return (float(np.mean(x)), float(np.mean(y))) if x and y else None


def tradeoff_points(groups: Sequence[Group]) -> tuple[str, str, list[tuple[str, Stat, Stat, bool]]]:
    """Per group: compositional gain (``delta/hard_text``, mean over benchmarks that have it) against
    retention (:func:`_axes`), over seeds."""
    mode, xlab, ylab, _ = _axes(groups)
    pts = []
    for g in groups:
        xy = [p for r in g.runs if (p := _xy(r.headline, mode)) is not None]
        if xy:
            pts.append((g.label, seed_stat([p[0] for p in xy]), seed_stat([p[1] for p in xy]), g.is_control))
    return xlab, ylab, pts


def wise_curves(groups: Sequence[Group]) -> list[tuple[str, list[tuple[str, Stat, Stat]]]]:
    """WiSE-FT curves ``(group label, [(a, x, y)])`` from a = 0 (the base) through each mix to a = 1 (the
    fine-tuned model), over seeds: the claims sweep's reference group and its ``WISE_ON`` arms (L2, KL) when
    they have WiSE-FT files, else every group that has them."""
    from genemi.report_claims import WISE_ON, find_arms

    mode = _axes(groups)[0]
    arms = find_arms(groups)
    ref = arms.get("hn")
    with_wise = [g for g in groups if any(r.wise for r in g.runs)]
    stacked = [arms[a] for a in WISE_ON if arms.get(a) in with_wise]
    chosen = [ref, *stacked] if ref in with_wise else with_wise
    curves = []
    for g in chosen:
        alphas = sorted({a for r in g.runs for per in r.wise.values() for a in per}, key=float)
        zero = 100.0 if mode == "retention" else 0.0
        pts = [("0", seed_stat([zero] * len(g.runs)), seed_stat([0.0] * len(g.runs)))]
        for a in alphas:
            xy = [p for r in g.runs
                  if (p := _xy({b: per[a] for b, per in r.wise.items() if a in per}, mode)) is not None]
            if xy:
                pts.append((a, seed_stat([p[0] for p in xy]), seed_stat([p[1] for p in xy])))
        end = [p for r in g.runs if (p := _xy(r.headline, mode)) is not None]
        if end:
            pts.append(("1", seed_stat([p[0] for p in end]), seed_stat([p[1] for p in end])))
        if len(pts) > 2:
            curves.append((g.label, pts))
    return curves


def tradeoff_figure(groups: Sequence[Group], path) -> None:
    """Compositional gain against retention, one numbered point per group; the key below the axes gives
    each number's full label (wrapped, never cut), and groups without both headlines are named there too."""
    import itertools
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genemi.io import atomic_path

    xlab, ylab, pts = tradeoff_points(groups)
    note = _axes(groups)[3]
    drawn = {label for label, *_ in pts}
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    key = [textwrap.fill("note: " + note, 110, subsequent_indent="    ")] if note else []
    for n, (label, curve) in enumerate(wise_curves(groups)):
        xs, ys = [x.mean for _, x, _ in curve], [y.mean for _, _, y in curve]
        # black: the groups' points take matplotlib's colour cycle; one line style per curve
        style = ("--", ":", "-.")[n % 3]
        ax.plot(xs, ys, style, color="black", lw=1.0, marker="^", ms=5, zorder=1)
        for (a, x, y) in curve:
            ax.annotate(f"a={a}", (x.mean, y.mean), textcoords="offset points", xytext=(-6, -11), fontsize=7,
                        color="black")
        name = {"--": "dashed", ":": "dotted", "-.": "dash-dotted"}[style]
        key.append(textwrap.fill(f"{name} line: WiSE-FT of {label}, (1 - a) * base + a * fine-tuned "
                                 "(a = 0: the base; a = 1: the fine-tuned model)", 110,
                                 subsequent_indent="    "))
    # grey marks controls alone: the other points take the tab10 colours but its grey (C7)
    colours = itertools.cycle([f"C{k}" for k in range(10) if k != 7])
    for i, (label, x, y, ctrl) in enumerate(pts, 1):
        xe = None if x.half != x.half else x.half
        ye = None if y.half != y.half else y.half
        ax.errorbar(x.mean, y.mean, xerr=xe, yerr=ye, fmt="s" if ctrl else "o", ms=7, capsize=3,
                    color="grey" if ctrl else next(colours))
        key.append(textwrap.fill(f"{i}: {'control ' if ctrl else ''}{label}", 110, subsequent_indent="    "))
    ax.margins(0.25)
    ax.autoscale_view()
    # points that (nearly) coincide on the canvas share one label "1,3" instead of printing over each other
    clusters: list[tuple[float, float, tuple[float, float], list[str]]] = []  # pixel x, y, point, numbers
    for i, (_, x, y, _) in enumerate(pts, 1):
        px, py = ax.transData.transform((x.mean, y.mean))
        near = next((c for c in clusters if abs(c[0] - px) < 24 and abs(c[1] - py) < 12), None)
        if near is None:
            clusters.append((px, py, (x.mean, y.mean), [str(i)]))
        else:
            near[3].append(str(i))
    for _, _, xy, nums in clusters:
        ax.annotate(",".join(nums), xy, textcoords="offset points", xytext=(5, 4), fontsize=8)
    missing = [g.label for g in groups if g.label not in drawn]
    if missing:
        key.append(textwrap.fill("not drawn (no hard-type and retention headline): " + "; ".join(missing),
                                 110,
                                 subsequent_indent="    "))
    if not pts:
        ax.text(0.5, 0.5, "no run has both a hard-type and a retention headline", ha="center",
                transform=ax.transAxes)
    ax.axhline(0, color="grey", lw=0.7, ls="--")
    ax.axvline(100.0 if _axes(groups)[0] == "retention" else 0.0, color="grey", lw=0.7, ls="--")
    ax.set_xlabel(textwrap.fill(xlab, 60), fontsize=9)
    ax.set_ylabel(textwrap.fill(ylab, 45), fontsize=9)
    ax.set_title("Compositional gain vs retention (mean ± 95% t-interval over seeds)", fontsize=9)
    fig.tight_layout()
    extra = []
    if key:  # below the x label, in the figure's own coordinates; savefig grows the canvas to hold it
        extra.append(
            fig.text(0.02, -0.01, "\n".join(key), ha="left", va="top", fontsize=7, family="monospace")
        )
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None}, bbox_inches="tight",
                    bbox_extra_artists=extra, pad_inches=0.15)
    plt.close(fig)


def failure_figure(items: Items, title: str, path, per_type: int = 4) -> bool:
    """Grid of the fine-tuned model's most confident text-side mistakes (rows = types): image, true
    caption, the negative it chose, both models' cosines. False when the file holds none."""
    f = items.failures
    if "type" not in f or len(f["type"]) == 0:
        return False
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genemi.io import atomic_path

    types = sorted(set(f["type"].tolist()))
    fig, axes = plt.subplots(
        len(types), per_type, figsize=(3.0 * per_type, 3.9 * len(types)), dpi=90, squeeze=False
    )
    for row, t in enumerate(types):
        idx = [i for i, x in enumerate(f["type"].tolist()) if x == t][:per_type]
        for col in range(per_type):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(idx):
                ax.axis("off")
                continue
            i = idx[col]
            bp, bn, fp, fn = (float(v) for v in f["scores"][i])
            ax.imshow(f["image"][i])
            verdict = "right" if bp > bn else "wrong too"
            text = "\n".join(
                [
                    textwrap.fill(f"TRUE: {f['caption'][i]}", 40),
                    textwrap.fill(f"CHOSEN: {f['negative'][i]}", 40),
                    f"fine-tuned: s(T)={fp:.3f} <= s(T-)={fn:.3f}",
                    f"base: s(T)={bp:.3f} vs s(T-)={bn:.3f} ({verdict})",
                ]
            )
            ax.set_xlabel(text, fontsize=7, loc="left")
            if col == 0:
                ax.set_ylabel(t, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    return True


def pick_gallery_run(groups: Sequence[Group], name: str | None = None) -> Run:
    """The run named ``name``, else the first seed of the group with the largest mean hard-type gain over
    its control (the model a reader would publish), else the first run."""
    runs = [r for g in groups for r in g.runs]
    if name is not None:
        for r in runs:
            if r.name == name:
                return r
        raise ValueError(f"--gallery-run {name!r}: no such run among {', '.join(r.name for r in runs)}")

    def gain(g: Group) -> float:
        vals = [
            g.stat(b, "finetuned/hard_text").mean - g.control.stat(b, "finetuned/hard_text").mean
            for b in benchmarks_of(g.runs)
        ]
        vals = [v for v in vals if v == v]
        return float(np.mean(vals)) if vals else -math.inf

    compared = [g for g in groups if g.control is not None]
    return max(compared, key=gain).runs[0] if compared else runs[0]
