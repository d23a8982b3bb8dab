"""Evaluation sets: what a benchmark loader returns and :mod:`genemi.evaluate` scores.

An :class:`EvalSet` holds up to four kinds of task -- hard-negative ``records``, multiple-choice
``choices``, cross-modal ``retrieval`` and zero-shot ``classification`` -- and an :class:`ImageStore`
that resolves the image references they name. The metrics read off them are described in
:mod:`genemi.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from genemi.manifest import Negative, Record


@dataclass
class ImageStore:
    """Resolves an image reference to a PIL RGB image.

    A reference is a path relative to ``root``, or a key of ``crops`` (``ref -> (path, (x, y, w, h))``:
    the ARO crops) or of ``blobs`` (``ref -> encoded bytes``: images embedded in a parquet file).
    """

    root: Path
    crops: dict[str, tuple[str, tuple[float, float, float, float]]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def file(self, path: str) -> Path:
        """``root / path``; when that is absent and the path's first folder repeats the root's own name
        (Structure-CLIP's ``val2014/COCO_val2014_...jpg`` under ``images: .../val2014``), the path
        without that folder. Both published layouts then resolve; an existing image always wins.
        Either may be a loose file or a zip member (:func:`genemi.images.locate`)."""
        from genemi.images import image_exists

        f = self.root / path
        parts = Path(path).parts
        name = self.root.name.removesuffix(".zip")  # a root may be the archive itself: images: .../val2014.zip
        if len(parts) > 1 and parts[0] == name and not image_exists(f):
            alt = self.root.joinpath(*parts[1:])
            if image_exists(alt):
                return alt
        return f

    def describe(self, ref: str) -> str:
        """Where image ``ref`` comes from, for messages: its file (and crop box), or the embedded cell."""
        if ref in self.blobs:
            return f"{self.root}: embedded image {ref!r}"
        path, box = self.crops.get(ref, (ref, None))
        return f"{self.file(path)}" + (f" (crop {box})" if box is not None else "")

    def load(self, ref: str) -> Image.Image:
        """Image ``ref`` fully decoded (PIL RGB); a missing, truncated or corrupt file raises naming it.
        A ``.npy`` file is an ``[H, W, 3]`` uint8 BGR array (EqBen's YouCook2 frames, which EqBen's own
        loader reads the same way), loaded without unpickling."""
        from genemi.images import read_image, read_image_bytes

        if ref in self.blobs:
            return read_image_bytes(self.blobs[ref], label=f"{self.root}: embedded image {ref!r}",
                                    what="an evaluation image")
        path, box = self.crops.get(ref, (ref, None))
        if path.endswith(".npy"):
            im = _npy_bgr(self.file(path))
        else:
            im = read_image(self.file(path), what="an evaluation image; see docs/benchmarks.md")
        if box is not None:
            x, y, w, h = box
            im = im.crop((x, y, x + w, y + h))
        return im


def _npy_bgr(path: Path) -> Image.Image:
    """An ``[H, W, 3]`` uint8 BGR array saved with ``np.save`` as a PIL RGB image (never unpickles)."""
    import io

    import numpy as np

    from genemi.images import read_bytes

    data = read_bytes(path, what="an evaluation image (.npy frame); see docs/benchmarks.md")
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{path}: not a plain .npy array ({e}); expected [H, W, 3] uint8 BGR") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"{path}: expected an [H, W, 3] uint8 BGR array, got {arr.dtype} {arr.shape}")
    return Image.fromarray(np.ascontiguousarray(arr[:, :, ::-1]), "RGB")


@dataclass(frozen=True)
class Choice:
    """A multiple-choice sample: image ``i`` is described by ``texts[i]``; captions past ``len(images)``
    are distractors without an image (ARO Order's four perturbations)."""

    id: str
    images: tuple[str, ...]
    texts: tuple[str, ...]
    type: str = "all"


@dataclass(frozen=True)
class Triplet:
    """Two captions true for ``image`` and one false (SugarCrepe++): scored image-to-text (both true
    captions above the false one) and text-only (the true captions closer to each other than either is to
    the false one)."""

    id: str
    image: str
    positives: tuple[str, str]
    negative: str
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
    records: Sequence[Record] = field(default_factory=list)  # a list, or a RecordTable (large sets)
    choices: list[Choice] = field(default_factory=list)
    retrieval: Retrieval | None = None
    classification: Classification | None = None
    # types with fewer text pairs stay out of macro/* (ARO VG-Attribution drops pairs seen < 25 times)
    macro_min_count: int = 0
    # types left out of macro/* (ARO VG-Relation drops its symmetric relations); with any, the mean over
    # every type is reported too, as macro_all/*
    macro_exclude: frozenset[str] = frozenset()
    file: str = ""  # the annotation file it was read from (named in errors)
    # SugarCrepe++ triplets (two true captions, one false)
    triplets: list[Triplet] = field(default_factory=list)
    # metric name -> groups of choice ids that count as one unit, right only when every choice in it is
    # (WhatsUp's pair and set accuracy: the left/right or on/under images of one object pair)
    choice_groups: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    # extra macro averages of the text metric: name -> the types it averages (VL-CheckList's aspects);
    # reported as <name>/text
    macro_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)


def caption_owner(es: EvalSet, caption: str) -> str:
    """The first item that uses ``caption`` (``record 'id'``, ``item 'id'``), for messages."""
    for r in es.records:
        if caption == r.caption or any(caption == n.caption for n in r.negatives):
            return f"record {r.id!r}"
    for c in es.choices:
        if caption in c.texts:
            return f"item {c.id!r}"
    return "a caption"


class RecordTable(Sequence[Record]):
    """Records held as arrays: a benchmark of a million pairs (HNC val: 1.16 M) without an object per record.

    Each distinct image path, caption, group, type and (split, source, meta) once; per record int32 ids, and
    its negatives flattened (``neg_offsets`` ``[N + 1]``). Indexing or iterating builds :class:`Record` rows
    on the fly; :func:`distinct_inputs` and :func:`genemi.metrics.pairwise_outcomes` read the arrays.
    """

    def __init__(self, records: Iterable[Record]):
        import json
        from array import array

        def interner():
            d: dict = {}
            return d, lambda x: d.setdefault(x, len(d))

        (imgs, img), (txts, txt), (grps, grp), (typs, typ), (rest, other) = (interner() for _ in range(5))
        ids: list[str] = []
        image, caption, group, info = array("i"), array("i"), array("i"), array("i")
        offsets, ntype, ncap, nimg = array("q", [0]), array("i"), array("i"), array("i")
        for r in records:
            ids.append(r.id)
            image.append(img(r.image))
            caption.append(txt(r.caption))
            for n in r.negatives:
                ntype.append(typ(n.type))
                ncap.append(txt(n.caption) if n.caption is not None else -1)
                nimg.append(img(n.image) if n.image is not None else -1)
            offsets.append(len(ntype))
            group.append(grp(r.group))
            info.append(other(json.dumps([r.split, r.source, r.meta], sort_keys=True)))
        self.ids = ids
        self.image, self.caption, self.group, self.info = (np.frombuffer(a, np.int32).copy()
                                                           for a in (image, caption, group, info))
        self.neg_offsets = np.frombuffer(offsets, np.int64).copy()
        self.neg_type, self.neg_caption, self.neg_image = (np.frombuffer(a, np.int32).copy()
                                                           for a in (ntype, ncap, nimg))
        self.image_names, self.text_names = list(imgs), list(txts)  # first-seen order
        self.group_names, self.type_names, self.infos = list(grps), list(typs), [json.loads(x) for x in rest]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        a, b = self.neg_offsets[i], self.neg_offsets[i + 1]
        negs = tuple(
            Negative(self.type_names[self.neg_type[k]],
                     self.text_names[self.neg_caption[k]] if self.neg_caption[k] >= 0 else None,
                     self.image_names[self.neg_image[k]] if self.neg_image[k] >= 0 else None)
            for k in range(a, b)
        )
        split, source, meta = self.infos[self.info[i]]
        return Record(self.ids[i], self.image_names[self.image[i]], self.text_names[self.caption[i]], split,
                      source, self.group_names[self.group[i]], negs, dict(meta))

    def __iter__(self) -> Iterator[Record]:
        return (self[i] for i in range(len(self)))


def distinct_inputs(es: EvalSet) -> tuple[list[str], list[str]]:
    """Every image ref and caption the set needs, each once, in first-seen order."""
    images: dict[str, None] = {}
    texts: dict[str, None] = {}
    if isinstance(es.records, RecordTable):  # the same first-seen order, from its interned names
        images, texts = dict.fromkeys(es.records.image_names), dict.fromkeys(es.records.text_names)
    for r in () if isinstance(es.records, RecordTable) else es.records:
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
    for t in es.triplets:
        images[t.image] = None
        texts.update(dict.fromkeys((*t.positives, t.negative)))
    if es.retrieval is not None:
        images.update(dict.fromkeys(es.retrieval.images))
        texts.update(dict.fromkeys(es.retrieval.texts))
    if es.classification is not None:
        images.update(dict.fromkeys(es.classification.images))
        for name in es.classification.classnames:
            texts.update(dict.fromkeys(t.format(name) for t in es.classification.templates))
    return list(images), list(texts)



def records_retrieval(records: Sequence[Record]) -> Retrieval:
    """Retrieval over a manifest's distinct positive images, one caption each; key = ``meta["key"]``
    (the scene's meaning), else the image path, so equivalent scenes are not counted as misses."""
    seen: dict[str, Record] = {}
    for r in records:
        seen.setdefault(r.image, r)
    recs = list(seen.values())
    keys = tuple(str(r.meta.get("key", r.image)) for r in recs)
    return Retrieval(tuple(r.image for r in recs), keys, tuple(r.caption for r in recs), keys)



def records_classification(records: Sequence[Record], templates: Sequence[str]) -> Classification | None:
    """Zero-shot classification over the records whose ``meta["class"]`` names their image's class (the
    synthetic world's retention split: a lone object's colour and shape), among the distinct classes
    named, in sorted order; None when no record names one."""
    labelled = [(r.image, str(r.meta["class"])) for r in records if "class" in r.meta]
    if not labelled:
        return None
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(
            f"eval.zeroshot_templates: each template needs a '{{}}' for the class name, got {list(templates)}"
        )
    classes = sorted({c for _, c in labelled})
    index = {c: i for i, c in enumerate(classes)}
    return Classification(tuple(i for i, _ in labelled), tuple(index[c] for _, c in labelled), tuple(classes),
                          tuple(templates))


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


@dataclass(frozen=True)
class Loader:
    """A benchmark reader (``genemi.benchmarks`` registers one per format):
    ``load(src, file, images, p, seed) -> EvalSet``; ``needs(src, file, images, p) -> [(path, what)]``."""

    load: Callable[..., EvalSet]
    needs: Callable[..., list[tuple[Path, str]]]
    doc: str  # where the files come from (shown when they are missing)
