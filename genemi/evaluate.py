"""Evaluation on manifest records: hard-negative pairwise accuracies and retrieval.

Every unique image and caption is encoded once per model; all metrics are then read off
cosine similarities. Definitions (per negative type, percentages):

* ``text``: the image prefers its caption to the negative caption, ``s(I,T) > s(I,T-)``.
* ``image``: the caption prefers its image to the edited image, ``s(I,T) > s(I-,T)``.
* ``group`` (Winoground): for a negative with both an edited image ``I-`` and a caption ``T-``
  true for it, both images pick their own caption and both captions pick their own image.
* retrieval ``i2t_r@K`` / ``t2i_r@K`` over the positives; a hit is any item with the same
  ``meta["key"]`` (the scene's meaning, or the image path when absent), so duplicate
  captions of equivalent scenes are not counted as misses.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genemi.manifest import Record
from genemi.models import Encoder


def encode_all(encoder: Encoder, records: Sequence[Record], image_root: str | os.PathLike):
    """Encode each distinct image path and caption once.

    Returns ``(image_index, image_feats, text_index, text_feats)`` where the indexes map a
    path / caption to its row in the ``[N, D]`` L2-normalised feature matrices.
    """
    root = Path(image_root)
    paths: dict[str, int] = {}
    texts: dict[str, int] = {}
    for r in records:
        paths.setdefault(r.image, len(paths))
        texts.setdefault(r.caption, len(texts))
        for n in r.negatives:
            if n.image is not None:
                paths.setdefault(n.image, len(paths))
            if n.caption is not None:
                texts.setdefault(n.caption, len(texts))
    images = []
    for p in paths:
        f = root / p
        if not f.is_file():
            raise FileNotFoundError(f"{f}: image of the evaluation set not found")
        with Image.open(f) as im:
            images.append(im.convert("RGB"))
    return paths, encoder.encode_images(images), texts, encoder.encode_texts(list(texts))


def recall_at_k(sim: torch.Tensor, query_keys: Sequence[str], item_keys: Sequence[str], ks=(1, 5)) -> dict:
    """Percentage of queries (rows of ``sim``) with a same-key item among their top k."""
    qk = np.asarray(query_keys)
    ik = np.asarray(item_keys)
    top = sim.topk(min(max(ks), sim.shape[1]), dim=1).indices.numpy()
    hits = ik[top] == qk[:, None]
    return {k: float(100.0 * hits[:, :k].any(axis=1).mean()) for k in ks}


def evaluate_records(
    records: Sequence[Record], paths: dict, img: torch.Tensor, texts: dict, txt: torch.Tensor
) -> dict[str, float]:
    """Flat metrics ``{"<type>/<text|image|group>": %, "<type>/n": count, "retrieval/...": %}``."""
    def s(i_path, caption) -> float:
        return float(img[paths[i_path]] @ txt[texts[caption]])

    per_type: dict[str, dict[str, list[bool]]] = {}
    for r in records:
        pos = s(r.image, r.caption)
        for n in r.negatives:
            bucket = per_type.setdefault(n.type, {"text": [], "image": [], "group": []})
            if n.caption is not None:
                bucket["text"].append(pos > s(r.image, n.caption))
            if n.image is not None:
                bucket["image"].append(pos > s(n.image, r.caption))
            if n.caption is not None and n.image is not None:
                neg_own = s(n.image, n.caption)
                text_ok = pos > s(r.image, n.caption) and neg_own > s(n.image, r.caption)
                image_ok = pos > s(n.image, r.caption) and neg_own > s(r.image, n.caption)
                bucket["group"].append(text_ok and image_ok)
    out: dict[str, float] = {}
    all_text: list[bool] = []
    for t in sorted(per_type):
        for metric, vals in per_type[t].items():
            if vals:
                out[f"{t}/{metric}"] = 100.0 * sum(vals) / len(vals)
        out[f"{t}/n"] = float(max(len(v) for v in per_type[t].values()))
        all_text += per_type[t]["text"]
    if all_text:
        out["all/text"] = 100.0 * sum(all_text) / len(all_text)

    # retrieval over the positives, one row per distinct image
    seen: dict[str, Record] = {}
    for r in records:
        seen.setdefault(r.image, r)
    recs = list(seen.values())
    keys = [str(r.meta.get("key", r.image)) for r in recs]
    iv = img[[paths[r.image] for r in recs]]
    tv = txt[[texts[r.caption] for r in recs]]
    sim = iv @ tv.T
    for k, v in recall_at_k(sim, keys, keys).items():
        out[f"retrieval/i2t_r@{k}"] = v
    for k, v in recall_at_k(sim.T, keys, keys).items():
        out[f"retrieval/t2i_r@{k}"] = v
    return out


def compare(results: dict[str, dict[str, float]], digits: int = 4) -> dict[str, float]:
    """Merge per-model results into one flat dict ``{"<model>/<metric>"}`` plus
    ``delta/<metric>`` = finetuned - base, rounded for stable, diffable files."""
    out: dict[str, float] = {}
    for model, res in results.items():
        for key, v in res.items():
            out[f"{model}/{key}"] = round(v, digits)
    if "base" in results and "finetuned" in results:
        for key, v in results["finetuned"].items():
            if key in results["base"] and not key.endswith("/n"):
                out[f"delta/{key}"] = round(v - results["base"][key], digits)
    return dict(sorted(out.items()))
