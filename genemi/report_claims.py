"""The claims of the claims sweep (:mod:`genemi.sweep`), one row each, with paired intervals.

The runs read are matched to the sweep's arms by their params: the **reference** is the group with every
key the arms override at its committed value (``genemi.sweep.REFERENCE``: hard negatives, no regulariser,
every layer, image negatives on), and arm ``x`` is the group that differs from it in exactly
``genemi.sweep.ARMS[x]``. Each row compares two models seed by seed over the same items (a paired cluster
bootstrap: the interval and p reflect item sampling; the mean is over the seeds both sides have):

* hard negatives vs the same-steps control: compositional gain (``hard_text``);
* fine-tuning costs retention: fine-tuned vs its own base on ``synth_broad`` zero-shot top-1, control and
  hard negatives alike;
* each remedy (L2, KL, DPO, ``last_blocks``, replay of pretraining pairs, WiSE-FT at each ``a``, and WiSE-FT
  on top of L2 or KL) vs the reference: the retention it wins back and the compositional accuracy it gives
  up, with the share of the retention loss left and of the gain over the control kept (the target: half the
  loss, >= 70% of the gain);
* image negatives on vs off on image-side and group accuracy of the hard types.

A row whose runs are missing says which, and how to get them, instead of a number.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genemi.report_groups import Group
from genemi.report_paired import Paired

RETENTION = ("synth_broad", "zeroshot_top1")  # benchmark and headline of retention (the broad world)
QUEUE = "python -m genemi.sweep claims --queue"
WISE_ON = ("l2", "kl")  # arms whose own WiSE-FT mixes get remedy rows (the thesis's two regularisers)


@dataclass(frozen=True)
class Side:
    """One model of a comparison: the group's runs, read from their evaluate files (``kind="items"``, model
    ``base`` or ``finetuned``) or their WiSE-FT files (``kind="wise"``, model ``base`` or an ``a``)."""

    group: Group
    model: str = "finetuned"
    kind: str = "items"

    def items(self, run, bench: str):
        return run.items(bench) if self.kind == "items" else run.wise_items(bench)


@dataclass(frozen=True)
class Row:
    claim: str
    comparison: str
    measure: str
    seeds: str
    result: str
    verdict: str = ""


def find_arms(groups: Sequence[Group]) -> dict[str, Group | None]:
    """Arm name -> its group among ``groups`` (None when no group matches); see the module docstring."""
    from genemi.sweep import ARMS, REFERENCE

    def wanted(arm: str) -> dict:
        return {**REFERENCE, **ARMS[arm]}

    def matches(g: Group, arm: str) -> bool:
        return all(g.params.get(k, REFERENCE[k]) == v for k, v in wanted(arm).items())

    def rest(g: Group) -> dict:
        return {k: v for k, v in g.params.items() if k not in REFERENCE}

    best: dict[str, Group | None] = {a: None for a in ARMS}
    for ref in (g for g in groups if matches(g, "hn")):
        found = {a: next((g for g in groups if matches(g, a) and rest(g) == rest(ref)), None) for a in ARMS}
        if sum(v is not None for v in found.values()) > sum(v is not None for v in best.values()):
            best = found
    return best


def parts_of(items, name: str) -> list[str]:
    """The per-unit keys headline ``name`` averages: a headline's own parts, or ``hard_image`` /
    ``hard_group`` = the hard types' image-side / group accuracy."""
    if name in ("hard_image", "hard_group"):
        side = name.split("_")[1]
        keys = [k.rsplit("/", 1)[0] + f"/{side}" for k in items.parts.get("hard_text", [])]
        return [k for k in keys if k in items.clusters]
    return list(items.parts.get(name, []))


def compare_sides(a: Side, b: Side, benches: Sequence[str], name: str, n_boot: int = 1000,
                  seed: int = 0) -> Paired | None:
    """``a - b`` on headline ``name``, the mean over ``benches`` (each resampled on its own) and over the
    seeds both sides ran; None when they share no seed or a benchmark lacks the files or the metric."""
    from genemi.bootstrap import bootstrap_means
    from genemi.metrics import Sample

    by_seed = {r.seed: r for r in b.group.runs}
    pairs = [(r, by_seed[r.seed]) for r in a.group.runs if r.seed in by_seed]
    if not pairs:
        return None
    diffs, reps = [], []
    for ra, rb in pairs:
        d_seed, r_seed = [], []
        for bench in benches:
            try:
                ia, ib = a.items(ra, bench), b.items(rb, bench)
            except FileNotFoundError:
                return None
            if ia.digest != ib.digest:
                raise ValueError(f"{bench}: runs {ra.name!r} and {rb.name!r} (seed {ra.seed}) did not score "
                                 "the same items; their data params differ")
            parts = parts_of(ia, name)
            if not parts or a.model not in ia.outcomes or b.model not in ib.outcomes:
                return None
            rng = np.random.default_rng([seed, ra.seed, zlib.crc32(f"{bench}/{name}".encode())])
            per = []
            for k in parts:
                c = ia.clusters[k]
                s = [Sample(it.outcomes[m][k].astype(float), c) for it, m in ((ia, a.model), (ib, b.model))]
                r = bootstrap_means(s, n_boot, rng)
                per.append(r[0] - r[1])
            r_seed.append(np.mean(per, axis=0))
            d_seed.append(np.mean([100.0 * (ia.outcomes[a.model][k].mean() - ib.outcomes[b.model][k].mean())
                                   for k in parts]))
        diffs.append(float(np.mean(d_seed)))
        reps.append(np.mean(r_seed, axis=0))
    d = float(np.mean(diffs))
    boot = np.mean(reps, axis=0)
    p = (1 + int(np.sum(np.abs(boot - d) >= abs(d)))) / (1 + n_boot)
    lo, hi = np.percentile(boot, [2.5, 97.5]).tolist()
    return Paired(d, lo, hi, min(1.0, p), tuple(ra.seed for ra, _ in pairs))


def _fmt(t: Paired | None) -> str:
    if t is None:
        return "–"
    p = f"p={t.p:.3f}" if t.p >= 0.001 else "p<0.001"
    return f"{t.diff:+.1f} [{t.lo:+.1f}, {t.hi:+.1f}] {p}"


def _mean(group: Group, bench: str, key: str, wise: str | None = None) -> float:
    """Mean over the group's runs of a headline value (of WiSE mix ``wise`` when given); NaN if none has
    it."""
    vals = []
    for r in group.runs:
        head = (r.wise.get(bench, {}).get(wise, {}) if wise else r.headline.get(bench, {}))
        if key in head:
            vals.append(head[key])
    return float(np.mean(vals)) if vals else float("nan")


def claim_rows(groups: Sequence[Group], n_boot: int = 1000, seed: int = 0) -> list[Row]:
    """Every claim's row (see the module docstring)."""
    from genemi.report_runs import benchmarks_of
    from genemi.sweep import ARMS, exp_name

    arms = find_arms(groups)
    runs = [r for g in groups for r in g.runs]
    benches = benchmarks_of(runs)
    comp = [b for b in benches if b != RETENTION[0]]  # compositional benchmarks
    ret_b, ret_n = RETENTION
    has_ret = ret_b in benches
    comp_label = "hard (" + ", ".join(comp) + ")"
    ret_label = f"{ret_b} zero-shot top-1"
    no_ret = f"{ret_b} is not among the runs' benchmarks: retention not measured"
    rows: list[Row] = []

    def missing(*names: str) -> str:
        lost = [n for n in names if arms.get(n) is None]
        return ("no runs of " + ", ".join(f"arm {n} (`{exp_name(n, 0)}`, ...)" for n in lost)
                + f"; queue them with `{QUEUE}`")

    def seeds(*gs: Group) -> str:
        common = set.intersection(*(set(g.seeds()) for g in gs))
        return ",".join(map(str, sorted(common))) or "none shared"

    hn, ctrl = arms["hn"], arms["control"]
    claim = "hard negatives teach composition"
    if hn is None or ctrl is None:
        rows.append(Row(claim, "hn − control", comp_label, "–", missing("hn", "control")))
    else:
        t = compare_sides(Side(hn), Side(ctrl), comp, "hard_text", n_boot, seed)
        rows.append(Row(claim, "hn − control (same steps)", comp_label, seeds(hn, ctrl), _fmt(t),
                        _every_seed_gain(hn, ctrl, comp)))
    claim = "fine-tuning costs retention"
    for arm in ("control", "hn"):
        g = arms[arm]
        if g is None:
            rows.append(Row(claim, f"{arm} − its base", ret_label, "–", missing(arm)))
        elif not has_ret:
            rows.append(Row(claim, f"{arm} − its base", ret_label, "–", no_ret))
        else:
            t = compare_sides(Side(g), Side(g, "base"), [ret_b], ret_n, n_boot, seed)
            kept = _mean(g, ret_b, f"retention/{ret_n}")
            b = _mean(g, ret_b, f"base/{ret_n}")
            if kept != kept and b:  # a headline without the retention key: from its two values
                kept = 100.0 * _mean(g, ret_b, f"finetuned/{ret_n}") / b
            ok = t is not None and t.diff <= -5 and t.hi < 0
            rows.append(Row(claim, f"{arm} − its base", ret_label, seeds(g), _fmt(t),
                            f"retention {kept:.1f}%; >= 5 points lost, interval below 0: "
                            f"{'yes' if ok else 'no'}"))
    remedies = [(a, Side(arms[a]) if arms[a] is not None else None, arms[a])
                for a in ("l2", "kl", "dpo", "last_blocks", "replay")]
    def mixes(g: Group | None) -> list[str]:  # the WiSE-FT ``a`` values g's runs scored
        return sorted({a for r in (g.runs if g else []) for a in r.wise.get(comp[0] if comp else "", {})},
                      key=float)

    wise_as = mixes(hn)
    remedies += [(f"WiSE-FT a={a}", Side(hn, a, "wise"), hn) for a in wise_as]
    for arm in WISE_ON:  # WiSE-FT between the base and a regularised fine-tuning: the two remedies stacked
        g = arms[arm]
        remedies += [(f"{arm} + WiSE-FT a={a}", Side(g, a, "wise"), g) for a in mixes(g)]
    if hn is not None and not wise_as:
        rows.append(Row("WiSE-FT reduces the retention loss", "a − hn", "–", "–",
                        "the hn runs have no WiSE-FT files (stages wise, wise_eval@<benchmark>)"))
    for name, side, g in remedies:
        claim = f"{name} reduces the retention loss"
        if g is None or hn is None:
            lost = missing(*[x for x in ("hn", name) if x in ARMS])
            rows.append(Row(claim, f"{name} − hn", "–", "–", lost))
            continue
        wise = side.model if side.kind == "wise" else None
        t_comp = compare_sides(side, Side(hn), comp, "hard_text", n_boot, seed)
        who = f"{name} − hn"
        rows.append(Row(claim, who, comp_label, seeds(g, hn), _fmt(t_comp),
                        _kept(g, hn, ctrl, comp, wise)))
        if not has_ret:
            rows.append(Row(claim, who, ret_label, "–", no_ret))
            continue
        t_ret = compare_sides(side, Side(hn), [ret_b], ret_n, n_boot, seed)
        rows.append(Row(claim, who, ret_label, seeds(g, hn), _fmt(t_ret), _left(g, hn, ret_b, ret_n, wise)))
    claim = "image negatives help image-side and group accuracy"
    off = arms["no_image_negatives"]
    for measure in ("hard_image", "hard_group", "hard_text"):
        label = measure.replace("hard_", "hard-type ") + " (" + ", ".join(comp) + ")"
        if hn is None or off is None:
            rows.append(Row(claim, "on (hn) − off", label, "–", missing("hn", "no_image_negatives")))
            continue
        t = compare_sides(Side(hn), Side(off), comp, measure, n_boot, seed)
        rows.append(Row(claim, "on (hn) − off", label, seeds(hn, off), _fmt(t)))
    return rows


def _every_seed_gain(hn: Group, ctrl: Group, comp: Sequence[str]) -> str:
    """Whether hn beats the control by >= 10 points on every hard type of every benchmark, seed by seed."""
    by_seed = {r.seed: r for r in ctrl.runs}
    worst = []
    for r in hn.runs:
        c = by_seed.get(r.seed)
        if c is None:
            continue
        for b in comp:
            d, e = r.detail.get(b, {}), c.detail.get(b, {})
            for k in d:
                if k.startswith("finetuned/") and k.endswith("/text") and k.count("/") == 2 and k in e:
                    t = k.split("/")[1]
                    if f"{t}/text" in _hard_parts(r, b):
                        worst.append((d[k] - e[k], f"{b} {t} seed {r.seed}"))
    if not worst:
        return ""
    low = min(worst)
    ok = "yes" if low[0] >= 10 else "no"
    return f">= 10 points on every hard type and seed: {ok} (lowest {low[0]:+.1f}, {low[1]})"


def _hard_parts(run, bench: str) -> list[str]:
    try:
        return run.items(bench).parts.get("hard_text", [])
    except FileNotFoundError:
        return []


def _kept(g: Group, hn: Group, ctrl: Group | None, comp: Sequence[str], wise: str | None) -> str:
    """Share of hn's compositional gain over the control that ``g`` keeps (point values, mean over seeds)."""
    if ctrl is None:
        return "no control runs: the share of the gain kept is not computed"
    key = "finetuned/hard_text"
    mine = np.mean([_mean(g, b, key, wise) for b in comp])
    full, zero = np.mean([_mean(hn, b, key) for b in comp]), np.mean([_mean(ctrl, b, key) for b in comp])
    if not (full - zero) or np.isnan(mine + full + zero):
        return ""
    share = 100.0 * (mine - zero) / (full - zero)
    return f"keeps {share:.0f}% of hn's gain over the control (target >= 70%)"


def _share(text: str) -> float | None:
    """The percentage a verdict of :func:`_kept` / :func:`_left` starts its figure with."""
    import re

    m = re.search(r"(-?\d+)% of hn's", text)
    return float(m.group(1)) if m else None


def _left(g: Group, hn: Group, bench: str, name: str, wise: str | None) -> str:
    """Share of hn's retention loss (fine-tuned below base) that ``g`` still loses."""
    loss_hn = _mean(hn, bench, f"base/{name}") - _mean(hn, bench, f"finetuned/{name}")
    loss_g = _mean(g, bench, f"base/{name}", wise) - _mean(g, bench, f"finetuned/{name}", wise)
    if np.isnan(loss_hn + loss_g) or loss_hn <= 0:
        return f"hn loses no retention ({-loss_hn:+.1f} points): nothing to win back" if loss_hn <= 0 else ""
    share = 100.0 * loss_g / loss_hn
    return f"{share:.0f}% of hn's loss left (halved: {'yes' if share <= 50 else 'no'})"


def claims_markdown(groups: Sequence[Group], n_boot: int = 1000, seed: int = 0) -> str:
    """The claims section of ``results.md``."""
    rows = claim_rows(groups, n_boot, seed)
    lines = [
        "## Claims",
        "",
        "One row per claim of the claims sweep (`python -m genemi.sweep claims`, docs/sweeps.md): the first "
        "model minus the second, mean over the seeds both ran, [95% interval] and p from a paired cluster "
        f"bootstrap ({n_boot} resamples) over the same items, seed by seed. hn = the committed params "
        "(hard negatives); the verdicts are point values over seeds.",
        "",
        "| claim | comparison | measure | seeds | difference | verdict |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r.claim} | {r.comparison} | {r.measure} | {r.seeds} | {r.result} | {r.verdict} |"
              for r in rows]
    lines += ["", remedy_summary(rows)]
    return "\n".join(lines) + "\n"


def remedy_summary(rows: Sequence[Row]) -> str:
    """Which remedies halve the retention loss while keeping >= 70% of the compositional gain (the remedy
    target), from the rows' point values; says what is missing when none can be judged."""
    judged, good = [], []
    for claim in dict.fromkeys(r.claim for r in rows if r.claim.endswith("reduces the retention loss")):
        mine = [r for r in rows if r.claim == claim]
        kept = next((_share(r.verdict) for r in mine if "gain over the control" in r.verdict), None)
        left = next((_share(r.verdict) for r in mine if "loss left" in r.verdict), None)
        if kept is None or left is None:
            continue
        name = claim.removesuffix(" reduces the retention loss")
        judged.append(name)
        if left <= 50 and kept >= 70:
            good.append(f"{name} ({left:.0f}% of the loss left, {kept:.0f}% of the gain kept)")
    if not judged:
        return ("**Remedies**: none can be judged: that needs the hn, control and remedy runs on the "
                f"retention benchmark {RETENTION[0]} (rows above say which are missing).")
    if not good:
        return (f"**Remedies**: none of {', '.join(judged)} halves the retention loss while keeping >= 70% "
                "of the compositional gain (point values over seeds).")
    return ("**Remedies** that halve the retention loss while keeping >= 70% of the compositional gain "
            f"(point values over seeds): {'; '.join(good)}.")
