"""Runs grouped by their params, labelled, and matched with their controls.

Runs are grouped by their params with ``seed`` (and ``threads``, which changes no result) left out, so each
group's seeds are aggregated. Groups are labelled by the params that set them apart from their nearest
groups among the runs read. Each group is compared with its control -- ``loss.hn_weight == 0`` with the
same ``finetune.steps``, scored on the same items (per-item digests agree on a shared benchmark), and
otherwise the closest params.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from genemi.report_runs import Run
from genemi.report_stats import Stat, seed_stat

# params that never change a result: left out of the grouping
IGNORED = ("seed", "threads")
LABELS = {"hard_text": "hard", "macro_text": "macro", "r@1": "R@1", "zeroshot_top1": "zero-shot"}

# two-sided 95% quantiles of Student's t, df = 1..30 (beyond: a Cornish-Fisher expansion)


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
