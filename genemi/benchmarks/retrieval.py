"""Readers of retrieval and classification benchmarks.

* COCO Karpathy 5k: ``dataset_coco.json`` split ``test`` (read by :mod:`genemi.data.coco`), the first
  five captions of each image -- 25,000, the standard set (BLIP's ``coco_karpathy_test.json`` and most
  papers); the file has 25,010, as a few images carry 6 or 7. Every image queries all 25,000 captions and
  every caption all 5,000 images; a hit shares the ``cocoid``.
* Zero-shot classification: ``<folder>/<class name>/<image>`` (any PIL-readable file); class names are the
  folder names with ``_`` as spaces, in sorted order. Its purpose here is *retention*: how much general
  recognition fine-tuning keeps (``retention/zeroshot/top1`` = 100 * fine-tuned / base).
"""

from __future__ import annotations

from pathlib import Path

from genemi.benchmarks.pairwise import needs_file_and_dir
from genemi.data.coco import iter_karpathy_records
from genemi.data.hnc import in_subset
from genemi.evalsets import Classification, EvalSet, ImageStore, Loader, Retrieval

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


# Captions per image in the standard Karpathy 5k test (5,000 images x 5 = 25,000 captions)
CAPTIONS_PER_IMAGE = 5


def karpathy_retrieval(
    path: Path, split: str = "test", subset: float = 1.0, seed: int = 0, per_image: int = CAPTIONS_PER_IMAGE
) -> Retrieval:
    """Images and their first ``per_image`` captions (file order) of one Karpathy split."""
    images: dict[str, str] = {}
    texts, keys = [], []
    taken: dict[str, int] = {}
    for r in iter_karpathy_records(path, splits=[split]):
        key = str(r.meta["cocoid"])
        if not in_subset(key, subset, seed) or taken.get(key, 0) >= per_image:
            continue
        taken[key] = taken.get(key, 0) + 1
        images.setdefault(r.image, key)
        texts.append(r.caption)
        keys.append(key)
    if not images:
        raise ValueError(f"{path}: no images of Karpathy split {split!r}")
    return Retrieval(tuple(images), tuple(images.values()), tuple(texts), tuple(keys))


def load_karpathy(src, file, images, p, seed) -> EvalSet:
    return EvalSet(
        "coco_retrieval", ImageStore(images), retrieval=karpathy_retrieval(file, "test", src.subset, seed)
    )


def image_folder(
    folder: Path, templates: tuple[str, ...], subset: float = 1.0, seed: int = 0
) -> Classification:
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if len(classes) < 2:
        raise ValueError(
            f"{folder}: zero-shot classification needs >= 2 class folders <class>/<image>, found {classes}"
        )
    refs, labels = [], []
    for c, name in enumerate(classes):
        for f in sorted((folder / name).iterdir()):
            ref = f"{name}/{f.name}"
            if f.suffix.lower() in IMAGE_SUFFIXES and in_subset(ref, subset, seed):
                refs.append(ref)
                labels.append(c)
    if not refs:
        raise ValueError(f"{folder}: no images found under the class folders")
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(
            f"eval.zeroshot_templates: each template needs a '{{}}' for the class name, got {templates}"
        )
    return Classification(
        tuple(refs), tuple(labels), tuple(n.replace("_", " ") for n in classes), tuple(templates)
    )


def load_image_folder(src, file, images, p, seed) -> EvalSet:
    return EvalSet(
        "zeroshot",
        ImageStore(file),
        classification=image_folder(file, p.zeroshot_templates, src.subset, seed),
    )


LOADERS = {
    "karpathy_retrieval": Loader(
        load_karpathy,
        needs_file_and_dir(
            "Karpathy dataset_coco.json (download_coco stage)",
            "folder holding val2014/ (download_coco stage)",
        ),
        "download_coco stage (real.karpathy_url, real.coco_images_url)",
    ),
    "image_folder": Loader(
        load_image_folder,
        lambda src, file, images, p: [(file, "labelled image folder <class>/<image>")],
        "any labelled folder, e.g. an ImageNet-style val subset",
    ),
}
