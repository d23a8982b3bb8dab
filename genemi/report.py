"""From many runs (DVC experiments, commits, folders) to the results table, the trade-off picture and
failure galleries.

A :class:`Run` is one finished pipeline: its flattened params and, per benchmark, the headline and
detail metrics and the per-item outcomes (:mod:`genemi.items`). Runs are grouped by their params with
``seed`` (and ``threads``, which changes no result) left out, so each group's seeds are aggregated:
each cell is the mean over seeds with a 95% t-interval. Groups are labelled by the params that set them
apart from their nearest groups among the runs read. Each group is compared with its control --
``loss.hn_weight == 0`` with the same ``finetune.steps``, scored on the same items (per-item digests agree
on a shared benchmark), and otherwise the closest params -- by a paired cluster bootstrap over the same
items, seed by seed (a seed's run and control score the same synthetic world), averaged over the seeds
they share.

The p-value is that of the bootstrap distribution of the difference shifted to zero: ``p = (1 +
#{|D*_b - D| >= |D|}) / (1 + B)`` -- it measures item sampling noise, not seed-to-seed variation
(the t-interval over seeds shows that).
"""

from __future__ import annotations

import io
import math
import subprocess
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genemi.bootstrap import bootstrap_means
from genemi.headline import HEADLINES
from genemi.items import Items, load_items
from genemi.metrics import Sample

# params that never change a result: left out of the grouping
IGNORED = ("seed", "threads")
LABELS = {"hard_text": "hard", "macro_text": "macro", "r@1": "R@1", "zeroshot_top1": "zero-shot"}

# two-sided 95% quantiles of Student's t, df = 1..30 (beyond: a Cornish-Fisher expansion)
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` >= 1 degrees of freedom."""
    if df < 1:
        raise ValueError(f"t quantile needs df >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Stat:
    """Mean over seeds with the half-width of its 95% t-interval (NaN for a single seed)."""

    mean: float
    half: float
    n: int


def seed_stat(values: Sequence[float]) -> Stat:
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return Stat(float("nan"), float("nan"), 0)
    if len(x) == 1:
        return Stat(float(x[0]), float("nan"), 1)
    return Stat(float(x.mean()), float(t975(len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))), len(x))


# ------------------------------------------------------------------------------------------- runs


def flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    """Nested params -> ``{"loss.hn_weight": 1.0, ...}``; lists become tuples (hashable)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = tuple(v) if isinstance(v, list) else v
    return out


@dataclass
class Run:
    """One finished pipeline. ``read(path)`` returns a file's bytes at that run (None if absent)."""

    name: str
    params: dict[str, Any]
    headline: dict[str, dict[str, float]]  # benchmark -> flat headline (genemi.headline)
    detail: dict[str, dict[str, float]]  # benchmark -> flat detail metrics
    items_loader: dict[str, Callable[[], Items]] = field(default_factory=dict)
    _items: dict[str, Items] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.params.get("seed", 0))

    def items(self, bench: str) -> Items:
        if bench not in self._items:
            if bench not in self.items_loader:
                raise FileNotFoundError(f"run {self.name!r}: no per-item outcomes of {bench!r}")
            self._items[bench] = self.items_loader[bench]()
        return self._items[bench]


@dataclass(frozen=True)
class Layout:
    """Where a run keeps its files (the evaluate stage's paths in dvc.yaml)."""

    params: str = "params.yaml"
    headline: str = "metrics/headline/{bench}.json"
    detail: str = "metrics/eval/{bench}.json"
    items: str = "metrics/items/{bench}.npz"


def load_run(name: str, read: Callable[[str], bytes | None], layout: Layout = Layout()) -> Run:
    """A run from a file reader (a folder, a git revision); errors name the run and the file."""
    import json

    raw = read(layout.params)
    if raw is None:
        raise FileNotFoundError(f"run {name!r}: {layout.params} not found")
    from genemi.config import load_yaml

    raw_params = load_yaml(raw, f"run {name!r}: {layout.params}") or {}
    if not isinstance(raw_params, dict):
        raise ValueError(f"run {name!r}: {layout.params}: top level must be a mapping of params sections")
    params = flatten(raw_params)
    benches = ((raw_params.get("eval") or {}).get("benchmarks")) or ()  # a mapping; a list in older runs
    run = Run(name, params, {}, {})
    for b in benches:
        for attr, tmpl in (("headline", layout.headline), ("detail", layout.detail)):
            path = tmpl.format(bench=b)
            data = read(path)
            if data is None:
                if attr == "headline":
                    raise FileNotFoundError(
                        f"run {name!r}: {path} not found (a run from before headline metrics: "
                        "rerun its evaluate stages, e.g. `dvc exp run` on it)"
                    )
                continue
            try:
                getattr(run, attr)[b] = json.loads(data)
            except json.JSONDecodeError as e:
                raise ValueError(f"run {name!r}: {path}: invalid JSON: {e.msg}") from None
        path = layout.items.format(bench=b)
        run.items_loader[b] = lambda path=path: _items_from(name, path, read)
    return run


def _items_from(name: str, path: str, read: Callable[[str], bytes | None]) -> Items:
    data = read(path)
    if data is None:
        raise FileNotFoundError(f"run {name!r}: {path} not found (rerun its evaluate stages)")
    return load_items(io.BytesIO(data), label=f"run {name!r}: {path}")


def dir_reader(root: str | Path) -> Callable[[str], bytes | None]:
    root = Path(root)

    def read(path: str) -> bytes | None:
        f = root / path
        return f.read_bytes() if f.is_file() else None

    return read


def git_reader(rev: str, repo: str | Path = ".") -> Callable[[str], bytes | None]:
    """Files of a commit or experiment ref, read with ``git show <rev>:<path>`` (the metrics and
    per-item files are git-tracked, ``cache: false``)."""

    def read(path: str) -> bytes | None:
        r = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True)
        return r.stdout if r.returncode == 0 else None

    return read


def dvc_experiments(repo: str | Path = ".") -> list[tuple[str, str]]:
    """``(name, sha)`` of every successful experiment in ``dvc exp show --json`` (all baselines)."""
    import json
    import shutil
    import sys

    # the dvc of this environment when its bin folder is not on PATH (a venv used without activation)
    dvc = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
    r = subprocess.run(
        [dvc, "exp", "show", "--json", "--all-commits"], cwd=repo, capture_output=True, text=True
    )
    if r.returncode != 0:
        raise RuntimeError(f"dvc exp show --json failed in {repo}: {r.stderr.strip()[-400:]}")
    return parse_exp_show(json.loads(r.stdout or "[]"))


def parse_exp_show(entries: list) -> list[tuple[str, str]]:
    """The finished experiments (not the baselines or the workspace) of ``dvc exp show --json`` output:
    ``[{rev, name, experiments: [{name, executor: {state}, revs: [{rev, name, error}]}]}]``; queued,
    running and failed ones are skipped."""
    out: dict[str, str] = {}
    for base in entries:
        for exp in base.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state", "success")
            if state != "success":
                continue
            for rev in exp.get("revs") or []:
                if rev.get("error") or rev.get("rev") in (None, "workspace"):
                    continue
                out.setdefault(rev["rev"], rev.get("name") or exp.get("name") or rev["rev"][:7])
    return [(name, sha) for sha, name in out.items()]


# ----------------------------------------------------------------------------------------- groups


@dataclass
class Group:
    key: tuple
    runs: list[Run]
    label: str = ""
    control: Group | None = None
    is_control: bool = False
    # (run, the run of this group it repeats): same params and seed, so counted once; shown, not hidden
    repeats: list[tuple[Run, Run]] = field(default_factory=list)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.key)

    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    def stat(self, bench: str, key: str) -> Stat:
        return seed_stat([r.headline[bench][key] for r in self.runs if key in r.headline.get(bench, {})])

    def detail_stat(self, bench: str, key: str) -> Stat:
        return seed_stat([r.detail[bench][key] for r in self.runs if key in r.detail.get(bench, {})])


BENCHMARKS = "eval.benchmarks"  # a mapping name -> entry: labelled by its names, not by every entry key


def _bench_names(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The benchmark names a run lists (``eval.benchmarks`` as a mapping, or a list in older runs)."""
    if isinstance(params.get(BENCHMARKS), tuple):
        return tuple(sorted(map(str, params[BENCHMARKS])))
    prefix = BENCHMARKS + "."
    return tuple(sorted({k[len(prefix) :].split(".")[0] for k in params if k.startswith(prefix)}))


def label_keys(groups: Sequence[Group]) -> list[str]:
    """The params whose values differ between ``groups`` -- the runs read, nothing else. Benchmark entries
    count by name: when the groups list different benchmarks the key is ``eval.benchmarks`` (labelled with
    the names), and an entry's own keys count only for benchmarks every group lists."""
    if len(groups) < 2:
        return []
    names = [_bench_names(g.params) for g in groups]
    common = set.intersection(*map(set, names))
    keys = []
    if len(set(names)) > 1:
        keys.append(BENCHMARKS)
    for k in sorted(set().union(*(g.params for g in groups))):
        if k == BENCHMARKS or (k.startswith(BENCHMARKS + ".") and k.split(".")[2] not in common):
            continue
        if len({_fmt_param(g.params.get(k)) for g in groups}) > 1:
            keys.append(k)
    return sorted(keys)


def _label_value(g: Group, k: str) -> str:
    return "[" + ",".join(_bench_names(g.params)) + "]" if k == BENCHMARKS else _fmt_param(g.params.get(k))


def group_label(g: Group, keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={_label_value(g, k)}" for k in keys) or "default"


def group_labels(groups: Sequence[Group]) -> list[str]:
    """Each group's name: of the params that differ among ``groups`` (:func:`label_keys`), those in which it
    differs from its nearest groups (fewest differing params), so a sweep's groups read ``loss.hn_weight=0.3``
    even beside a stand-in run that differs in a dozen params. When that would give two groups one name,
    every differing param names every group."""
    keys = label_keys(groups)
    vals = [{k: _label_value(g, k) for k in keys} for g in groups]
    labels = []
    for i, v in enumerate(vals):
        diffs = [{k for k in keys if v[k] != w[k]} for j, w in enumerate(vals) if j != i]
        if not diffs:
            labels.append("default")
            continue
        fewest = min(map(len, diffs))
        near = set().union(*(d for d in diffs if len(d) == fewest))
        labels.append(", ".join(f"{k}={v[k]}" for k in keys if k in near) or "default")
    if len(set(labels)) < len(labels):
        labels = [group_label(g, keys) for g in groups]
    return labels


def shares_items(g: Group, c: Group, bench: str) -> bool:
    """Whether ``g`` and ``c`` scored the same items of ``bench`` (per-item digests of their shared seeds)."""
    by_seed = {r.seed: r for r in c.runs}
    pairs = [(r, by_seed[r.seed]) for r in g.runs if r.seed in by_seed]
    if not pairs or any(bench not in r.items_loader or bench not in x.items_loader for r, x in pairs):
        return False
    try:
        return all(r.items(bench).digest == x.items(bench).digest for r, x in pairs)
    except FileNotFoundError:
        return False


def is_control_candidate(c: Group, g: Group) -> bool:
    """The README's rule: ``c`` trains without the hard-negative term (``loss.hn_weight=0``) for the same
    ``finetune.steps`` as ``g``, on the same items (the same seeds, data and at least one benchmark)."""
    return (
        c is not g
        and c.params.get("loss.hn_weight") == 0
        and c.params.get("finetune.steps") == g.params.get("finetune.steps")
        and any(shares_items(g, c, b) for b in set(_bench_names(g.params)) & set(_bench_names(c.params)))
    )


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """Runs with equal params (``IGNORED`` left out) form a group; one run per seed (first kept, a
    later run with the same params and seed is recorded in ``repeats`` and listed by the report).
    Labels name the params that differ between the groups read (:func:`group_labels`). A group with
    ``loss.hn_weight != 0`` gets as control the candidate (:func:`is_control_candidate`) closest to it in
    the other params; a group is marked control when it is some group's control."""
    groups: dict[tuple, Group] = {}
    for r in runs:
        key = tuple(sorted((k, v) for k, v in r.params.items() if k not in IGNORED))
        g = groups.setdefault(key, Group(key, []))
        kept = next((k for k in g.runs if k.seed == r.seed), None)
        if kept is None:
            g.runs.append(r)
        else:
            g.repeats.append((r, kept))
    out = list(groups.values())
    for g in out:
        g.runs.sort(key=lambda r: r.seed)
    for g, label in zip(out, group_labels(out), strict=True):
        g.label = label
    for g in out:
        if g.params.get("loss.hn_weight") == 0:
            continue
        cands = [c for c in out if is_control_candidate(c, g)]
        if cands:
            every = set(g.params) | {k for c in cands for k in c.params}
            g.control = min(
                cands, key=lambda c: (sum(c.params.get(k) != g.params.get(k) for k in every), c.label)
            )
    for g in out:
        g.is_control = any(h.control is g for h in out)
    # controls first, then by label: the table reads from the baseline down
    out.sort(key=lambda g: (not g.is_control, g.label))
    return out


def _fmt_param(v) -> str:
    if isinstance(v, tuple):
        return "[" + ",".join(map(str, v)) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)


# ------------------------------------------------------------------------------------ paired test


@dataclass(frozen=True)
class Paired:
    """Group minus control, mean over shared seeds, with a paired-bootstrap interval and p-value."""

    diff: float
    lo: float
    hi: float
    p: float
    seeds: tuple[int, ...]


def _replicates(items: Sequence[Items], parts: Sequence[str], n_boot: int, rng) -> np.ndarray:
    """``[len(items), n_boot]`` bootstrap replicates of the fine-tuned headline (mean over ``parts``),
    all files resampled with the same clusters (they must score the same units)."""
    reps = []
    for k in parts:
        clusters = items[0].clusters.get(k)
        if clusters is None or any(not np.array_equal(it.clusters.get(k), clusters) for it in items):
            raise ValueError(f"{k}: the per-item files do not hold the same units ({items[0].path})")
        samples = [Sample(it.outcomes["finetuned"][k].astype(float), clusters) for it in items]
        reps.append(bootstrap_means(samples, n_boot, rng))
    return np.mean(reps, axis=0)


def _point(it: Items, parts: Sequence[str], model: str = "finetuned") -> float:
    return float(np.mean([100.0 * it.outcomes[model][k].mean() for k in parts]))


def paired_test(
    group: Group, control: Group, bench: str, name: str, n_boot: int = 1000, seed: int = 0
) -> Paired | None:
    """``group - control`` on headline ``name`` of ``bench`` (None without shared seeds or items)."""
    by_seed = {r.seed: r for r in control.runs}
    pairs = [(r, by_seed[r.seed]) for r in group.runs if r.seed in by_seed]
    if not pairs:
        return None
    diffs, reps = [], []
    for r, c in pairs:
        a, b = r.items(bench), c.items(bench)
        if a.digest != b.digest:
            raise ValueError(
                f"{bench}: runs {r.name!r} and {c.name!r} (seed {r.seed}) did not score the same items "
                f"(digest {a.digest[:12]} vs {b.digest[:12]}); their data params differ"
            )
        parts = a.parts.get(name)
        if not parts:
            return None
        rng = np.random.default_rng([seed, r.seed, zlib.crc32(f"{bench}/{name}".encode())])
        rep = _replicates([a, b], parts, n_boot, rng)
        reps.append(rep[0] - rep[1])
        diffs.append(_point(a, parts) - _point(b, parts))
    d = float(np.mean(diffs))
    boot = np.mean(reps, axis=0)  # [n_boot]: mean over seeds of each replicate's difference
    p = (1 + int(np.sum(np.abs(boot - d) >= abs(d)))) / (1 + n_boot)
    lo, hi = np.percentile(boot, [2.5, 97.5]).tolist()
    return Paired(d, lo, hi, min(1.0, p), tuple(r.seed for r, _ in pairs))


# ----------------------------------------------------------------------------------------- tables


def _cell(s: Stat, digits: int = 1) -> str:
    if s.n == 0 or s.mean != s.mean:
        return "–"
    if s.n == 1:
        return f"{s.mean:.{digits}f}"
    return f"{s.mean:.{digits}f} ± {s.half:.{digits}f}"


def _p(p: float) -> str:
    return f"p={p:.3f}" if p >= 0.001 else "p<0.001"


def benchmarks_of(runs: Sequence[Run]) -> list[str]:
    seen: dict[str, None] = {}
    for r in runs:
        seen.update(dict.fromkeys(r.headline))
    return list(seen)


def headline_names(runs: Sequence[Run], bench: str) -> list[str]:
    present = {k.split("/", 1)[1] for r in runs for k in r.headline.get(bench, {})}
    return [h for h in HEADLINES if h in present]


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


# ---------------------------------------------------------------------------------------- figures


def tradeoff_points(groups: Sequence[Group]) -> tuple[str, str, list[tuple[str, Stat, Stat, bool]]]:
    """Per group: compositional gain (``delta/hard_text``, mean over benchmarks that have it) and
    retention (``delta/zeroshot_top1`` if any benchmark has it, else ``delta/r@1``), over seeds."""
    runs = [r for g in groups for r in g.runs]
    benches = benchmarks_of(runs)
    x_key = "zeroshot_top1" if any("zeroshot_top1" in headline_names(runs, b) for b in benches) else "r@1"
    pts = []
    for g in groups:
        ys, xs = [], []
        for r in g.runs:
            y = [
                r.headline[b]["delta/hard_text"]
                for b in benches
                if "delta/hard_text" in r.headline.get(b, {})
            ]
            x = [
                r.headline[b][f"delta/{x_key}"] for b in benches if f"delta/{x_key}" in r.headline.get(b, {})
            ]
            if y and x:
                ys.append(float(np.mean(y)))
                xs.append(float(np.mean(x)))
        if ys:
            pts.append((g.label, seed_stat(xs), seed_stat(ys), g.is_control))
    xlab = {"zeroshot_top1": "zero-shot top-1", "r@1": "R@1 (mean of both directions)"}[x_key]
    return (
        f"retention: change of {xlab} from base (points)",
        "compositional gain: change of hard-type text accuracy from base (points)",
        pts,
    )


def tradeoff_figure(groups: Sequence[Group], path) -> None:
    """Compositional gain against retention, one numbered point per group; the key below the axes gives
    each number's full label (wrapped, never cut), and groups without both headlines are named there too."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genemi.io import atomic_path

    xlab, ylab, pts = tradeoff_points(groups)
    drawn = {label for label, *_ in pts}
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    key = []
    for i, (label, x, y, ctrl) in enumerate(pts, 1):
        xe = None if x.half != x.half else x.half
        ye = None if y.half != y.half else y.half
        ax.errorbar(x.mean, y.mean, xerr=xe, yerr=ye, fmt="s" if ctrl else "o", ms=7, capsize=3,
                    color="grey" if ctrl else None)
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
    ax.axvline(0, color="grey", lw=0.7, ls="--")
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


def git_commit(rev: str, repo) -> str | None:
    """The commit sha of a branch, tag, sha or experiment ref; None if git does not know it."""
    import subprocess

    r = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=repo,
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def collect_runs(exps: list[str], run_dirs: list, repo) -> list:
    """The runs to report: ``exps`` (experiment names or git revisions) and ``run_dirs``; with neither,
    every successful experiment of ``dvc exp show``."""
    runs = []
    if not exps and not run_dirs:
        found = dvc_experiments(repo)
        if not found:
            raise ValueError(f"{repo}: `dvc exp show` lists no successful experiment; run a sweep first "
                             "(docs/sweeps.md) or name runs with --exp / --run-dir")
        runs += [load_run(name, git_reader(sha, repo)) for name, sha in found]
    known: dict[str, str] | None = None  # experiment name -> sha, asked of dvc only when needed
    for name in exps:
        sha = git_commit(name, repo)
        if sha is None:
            known = dict(dvc_experiments(repo)) if known is None else known
            if name not in known:
                raise ValueError(f"--exp {name!r}: neither a git revision nor an experiment of `dvc exp show`")
            sha = known[name]
        runs.append(load_run(name, git_reader(sha, repo)))
    runs += [load_run(str(d), dir_reader(d)) for d in run_dirs]
    return runs


def write_report(runs: list, out_dir, n_boot: int, seed: int, gallery_run: str | None, per_type: int):
    """``results.md``, ``tradeoff.png`` and ``failures/<benchmark>.png`` (for each benchmark whose per-item
    file holds text-side mistakes of the chosen run) under ``out_dir``; returns the groups, the run the
    galleries show and the paths written."""
    from genemi.io import write_text

    groups = group_runs(runs)
    out = Path(out_dir)
    written = [out / "results.md", out / "tradeoff.png"]
    write_text(written[0], results_markdown(groups, n_boot, seed))
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
