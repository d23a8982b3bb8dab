"""Readers of multiple-choice benchmarks -> :class:`Choice` samples (n images x m captions).

* Winoground ``examples.jsonl``: ``{"id", "caption_0", "caption_1", "image_0", "image_1", "tag",
  "secondary_tag", "num_main_preds", "collapsed_tag"}``; images ``<images>/<image_i>.png``.
* GeNeMi validation (HF ``ugursahin/generative-negative-mining-dataset``, split ``test``): rows
  ``{"num_sample": 2-4, "caption_<i>": str, "image_<i>": {"path", "bytes"?} | str}`` for ``i < num_sample``,
  as JSONL / JSON list (images under ``images``) or the hub's parquet (images embedded; needs pyarrow).
* ARO COCO-/Flickr-Order: BLIP's ``coco_karpathy_test.json`` / ``flickr30k_test.json``
  (``[{"image": "val2014/...jpg", "caption": [5 str], ...}]``); for every caption, the options are the
  caption and ARO's four word-order shuffles (nouns+adjectives among themselves, everything else among
  itself, within trigrams, trigrams), all through BLIP's ``pre_caption`` (30 words).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from genemi import seeding
from genemi.benchmarks.pairwise import _str, needs_file_and_dir, subset_of
from genemi.config import STANZA_LANG, stanza_processors
from genemi.data.hnc import in_subset
from genemi.evalsets import Choice, EvalSet, ImageStore, Loader
from genemi.io import iter_jsonl, iter_jsonl_lines, read_json

# ------------------------------------------------------------------------------------ Winoground


def winoground_choices(path: Path) -> list[Choice]:
    out = []
    for i, (lineno, row) in enumerate(iter_jsonl_lines(path), 1):
        where = f"{path}:{lineno}"
        imgs = tuple(f"{_str(row, f'image_{k}', where)}.png" for k in (0, 1))
        caps = tuple(_str(row, f"caption_{k}", where) for k in (0, 1))
        out.append(
            Choice(f"winoground-{row.get('id', i - 1)}", imgs, caps, str(row.get("collapsed_tag") or "all"))
        )
    return out


def load_winoground(src, file, images, p, seed) -> EvalSet:
    return EvalSet("winoground", ImageStore(images), [], subset_of(winoground_choices(file), src, seed))


# ------------------------------------------------------------------------------------ GeNeMi val


def _genemi_rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError(
                f"{path}: reading parquet needs pyarrow (pip install pyarrow), or export the "
                "split to JSONL with image paths (docs/benchmarks.md#genemi-validation)"
            ) from None
        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        return list(iter_jsonl(path))
    data = read_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of rows with num_sample, caption_i, image_i")
    return data


def genemi_val_choices(path: Path) -> tuple[list[Choice], dict[str, bytes]]:
    """Choices and the embedded image bytes (``{ref: bytes}``; empty for path-only rows)."""
    out, blobs = [], {}
    for i, row in enumerate(_genemi_rows(path)):
        where = f"{path}: row {i}"
        n = row.get("num_sample")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{where}: 'num_sample' must be a positive integer, got {n!r}")
        imgs, caps = [], []
        for k in range(n):
            caps.append(_str(row, f"caption_{k}", where))
            im = row.get(f"image_{k}")
            if isinstance(im, dict) and im.get("bytes"):
                ref = f"genemi_val/{i}/{k}/{im.get('path') or 'image'}"
                blobs[ref] = bytes(im["bytes"])
            elif isinstance(im, dict) and isinstance(im.get("path"), str):
                ref = im["path"]
            elif isinstance(im, str):
                ref = im
            else:
                raise ValueError(
                    f"{where}: 'image_{k}' must be a path or an object with 'path' or 'bytes', got {im!r:.80}"
                )
            imgs.append(ref)
        out.append(Choice(f"genemi_val-{i}", tuple(imgs), tuple(caps), "all"))
    return out, blobs


def load_genemi_val(src, file, images, p, seed) -> EvalSet:
    choices, blobs = genemi_val_choices(file)
    return EvalSet(
        "genemi_val",
        ImageStore(images, blobs=blobs),
        [],
        subset_of(choices, src, seed),
    )


# ------------------------------------------------------------------------------------- ARO Order

NOUN_ADJ = ("NN", "NNS", "NNP", "NNPS", "JJ", "JJR", "JJS")


def pre_caption(caption: str, max_words: int = 30) -> str:
    """BLIP's caption normalisation, which ARO applies to every option: lower case, drop ``.!"()*#:;~``,
    collapse spaces, keep ``max_words`` words."""
    caption = re.sub(r"([.!\"()*#:;~])", " ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption).rstrip("\n").strip(" ")
    return " ".join(caption.split(" ")[:max_words])


def _trigrams(tokens: Sequence[str]) -> list[list[str]]:
    return [list(tokens[i : i + 3]) for i in range(0, len(tokens), 3)]


def order_perturbations(tagged: Sequence[tuple[str, str]], rng: np.random.Generator) -> list[str]:
    """ARO's four shuffles of one tokenised, PTB-tagged caption ``[(token, xpos)]``, in ARO's order:
    nouns and adjectives shuffled among themselves (each class apart), all other tokens shuffled, tokens
    shuffled within each trigram, trigrams shuffled."""
    tokens = np.array([t for t, _ in tagged], dtype=object)
    out = []
    a = tokens.copy()
    for tags in (("NN", "NNS", "NNP", "NNPS"), ("JJ", "JJR", "JJS")):
        idx = [i for i, (_, x) in enumerate(tagged) if x in tags]
        a[idx] = rng.permutation(a[idx])
    out.append(" ".join(a))
    b = tokens.copy()
    idx = [i for i, (_, x) in enumerate(tagged) if x not in NOUN_ADJ]
    b[idx] = rng.permutation(b[idx])
    out.append(" ".join(b))
    tri = _trigrams(list(tokens))
    out.append(" ".join(" ".join(rng.permutation(t)) for t in tri))
    order = rng.permutation(len(tri))
    out.append(" ".join(" ".join(tri[j]) for j in order))
    return out


Tagger = Callable[[list[str]], list[list[tuple[str, str]]]]


def stanza_tagger(stanza_dir: str | Path) -> Tagger:
    """``texts -> [[(token, PTB xpos)]]`` with a local stanza English model (never downloads)."""
    import stanza

    try:
        nlp = stanza.Pipeline(
            STANZA_LANG,
            dir=str(stanza_dir),
            processors=stanza_processors("aro_order"),
            download_method=None,
            logging_level="WARN",
        )
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise FileNotFoundError(
            f"{stanza_dir}: no usable stanza English tokenize+pos models ({type(e).__name__}: {e}); run the "
            "download_stanza stage or set eval.benchmarks.<name>.models (ARO Order needs POS tags)"
        ) from e

    def tag(texts: list[str]) -> list[list[tuple[str, str]]]:
        docs = nlp.bulk_process([stanza.Document([], text=t) for t in texts])
        return [[(w.text, w.xpos) for s in d.sentences for w in s.words] for d in docs]

    return tag


def order_choices(
    path: Path, tagger: Tagger, seed: int, subset: float = 1.0, max_words: int = 30
) -> list[Choice]:
    """One 1-image x 5-caption sample per (image, caption); shuffles seeded by ``(seed, sample index)``.

    A shuffle that equals the caption after ``pre_caption`` is dropped: it is not false, and with strict
    comparison an identical string could never be beaten.
    """
    data = read_json(path)
    if not isinstance(data, list):
        raise ValueError(
            f"{path}: expected a JSON list of {{image, caption: [...]}} (BLIP annotation format)"
        )
    cases = []
    for i, row in enumerate(data):
        where = f"{path}: item {i}"
        image = _str(row, "image", where) if isinstance(row, dict) else None
        caps = row.get("caption") if isinstance(row, dict) else None
        if isinstance(caps, str):
            caps = [caps]
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise ValueError(f"{where}: 'caption' must be a list of strings")
        for j, c in enumerate(caps):
            if not c.strip():
                raise ValueError(f"{where}: field 'caption[{j}]' is empty or only whitespace")
        cases += [(f"order-{i}-{j}", image, c) for j, c in enumerate(caps)]
    cases = [c for c in cases if in_subset(c[0], subset, seed)]
    tagged = tagger([c for _, _, c in cases]) if cases else []
    out = []
    for n, ((cid, image, cap), tags) in enumerate(zip(cases, tagged, strict=True)):
        true = pre_caption(cap, max_words)
        rng = seeding.rng(seed, n)
        perturbed = [pre_caption(x, max_words) for x in order_perturbations(tags, rng)]
        opts = [true] + [x for x in dict.fromkeys(perturbed) if x != true]
        out.append(Choice(cid, (image,), tuple(opts), "order"))
    return out


def load_order(src, file, images, p, seed) -> EvalSet:
    tagger = stanza_tagger(src.models)  # already resolved against --data by the registry
    return EvalSet("aro_order", ImageStore(images), [], order_choices(file, tagger, seed, src.subset))


def _needs_order(src, file, images, p):
    return [
        (
            file,
            "BLIP annotation coco_karpathy_test.json / flickr30k_test.json "
            "(storage.googleapis.com/sfr-vision-language-research/datasets/)",
        ),
        (
            images,
            "the images its 'image' paths are relative to "
            "(COCO: the folder holding val2014/; Flickr30k: the folder holding flickr30k-images/)",
        ),
        (
            Path(src.models),
            "stanza English models (download_stanza stage), for the POS tags of the noun/adjective shuffles",
        ),
    ]


LOADERS = {
    "winoground": Loader(
        load_winoground,
        needs_file_and_dir(
            "Winoground data/examples.jsonl (HF facebook/winoground, gated)",
            "Winoground images/ (data/images.zip, extracted; or name the zip itself in images:)",
        ),
        "HF facebook/winoground: data/examples.jsonl and data/images.zip",
    ),
    "genemi_val": Loader(
        load_genemi_val,
        needs_file_and_dir(
            "GeNeMi test split rows (JSONL/JSON/parquet)", "folder the rows' image paths are relative to"
        ),
        "HF ugursahin/generative-negative-mining-dataset, split test",
    ),
    "aro_order": Loader(load_order, _needs_order, "ARO COCO_Order / Flickr30k_Order (BLIP annotation files)"),
}
