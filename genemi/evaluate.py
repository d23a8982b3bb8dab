"""Evaluation: encode every distinct image and caption once, then read all metrics off cosines.

An :class:`EvalSet` (built by a loader in :mod:`genemi.benchmarks`) holds up to four kinds of task:

* ``records`` -- manifest :class:`Record` rows with hard negatives (HNC, COCO ``neg_text``, SugarCrepe,
  ARO VG-Relation/Attribution, bring-your-own, the synthetic splits). Per negative type (percentages):

  - ``text``: the image prefers its caption to the negative caption, ``s(I,T) > s(I,T-)`` -- the primary,
    scale-free metric (METHOD.md §4);
  - ``image``: the caption prefers its image to the edited image, ``s(I,T) > s(I-,T)``;
  - ``group``: for a negative with both an edited image ``I-`` and a caption ``T-`` true for it, both
    images pick their own caption and both captions their own image (Winoground's group);
  - the thesis's secondary metrics (METHOD.md §2.3) over text negatives: ``avg_pos`` = mean ``s(I,T)``,
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
:func:`compare` can attach cluster-bootstrap 95% intervals to base, fine-tuned and their paired delta.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genemi.manifest import Record

# Metrics whose bootstrap interval is reported; the secondary thesis metrics are point values only.
CI_METRICS = ("text", "image", "group", "text_1", "image_1", "group_1", "margin")


# --------------------------------------------------------------------------------------------- inputs


@dataclass
class ImageStore:
    """Resolves an image reference to a PIL RGB image.

    A reference is a path relative to ``root``, or a key of ``crops`` (``ref -> (path, (x, y, w, h))``:
    the ARO crops) or of ``blobs`` (``ref -> encoded bytes``: images embedded in a parquet file).
    """

    root: Path
    crops: dict[str, tuple[str, tuple[float, float, float, float]]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def load(self, ref: str) -> Image.Image:
        from genemi.images import read_image, read_image_bytes

        if ref in self.blobs:
            return read_image_bytes(self.blobs[ref], label=f"{self.root}: embedded image {ref!r}",
                                    what="an evaluation image")
        path, box = self.crops.get(ref, (ref, None))
        im = read_image(self.root / path, what="an evaluation image; see docs/benchmarks.md")
        if box is not None:
            x, y, w, h = box
            im = im.crop((x, y, x + w, y + h))
        return im


@dataclass(frozen=True)
class Choice:
    """A multiple-choice sample: image ``i`` is described by ``texts[i]``; captions past ``len(images)``
    are distractors without an image (ARO Order's four perturbations)."""

    id: str
    images: tuple[str, ...]
    texts: tuple[str, ...]
    type: str = "all"


@dataclass(frozen=True)
class Retrieval:
    """Cross-modal retrieval: images and texts with keys; a text is a hit for an image of the same key."""

    images: tuple[str, ...]
    image_keys: tuple[str, ...]
    texts: tuple[str, ...]
    text_keys: tuple[str, ...]


@dataclass(frozen=True)
class Classification:
    """Zero-shot classification: ``labels[i]`` indexes ``classnames``; prompts are ``t.format(name)``."""

    images: tuple[str, ...]
    labels: tuple[int, ...]
    classnames: tuple[str, ...]
    templates: tuple[str, ...]


@dataclass
class EvalSet:
    name: str
    store: ImageStore
    records: list[Record] = field(default_factory=list)
    choices: list[Choice] = field(default_factory=list)
    retrieval: Retrieval | None = None
    classification: Classification | None = None
    # types with fewer text pairs stay out of macro/* (ARO VG-Attribution drops pairs seen < 25 times)
    macro_min_count: int = 0


# ------------------------------------------------------------------------------------------- encoding


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


def distinct_inputs(es: EvalSet) -> tuple[list[str], list[str]]:
    """Every image ref and caption the set needs, each once, in first-seen order."""
    images: dict[str, None] = {}
    texts: dict[str, None] = {}
    for r in es.records:
        images[r.image] = None
        texts[r.caption] = None
        for n in r.negatives:
            if n.image is not None:
                images[n.image] = None
            if n.caption is not None:
                texts[n.caption] = None
    for c in es.choices:
        images.update(dict.fromkeys(c.images))
        texts.update(dict.fromkeys(c.texts))
    if es.retrieval is not None:
        images.update(dict.fromkeys(es.retrieval.images))
        texts.update(dict.fromkeys(es.retrieval.texts))
    if es.classification is not None:
        images.update(dict.fromkeys(es.classification.images))
        for name in es.classification.classnames:
            texts.update(dict.fromkeys(t.format(name) for t in es.classification.templates))
    return list(images), list(texts)


def encode_set(encoder, es: EvalSet, progress: Callable[[str], None] | None = None) -> Features:
    """Encode each distinct image and caption of ``es`` once; images are loaded one batch at a time
    so memory stays bounded by the batch, not the benchmark."""
    image_refs, texts = distinct_inputs(es)
    bs = max(1, int(getattr(encoder, "batch_size", 256)))
    chunks = []
    for i in range(0, len(image_refs), bs):
        chunks.append(encoder.encode_images([es.store.load(r) for r in image_refs[i : i + bs]]))
        if progress is not None:
            progress(f"{es.name}: encoded {min(i + bs, len(image_refs))}/{len(image_refs)} images")
    img = torch.cat(chunks) if chunks else torch.zeros(0, 0)
    txt = encoder.encode_texts(texts) if texts else torch.zeros(0, 0)
    return Features(
        {r: i for i, r in enumerate(image_refs)},
        img.float(),
        {t: i for i, t in enumerate(texts)},
        txt.float(),
    )


# ------------------------------------------------------------------------------------------- outcomes


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
    rng = np.random.default_rng(seed)
    p = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))  # j < i: i never stays in place
        p[i], p[j] = p[j], p[i]
    return p


def pairwise_outcomes(
    records: Sequence[Record],
    f: Features,
    taus: Sequence[float] = (1.0,),
    seed: int = 0,
    macro_min_count: int = 0,
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
    for name in ("text", "image", "group"):
        keep = [
            f"{t}/{name}"
            for t in type_names
            if f"{t}/{name}" in out.samples
            and len(out.samples[f"{t}/{name}"].values) >= max(1, macro_min_count)
        ]
        if len(keep) > 1:
            out.macro[f"macro/{name}"] = keep
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


def choice_outcomes(choices: Sequence[Choice], f: Features) -> Outcomes:
    """Per-element and per-sample accuracies of multiple-choice samples (module docstring).

    Strict inequalities: a tie counts as wrong (Winoground's ``>``; GeNeMi's argmax breaks ties towards
    index 0, which would favour the first element).
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
    type_names = sorted({c.type for c in choices})
    for name in ("text", "image", "group"):
        keep = [f"{t}/{name}" for t in type_names if f"{t}/{name}" in out.samples]
        if len(keep) > 1:
            out.macro[f"macro/{name}"] = keep
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


def records_retrieval(records: Sequence[Record]) -> Retrieval:
    """Retrieval over a manifest's distinct positive images, one caption each; key = ``meta["key"]``
    (the scene's meaning), else the image path, so equivalent scenes are not counted as misses."""
    seen: dict[str, Record] = {}
    for r in records:
        seen.setdefault(r.image, r)
    recs = list(seen.values())
    keys = tuple(str(r.meta.get("key", r.image)) for r in recs)
    return Retrieval(tuple(r.image for r in recs), keys, tuple(r.caption for r in recs), keys)


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
        out.merge(pairwise_outcomes(es.records, f, taus, seed, es.macro_min_count))
    if es.choices:
        out.merge(choice_outcomes(es.choices, f))
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


# ------------------------------------------------------------------------------------------ bootstrap


def _rng(seed: int, key: str) -> np.random.Generator:
    # crc32, not hash(): stable across processes, so intervals are byte-identical run to run
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


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
        reps: dict[str, np.ndarray] = {}  # key -> [len(models), n_boot]
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
        for k, r in reps.items():
            for i, m in enumerate(models):
                out[f"{m}/{k}_lo"], out[f"{m}/{k}_hi"] = np.percentile(r[i], [2.5, 97.5]).tolist()
            if pair:
                d = r[models.index("finetuned")] - r[models.index("base")]
                out[f"delta/{k}_lo"], out[f"delta/{k}_hi"] = np.percentile(d, [2.5, 97.5]).tolist()
    return {k: round(float(v), digits) for k, v in sorted(out.items())}


# ------------------------------------------------------------------------------ backwards-compatible


class DeviceEncoder:
    """:class:`genemi.models.Encoder`'s contract (batched, no-grad, L2-normalised ``[N, D]`` float32 on
    CPU) with the model on ``device``: real CLIPs on a GPU, inputs moved per batch."""

    def __init__(self, model, tokenizer, image_transform, batch_size: int = 256, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.tokenizer, self.image_transform = tokenizer, image_transform
        self.batch_size, self.device = batch_size, device
        self.dtype = next(model.parameters()).dtype  # a bf16/fp16 engine's module takes images in its dtype

    def _run(self, fn, items, prep) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for i in range(0, len(items), self.batch_size):
                x = prep(items[i : i + self.batch_size]).to(self.device)
                if x.is_floating_point():
                    x = x.to(self.dtype)
                out.append(torch.nn.functional.normalize(fn(x).float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, 0)

    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self._run(
            self.model.encode_image, images, lambda b: torch.stack([self.image_transform(im) for im in b])
        )

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self._run(self.model.encode_text, list(texts), lambda b: self.tokenizer(list(b)))


def monitor_set(es: EvalSet, n: int) -> EvalSet:
    """The first ``n`` records of a record-based benchmark, with retrieval over their images: a cheap
    fixed set to score during training (:func:`monitor_scores`)."""
    if not es.records:
        raise ValueError(
            f"eval.monitor: benchmark {es.name!r} has no caption/negative records to monitor; "
            "pick a pairwise benchmark such as synth_test"
        )
    recs = es.records[:n]
    return EvalSet(es.name, es.store, recs, retrieval=records_retrieval(recs))


def monitor_scores(model, es: EvalSet, tokenizer, image_transform, batch_size: int = 512) -> dict[str, float]:
    """Text-side pairwise accuracy per negative type and R@1 both ways of ``model`` on ``es``, for
    curves during training. Scored in eval mode without gradients; the model goes back to the mode it
    came in, on its device, so a training loop can call this between steps."""
    was_training = model.training
    try:
        enc = DeviceEncoder(model, tokenizer, image_transform, batch_size, next(model.parameters()).device)
        values = summarize(evaluate_set(es, encode_set(enc, es), ks=(1,)))
    finally:
        model.train(was_training)
    return {k: v for k, v in values.items() if k.endswith("/text") or k.endswith("_r@1")}


def image_transform_for(model, tokenizer_kind: str):
    """PIL -> ``[3, H, W]`` float for ``model``: the synthetic world's array scaling for the word-tokenizer
    models it trains, else open_clip's eval preprocessing from the model's own ``preprocess_cfg``."""
    from genemi.models import array_transform

    if tokenizer_kind == "word":
        return array_transform
    import open_clip

    cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    return open_clip.image_transform(
        cfg.get("size", model.visual.image_size),
        is_train=False,
        mean=cfg.get("mean"),
        std=cfg.get("std"),
        resize_mode=cfg.get("resize_mode"),
        interpolation=cfg.get("interpolation"),
        fill_color=cfg.get("fill_color", 0),
    )
