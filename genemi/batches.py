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

from genemi.images import read_image, read_rgb
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
    # negative rows (batching.negative_rows): own[i, k] = the batch row whose caption and image
    # are row i's k-th hard negative, -1 = none; negatives are then rows, not extra inputs
    own: torch.Tensor | None = None  # [B, K] long
    own_images: bool = False  # the own rows' images are negatives too (loss.image_negatives)


def load_rgb(path: Path) -> np.ndarray:
    """HWC uint8 RGB; a missing or unreadable file raises naming it."""
    return read_rgb(path, what="a training image")


class ImageFiles:
    """Images read from disk per batch and transformed: real data, whose sizes differ.

    ``transform`` maps a PIL RGB image to ``[3, H, W]`` float (open_clip's preprocess).
    """

    def __init__(self, root: Path, paths: list[str], transform: Callable):
        self.root, self.paths, self.transform = root, paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def pixels(self, ids: torch.Tensor) -> torch.Tensor:
        """``[n, 3, H, W]`` float for image ids ``ids`` ``[n]``."""
        out = []
        for i in ids.tolist():
            out.append(self.transform(read_image(self.root / self.paths[i], what="a training image")))
        return torch.stack(out)


def _tokenize(tokenizer: Callable, captions: list[str], records: Sequence[Record]) -> torch.Tensor:
    """``tokenizer(captions)``; a caption it refuses (e.g. a word outside the synthetic vocabulary) is
    reported with the first record that uses it, so the manifest row can be found."""
    try:
        return tokenizer(captions)
    except ValueError as e:
        for r in records:
            for c in (r.caption, *(n.caption for n in r.negatives if n.caption is not None)):
                try:
                    tokenizer([c])
                except ValueError:
                    raise ValueError(f"record {r.id!r}: {e}") from None
        raise


def model_transform(model: torch.nn.Module) -> Callable:
    """open_clip's evaluation preprocess of ``model``: PIL RGB -> ``[3, H, W]`` float.

    Resize (shortest side), centre crop, normalise with the model's mean/std -- what GeNeMi
    (``clip.load`` preprocess) and the thesis (``CLIPProcessor``) trained with; no augmentation.
    """
    from open_clip.transform import PreprocessCfg, image_transform_v2

    return image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)


@dataclass
class PairBank:
    images: torch.Tensor | ImageFiles  # [M, H, W, 3] uint8 in memory, or files read per batch
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
        transform: Callable | None = None,
    ) -> PairBank:
        """Index ``records``; only negatives whose type is in ``types`` (all if None) are kept.

        ``transform`` None: every image is loaded once into memory (same size required, the
        synthetic world); else images are read per batch through ``transform`` (real data).
        """
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
        if types is not None:
            seen = {n.type for r in records for n in r.negatives}
            if missing := sorted(set(types) - seen):
                raise ValueError(
                    f"loss.negative_types: no training negative has type {missing}; "
                    f"the manifest has {sorted(seen)}"
                )
        kmax = max(1, max(len(x) for x in neg_t))

        def pad(rows):
            return torch.tensor([x + [-1] * (kmax - len(x)) for x in rows], dtype=torch.long)

        paths = sorted(img_ids, key=img_ids.get)
        captions = sorted(txt_ids, key=txt_ids.get)
        tables = dict(
            tokens=_tokenize(tokenizer, captions, records),
            pos_image=torch.tensor(pos_i),
            pos_text=torch.tensor(pos_t),
            neg_text=pad(neg_t),
            neg_image=pad(neg_i),
        )
        if transform is not None:
            return cls(images=ImageFiles(root, paths, transform), **tables)
        arrays = [load_rgb(root / p) for p in paths]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ValueError(
                f"{root}: training images differ in size {sorted(shapes)[:3]}; resize them first, "
                "or pass a transform (stages do for model.tokenizer=open_clip, i.e. real models)"
            )
        return cls(images=torch.from_numpy(np.stack(arrays)), **tables)

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
        texts = self.tokens[self.pos_text[idx]]
        if sel_t is None:
            return Batch(images, texts, None, None, None, None)
        t_mask, i_mask = sel_t >= 0, sel_i >= 0
        neg_texts = self.tokens[sel_t.clamp(min=0)]
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
        texts = self.tokens[torch.cat([self.pos_text[idx], row_txt])]
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


def records_per_step(batch_size: int, splits: int, k: int, negative_rows: bool) -> int:
    """Records a sampler draws per optimizer step of ``batch_size`` rows.

    ``splits`` = ranks x accumulation steps. With negative rows each record brings ``k`` rows
    of negatives, so ``batch_size`` must split into ``splits`` micro-batches of ``1+k``-row groups.
    """
    per = 1 + k if negative_rows and k > 0 else 1
    if batch_size % (splits * per):
        raise ValueError(
            f"batch_size {batch_size} must be divisible by ranks x grad_accum ({splits})"
            + (
                f" x (1 + loss.negatives_per_sample) = {splits * per} with batching.negative_rows"
                if per > 1
                else ""
            )
        )
    return batch_size // per


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


def _step_rng(seed: int, step: int, salt: int) -> np.random.Generator:
    return np.random.default_rng((seed, step, salt))


def dedupe_images(idx: torch.Tensor, pos_image: torch.Tensor, seed: int, step: int) -> torch.Tensor:
    """Replace rows whose image already occurs earlier in ``idx`` by random rows with new images.

    The thesis's ``deduplicate_and_refill``: one image has many captions (HNC: ~120), and a
    duplicate would turn a true pair into an in-batch "negative". Keeps the batch size; raises
    when there are fewer distinct images than rows.
    """
    images = pos_image[idx].tolist()
    if len(set(images)) == len(images):
        return idx
    if len(set(pos_image.tolist())) < len(images):
        raise ValueError(
            f"dedupe_images: batch of {len(images)} but only "
            f"{len(set(pos_image.tolist()))} distinct training images"
        )
    rng = _step_rng(seed, step, 2)
    out, seen = idx.tolist(), set()
    candidates = iter(rng.permutation(len(pos_image)).tolist())
    for r, im in enumerate(images):
        if im in seen:
            for c in candidates:
                if int(pos_image[c]) not in seen:
                    out[r], im = c, int(pos_image[c])
                    break
        seen.add(im)
    return torch.tensor(out, dtype=torch.long)


class GroupSampler:
    """GeNeMi batches: variations of one group together, mixed with regular pairs.

    Groups (``allinone``: each record; ``item_based``: ``Record.group``, i.e. origin image and
    object; ``image_based``: the origin image, ``meta["origin_name"]`` or ``group`` up to the
    last ``:``) are shuffled per epoch; a step takes ``G = batch_size // (v + r)`` groups. From
    a group with more than ``v`` variations, ``v`` are drawn without replacement with
    ``p ~ m - min(m) + eps`` (``m`` = mean ``meta["itm_score"]``; uniform without scores);
    smaller groups give all of theirs. The rest of the batch is regular pairs (records whose
    ``source`` is in ``regular_sources``; if there are none, records outside the chosen
    groups), drawn without replacement. Step ``s``'s batch depends only on ``(seed, s)``.
    """

    def __init__(self, records: Sequence[Record], batching, batch_size: int, seed: int):
        self.batch_size, self.seed = batch_size, seed
        self.v, self.eps = batching.variations_per_group, batching.score_eps
        regular, keys = [], {}
        for i, r in enumerate(records):
            if r.source in batching.regular_sources:
                regular.append(i)
                continue
            if batching.mode == "allinone":
                key = r.id
            elif batching.mode == "item_based":
                key = r.group
            else:
                key = r.meta.get("origin_name") or r.group.rsplit(":", 1)[0]
            keys.setdefault(key, []).append(i)
        if not keys:
            raise ValueError(
                f"batching.mode={batching.mode}: every record is a regular pair "
                f"(source in {list(batching.regular_sources)}); no variations to group"
            )
        self.groups = [np.array(keys[k]) for k in sorted(keys)]
        self.scores = [
            np.array([float(np.mean(records[i].meta.get("itm_score", 0.0))) for i in g]) for g in self.groups
        ]
        self.regular = np.array(regular, dtype=np.int64)
        self.n = len(records)
        self.per_step = max(1, batch_size // (self.v + batching.regular_per_group))
        if self.per_step > len(self.groups):
            raise ValueError(
                f"batch of {batch_size} needs {self.per_step} groups per step, "
                f"but there are only {len(self.groups)}"
            )
        if batch_size > self.n:
            raise ValueError(f"batch size {batch_size} exceeds the {self.n} training records")
        self.per_epoch = len(self.groups) // self.per_step

    def indices(self, step: int) -> torch.Tensor:
        """``[batch_size]`` long record indices of optimizer step ``step``."""
        epoch, i = divmod(step, self.per_epoch)
        order = _step_rng(self.seed, epoch, 0).permutation(len(self.groups))
        rng = _step_rng(self.seed, step, 1)
        rows: list[int] = []
        for g in order[i * self.per_step : (i + 1) * self.per_step]:
            members, m = self.groups[g], self.scores[g]
            if len(members) <= self.v:
                rows += members.tolist()
            else:
                p = m - m.min() + self.eps
                rows += rng.choice(members, size=self.v, replace=False, p=p / p.sum()).tolist()
        rows = rows[: self.batch_size]
        need = self.batch_size - len(rows)
        pool = self.regular
        if len(pool) < need:  # no (or too few) regular pairs: fill with other records
            taken = set(rows)
            pool = np.array([j for j in range(self.n) if j not in taken], dtype=np.int64)
        rows += rng.choice(pool, size=need, replace=False).tolist()
        return torch.tensor(rows, dtype=torch.long)


def add_regular(records: list[Record], image_root, regular: Sequence[Record], regular_root) -> list[Record]:
    """``records`` plus the ``regular`` pairs (GeNeMi's COCO mixing), re-rooted under ``image_root``.

    Regular pairs keep their ``source`` (e.g. ``coco``), which ``batching.regular_sources``
    matches. Their image paths become relative to ``image_root`` (``../``), so one bank reads both.
    """
    import dataclasses

    def move(path: str) -> str:
        return os.path.relpath(Path(regular_root) / path, image_root)

    moved = [
        dataclasses.replace(
            r,
            image=move(r.image),
            group=move(r.group) if r.group == r.image else r.group,
            negatives=tuple(
                dataclasses.replace(n, image=move(n.image)) if n.image else n for n in r.negatives
            ),
        )
        for r in regular
    ]
    return list(records) + moved


class DedupedSampler:
    """Wraps a sampler; each step's indices go through :func:`dedupe_images`."""

    def __init__(self, sampler, pos_image: torch.Tensor, seed: int):
        self.sampler, self.pos_image, self.seed = sampler, pos_image, seed

    def indices(self, step: int) -> torch.Tensor:
        return dedupe_images(self.sampler.indices(step), self.pos_image, self.seed, step)


def make_sampler(
    records: Sequence[Record], batching, batch_size: int, seed: int, pos_image: torch.Tensor | None = None
):
    """The sampler of ``batching.mode`` (``records``: :class:`EpochSampler`, today's default).

    ``pos_image`` (``PairBank.pos_image``) is needed with ``batching.dedupe_images``.
    """
    if batching.mode == "records":
        sampler = EpochSampler(len(records), batch_size, seed)
    else:
        sampler = GroupSampler(records, batching, batch_size, seed)
    if batching.dedupe_images:
        if pos_image is None:
            raise ValueError("batching.dedupe_images needs the bank's pos_image table")
        sampler = DedupedSampler(sampler, pos_image, seed)
    return sampler
