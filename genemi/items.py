"""Per-item outcomes of one evaluation, saved so two experiments can be compared item by item.

The evaluate stage writes one compressed ``.npz`` per benchmark (plain arrays only: read it with
``np.load(path, allow_pickle=False)``, never a pickle):

* ``meta/digest`` -- sha256 of the set's images and captions: two files describe the same items only
  when their digests match (a different ``seed`` draws a different synthetic world);
* ``meta/parts/<headline>`` -- the metric keys each headline number averages (:mod:`genemi.headline`);
* ``<model>/<key>`` -- ``uint8`` 0/1 outcome per unit of each primary metric (``base``, ``finetuned``);
  ``clusters/<key>`` -- ``int32`` cluster ids (units that share an image resample together);
* ``failures/*`` -- the fine-tuned model's most confident text-side mistakes per negative type:
  ``type``, ``caption``, ``negative`` (strings), ``image`` ``[N, S, S, 3]`` uint8 RGB thumbnails,
  ``scores`` ``[N, 4]`` float32 cosines ``(base s(I,T), base s(I,T-), finetuned s(I,T), finetuned s(I,T-))``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# metric names whose per-unit values are 0/1 outcomes (the others are cosines or thresholds)
BINARY = ("text", "image", "group", "text_1", "image_1", "group_1", "tot", "text_p1", "text_p2", "pair",
          "set")
THUMB = 96  # thumbnail side (pixels) of a saved failure


def _binary(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in BINARY or key.startswith(("retrieval/", "zeroshot/"))


def items_digest(images: Sequence[str], texts: Sequence[str]) -> str:
    """sha256 over the image references and captions of a set (from ``distinct_inputs``)."""
    h = hashlib.sha256()
    for part in (*images, "\0", *texts):
        h.update(part.encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass
class Failure:
    """One text-side pair the fine-tuned model got wrong: ``s_ft(I,T-) >= s_ft(I,T)``."""

    type: str
    image: str
    caption: str
    negative: str
    scores: tuple[float, float, float, float]  # base pos, base neg, finetuned pos, finetuned neg


def text_failures(records, base_feats, ft_feats, per_type: int = 6) -> list[Failure]:
    """The ``per_type`` text-side mistakes of the fine-tuned model with the largest ``s(I,T-) - s(I,T)``
    per negative type (ties broken by record order), with the base model's cosines on the same pairs."""
    from genemi.metrics import row_cosines

    rows = [(n.type, r.image, r.caption, n.caption) for r in records for n in r.negatives if n.caption]
    if not rows:
        return []
    scores = []
    for f in (base_feats, ft_feats):  # cosines in chunks: HNC val's 1.16 M rows never gather [N, D] features
        img = [f.image_index[x[1]] for x in rows]
        pos = row_cosines(f.images, img, f.texts, [f.text_index[x[2]] for x in rows])
        neg = row_cosines(f.images, img, f.texts, [f.text_index[x[3]] for x in rows])
        scores += [pos, neg]
    s = np.stack(scores, axis=1)  # [N, 4]
    gap = s[:, 3] - s[:, 2]
    out = []
    for t in sorted({x[0] for x in rows}):
        idx = [i for i, x in enumerate(rows) if x[0] == t and gap[i] >= 0]
        idx.sort(key=lambda i: -gap[i])  # stable: equal gaps keep record order
        for i in idx[:per_type]:
            out.append(Failure(t, rows[i][1], rows[i][2], rows[i][3], tuple(float(v) for v in s[i])))
    return out


def thumbnail(im, size: int = THUMB) -> np.ndarray:
    """PIL image -> ``[size, size, 3]`` uint8, aspect kept (padded); small images scale by nearest pixel."""
    from PIL import Image, ImageOps

    method = Image.NEAREST if max(im.size) <= size else Image.BICUBIC
    return np.asarray(ImageOps.pad(im.convert("RGB"), (size, size), method=method, color=(255, 255, 255)))


def save_items(
    path: str | os.PathLike,
    outcomes: Mapping,
    digest: str,
    parts: Mapping[str, Sequence[str]],
    failures: Sequence[Failure] = (),
    thumbs: Sequence[np.ndarray] = (),
) -> None:
    """Write the per-item outcomes of ``outcomes`` (model -> ``Outcomes``), atomically."""
    from genemi.io import atomic_path

    arrays: dict[str, np.ndarray] = {"meta/digest": np.array(digest)}
    for name, keys in parts.items():
        arrays[f"meta/parts/{name}"] = np.array(list(keys), dtype=str)
    models = list(outcomes)
    keys = sorted(set.intersection(*(set(o.samples) for o in outcomes.values())))
    for k in filter(_binary, keys):
        samples = [outcomes[m].samples[k] for m in models]
        if any(not np.array_equal(s.clusters, samples[0].clusters) for s in samples):
            raise ValueError(f"{k}: models scored different units; cannot save paired outcomes")
        arrays[f"clusters/{k}"] = samples[0].clusters.astype(np.int32)
        for m, s in zip(models, samples, strict=True):
            arrays[f"{m}/{k}"] = s.values.astype(np.uint8)
    if failures:
        arrays["failures/type"] = np.array([f.type for f in failures], dtype=str)
        arrays["failures/caption"] = np.array([f.caption for f in failures], dtype=str)
        arrays["failures/negative"] = np.array([f.negative for f in failures], dtype=str)
        arrays["failures/scores"] = np.array([f.scores for f in failures], dtype=np.float32)
        arrays["failures/image"] = np.stack(thumbs).astype(np.uint8)
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


@dataclass
class Items:
    """A loaded per-item file: ``outcomes[model][key]`` 0/1 arrays, ``clusters[key]``, ``parts``."""

    path: Path
    digest: str
    parts: dict[str, list[str]]
    outcomes: dict[str, dict[str, np.ndarray]]
    clusters: dict[str, np.ndarray]
    failures: dict[str, np.ndarray]


def load_items(source, label: str | None = None) -> Items:
    """Read a file written by :func:`save_items` -- a path or a binary file object (bytes of a git
    blob) -- without unpickling anything; errors name ``label`` (default: the path)."""
    if isinstance(source, (str, os.PathLike)):
        source = Path(source)
        if not source.is_file():
            raise FileNotFoundError(f"{source}: per-item outcomes not found (rerun the evaluate stage)")
    label = label or str(source)
    path = Path(label)
    try:
        with np.load(source, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{label}: not a per-item outcomes file: {e}") from None
    if "meta/digest" not in arrays:
        raise ValueError(f"{label}: no meta/digest; not written by genemi.items.save_items")
    out = Items(path, str(arrays.pop("meta/digest")), {}, {}, {}, {})
    for k, v in arrays.items():
        head, _, rest = k.partition("/")
        if head == "meta" and rest.startswith("parts/"):
            out.parts[rest[len("parts/") :]] = [str(x) for x in v]
        elif head == "clusters":
            out.clusters[rest] = v
        elif head == "failures":
            out.failures[rest] = v
        else:
            out.outcomes.setdefault(head, {})[rest] = v
    return out


def write_summaries(es, outcomes: Mapping, feats: Mapping, hard_types: Sequence[str], headline_path=None,
                    items_path=None, failures: int = 6) -> None:
    """The evaluate stage's short files: the headline (``genemi.headline``, the DVC metric) and the per-item
    outcomes with the fine-tuned model's ``failures`` most confident mistakes per type (for the report)."""
    from genemi.evalsets import distinct_inputs
    from genemi.headline import headline, headline_parts
    from genemi.io import write_json
    from genemi.metrics import summarize

    ft = outcomes["finetuned"]
    parts = headline_parts(ft.samples, ft.macro, hard_types)
    if headline_path:
        write_json(headline_path, headline({m: summarize(o) for m, o in outcomes.items()}, parts))
    if items_path:
        wrong = text_failures(es.records, feats["base"], feats["finetuned"], failures)
        thumbs = [thumbnail(es.store.load(f.image)) for f in wrong]
        save_items(items_path, outcomes, items_digest(*distinct_inputs(es)), parts, wrong, thumbs)
