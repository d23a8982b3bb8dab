"""Cluster-bootstrap 95% intervals, paired across models, and the flat metrics of a comparison.

Units that share a cluster (the pairs of one image, the five captions of one COCO image) are resampled
together; applying the same resampled clusters to every model makes the interval of a difference a
*paired* one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genemi import seeding
from genemi.metrics import Outcomes, Sample, _ids, summarize

# Metrics whose bootstrap interval is reported; the secondary thesis metrics are point values only.
CI_METRICS = ("text", "image", "group", "text_1", "image_1", "group_1", "margin", "tot", "pair", "set")


def _rng(seed: int, key: str) -> np.random.Generator:
    return seeding.rng(seed, key)  # one stream per metric key, stable across processes


def bootstrap_means(
    samples: Sequence[Sample], n_boot: int, rng: np.random.Generator, max_cells: int = 4_000_000
) -> np.ndarray:
    """``[len(samples), n_boot]`` replicate values (``scale * mean``) of a cluster bootstrap.

    All ``samples`` must share their units and clusters (one metric of several models): the same
    resampled clusters are applied to each, so replicate differences give a *paired* interval.
    Replicates are drawn in chunks to bound memory at ``max_cells`` indices.
    """
    c = samples[0].clusters
    ids = _ids(c.tolist())
    m = int(ids.max()) + 1 if len(ids) else 0
    sums = np.stack([np.bincount(ids, weights=s.values, minlength=m) for s in samples])  # [S, m]
    counts = np.bincount(ids, minlength=m).astype(float)  # [m]
    scales = np.array([s.scale for s in samples])[:, None]
    out = np.empty((len(samples), n_boot))
    step = max(1, max_cells // max(1, m))
    for b0 in range(0, n_boot, step):
        idx = rng.integers(0, m, size=(min(step, n_boot - b0), m))  # [b, m] resampled clusters
        num = sums[:, idx].sum(-1)  # [S, b]
        den = counts[idx].sum(-1)  # [b]
        out[:, b0 : b0 + idx.shape[0]] = scales * num / den
    return out


def replicates(outcomes: dict[str, Outcomes], n_boot: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Metric key -> ``[len(outcomes), n_boot]`` cluster-bootstrap replicates of every model (in the
    order of ``outcomes``), for the primary metrics (``CI_METRICS``, retrieval, zero-shot) and the macro
    averages. One generator per key (``seed``, key), and the same resampled clusters for every model:
    a model's replicates do not depend on which other models are scored beside it."""
    models = list(outcomes)
    reps: dict[str, np.ndarray] = {}
    keys = sorted(set.intersection(*(set(o.samples) for o in outcomes.values())))
    for k in keys:
        metric = k.rsplit("/", 1)[-1]
        if metric in CI_METRICS or k.startswith(("retrieval/", "zeroshot/")):
            samples = [outcomes[m].samples[k] for m in models]
            if len(samples[0].values) and all(len(s.values) == len(samples[0].values) for s in samples):
                reps[k] = bootstrap_means(samples, n_boot, _rng(seed, k))
    for k, parts in outcomes[models[0]].macro.items():
        if all(p in reps for p in parts):
            reps[k] = np.mean([reps[p] for p in parts], axis=0)
    return reps


def compare(
    outcomes: dict[str, Outcomes], n_boot: int = 0, seed: int = 0, digits: int = 4
) -> dict[str, float]:
    """Flat metrics for several models: ``<model>/<key>``, and with models ``base`` and ``finetuned``,
    ``delta/<key>`` = finetuned - base and ``retention/zeroshot/*`` = 100 * finetuned / base.

    With ``n_boot > 0``, primary metrics (``CI_METRICS``, retrieval, zero-shot) and the macro averages
    get ``<key>_lo`` / ``<key>_hi``: percentile 95% intervals of a cluster bootstrap, paired across
    models (the delta's interval resamples the same clusters for both). Seeded per key: deterministic.
    """
    points = {m: summarize(o) for m, o in outcomes.items()}
    out: dict[str, float] = {}
    for m, vals in points.items():
        for k, v in vals.items():
            out[f"{m}/{k}"] = v
    pair = "base" in outcomes and "finetuned" in outcomes
    if pair:
        for k, v in points["finetuned"].items():
            if k in points["base"] and k not in outcomes["finetuned"].counts:
                out[f"delta/{k}"] = v - points["base"][k]
                if k.startswith("zeroshot/") and points["base"][k] > 0:
                    out[f"retention/{k}"] = 100.0 * v / points["base"][k]
    if n_boot > 0:
        models = list(outcomes)
        for k, r in replicates(outcomes, n_boot, seed).items():
            for i, m in enumerate(models):
                out[f"{m}/{k}_lo"], out[f"{m}/{k}_hi"] = np.percentile(r[i], [2.5, 97.5]).tolist()
            if pair:
                d = r[models.index("finetuned")] - r[models.index("base")]
                out[f"delta/{k}_lo"], out[f"delta/{k}_hi"] = np.percentile(d, [2.5, 97.5]).tolist()
    return {k: round(float(v), digits) for k, v in sorted(out.items())}


def paired(
    outcomes: dict[str, Outcomes], reference: str, n_boot: int, seed: int = 0, digits: int = 4
) -> dict[str, float]:
    """Every other model against ``reference`` on the same items: ``delta/<model>/<key>`` (point
    difference), ``_lo`` / ``_hi`` (paired percentile 95% interval) and ``_p`` (two-sided bootstrap
    p-value of no difference: the share of replicate differences at least ``|delta|`` away from
    ``delta``, as :func:`genemi.report.paired_test` computes it; at least ``1 / (n_boot + 1)``).

    The replicates are :func:`replicates`' (same generator per key as :func:`compare`), so with models
    ``base`` and ``finetuned`` the interval of ``delta/finetuned/<key>`` is the evaluate stage's
    ``delta/<key>_lo`` / ``_hi`` to the digit. Keys without replicates (secondary metrics) get the point
    difference only.
    """
    if reference not in outcomes:
        raise ValueError(f"reference model {reference!r} is not among the scored models {list(outcomes)}")
    models = list(outcomes)
    points = {m: summarize(o) for m, o in outcomes.items()}
    reps = replicates(outcomes, n_boot, seed) if n_boot > 0 else {}
    ref = models.index(reference)
    out: dict[str, float] = {}
    for i, m in enumerate(models):
        if m == reference:
            continue
        for k, v in points[m].items():
            if k not in points[reference] or k in outcomes[m].counts:
                continue
            d = v - points[reference][k]
            out[f"delta/{m}/{k}"] = d
            if k in reps:
                r = reps[k][i] - reps[k][ref]
                out[f"delta/{m}/{k}_lo"], out[f"delta/{m}/{k}_hi"] = np.percentile(r, [2.5, 97.5]).tolist()
                out[f"delta/{m}/{k}_p"] = min(1.0, (1 + int(np.sum(np.abs(r - d) >= abs(d)))) / (1 + n_boot))
    return {k: round(float(v), digits) for k, v in sorted(out.items())}
