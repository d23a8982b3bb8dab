"""The training bank: every distinct image and caption once, with per-record index tables.

:class:`PairBank` holds every distinct image once (uint8, in memory, for the fixed-size synthetic
world; or as files read per batch for real data) and every distinct caption once (tokenised). A batch
gathers rows from those tables, so K negatives per sample cost K index lookups, not K file reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genemi.images import read_image, read_rgb
from genemi.manifest import Record
from genemi.models import preprocess_array
from genemi.tables import RecordKeys, TableBuilder, Tables, tokenize


@dataclass
class Batch:
    images: torch.Tensor  # [B, 3, H, W] float
    texts: torch.Tensor  # [B, L] long
    neg_texts: torch.Tensor | None  # [B, K, L] long
    neg_text_mask: torch.Tensor | None  # [B, K] bool
    neg_images: torch.Tensor | None  # [B, K, 3, H, W] float
    neg_image_mask: torch.Tensor | None  # [B, K] bool
    # negative rows (batching.negative_rows): own[i, k] = the batch row whose caption and image
    # are row i's k-th hard negative, -1 = none; negatives are then rows, not extra inputs
    own: torch.Tensor | None = None  # [B, K] long
    own_images: bool = False  # the own rows' images are negatives too (loss.image_negatives)
    replay: Batch | None = None  # replayed pretraining pairs of the same step (loss.replay_weight)

    def pin_memory(self) -> Batch:
        """Page-locked copies (what a DataLoader with ``pin_memory=True`` calls)."""
        pinned = (torch.Tensor, Batch)
        return Batch(**{f: (v.pin_memory() if isinstance(v, pinned) else v) for f, v in vars(self).items()})

    def to(self, device: torch.device) -> Batch:
        """Every tensor on ``device`` (asynchronous copies from pinned memory on CUDA)."""
        if device.type == "cpu":
            return self
        moved = {
            f: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
            for f, v in vars(self).items()
        }
        if self.replay is not None:
            moved["replay"] = self.replay.to(device)
        return Batch(**moved)


class ImageFiles:
    """Images read from disk per batch and transformed: real data, whose sizes differ.

    ``transform`` maps a PIL RGB image to ``[3, H, W]`` float (open_clip's preprocess).
    """

    def __init__(self, root: Path, paths: Sequence[str], transform: Callable):
        self.root, self.paths, self.transform = root, paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def pixels(self, ids: torch.Tensor) -> torch.Tensor:
        """``[n, 3, H, W]`` float for image ids ``ids`` ``[n]``."""
        out = []
        for i in ids.tolist():
            out.append(self.transform(read_image(self.root / self.paths[i], what="a training image")))
        return torch.stack(out)


@dataclass
class PairBank:
    images: torch.Tensor | ImageFiles  # [M, H, W, 3] uint8 in memory, or files read per batch
    # [U, L] token ids: a long tensor, or a memory-mapped narrow array (genemi.tables) gathered as long
    tokens: torch.Tensor | np.ndarray
    pos_image: torch.Tensor  # [N] long
    pos_text: torch.Tensor  # [N] long
    neg_text: torch.Tensor  # [N, Kmax] long, -1 = none
    neg_image: torch.Tensor  # [N, Kmax] long, -1 = none
    keys: RecordKeys | None = None  # what GeNeMi's group samplers read (sources, groups, ITM scores)

    def __len__(self) -> int:
        return len(self.pos_image)

    @property
    def reads_files(self) -> bool:
        """Images are decoded from files per batch (real data), not held in memory."""
        return isinstance(self.images, ImageFiles)

    @classmethod
    def from_records(
        cls,
        records: Sequence[Record],
        image_root: str | os.PathLike,
        tokenizer: Callable[[list[str]], torch.Tensor],
        types: Sequence[str] | None = None,
        transform: Callable | None = None,
    ) -> PairBank:
        """Index ``records``; only negatives whose type is in ``types`` (all if None) are kept.

        ``transform`` None: every image is loaded once into memory (same size required, the
        synthetic world); else images are read per batch through ``transform`` (real data).
        """
        if not records:
            raise ValueError("no training records: the manifest is empty")
        b = TableBuilder(types=types)  # negatives of other types are left out, their captions untokenised
        for r in records:
            b.add(r)
        t = b.finish()
        negatives = t.negatives(types)
        return cls._assemble(t, negatives, tokenize(tokenizer, t.captions, records), image_root, transform)

    @classmethod
    def from_manifest(
        cls,
        path: str | os.PathLike,
        image_root: str | os.PathLike,
        tokenizer: Callable[[list[str]], torch.Tensor],
        types: Sequence[str] | None = None,
        transform: Callable | None = None,
        progress: bool = True,
        held_out: Sequence[str] = (),
    ) -> PairBank:
        """:meth:`from_records` over a manifest file, without a Python object per record.

        The tables and the tokenised captions are built once, streaming the manifest, into a cache folder
        beside it (:func:`genemi.bank_cache.cached_tables`: keyed by the manifest's sha256 and the tokenizer,
        written atomically under a lock, so the first of several ranks builds and the others wait) and
        memory-mapped from there: every rank on a node shares one copy through the page cache.
        """
        from genemi.bank_cache import cached_tables

        t = cached_tables(path, tokenizer, progress=progress, held_out=held_out)  # held-out splits: refused
        return cls._assemble(t, t.negatives(types), t.tokens, image_root, transform)

    @classmethod
    def _assemble(cls, t: Tables, negatives, tokens, image_root, transform) -> PairBank:
        root = Path(image_root)
        neg_text, neg_image = negatives
        tables = dict(
            tokens=tokens,
            pos_image=torch.from_numpy(t.pos_image),
            pos_text=torch.from_numpy(t.pos_text),
            neg_text=torch.from_numpy(neg_text),
            neg_image=torch.from_numpy(neg_image),
            keys=t.keys,
        )
        if transform is not None:
            return cls(images=ImageFiles(root, t.paths, transform), **tables)
        arrays = [read_rgb(root / t.paths[i], what="a training image") for i in range(len(t.paths))]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            first = arrays[0].shape  # name the first image that differs from the first one read
            i = next(i for i, a in enumerate(arrays) if a.shape != first)
            raise ValueError(
                f"{root / t.paths[i]}: training images differ in size: this one is {arrays[i].shape[1]}x"
                f"{arrays[i].shape[0]}, {root / t.paths[0]} is {first[1]}x{first[0]}; resize them first, or "
                "pass a transform (stages do for model.tokenizer=open_clip, i.e. real models)"
            )
        return cls(images=torch.from_numpy(np.stack(arrays)), **tables)

    def texts(self, ids: torch.Tensor) -> torch.Tensor:
        """``[n, L]`` long token ids of captions ``ids`` ``[n]`` (mapped: only those rows are read)."""
        if isinstance(self.tokens, torch.Tensor):
            return self.tokens[ids]
        return torch.from_numpy(self.tokens[ids.numpy()].astype(np.int64))

    def pixels(self, ids: torch.Tensor) -> torch.Tensor:
        """``[n, 3, H, W]`` float model input for image ids ``ids`` ``[n]``."""
        if isinstance(self.images, ImageFiles):
            return self.images.pixels(ids)
        return preprocess_array(self.images[ids])

    def _draw(self, idx: torch.Tensor, k: int, generator: torch.Generator, pairs_only: bool):
        """Up to ``k`` qualifying negatives per row, in random order: ``(text_ids, image_ids)``, -1 = none."""
        nt, ni = self.neg_text[idx], self.neg_image[idx]
        if nt.shape[1] < k:  # fewer negative slots than k: pad with empty ones
            pad = torch.full((len(idx), k - nt.shape[1]), -1, dtype=torch.long)
            nt, ni = torch.cat([nt, pad], 1), torch.cat([ni, pad], 1)
        valid = (nt >= 0) & (ni >= 0) if pairs_only else (nt >= 0) | (ni >= 0)
        # a random order of each row's qualifying negatives; the others sort last and read as none
        keys = torch.rand(nt.shape, generator=generator).masked_fill(~valid, 2.0)
        order = keys.argsort(dim=1)[:, :k]
        none = ~valid.gather(1, order)
        return nt.gather(1, order).masked_fill(none, -1), ni.gather(1, order).masked_fill(none, -1)

    def choose_negatives(self, idx: torch.Tensor, k: int, generator: torch.Generator):
        """``(text_ids, image_ids)`` ``[len(idx), k]`` long: up to ``k`` random negatives per row, -1 = none.

        Drawn for a whole global micro-batch at once, so the choice does not depend on how
        the rows are split over ranks.
        """
        return self._draw(idx, k, generator, pairs_only=False)

    def gather(
        self, idx: torch.Tensor, sel_t: torch.Tensor | None, sel_i: torch.Tensor | None, image_negatives: bool
    ) -> Batch:
        """The batch of rows ``idx`` with the chosen negatives (``sel_t is None``: none)."""
        images = self.pixels(self.pos_image[idx])
        texts = self.texts(self.pos_text[idx])
        if sel_t is None:
            return Batch(images, texts, None, None, None, None)
        t_mask, i_mask = sel_t >= 0, sel_i >= 0
        neg_texts = self.texts(sel_t.clamp(min=0))
        neg_images = None
        if image_negatives:
            b, k = sel_i.shape
            flat = self.pixels(sel_i.clamp(min=0).reshape(-1))
            neg_images = flat.reshape(b, k, *flat.shape[1:])
        return Batch(images, texts, neg_texts, t_mask, neg_images, i_mask if image_negatives else None)

    def has_negative_pairs(self) -> bool:
        """Whether any negative has both a caption and an edited image (what negative rows need)."""
        return bool(((self.neg_text >= 0) & (self.neg_image >= 0)).any())

    def choose_negative_rows(self, idx: torch.Tensor, k: int, generator: torch.Generator):
        """``(text_ids, image_ids, fill)`` ``[len(idx), k]`` for :meth:`gather_negative_rows`.

        Only negatives with both a caption and an edited image qualify: the pair (edited image,
        negative caption) is a true pair of its own. ``fill`` holds a random record per slot,
        used where a record has fewer than ``k`` such negatives so every step has the same rows.
        """
        sel_t, sel_i = self._draw(idx, k, generator, pairs_only=True)
        fill = torch.randint(len(self), (len(idx), k), generator=generator)
        return sel_t, sel_i, fill

    def gather_negative_rows(
        self,
        idx: torch.Tensor,
        sel_t: torch.Tensor,
        sel_i: torch.Tensor,
        fill: torch.Tensor,
        image_negatives: bool,
    ) -> Batch:
        """Records ``idx`` (``m`` rows) followed by their ``m*k`` negatives as rows of their own.

        Row ``m + i*k + j`` is record ``i``'s ``j``-th negative (edited image, negative caption);
        record ``i`` and that row are each other's hard negative (``Batch.own``), caption side and,
        with ``image_negatives``, image side. Both also train as true pairs of the CLIP term, so a
        sample's negatives cost no encoding beyond the batch itself (GeNeMi's all-in-one batches).
        A slot without a qualifying negative holds the random record ``fill`` instead, with no
        own negative.
        """
        m, k = sel_t.shape
        valid = sel_t >= 0
        row_img = torch.where(valid, sel_i, self.pos_image[fill]).reshape(-1)
        row_txt = torch.where(valid, sel_t, self.pos_text[fill]).reshape(-1)
        images = self.pixels(torch.cat([self.pos_image[idx], row_img]))
        texts = self.texts(torch.cat([self.pos_text[idx], row_txt]))
        own = torch.full((m * (k + 1), k), -1, dtype=torch.long)
        slots = m + torch.arange(m * k).reshape(m, k)
        own[:m] = slots.masked_fill(~valid, -1)
        origin = torch.arange(m)[:, None].expand(m, k)
        own[m:, 0] = origin.masked_fill(~valid, -1).reshape(-1)
        return Batch(images, texts, None, None, None, None, own=own, own_images=image_negatives)

    def batch(self, idx: torch.Tensor, k: int, generator: torch.Generator, image_negatives: bool) -> Batch:
        """Rows ``idx`` with up to ``k`` randomly chosen negatives each (k = 0: none)."""
        if k == 0:
            return self.gather(idx, None, None, image_negatives)
        return self.gather(idx, *self.choose_negatives(idx, k, generator), image_negatives)

