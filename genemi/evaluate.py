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
        except Exception as e:  # re-raised as itself by the reader, not as a worker traceback
            return Raised(e)
        try:
            return tuple(t(im) for t in self.transforms)
        except Exception as e:  # the image decoded, the model's preprocessing refused it: name the image
            return Raised(ValueError(f"{self.store.describe(self.refs[i])}: cannot preprocess this "
                                     f"{im.size[0]}x{im.size[1]} image for the model: {e}; replace the file"))


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
        desc = f"{es.name}: captions" + (f" ({n})" if len(names) > 1 else "")
        txt = _encode_texts(encoders[n], texts, es, desc, progress)
        out[n] = Features({r: i for i, r in enumerate(image_refs)}, img,
                          {t: i for i, t in enumerate(texts)}, txt)
    return out


def encode_texts(encoder, texts: list[str], batches: int = 64, desc: str | None = None) -> torch.Tensor:
    """``encoder.encode_texts(texts)`` as ``[N, D]`` float32, encoded ``batches`` of its batches at a time
    into one preallocated tensor (a progress bar named ``desc`` when given). Slices start at multiples of
    its batch size, so every batch, and every feature, is the one a single call gives."""
    from tqdm import tqdm

    step = max(1, int(getattr(encoder, "batch_size", 256))) * batches
    with tqdm(total=len(texts), desc=desc, unit="caption", mininterval=2, disable=desc is None) as bar:
        first = encoder.encode_texts(texts[:step]).float()
        bar.update(len(first))
        if len(texts) <= step:
            return first
        out = torch.empty(len(texts), first.shape[1], dtype=torch.float32)
        out[:step] = first
        for i in range(step, len(texts), step):
            out[i : i + step] = encoder.encode_texts(texts[i : i + step])
            bar.update(min(step, len(texts) - i))
    return out


def _encode_texts(encoder, texts: Sequence[str], es: EvalSet, desc: str, progress: bool) -> torch.Tensor:
    """:func:`encode_texts` (with a progress bar: 25,000 COCO captions take minutes on a CPU); a caption its
    tokenizer refuses (a word outside the synthetic vocabulary, more words than its context) is named with
    the benchmark file and the item using it."""
    if not texts:
        return torch.zeros(0, 0)
    try:
        return encode_texts(encoder, list(texts), desc=desc if progress else None)
    except ValueError as e:
        from genemi.evalsets import caption_owner

        for t in texts:
            try:
                encoder.tokenizer([t])
            except ValueError:
                where = f"{es.file}: " if es.file else ""
                raise ValueError(f"{where}benchmark {es.name!r}, {caption_owner(es, t)}: {e}") from None
        raise


def _stack(items):
    """Collate (runs in the worker): a failed item passes through, to be raised by the reader."""
    for item in items:
        if isinstance(item, Raised):
            return item
    shapes = {tuple(t.shape for t in item) for item in items}
    if len(shapes) > 1:  # a transform without a fixed output size: stacking would fail in the worker
        return Raised(ValueError(f"images of one batch preprocess to different sizes {sorted(shapes)[:3]}; "
                                 "the model's transform must give one input size"))
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


def known_types() -> tuple[str, ...]:
    """Negative types named in code: the synthetic miner's, the rule miner's, the mined variations',
    SugarCrepe's categories and the fixed types of the COCO-neg, NegCLIP and bring-your-own readers.
    Other benchmarks (HNC, ARO) take their types from their files."""
    from genemi.benchmarks.pairwise import SUGARCREPE
    from genemi.config import RULE_TYPES, SYNTH_TYPES

    fixed = ("neg_text", "neg_caption", "negative")  # COCO-neg, NegCLIP, the bring-your-own default
    return tuple(dict.fromkeys((*SYNTH_TYPES, *RULE_TYPES, *SUGARCREPE, *fixed)))


def check_hard_types(ev, es: EvalSet, where: str = "") -> None:
    """Each ``eval.hard_types`` entry must be a type this benchmark has or a type the code names: a
    benchmark lacking a type leaves it out of ``hard_text`` by design, so a misspelt one would silently
    change the headline."""
    present = sorted({n.type for r in es.records for n in r.negatives} | {c.type for c in es.choices})
    known = set(known_types()) | set(present)
    for i, t in enumerate(ev.hard_types):
        if t not in known:
            import difflib

            close = difflib.get_close_matches(t, sorted(known), n=1)
            raise ValueError(
                f"{where}eval.hard_types[{i}] = {t!r}: no negative type has this name (benchmark {es.name!r} "
                f"has {', '.join(present[:12]) or 'none'}{' ...' if len(present) > 12 else ''}; the miners "
                f"make {', '.join(known_types()[:9])}); "
                + (f"did you mean {close[0]!r}? " if close else "") + "a misspelt type would silently leave "
                "the headline hard_text; fix the name"
            )


def check_intervals(es: EvalSet, bootstrap: int) -> None:
    """With bootstrap intervals on, every task of a benchmark needs 2 distinct units: over one item (or one
    item repeated), one retrieval image or one zero-shot image or class, every resample is the same and
    the zero-width 95% interval would read as certainty."""
    if bootstrap <= 0:
        return
    items = {(c.images, c.texts) for c in es.choices}
    items |= {(r.image, r.caption, tuple((n.type, n.caption, n.image) for n in r.negatives))
              for r in es.records}
    counts = []
    if es.records or es.choices:
        counts.append(("item(s)", len(items), len(es.records) + len(es.choices)))
    if es.retrieval is not None:
        counts.append(("retrieval image(s)", len(set(es.retrieval.images)), len(es.retrieval.images)))
    if es.classification is not None:
        c = es.classification
        counts.append(("zero-shot image(s)", len(set(c.images)), len(c.images)))
        counts.append(("zero-shot class(es)", len(set(c.labels)), len(set(c.labels))))
    for what, distinct, total in counts:
        if distinct < 2:
            where = f"{es.file}: " if es.file else ""
            raise ValueError(
                f"{where}benchmark {es.name!r}: {distinct} distinct {what} ({total} in all): a 95% interval "
                "over one has zero width and would read as certainty; add items, or set eval.bootstrap=0 "
                "for point values without intervals"
            )


def load_complete(ev, name: str, data_dir, where: str = "") -> EvalSet:
    """Benchmark ``name`` with every file and referenced image present, checked before any model is built
    (and ``eval.hard_types`` against its types; ``where``: the params file, for that message)."""
    from genemi.benchmarks import load_benchmark, missing_images

    es = load_benchmark(ev, name, data_dir, seed=ev.seed)
    check_hard_types(ev, es, f"{where}: " if where else "")
    check_intervals(es, ev.bootstrap)
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
