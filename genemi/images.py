"""The one image reader of every path: synthetic, real training, evaluation, mining.

PIL opens lazily: ``Image.open`` reads the header only, and a truncated or corrupt body
fails later, inside whatever first touches the pixels, with a message naming no file. Here
the whole image is decoded inside the ``try``, so every failure (missing file, truncated
data, unidentified format, any other ``OSError``) becomes one :class:`ImageError` that names
the file and what refers to it (``what``: the record, benchmark or manifest line).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image


class ImageError(ValueError):
    """An image cannot be read; the message names the file, who refers to it and what to do."""


class ImageNotFound(ImageError, FileNotFoundError):
    """The referenced image file does not exist."""


def _decode(opener, label: str, what: str) -> Image.Image:
    ref = f" ({what})" if what else ""
    try:
        with opener() as im:
            im.load()  # force the full decode here: a truncated body fails now, not in a later convert
            return im.convert("RGB")
    except FileNotFoundError:
        raise ImageNotFound(f"{label}: image not found{ref}; fix the path or the image root") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{label}: image too large to decode{ref}: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL raises all three for corrupt data
        why = str(e) or type(e).__name__
        raise ImageError(
            f"{label}: cannot decode image{ref}: {why}; replace the file (re-download or regenerate it)"
        ) from None


def read_image(path: str | os.PathLike, *, what: str = "") -> Image.Image:
    """The image at ``path`` fully decoded, as PIL RGB. ``what`` names the referrer in errors."""
    path = Path(path)
    return _decode(lambda: Image.open(path), str(path), what)


def read_image_bytes(data: bytes, *, label: str, what: str = "") -> Image.Image:
    """An encoded image held in memory (e.g. a parquet cell) as PIL RGB; ``label`` stands for the file."""
    return _decode(lambda: Image.open(io.BytesIO(data)), label, what)


def read_rgb(path: str | os.PathLike, *, what: str = "") -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB of the image at ``path`` (see :func:`read_image`)."""
    return np.asarray(read_image(path, what=what))
