"""`Clip`: the one door to a CLIP model -- architecture, weights, tokenizer, image transform, device.

Training, the training-time monitor, evaluation and mining all hold a :class:`Clip`, so the
preprocessing a model is trained with is, by construction, the one it is evaluated with.

Two image pipelines exist, and this module alone decides between them:

* the synthetic world's models (``model.tokenizer: word``) read fixed-size uint8 arrays, scaled to
  [-1, 1] (:func:`genemi.models.preprocess_array`): a training bank then decodes every image once,
  into memory;
* every other model reads images through open_clip's eval preprocessing built from the model's own
  ``preprocess_cfg`` (resize shortest side, centre crop, normalise): what GeNeMi (``clip.load``) and the
  thesis (``CLIPProcessor``) trained with. There is no train-time augmentation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genemi.config import ModelParams
from genemi.models import build_model, load_weights, make_tokenizer, preprocess_array, save_weights


def array_transform(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> ``[3, H, W]`` float in [-1, 1] (the synthetic world's preprocessing)."""
    return preprocess_array(np.asarray(image.convert("RGB"))[None])[0]


@dataclass(frozen=True)
class ArrayTransform:
    """:func:`array_transform` at the model's input ``size``: an image of another size (a bring-your-own
    benchmark, a 1x1 file) is first resized as open_clip's eval preprocessing does (shortest side to
    ``size``, bicubic, centre crop), as a real model's would be; one of the model's size is untouched.
    Equal instances compare equal, so models that share it decode each image once."""

    size: int

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if image.size != (self.size, self.size):
            w, h = image.size
            if min(w, h) < 1:
                raise ValueError(f"the image is {w}x{h} pixels: nothing to resize")
            # torchvision's Resize(size) and CenterCrop(size) arithmetic, which open_clip's eval uses
            rw, rh = (self.size, int(self.size * h / w)) if w <= h else (int(self.size * w / h), self.size)
            image = image.convert("RGB").resize((rw, rh), Image.Resampling.BICUBIC)
            left, top = int(round((rw - self.size) / 2.0)), int(round((rh - self.size) / 2.0))
            image = image.crop((left, top, left + self.size, top + self.size))
        return array_transform(image)


def image_transform(model: torch.nn.Module, p: ModelParams) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB -> ``[3, H, W]`` float model input of ``model``; the only preprocessing builder."""
    if uses_arrays(p):
        size = model.visual.image_size
        return ArrayTransform(int(size[0] if isinstance(size, (tuple, list)) else size))
    from open_clip.transform import PreprocessCfg, image_transform_v2

    cfg = dict(getattr(model.visual, "preprocess_cfg", None) or {})
    cfg.setdefault("size", model.visual.image_size)
    return image_transform_v2(PreprocessCfg(**cfg), is_train=False)


def uses_arrays(p: ModelParams) -> bool:
    """Whether the model reads fixed-size uint8 arrays (the synthetic world), not open_clip's preprocess."""
    return p.tokenizer == "word"


class Clip:
    """One CLIP: ``module`` (an open_clip model), ``tokenizer``, ``transform`` (PIL -> ``[3, H, W]``),
    on ``device``. ``encode_*`` are batched, no-grad and return L2-normalised ``[N, D]`` float32 on the CPU;
    a bf16/fp16 module gets its inputs in its own dtype."""

    def __init__(self, module: torch.nn.Module, params: ModelParams, device: str | torch.device = "cpu",
                 batch_size: int = 256, meta: dict | None = None, tokenizer=None, transform=None):
        """``tokenizer`` / ``transform``: given by a model that brings its own (a transformers CLIPModel
        folder, :mod:`genemi.zoo`); by default built from ``params`` and ``module``."""
        self.params = params
        self.module = module.to(device)
        self.tokenizer = tokenizer if tokenizer is not None else make_tokenizer(params)
        self.transform = transform if transform is not None else image_transform(module, params)
        self.batch_size = batch_size
        self.meta = meta or {}

    @classmethod
    def from_params(cls, p: ModelParams, weights: str | Path | None = None, device: str | torch.device = "cpu",
                    batch_size: int = 256, what: str = "") -> Clip:
        """``p.arch`` with random init (from the global torch RNG), then ``weights`` (safetensors) if given;
        ``what`` names where they came from in errors (default: the running stage's option for the path)."""
        module = build_model(p)
        expect = {"arch": p.arch, "tokenizer": p.tokenizer}
        meta = load_weights(module, weights, what, expect) if weights is not None else {}
        return cls(module, p, device, batch_size, meta)

    @property
    def device(self) -> torch.device:
        """Where the module is now: a DeepSpeed engine may have moved it (``cuda:LOCAL_RANK``) after this
        wrapper was built, and the monitor must follow it there."""
        return next(self.module.parameters()).device

    @property
    def fixed_size(self) -> bool:
        """Images are fixed-size arrays decoded once into memory (see the module docstring)."""
        return uses_arrays(self.params)

    def save(self, path: str | Path, meta: dict) -> None:
        save_weights(self.module, path, meta)

    def _run(self, fn, items: Sequence, prep) -> torch.Tensor:
        dtype, device = next(self.module.parameters()).dtype, self.device
        was_training = self.module.training
        self.module.eval()
        out = []
        try:
            with torch.no_grad():
                for i in range(0, len(items), self.batch_size):
                    x = prep(items[i : i + self.batch_size]).to(device, non_blocking=True)
                    if x.is_floating_point():
                        x = x.to(dtype)
                    out.append(torch.nn.functional.normalize(fn(x).float(), dim=-1).cpu())
        finally:
            self.module.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, 0)

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` float model input (already transformed) -> ``[N, D]``."""
        return self._run(self.module.encode_image, pixels, lambda b: b)

    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL RGB images -> ``[N, D]``."""
        return self._run(self.module.encode_image, list(images),
                         lambda b: torch.stack([self.transform(im) for im in b]))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Captions -> ``[N, D]``."""
        return self._run(self.module.encode_text, list(texts), lambda b: self.tokenizer(list(b)))
