"""From many runs (DVC experiments, commits, folders) to the results table, the trade-off picture and
failure galleries: :func:`write_report`, and the markdown tables it writes (:func:`results_markdown`).

The parts it uses, each a module of its own: reading runs (:mod:`genemi.report_runs`), grouping them by
params with their controls (:mod:`genemi.report_groups`), the mean over seeds with its t-interval
(:mod:`genemi.report_stats`), the paired cluster bootstrap of a group against its control over the same
items (:mod:`genemi.report_paired`) and the pictures (:mod:`genemi.report_figures`). Every name stays
importable from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from genemi.report_claims import (  # noqa: F401  (re-exported: callers import from genemi.report)
    Row,
    Side,
    claim_rows,
    claims_markdown,
    compare_sides,
    find_arms,
)
from genemi.report_figures import (  # noqa: F401  (re-exported: callers import from genemi.report)
    failure_figure,
    pick_gallery_run,
    tradeoff_figure,
    tradeoff_points,
    wise_curves,
)
from genemi.report_groups import (  # noqa: F401  (re-exported: callers import from genemi.report)
    BENCHMARKS,
    IGNORED,
    LABELS,
    Group,
    group_label,
    group_labels,
    group_runs,
    is_control_candidate,
    label_keys,
    shares_items,
)
from genemi.report_paired import (  # noqa: F401  (re-exported: callers import from genemi.report)
    Paired,
    paired_test,
)
from genemi.report_runs import (  # noqa: F401  (re-exported: callers import from genemi.report)
    Layout,
    Run,
    benchmarks_of,
    collect_runs,
    dir_reader,
    dvc_experiments,
    fill_new_keys,
    flatten,
    git_commit,
    git_reader,
    headline_names,
    load_run,
    parse_exp_show,
)
from genemi.report_stats import (  # noqa: F401  (re-exported: callers import from genemi.report)
    Stat,
    seed_stat,
    t975,
)


def _cell(s: Stat, digits: int = 1) -> str:
    if s.n == 0 or s.mean != s.mean:
        return "–"
    if s.n == 1:
        return f"{s.mean:.{digits}f}"
    return f"{s.mean:.{digits}f} ± {s.half:.{digits}f}"


def _p(p: float) -> str:
    return f"p={p:.3f}" if p >= 0.001 else "p<0.001"


def base_rows(groups: Sequence[Group], bench: str) -> list[tuple[str, str, dict[str, Stat]]]:
    """``(label, seeds, stats)`` of the model before fine-tuning: one row when the runs of each seed
    share one base model (the usual sweep over fine-tuning params), else one row per group."""
    names = headline_names([r for g in groups for r in g.runs], bench)
    per_seed: dict[int, set] = {}
    for g in groups:
        for r in g.runs:
            if bench in r.headline:
                per_seed.setdefault(r.seed, set()).add(
                    tuple(r.headline[bench].get(f"base/{n}") for n in names)
                )
    if all(len(v) == 1 for v in per_seed.values()):
        vals = [next(iter(v)) for _, v in sorted(per_seed.items())]
        stats = {n: seed_stat([v[i] for v in vals if v[i] is not None]) for i, n in enumerate(names)}
        return [("base (before fine-tuning)", ",".join(map(str, sorted(per_seed))), stats)]
    return [
        (f"base of {g.label}", ",".join(map(str, g.seeds())), {n: g.stat(bench, f"base/{n}") for n in names})
        for g in groups
    ]


def types_of(runs: Sequence[Run], bench: str) -> list[str]:
    from genemi.plots import is_type

    types = {
        k.split("/")[1]
        for r in runs
        for k in r.detail.get(bench, {})
        if k.startswith("finetuned/") and k.endswith("/text") and k.count("/") == 2
    }
    return sorted(t for t in types if is_type(t))


def results_markdown(groups: Sequence[Group], n_boot: int = 1000, seed: int = 0) -> str:
    """The results table (module docstring) as Markdown."""
    runs = [r for g in groups for r in g.runs]
    benches = benchmarks_of(runs)
    lines = [
        "# Results",
        "",
        f"{len(runs)} runs in {len(groups)} groups (same params, seeds aggregated). Cells: fine-tuned model, "
        "mean ± half-width of the 95% t-interval over seeds (no interval with one seed), in %. "
        "**control** = `loss.hn_weight=0` with the same `finetune.steps`, scored on the same items. "
        "hard = mean text accuracy over `eval.hard_types`; macro = mean over all types; R@1 = mean of "
        "image→text and text→image.",
        *repeats_note(groups),
        "",
        "## Headline",
        "",
    ]
    cols = [(b, n) for b in benches for n in headline_names(runs, b)]
    lines.append("| run | seeds | " + " | ".join(f"{b} {LABELS[n]}" for b, n in cols) + " |")
    lines.append("|---|---|" + "---|" * len(cols))
    base_by_bench = {b: base_rows(groups, b) for b in benches}
    n_base = max(len(v) for v in base_by_bench.values()) if benches else 0
    for i in range(n_base):
        label, seeds = next((v[i][0], v[i][1]) for v in base_by_bench.values() if i < len(v))
        cells = []
        for b, n in cols:
            rows = base_by_bench[b]
            cells.append(
                _cell(rows[i][2].get(n, Stat(float("nan"), float("nan"), 0))) if i < len(rows) else "–"
            )
        lines.append(f"| {label} | {seeds} | " + " | ".join(cells) + " |")
    for g in groups:
        label = f"**control** {g.label}" if g.is_control else g.label
        seeds = ",".join(map(str, g.seeds()))
        lines.append(
            f"| {label} | {seeds} | " + " | ".join(_cell(g.stat(b, f"finetuned/{n}")) for b, n in cols) + " |"
        )
    lines += ["", "## Difference from the control", ""]
    compared = [g for g in groups if g.control is not None]
    if not compared:
        lines.append(
            "No group has a control among the runs read: a run with `loss.hn_weight=0`, the same "
            "`finetune.steps` and the same items (seed, data, a shared benchmark); add one with "
            "`dvc exp run -S loss.hn_weight=0` on the same params."
        )
    else:
        lines += [
            "Fine-tuned run minus its control, averaged over the seeds both have; [95% interval] and p "
            f"from a paired cluster bootstrap ({n_boot} resamples) over the same items, seed by seed.",
            "",
            "| run | control | " + " | ".join(f"{b} Δ{LABELS[n]}" for b, n in cols) + " |",
            "|---|---|" + "---|" * len(cols),
        ]
        for g in compared:
            cells = []
            for b, n in cols:
                t = paired_test(g, g.control, b, n, n_boot, seed) if shares_items(g, g.control, b) else None
                cells.append("–" if t is None else f"{t.diff:+.1f} [{t.lo:+.1f}, {t.hi:+.1f}] {_p(t.p)}")
            lines.append(f"| {g.label} | {g.control.label} | " + " | ".join(cells) + " |")
    for b in benches:
        types = types_of(runs, b)
        if not types:
            continue
        lines += [
            "",
            f"## Per-type text accuracy: {b}",
            "",
            "| run | " + " | ".join(types) + " |",
            "|---|" + "---|" * len(types),
        ]
        seen_base: dict[int, Run] = {}
        for g in groups:
            for r in g.runs:
                seen_base.setdefault(r.seed, r)
        base = [
            seed_stat(
                [
                    r.detail[b][f"base/{t}/text"]
                    for r in seen_base.values()
                    if f"base/{t}/text" in r.detail.get(b, {})
                ]
            )
            for t in types
        ]
        lines.append("| base (first run of each seed) | " + " | ".join(_cell(s) for s in base) + " |")
        for g in groups:
            label = f"**control** {g.label}" if g.is_control else g.label
            lines.append(
                f"| {label} | "
                + " | ".join(_cell(g.detail_stat(b, f"finetuned/{t}/text")) for t in types)
                + " |"
            )
    lines += ["", "## Runs", "", "| group | seed | run |", "|---|---|---|"]
    for g in groups:
        for r in g.runs:
            lines.append(f"| {g.label} | {r.seed} | `{r.name}` |")
        for r, kept in g.repeats:
            lines.append(
                f"| {g.label} | {r.seed} | `{r.name}`: same params and seed as `{kept.name}`, not counted |"
            )
    return "\n".join(lines) + "\n"


def repeats_note(groups: Sequence[Group]) -> list[str]:
    """A paragraph naming the runs left out because another run has the same params and seed (a seed
    counted twice would narrow the interval over seeds); none when every run counts."""
    pairs = [(r, kept) for g in groups for r, kept in g.repeats]
    if not pairs:
        return []
    named = "; ".join(f"`{r.name}` repeats `{kept.name}` (seed {r.seed})" for r, kept in pairs)
    return ["", f"**{len(pairs)} run(s) not counted**: same params and seed as another run, so each seed "
            f"counts once: {named}. Give them other seeds (`-S seed=N`) to count them."]


def write_report(runs: list, out_dir, n_boot: int, seed: int, gallery_run: str | None, per_type: int):
    """``results.md``, ``tradeoff.png`` and ``failures/<benchmark>.png`` (for each benchmark whose per-item
    file holds text-side mistakes of the chosen run) under ``out_dir``; returns the groups, the run the
    galleries show and the paths written."""
    from genemi.io import write_text

    groups = group_runs(runs)
    out = Path(out_dir)
    written = [out / "results.md", out / "tradeoff.png"]
    tables = results_markdown(groups, n_boot, seed) + "\n" + claims_markdown(groups, n_boot, seed)
    write_text(written[0], tables)
    tradeoff_figure(groups, written[1])
    chosen = pick_gallery_run(groups, gallery_run)
    for bench in benchmarks_of([chosen]):
        if bench not in chosen.items_loader:
            continue
        title = f"{bench}: most confident mistakes of run {chosen.name}"
        path = out / "failures" / f"{bench}.png"
        if failure_figure(chosen.items(bench), title, path, per_type):
            written.append(path)
    return groups, chosen, written
