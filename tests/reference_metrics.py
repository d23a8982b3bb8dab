"""The plain reference version of the pairwise metrics (not collected by pytest): one tuple per row, features
gathered for every row at once. :func:`genemi.metrics.pairwise_outcomes` (index arrays, chunked cosines, a
:class:`~genemi.evalsets.RecordTable`) must give exactly its outcomes (``tests/test_eval_scale.py``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from genemi.manifest import Record
from genemi.metrics import Features, Outcomes, Sample, _cos, _ids, derangement


def pairwise_outcomes(
    records: Sequence[Record],
    f: Features,
    taus: Sequence[float] = (1.0,),
    seed: int = 0,
    macro_min_count: int = 0,
    macro_exclude: frozenset[str] = frozenset(),
) -> Outcomes:
    """Hard-negative metrics of manifest records (module docstring), per negative type and over ``all``."""
    # (type, pos image, pos caption, neg image, neg caption, cluster); the cluster is the record's group
    # (its image, or the scene an ARO crop was cut from), so correlated pairs resample together
    rows = {"text": [], "image": [], "group": []}
    for r in records:
        for n in r.negatives:
            if n.caption is not None:
                rows["text"].append((n.type, r.image, r.caption, r.image, n.caption, r.group))
            if n.image is not None:
                rows["image"].append((n.type, r.image, r.caption, n.image, r.caption, r.group))
            if n.caption is not None and n.image is not None:
                rows["group"].append((n.type, r.image, r.caption, n.image, n.caption, r.group))
    out = Outcomes()
    types_of = {}
    for kind, rs in rows.items():
        if not rs:
            continue
        types = np.array([x[0] for x in rs])
        pi, pt = f.img(x[1] for x in rs), f.txt(x[2] for x in rs)
        ni, nt = f.img(x[3] for x in rs), f.txt(x[4] for x in rs)
        clusters = _ids([x[5] for x in rs])
        pos = _cos(pi, pt)
        metrics: dict[str, tuple[np.ndarray, float]] = {}
        if kind == "text":
            neg = _cos(pi, nt)
            metrics["text"] = ((pos > neg).astype(float), 100.0)
            metrics["avg_pos"] = (pos, 1.0)
            metrics["avg_neg"] = (neg, 1.0)
            metrics["margin"] = (pos - neg, 1.0)
            for tau in taus:
                metrics[f"acc@{tau:g}"] = ((pos / (neg + 1e-8) >= tau).astype(float), 100.0)
        elif kind == "image":
            metrics["image"] = ((pos > _cos(ni, pt)).astype(float), 100.0)
        else:
            own, cross_t, cross_i = _cos(ni, nt), _cos(pi, nt), _cos(ni, pt)
            text_ok = (pos > cross_t) & (own > cross_i)
            image_ok = (pos > cross_i) & (own > cross_t)
            metrics["group"] = ((text_ok & image_ok).astype(float), 100.0)
        for name, (vals, scale) in metrics.items():
            out.samples[f"all/{name}"] = Sample(vals, clusters, scale)
            for t in sorted(set(types.tolist())):
                m = types == t
                out.samples[f"{t}/{name}"] = Sample(vals[m], clusters[m], scale)
        types_of[kind] = types
    type_names = sorted({t for ts in types_of.values() for t in ts.tolist()})
    for t in type_names:
        out.counts[f"{t}/n"] = float(max(int((ts == t).sum()) for ts in types_of.values()))
    if rows["text"] or rows["image"]:
        out.counts["all/n"] = float(max(len(rs) for rs in rows.values()))
    for name in ("text", "image", "group"):
        keep = [
            t
            for t in type_names
            if f"{t}/{name}" in out.samples
            and len(out.samples[f"{t}/{name}"].values) >= max(1, macro_min_count)
        ]
        macros = {"macro": [t for t in keep if t not in macro_exclude]}
        if macro_exclude:
            macros["macro_all"] = keep
        for key, ts in macros.items():
            if len(ts) > 1:
                out.macro[f"{key}/{name}"] = [f"{t}/{name}" for t in ts]
    # Avg_Rand_Neg: each distinct image against another image's caption (a seeded derangement)
    first: dict[str, str] = {}
    for r in records:
        first.setdefault(r.image, r.caption)
    if len(first) >= 2:
        imgs = list(first)
        perm = derangement(len(imgs), seed)
        vals = _cos(f.img(imgs), f.txt(first[imgs[j]] for j in perm))
        out.samples["all/avg_rand_neg"] = Sample(vals, np.arange(len(vals)), 1.0)
    return out
