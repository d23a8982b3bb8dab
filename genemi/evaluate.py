"""Evaluation: decode every distinct image once, encode it with every model, read the metrics off cosines.

The pieces: :mod:`genemi.evalsets` (what a benchmark is), :mod:`genemi.metrics` (outcomes per unit),
:mod:`genemi.bootstrap` (paired intervals and the flat metrics). This module drives them: images are
decoded and transformed once per batch, in worker processes when asked, and the same pixels go to the
base and the fine-tuned model in one pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from genemi.errors import Raised
from genemi.evalsets import EvalSet, distinct_inputs
from genemi.metrics import Features, Outcomes, evaluate_set, summarize


class _Decoded(Dataset):
    """Image ``i`` of ``refs``, decoded once and put through each distinct transform: a tuple of tensors."""

    def __init__(self, es: EvalSet, refs: Sequence[str], transforms: Sequence):
        self.store, self.refs, self.transforms = es.store, refs, transforms

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int):
        try:
            im = self.store.load(self.refs[i])
            return tuple(t(im) for t in self.transforms)
        except Exception as e:  # re-raised as itself by the reader, not as a worker traceback
            return Raised(e)


def encode_set(encoders: Mapping[str, object], es: EvalSet, workers: int = 0,
               progress: bool = False) -> dict[str, Features]:
    """Features of every distinct image and caption of ``es`` for each encoder (a :class:`genemi.clip.Clip`).

    Each image is decoded once: models that share a transform share its output. Memory is bounded by
    one batch, not the benchmark. ``workers > 0`` decodes in that many worker processes.
    """
    image_refs, texts = distinct_inputs(es)
    names = list(encoders)
    transforms: list = []
    slot = {}  # model -> index of its transform
    for n in names:
        t = encoders[n].transform
        if t not in transforms:
            transforms.append(t)
        slot[n] = transforms.index(t)
    bs = max(1, min(int(getattr(encoders[n], "batch_size", 256)) for n in names))
    loader = DataLoader(_Decoded(es, image_refs, transforms), batch_size=bs,
                                         num_workers=workers, collate_fn=_stack)
    from tqdm import tqdm

    # features are written into one [N, D] float32 tensor per model as batches come: never a list of
    # batches plus their concatenation (twice the set's features, e.g. HNC val's 2.3 M captions)
    imgs: dict[str, torch.Tensor | None] = {n: None for n in names}
    done = 0
    with tqdm(total=len(image_refs), desc=f"{es.name}: images", unit="img", disable=not progress,
              mininterval=2) as bar:
        for pixels in loader:
            if isinstance(pixels, Raised):
                raise pixels.error
            for n in names:
                part = encoders[n].encode_pixels(pixels[slot[n]])
                if imgs[n] is None:
                    imgs[n] = torch.empty(len(image_refs), part.shape[1], dtype=torch.float32)
                imgs[n][done : done + len(part)] = part
            done += len(pixels[0])
            bar.update(len(pixels[0]))
    out = {}
    for n in names:
        img = imgs[n] if imgs[n] is not None else torch.zeros(0, 0)
        txt = encode_texts(encoders[n], texts) if texts else torch.zeros(0, 0)
        out[n] = Features({r: i for i, r in enumerate(image_refs)}, img,
                          {t: i for i, t in enumerate(texts)}, txt)
    return out


def encode_texts(encoder, texts: list[str], batches: int = 64) -> torch.Tensor:
    """``encoder.encode_texts(texts)`` as ``[N, D]`` float32, encoded ``batches`` of its batches at a time
    into one preallocated tensor. Slices start at multiples of its batch size, so every batch, and every
    feature, is the one a single call gives."""
    step = max(1, int(getattr(encoder, "batch_size", 256))) * batches
    first = encoder.encode_texts(texts[:step]).float()
    if len(texts) <= step:
        return first
    out = torch.empty(len(texts), first.shape[1], dtype=torch.float32)
    out[:step] = first
    for i in range(step, len(texts), step):
        out[i : i + step] = encoder.encode_texts(texts[i : i + step])
    return out


def _stack(items):
    """Collate (runs in the worker): a failed item passes through, to be raised by the reader."""
    for item in items:
        if isinstance(item, Raised):
            return item
    return tuple(torch.stack(col) for col in zip(*items, strict=True))


def evaluate_models(encoders: Mapping[str, object], es: EvalSet, taus=(1.0,), ks=(1, 5, 10), seed: int = 0,
                    workers: int = 0, progress: bool = False) -> tuple[dict[str, Outcomes], dict[str, Features]]:
    """Every model's outcomes on ``es`` and the features they were read from (model name -> each)."""
    feats = encode_set(encoders, es, workers, progress)
    return {n: evaluate_set(es, f, taus, ks, seed) for n, f in feats.items()}, feats


def monitor_scores(clip, es: EvalSet) -> dict[str, float]:
    """Text-side pairwise accuracy per negative type and R@1 both ways of ``clip`` on ``es``, for curves
    during training. No gradients; the model goes back to the mode it came in, so a training loop can
    call this between steps."""
    values = summarize(evaluate_models({"m": clip}, es, ks=(1,))[0]["m"])
    return {k: v for k, v in values.items() if k.endswith("/text") or k.endswith("_r@1")}


def load_complete(ev, name: str, data_dir) -> EvalSet:
    """Benchmark ``name`` with every file and referenced image present, checked before any model is built."""
    from genemi.benchmarks import load_benchmark, missing_images

    es = load_benchmark(ev, name, data_dir, seed=ev.seed)
    n_missing, first = missing_images(es)
    if n_missing:
        from genemi.images import explain_missing

        why = explain_missing(first[0])  # e.g. which zip it looked in, or what is in the way
        raise FileNotFoundError(
            f"benchmark {name!r}: {n_missing} referenced image file(s) are missing under "
            f"{es.store.root}, e.g. {', '.join(first)}{f' ({first[0]}: {why})' if why else ''}; complete "
            f"the image folder (docs/benchmarks.md) or fix eval.benchmarks.{name}.images"
        )
    return es


def headline_deltas(flat: dict[str, float]) -> list[str]:
    """One line per primary delta (text/group accuracy, R@1, top-1) with its bootstrap interval."""
    lines = []
    for key in sorted(k for k in flat if k.startswith("delta/") and k.endswith(("/text", "/group", "r@1", "/top1"))):
        lo, hi = flat.get(f"{key}_lo"), flat.get(f"{key}_hi")
        ci = f"  [{lo:+.2f}, {hi:+.2f}]" if lo is not None else ""
        lines.append(f"{key}: {flat[key]:+.2f}{ci}")
    return lines
