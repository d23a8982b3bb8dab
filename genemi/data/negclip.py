"""NegCLIP's training file -> genemi manifest records (the ``negclip`` recipe's data).

NegCLIP (ARO, ICLR 2023) trained open_clip on a tab-separated file whose header is
``<index> title filepath neg_caption neg_image``; ARO ships its validation part as
``temp_data/valid_neg_clip.tsv``:

* ``title``: the COCO caption; ``filepath``: the image, e.g. ``coco/val2014/COCO_val2014_...jpg``;
* ``neg_caption``: a Python list literal of word-swapped captions (``['A umbrella holding ...', ...]``);
* ``neg_image``: a list literal of row positions in the same file: the nearest COCO images, whose own
  ``title`` is true for them and false for this row's image.

Each row becomes one record: the swapped captions are text negatives (type ``neg_caption``); each hard image
is a negative *pair*, its image with its own caption (type ``neg_image``), which the manifest's
"both caption and image" negative means. List literals are parsed with :func:`ast.literal_eval` (data only,
never code).
"""

from __future__ import annotations

import ast
import csv
import io
import os
from pathlib import Path

from genemi.io import read_text
from genemi.manifest import Negative, Record

COLUMNS = ("title", "filepath", "neg_caption", "neg_image")


def _literal_list(text: str, kind: type, where: str) -> list:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"{where}: expected a list literal, got {text[:60]!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise ValueError(f"{where}: expected a list of {kind.__name__}, got {text[:60]!r}")
    return value


def negclip_records(path: str | os.PathLike, sep: str = "\t") -> list[Record]:
    """Records of a NegCLIP training/validation file, in file order (see the module docstring)."""
    path = Path(path)
    rows = list(csv.reader(io.StringIO(read_text(path), newline=""), delimiter=sep))  # non-UTF-8: file:line
    if not rows:
        raise ValueError(f"{path}: empty file; expected a header with {', '.join(COLUMNS)}")
    header = rows[0]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}: header {header} lacks {missing}; expected NegCLIP's {', '.join(COLUMNS)}")
    col = {c: header.index(c) for c in COLUMNS}
    body = rows[1:]
    titles = [r[col["title"]] for r in body]
    files = [r[col["filepath"]] for r in body]
    out = []
    for i, r in enumerate(body):
        where = f"{path}: line {i + 2}"
        if len(r) != len(header):
            raise ValueError(f"{where}: {len(r)} fields, the header has {len(header)}")
        negs = [Negative("neg_caption", caption=c) for c in _literal_list(r[col["neg_caption"]], str, where)]
        for j in _literal_list(r[col["neg_image"]], int, where):
            if not 0 <= j < len(body):
                raise ValueError(f"{where}: neg_image {j} is not a row of the file (0..{len(body) - 1})")
            negs.append(Negative("neg_image", caption=titles[j], image=files[j]))
        out.append(
            Record(
                id=f"negclip-{i}",
                image=files[i],
                caption=titles[i].strip(),
                split="train",
                source="negclip",
                negatives=tuple(negs),
            )
        )
    return out
