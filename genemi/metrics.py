"""Metrics read off cosines of L2-normalised features, per kind of task of an :class:`EvalSet`:

* ``records`` -- manifest :class:`Record` rows with hard negatives (HNC, COCO ``neg_text``, SugarCrepe,
  ARO VG-Relation/Attribution, bring-your-own, the synthetic splits). Per negative type (percentages):

  - ``text``: the image prefers its caption to the negative caption, ``s(I,T) > s(I,T-)`` -- the primary,
    scale-free metric (docs/method.md §5.1);
  - ``image``: the caption prefers its image to the edited image, ``s(I,T) > s(I-,T)``;
  - ``group``: for a negative with both an edited image ``I-`` and a caption ``T-`` true for it, both
    images pick their own caption and both captions their own image (Winoground's group);
  - the thesis's secondary metrics (docs/method.md §5.1) over text negatives: ``avg_pos`` = mean ``s(I,T)``,
    ``avg_neg`` = mean ``s(I,T-)``, ``margin`` = their difference (cosines, not %), ``acc@tau`` = % with
    ``s(I,T) / (s(I,T-) + 1e-8) >= tau``; and ``all/avg_rand_neg`` = mean ``s(I_i, T_pi(i))`` over distinct
    images with a seeded derangement ``pi``.
* ``choices`` -- :class:`Choice` samples of n images x m captions where image i's caption is caption i
  (Winoground 2x2, GeNeMi validation 2-4 x 2-4, ARO Order 1 x 5). ``text_1``/``image_1``/``group_1`` are
  micro-averaged per element; ``text``/``image``/``group`` are the per-sample all-correct rates (GeNeMi's
  "-All", Winoground's scores, ARO Order's P@1).
* ``retrieval`` -- image<->text R@K, a hit being any item with the same key (COCO: the image id).
* ``classification`` -- zero-shot top-1/top-5 accuracy on a labelled image folder.

Each metric is kept as per-unit outcomes with a cluster id (the record group a pair belongs to), so
:func:`genemi.bootstrap.compare` can attach cluster-bootstrap 95% intervals to base, fine-tuned and their paired delta.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from genemi import seeding
from genemi.evalsets import Choice, Classification, EvalSet, RecordTable, Retrieval, Triplet
from genemi.manifest import Record


@dataclass
class Features:
    """``[N, D]`` L2-normalised image and text features, with the row of each image ref / caption."""

    image_index: dict[str, int]
    images: torch.Tensor
    text_index: dict[str, int]
    texts: torch.Tensor

    def img(self, refs: Iterable[str]) -> torch.Tensor:
        return self.images[[self.image_index[r] for r in refs]]

    def txt(self, texts: Iterable[str]) -> torch.Tensor:
        return self.texts[[self.text_index[t] for t in texts]]



@dataclass
class Sample:
    """Per-unit outcomes of one metric: ``values[n]`` (0/1 or a cosine), ``clusters[n]`` int ids for the
    bootstrap (units sharing an image resample together); reported value = ``scale * mean``."""

    values: np.ndarray
    clusters: np.ndarray
    scale: float = 100.0

    @property
    def value(self) -> float:
        return float(self.scale * self.values.mean()) if len(self.values) else float("nan")


@dataclass
class Outcomes:
    """Everything one model scored on one set: ``samples`` (metric key -> outcomes), ``macro`` (key ->
    the keys it averages), ``counts`` (``<type>/n``) and ``values`` (other plain numbers)."""

    samples: dict[str, Sample] = field(default_factory=dict)
    macro: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)

    def merge(self, other: Outcomes) -> None:
        self.samples.update(other.samples)
        self.macro.update(other.macro)
        self.counts.update(other.counts)
        self.values.update(other.values)


def _cos(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Row-wise cosine of ``[N, D]`` L2-normalised features -> ``[N]`` float64."""
    return (a * b).sum(-1).double().numpy() if len(a) else np.zeros(0)


def _ids(keys: Sequence[str]) -> np.ndarray:
    index: dict[str, int] = {}
    return np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(n)`` without fixed points (Sattolo's single cycle; n >= 2)."""
    rng = seeding.rng(seed)
    p = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))  # j < i: i never stays in place
        p[i], p[j] = p[j], p[i]
    return p


def row_cosines(a: torch.Tensor, ia, b: torch.Tensor, ib, chunk: int = 1 << 16) -> np.ndarray:
    """``cos(a[ia[n]], b[ib[n]])`` ``[R]`` float64 of L2-normalised feature rows, gathered ``chunk`` rows at a
    time (a set of a million pairs never holds its ``[R, D]`` gathers; a set of at most ``chunk`` pairs is
    one gather, as :func:`_cos` of the gathered rows)."""
    ia, ib = np.asarray(ia, np.int64), np.asarray(ib, np.int64)
    if not len(ia):
        return np.zeros(0)
    parts = -(-len(ia) // chunk)  # equal parts: none of a single row
    pairs = zip(np.array_split(ia, parts), np.array_split(ib, parts), strict=True)
    return np.concatenate([_cos(a[torch.from_numpy(x)], b[torch.from_numpy(y)]) for x, y in pairs])


@dataclass
class _Rows:
    """Pairwise rows of one kind: ``types`` ``[R]``, the feature rows of (positive image, positive caption,
    negative image, negative caption) ``[R]`` int64 each, and ``clusters`` ``[R]`` int64 (first-seen ids)."""

    types: np.ndarray
    pi: np.ndarray
    pt: np.ndarray
    ni: np.ndarray
    nt: np.ndarray
    clusters: np.ndarray


def _rows_of_records(records: Sequence[Record], f: Features):
    """``({kind: _Rows}, (image rows, caption rows) of the derangement's pairs)`` of a list of records."""
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
    out = {}
    ii, ti = f.image_index, f.text_index
    for kind, rs in rows.items():
        if rs:
            pi, pt, ni, nt = (np.array([index[x[j]] for x in rs], np.int64)
                              for j, index in ((1, ii), (2, ti), (3, ii), (4, ti)))
            out[kind] = _Rows(np.array([x[0] for x in rs]), pi, pt, ni, nt, _ids([x[5] for x in rs]))
    first: dict[str, str] = {}
    for r in records:
        first.setdefault(r.image, r.caption)
    pairs = (np.array([ii[i] for i in first], np.int64), np.array([ti[c] for c in first.values()], np.int64))
    return out, pairs


def _first_seen(codes: np.ndarray) -> np.ndarray:
    """``codes`` renumbered 0, 1, ... in order of first occurrence (what :func:`_ids` gives their names)."""
    if not len(codes):
        return np.zeros(0, np.int64)
    uniq, first = np.unique(codes, return_index=True)
    new = np.empty(int(uniq.max()) + 1, np.int64)
    new[uniq[np.argsort(first)]] = np.arange(len(uniq))
    return new[codes]


def _rows_of_table(t: RecordTable, f: Features):
    """:func:`_rows_of_records` of a :class:`~genemi.evalsets.RecordTable`, from its arrays."""
    img = np.array([f.image_index[x] for x in t.image_names], np.int64)  # table id -> feature row
    txt = np.array([f.text_index[x] for x in t.text_names], np.int64)
    rec = np.repeat(np.arange(len(t)), np.diff(t.neg_offsets))  # each negative's record
    pi, pt, grp = img[t.image[rec]], txt[t.caption[rec]], t.group[rec]
    has_c, has_i = t.neg_caption >= 0, t.neg_image >= 0
    ni, nt = img[np.maximum(t.neg_image, 0)], txt[np.maximum(t.neg_caption, 0)]
    types = np.array(t.type_names or [""])[t.neg_type]
    out = {}
    kinds = (("text", has_c, pi, nt), ("image", has_i, ni, pt), ("group", has_c & has_i, ni, nt))
    for kind, m, a, b in kinds:
        if m.any():
            out[kind] = _Rows(types[m], pi[m], pt[m], a[m], b[m], _first_seen(grp[m]))
    _, first = np.unique(t.image, return_index=True)
    first.sort()  # each distinct positive image's first record, in record order
    return out, (img[t.image[first]], txt[t.caption[first]])


def pairwise_outcomes(
    records: Sequence[Record],
    f: Features,
    taus: Sequence[float] = (1.0,),
    seed: int = 0,
    macro_min_count: int = 0,
    macro_exclude: frozenset[str] = frozenset(),
    macro_groups: Mapping[str, Sequence[str]] | None = None,
) -> Outcomes:
    """Hard-negative metrics of manifest records (module docstring), per negative type and over ``all``.
    ``macro_groups`` (name -> types) adds ``<name>/text``, the mean text accuracy over those types.

    ``records``: a list of records, or a :class:`~genemi.evalsets.RecordTable` (read as arrays, cosines in
    chunks: HNC's 1.16 M validation pairs hold no record objects and no gathered feature matrices)."""
    table = isinstance(records, RecordTable)
    rows, rand_pairs = _rows_of_table(records, f) if table else _rows_of_records(records, f)
    out = Outcomes()
    types_of = {}
    for kind, rs in rows.items():
        types, clusters = rs.types, rs.clusters
        pos = row_cosines(f.images, rs.pi, f.texts, rs.pt)
        metrics: dict[str, tuple[np.ndarray, float]] = {}
        if kind == "text":
            neg = row_cosines(f.images, rs.pi, f.texts, rs.nt)
            metrics["text"] = ((pos > neg).astype(float), 100.0)
            metrics["avg_pos"] = (pos, 1.0)
            metrics["avg_neg"] = (neg, 1.0)
            metrics["margin"] = (pos - neg, 1.0)
            for tau in taus:
                metrics[f"acc@{tau:g}"] = ((pos / (neg + 1e-8) >= tau).astype(float), 100.0)
        elif kind == "image":
            metrics["image"] = ((pos > row_cosines(f.images, rs.ni, f.texts, rs.pt)).astype(float), 100.0)
        else:
            own = row_cosines(f.images, rs.ni, f.texts, rs.nt)
            cross_t = row_cosines(f.images, rs.pi, f.texts, rs.nt)
            cross_i = row_cosines(f.images, rs.ni, f.texts, rs.pt)
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
    if "text" in rows or "image" in rows:
        out.counts["all/n"] = float(max(len(rs.types) for rs in rows.values()))
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
    for key, ts in (macro_groups or {}).items():
        parts = [f"{t}/text" for t in ts if f"{t}/text" in out.samples]
        if parts:
            out.macro[f"{key}/text"] = parts
    # Avg_Rand_Neg: each distinct image against another image's caption (a seeded derangement)
    imgs, caps = rand_pairs
    if len(imgs) >= 2:
        perm = derangement(len(imgs), seed)
        vals = row_cosines(f.images, imgs, f.texts, caps[perm])
        out.samples["all/avg_rand_neg"] = Sample(vals, np.arange(len(vals)), 1.0)
    return out


def choice_outcomes(
    choices: Sequence[Choice], f: Features, groups: Mapping[str, Sequence[Sequence[str]]] | None = None
) -> Outcomes:
    """Per-element and per-sample accuracies of multiple-choice samples (module docstring).

    Strict inequalities: a tie counts as wrong (Winoground's ``>``; GeNeMi's argmax breaks ties towards
    index 0, which would favour the first element). ``groups`` (metric name -> groups of choice ids) adds
    ``all/<name>``: one unit per group, right when the per-sample ``text`` of every choice in it is
    (WhatsUp's pair and set accuracy); groups naming a choice that is not there (``subset``) are dropped.
    """
    per = {k: [] for k in ("text_1", "image_1", "group_1", "text", "image", "group")}  # (type, sample, value)
    for si, c in enumerate(choices):
        n = len(c.images)
        if n == 0 or len(c.texts) < n:
            raise ValueError(
                f"choice sample {c.id!r}: needs >= 1 image and at least as many captions as images"
            )
        s = (f.img(c.images) @ f.txt(c.texts).T).double().numpy()  # [n, m]
        text_1 = image_1 = None
        if s.shape[1] >= 2:
            text_1 = np.array([s[i, i] > np.delete(s[i], i).max() for i in range(n)])
            per["text_1"] += [(c.type, si, float(v)) for v in text_1]
            per["text"].append((c.type, si, float(text_1.all())))
        if n >= 2:
            image_1 = np.array([s[j, j] > np.delete(s[:n, j], j).max() for j in range(n)])
            per["image_1"] += [(c.type, si, float(v)) for v in image_1]
            per["image"].append((c.type, si, float(image_1.all())))
        if text_1 is not None and image_1 is not None:
            group_1 = text_1 & image_1
            per["group_1"] += [(c.type, si, float(v)) for v in group_1]
            per["group"].append((c.type, si, float(group_1.all())))
    out = Outcomes()
    for name, rows in per.items():
        if not rows:
            continue
        types = np.array([r[0] for r in rows])
        clusters = np.array([r[1] for r in rows], dtype=np.int64)
        vals = np.array([r[2] for r in rows])
        out.samples[f"all/{name}"] = Sample(vals, clusters)
        for t in sorted(set(types.tolist())):
            m = types == t
            out.samples[f"{t}/{name}"] = Sample(vals[m], clusters[m])
            if name in ("text", "image"):
                out.counts[f"{t}/n"] = float(len(set(clusters[m].tolist())))
    out.counts["all/n"] = float(len(choices))
    text_of = {choices[si].id: v for _, si, v in per["text"]}
    for name, gs in (groups or {}).items():
        vals = [float(all(text_of[i] for i in g)) for g in gs if g and all(i in text_of for i in g)]
        if vals:
            out.samples[f"all/{name}"] = Sample(np.array(vals), np.arange(len(vals)))
            out.counts[f"all/n_{name}"] = float(len(vals))
    type_names = sorted({c.type for c in choices})
    for name in ("text", "image", "group"):
        keep = [f"{t}/{name}" for t in type_names if f"{t}/{name}" in out.samples]
        if len(keep) > 1:
            out.macro[f"macro/{name}"] = keep
    return out


def triplet_outcomes(triplets: Sequence[Triplet], f: Features) -> Outcomes:
    """SugarCrepe++'s scores per type and over ``all`` (strict ``>``: a tie counts as wrong):

    - ``text`` (its image-to-text task, ITT): ``s(I,P1) > s(I,N)`` and ``s(I,P2) > s(I,N)``;
    - ``tot`` (its text-only task): ``s(P1,P2) > s(P1,N)`` and ``s(P1,P2) > s(P2,N)``;
    - ``text_p1`` / ``text_p2``: ``s(I,P1) > s(I,N)`` / ``s(I,P2) > s(I,N)`` alone.

    One unit per triplet; triplets of one image resample together.
    """
    out = Outcomes()
    if not triplets:
        return out
    im = f.img(t.image for t in triplets)
    p1, p2 = f.txt(t.positives[0] for t in triplets), f.txt(t.positives[1] for t in triplets)
    neg = f.txt(t.negative for t in triplets)
    i_p1, i_p2, i_n = _cos(im, p1), _cos(im, p2), _cos(im, neg)
    p1_p2, p1_n, p2_n = _cos(p1, p2), _cos(p1, neg), _cos(p2, neg)
    metrics = {
        "text": (i_p1 > i_n) & (i_p2 > i_n),
        "tot": (p1_p2 > p1_n) & (p1_p2 > p2_n),
        "text_p1": i_p1 > i_n,
        "text_p2": i_p2 > i_n,
    }
    types = np.array([t.type for t in triplets])
    clusters = _ids([t.image for t in triplets])
    for name, ok in metrics.items():
        vals = ok.astype(float)
        out.samples[f"all/{name}"] = Sample(vals, clusters)
        for t in sorted(set(types.tolist())):
            m = types == t
            out.samples[f"{t}/{name}"] = Sample(vals[m], clusters[m])
    type_names = sorted(set(types.tolist()))
    for t in type_names:
        out.counts[f"{t}/n"] = float((types == t).sum())
    out.counts["all/n"] = float(len(triplets))
    if len(type_names) > 1:
        for name in ("text", "tot"):
            out.macro[f"macro/{name}"] = [f"{t}/{name}" for t in type_names]
    return out


def _topk_hits(
    queries: torch.Tensor, items: torch.Tensor, qkeys, ikeys, k: int, chunk: int = 1024
) -> np.ndarray:
    """``[Q, k]`` bool: whether each query's j-th best item shares its key (similarities in row chunks,
    so a 5k x 25k matrix is never held at once)."""
    qk = np.asarray(qkeys)
    ik = np.asarray(ikeys)
    k = min(k, items.shape[0])
    out = []
    for i in range(0, queries.shape[0], chunk):
        top = (queries[i : i + chunk] @ items.T).topk(k, dim=1).indices.numpy()
        out.append(ik[top] == qk[i : i + chunk, None])
    return np.concatenate(out) if out else np.zeros((0, k), bool)


def recall_at_k(sim: torch.Tensor, query_keys: Sequence[str], item_keys: Sequence[str], ks=(1, 5)) -> dict:
    """Percentage of queries (rows of ``sim``) with a same-key item among their top k."""
    qk, ik = np.asarray(query_keys), np.asarray(item_keys)
    top = sim.topk(min(max(ks), sim.shape[1]), dim=1).indices.numpy()
    hits = ik[top] == qk[:, None]
    return {k: float(100.0 * hits[:, :k].any(axis=1).mean()) for k in ks}


def retrieval_outcomes(ret: Retrieval, f: Features, ks: Sequence[int] = (1, 5, 10)) -> Outcomes:
    """``retrieval/i2t_r@K`` (image queries over all texts) and ``retrieval/t2i_r@K``, per query."""
    out = Outcomes()
    iv, tv = f.img(ret.images), f.txt(ret.texts)
    for name, q, items, qk, ik in (
        ("i2t", iv, tv, ret.image_keys, ret.text_keys),
        ("t2i", tv, iv, ret.text_keys, ret.image_keys),
    ):
        hits = _topk_hits(q, items, qk, ik, max(ks))
        clusters = _ids(list(qk))  # the 5 captions of one COCO image resample together
        for k in ks:
            out.samples[f"retrieval/{name}_r@{k}"] = Sample(hits[:, :k].any(axis=1).astype(float), clusters)
    out.counts["retrieval/n_images"] = float(len(ret.images))
    out.counts["retrieval/n_texts"] = float(len(ret.texts))
    return out



def classification_outcomes(cls: Classification, f: Features) -> Outcomes:
    """Zero-shot top-1 (and top-5 with >= 5 classes): class embedding = normalised mean over templates."""
    protos = torch.stack(
        [
            torch.nn.functional.normalize(f.txt(t.format(c) for t in cls.templates).mean(0), dim=0)
            for c in cls.classnames
        ]
    )
    logits = f.img(cls.images) @ protos.T  # [N, C]
    labels = torch.tensor(cls.labels)
    out = Outcomes()
    for k in (1, 5):
        if k == 1 or len(cls.classnames) >= k:
            hit = (logits.topk(k, dim=1).indices == labels[:, None]).any(1).double().numpy()
            out.samples[f"zeroshot/top{k}"] = Sample(hit, np.arange(len(hit)))
    out.counts["zeroshot/n"] = float(len(cls.images))
    out.counts["zeroshot/n_classes"] = float(len(cls.classnames))
    return out


def evaluate_set(es: EvalSet, f: Features, taus=(1.0,), ks=(1, 5, 10), seed: int = 0) -> Outcomes:
    """All outcomes of one model on ``es`` (features from :func:`encode_set`)."""
    out = Outcomes()
    if es.records:
        out.merge(pairwise_outcomes(es.records, f, taus, seed, es.macro_min_count, es.macro_exclude,
                                    es.macro_groups))
    if es.choices:
        out.merge(choice_outcomes(es.choices, f, es.choice_groups))
    if es.triplets:
        out.merge(triplet_outcomes(es.triplets, f))
    if es.retrieval is not None:
        out.merge(retrieval_outcomes(es.retrieval, f, ks))
    if es.classification is not None:
        out.merge(classification_outcomes(es.classification, f))
    return out


def summarize(o: Outcomes) -> dict[str, float]:
    """Point values of one model: every sample's ``scale * mean``, the macro averages, the counts."""
    out = {k: s.value for k, s in o.samples.items()}
    for k, parts in o.macro.items():
        out[k] = float(np.mean([o.samples[p].value for p in parts]))
    out.update(o.counts)
    out.update(o.values)
    return dict(sorted(out.items()))

