"""The synthetic world's classic image-edit backend.

Implements :class:`genemi.mining.interfaces.Segmenter` and :class:`~genemi.mining.interfaces.Editor`
with plain pixel operations, so the synthetic negatives travel the same segment -> edit path
that Grounding DINO, SAM and Stable Diffusion inpainting take on real images.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from genemi.synth import world


def _as_array(image: Image.Image | np.ndarray) -> np.ndarray:
    return np.array(image.convert("RGB")) if isinstance(image, Image.Image) else np.array(image)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight end-exclusive box (x0, y0, x1, y1) of a non-empty ``[H, W]`` bool mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("empty mask: nothing to edit")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def box_mask(box: tuple[float, float, float, float], size: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` bool mask that is true inside ``box`` (clipped to the image)."""
    h, w = size
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    m = np.zeros((h, w), dtype=bool)
    m[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)] = True
    return m


class PixelSegmenter:
    """Segments the non-background pixels inside a box (the synthetic background is flat)."""

    def __init__(self, background: tuple[int, int, int] = world.BACKGROUND):
        self.background = np.array(background, dtype=np.uint8)

    def segment(self, image, box) -> np.ndarray:
        arr = _as_array(image)
        region = box_mask(box, arr.shape[:2])
        return region & np.any(arr != self.background, axis=-1)


class ShapePainter:
    """Erases the mask to background and paints the prompt ("<colour> <shape>") in its box.

    An empty prompt only erases. Pixels outside ``mask`` never change, like an inpainter
    that honours its mask; the new shape is clipped to the mask. ``layout`` is the world's
    (:data:`genemi.synth.world.LAYOUTS`): in ``swatch`` the box holds the shape on top and its swatch below.
    """

    def __init__(self, background: tuple[int, int, int] = world.BACKGROUND, layout: str = "fill"):
        if layout not in world.LAYOUTS:
            raise ValueError(f"unknown colour layout {layout!r}; known: {', '.join(world.LAYOUTS)}")
        self.background = background
        self.layout = layout

    def edit(self, image, mask: np.ndarray, prompt: str, seed: int = 0) -> Image.Image:
        arr = _as_array(image).copy()
        if mask.shape != arr.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image {arr.shape[:2]}")
        arr[mask] = self.background
        words = prompt.split()
        if words:
            if len(words) != 2:
                raise ValueError(f"prompt {prompt!r}: expected '<colour> <shape>'")
            x0, y0, x1, y1 = mask_box(mask)
            half = (x1 - x0 - 1) // 2
            cy = (y0 + y1 - 1) // 2 if self.layout == "fill" else y0 + half  # swatch: the shape is on top
            layer = arr.copy()
            world.paint_object(layer, words[0], words[1], (x0 + x1 - 1) // 2, cy, half, self.layout)
            arr[mask] = layer[mask]
        return Image.fromarray(arr)
