"""The small interfaces every image-negative backend implements.

The chain is tag -> ground -> segment -> edit -> score. The synthetic world's classic backend
(:mod:`genemi.synth.backend`) and the real models (Grounding DINO, SAM, Stable Diffusion
inpainting, BLIP ITM) implement the same methods, so the miner never knows which it drives.

Images are PIL RGB images; masks are ``[H, W]`` bool numpy arrays; boxes are pixel
``(x0, y0, x1, y1)`` floats in the image's own coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    score: float
    label: str


class Tagger(Protocol):
    def tag(self, image: Image.Image, caption: str | None = None) -> list[str]:
        """Object words present in the image (e.g. from the caption's nouns or a tagging model)."""


class Grounder(Protocol):
    def ground(self, image: Image.Image, phrase: str) -> list[Detection]:
        """Boxes for ``phrase``, best first, after thresholding and NMS."""


class Segmenter(Protocol):
    def segment(self, image: Image.Image, box: tuple[float, float, float, float]) -> np.ndarray:
        """``[H, W]`` bool mask of the object inside ``box``."""


class Editor(Protocol):
    def edit(self, image: Image.Image, mask: np.ndarray, prompt: str, seed: int) -> Image.Image:
        """Return a new image whose ``mask`` region shows ``prompt``; pixels outside stay."""


class Scorer(Protocol):
    def score(self, image: Image.Image, caption: str) -> float:
        """Image-text match score (higher = better match)."""
