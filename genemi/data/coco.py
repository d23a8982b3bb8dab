"""COCO captions -> genemi manifest records (one record per caption, no negatives).

Two inputs:

* the Karpathy split file ``dataset_coco.json``:
  ``{"images": [{"filepath": "val2014", "filename": "COCO_val2014_...jpg",
  "split": "train"|"restval"|"val"|"test", "cocoid": int,
  "sentences": [{"raw": str, "sentid": int, ...}], ...}], "dataset": "coco"}``;
  record split = the Karpathy split, image = ``<filepath>/<filename>``.
* the official annotations ``captions_val2014.json``:
  ``{"images": [{"id": int, "file_name": str}],
  "annotations": [{"id": int, "image_id": int, "caption": str}]}``;
  record split = ``split`` argument, image = ``<image_dir>/<file_name>``.

Image paths are relative to the COCO root (the folder holding ``val2014/``, or ``val2014.zip`` read in
place: :mod:`genemi.images`). Only val2014 images are downloaded by this project, so Karpathy train
images (train2014) are skipped as missing when an image root is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from genemi.io import check_utf8, read_json
from genemi.images import image_exists
from genemi.manifest import Record, write_manifest, write_off_road_manifest


@dataclass
class CocoStats:
    images: int = 0  # image entries read
    images_other_split: int = 0  # not in the requested splits
    images_missing: int = 0  # image file absent under the image root (skipped)
    records: int = 0  # captions written

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _record(cocoid: int, sent_id: object, image: str, caption: object, split: str, where: str) -> Record:
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"{where}: caption must be a non-empty string, got {caption!r}")
    return Record(
        id=f"coco-{cocoid}-{sent_id}",
        image=image,
        caption=caption.strip(),
        split=split,
        source="coco",
        meta={"cocoid": cocoid},
    )


def iter_karpathy_records(
    path: str | os.PathLike,
    *,
    splits: Iterable[str] | None = None,
    image_root: str | os.PathLike | None = None,
    stats: CocoStats | None = None,
) -> Iterator[Record]:
    """Stream records from a Karpathy ``dataset_coco.json`` (file order), keeping ``splits`` (all if None)."""
    import ijson

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Karpathy split file not found (run the download_coco stage)")
    keep = set(splits) if splits is not None else None
    stats = stats if stats is not None else CocoStats()
    root = Path(image_root) if image_root is not None else None
    with path.open("rb") as f:
        try:
            for i, img in enumerate(ijson.items(f, "images.item", use_float=True)):
                where = f"{path}: images[{i}]"
                try:
                    image = f"{img['filepath']}/{img['filename']}"
                    cocoid, split, sentences = img["cocoid"], img["split"], img["sentences"]
                except (KeyError, TypeError) as e:
                    raise ValueError(
                        f"{where}: missing field {e}; expected filepath, filename, cocoid, split, sentences"
                    ) from None
                stats.images += 1
                if keep is not None and split not in keep:
                    stats.images_other_split += 1
                    continue
                if root is not None and not image_exists(root / image):
                    stats.images_missing += 1
                    continue
                for j, s in enumerate(sentences):
                    stats.records += 1
                    yield _record(
                        cocoid,
                        s.get("sentid", j),
                        image,
                        s.get("raw"),
                        split,
                        f"{where} (cocoid {cocoid}) sentences[{j}]",
                    )
        except ijson.JSONError as e:
            check_utf8(path)  # bytes that are not UTF-8: named by line, not by the parser's byte offset
            raise ValueError(f"{path}: invalid JSON near byte {f.tell()}: {e}") from None


def iter_caption_annotation_records(
    path: str | os.PathLike,
    *,
    split: str = "val2014",
    image_dir: str = "val2014",
    image_root: str | os.PathLike | None = None,
    stats: CocoStats | None = None,
) -> Iterator[Record]:
    """Records from an official ``captions_*.json``, sorted by (image id, annotation id)."""
    data = read_json(path)
    stats = stats if stats is not None else CocoStats()
    try:
        files = {img["id"]: img["file_name"] for img in data["images"]}
        anns = sorted(data["annotations"], key=lambda a: (a["image_id"], a["id"]))
    except (KeyError, TypeError) as e:
        raise ValueError(
            f"{path}: not a COCO captions file (missing {e}); expected 'images' with id/file_name "
            f"and 'annotations' with id/image_id/caption"
        ) from None
    stats.images += len(files)
    root = Path(image_root) if image_root is not None else None
    missing: set[int] = set()
    for a in anns:
        if a["image_id"] not in files:
            raise ValueError(f"{path}: annotation {a['id']} refers to unknown image_id {a['image_id']}")
        image = f"{image_dir}/{files[a['image_id']]}"
        if root is not None and not image_exists(root / image):
            missing.add(a["image_id"])
            continue
        stats.records += 1
        yield _record(a["image_id"], a["id"], image, a.get("caption"), split, f"{path}: annotation {a['id']}")
    stats.images_missing += len(missing)


def write_karpathy_manifest(
    data_source: str, splits: Sequence[str], coco_dir: str | os.PathLike, out: str | os.PathLike
) -> dict:
    """The coco_manifest stage: the captions of Karpathy ``splits`` whose val2014 image is under
    ``<coco_dir>/images`` -> one manifest at ``out``; returns the stats to record.

    Only the genemi road reads it (mining, regular pairs: ``genemi.roads``); on another ``data_source`` it
    writes a placeholder manifest without records and returns a "skipped" note. Raises ValueError when no
    caption has its image (an incomplete download_coco output).
    """
    if data_source != "genemi":
        write_off_road_manifest(out)
        return {"skipped": f"data.source is {data_source}: only the genemi road reads the COCO manifest"}
    root = Path(coco_dir)
    s = CocoStats()
    write_manifest(
        out,
        iter_karpathy_records(
            root / "caption_datasets" / "dataset_coco.json",
            splits=splits,
            image_root=root / "images",
            stats=s,
        ),
    )
    if s.records == 0:
        raise ValueError(
            f"no COCO caption of splits {list(splits)} has its image under {root / 'images'}; "
            f"is download_coco's output complete?"
        )
    return {"splits": list(splits), **s.as_dict()}
