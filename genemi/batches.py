"""Training batches from manifest records: positives plus each sample's hard negatives.

:class:`PairBank` holds every distinct image once (uint8, in memory) and every distinct
caption once (tokenised), with per-record index tables. A batch gathers rows from those
tables, so K negatives per sample cost K index lookups, not K file reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genemi.manifest import Record
from genemi.models import preprocess_array


@dataclass
class Batch:
    images: torch.Tensor  # [B, 3, H, W] float
    texts: torch.Tensor  # [B, L] long
    neg_texts: torch.Tensor | None  # [B, K, L] long
    neg_text_mask: torch.Tensor | None  # [B, K] bool
    neg_images: torch.Tensor | None  # [B, K, 3, H, W] float
    neg_image_mask: torch.Tensor | None  # [B, K] bool


def load_rgb(path: Path) -> np.ndarray:
    """HWC uint8 RGB; a missing or unreadable file raises naming it."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image not found") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read image: {e}") from e


@dataclass
class PairBank:
    images: torch.Tensor  # [M, H, W, 3] uint8
    tokens: torch.Tensor  # [U, L] long
    pos_image: torch.Tensor  # [N] long
    pos_text: torch.Tensor  # [N] long
    neg_text: torch.Tensor  # [N, Kmax] long, -1 = none
    neg_image: torch.Tensor  # [N, Kmax] long, -1 = none

    def __len__(self) -> int:
        return len(self.pos_image)

    @classmethod
    def from_records(
        cls,
        records: Sequence[Record],
        image_root: str | os.PathLike,
        tokenizer: Callable[[list[str]], torch.Tensor],
        types: Sequence[str] | None = None,
    ) -> PairBank:
        """Index ``records``; only negatives whose type is in ``types`` (all if None) are kept."""
        if not records:
            raise ValueError("no training records: the manifest is empty")
        root = Path(image_root)
        img_ids: dict[str, int] = {}
        txt_ids: dict[str, int] = {}

        def img(path: str) -> int:
            return img_ids.setdefault(path, len(img_ids))

        def txt(caption: str) -> int:
            return txt_ids.setdefault(caption, len(txt_ids))

        pos_i, pos_t, neg_t, neg_i = [], [], [], []
        for r in records:
            pos_i.append(img(r.image))
            pos_t.append(txt(r.caption))
            negs = [n for n in r.negatives if types is None or n.type in types]
            neg_t.append([txt(n.caption) if n.caption is not None else -1 for n in negs])
            neg_i.append([img(n.image) if n.image is not None else -1 for n in negs])
        kmax = max(1, max(len(x) for x in neg_t))

        def pad(rows):
            return torch.tensor([x + [-1] * (kmax - len(x)) for x in rows], dtype=torch.long)

        paths = sorted(img_ids, key=img_ids.get)
        arrays = [load_rgb(root / p) for p in paths]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"{root}: training images differ in size {sorted(shapes)[:3]}; resize them first")
        captions = sorted(txt_ids, key=txt_ids.get)
        return cls(
            images=torch.from_numpy(np.stack(arrays)),
            tokens=tokenizer(captions),
            pos_image=torch.tensor(pos_i),
            pos_text=torch.tensor(pos_t),
            neg_text=pad(neg_t),
            neg_image=pad(neg_i),
        )

    def batch(self, idx: torch.Tensor, k: int, generator: torch.Generator, image_negatives: bool) -> Batch:
        """Rows ``idx`` with up to ``k`` randomly chosen negatives each (k = 0: none)."""
        images = preprocess_array(self.images[self.pos_image[idx]])
        texts = self.tokens[self.pos_text[idx]]
        if k == 0:
            return Batch(images, texts, None, None, None, None)
        nt, ni = self.neg_text[idx], self.neg_image[idx]
        if nt.shape[1] < k:  # fewer negative slots than k: pad with empty ones
            fill = torch.full((len(idx), k - nt.shape[1]), -1, dtype=torch.long)
            nt, ni = torch.cat([nt, fill], 1), torch.cat([ni, fill], 1)
        valid = (nt >= 0) | (ni >= 0)
        # a random order of each row's valid negatives; empty slots sort last
        keys = torch.rand(nt.shape, generator=generator).masked_fill(~valid, 2.0)
        order = keys.argsort(dim=1)[:, :k]
        sel_t, sel_i = nt.gather(1, order), ni.gather(1, order)
        t_mask, i_mask = sel_t >= 0, sel_i >= 0
        neg_texts = self.tokens[sel_t.clamp(min=0)]
        neg_images = None
        if image_negatives:
            b = len(idx)
            flat = preprocess_array(self.images[sel_i.clamp(min=0).reshape(-1)])
            neg_images = flat.reshape(b, k, *flat.shape[1:])
        return Batch(images, texts, neg_texts, t_mask, neg_images, i_mask if image_negatives else None)


class EpochSampler:
    """Shuffled, drop-last batches of indices; epoch ``e``'s order depends only on (seed, e)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if batch_size > n:
            raise ValueError(f"batch size {batch_size} exceeds the {n} training records")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.n, generator=g)
        return perm[i * self.batch_size : (i + 1) * self.batch_size]
