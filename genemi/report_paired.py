"""A group against its control: the paired cluster bootstrap over the same items, seed by seed.

The difference is averaged over the seeds both share (a seed's run and its control score the same
synthetic world). The p-value is that of the bootstrap distribution of the difference shifted to zero:
``p = (1 + #{|D*_b - D| >= |D|}) / (1 + B)`` -- it measures item sampling noise, not seed-to-seed
variation (the t-interval over seeds, :mod:`genemi.report_stats`, shows that).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genemi.bootstrap import bootstrap_means
from genemi.items import Items
from genemi.metrics import Sample
from genemi.report_groups import Group


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
