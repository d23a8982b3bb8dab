"""Which records train at each optimizer step: a uniform shuffle or GeNeMi's groups, optionally deduped.

A sampler's ``indices(step)`` depends only on ``(seed, step)``: a resumed or re-sharded run draws the
same rows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from genemi import seeding
from genemi.manifest import Record
from genemi.tables import RecordKeys


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
    """Shuffled, drop-last batches of indices; epoch ``e``'s order depends only on (seed, stream, e).

    ``stream`` names the random stream, so that two samplers of one run (the training pairs and the replayed
    ones) draw independent orders."""

    def __init__(self, n: int, batch_size: int, seed: int, stream: str = "epoch"):
        if batch_size > n:
            raise ValueError(f"batch size {batch_size} exceeds the {n} training records")
        self.n, self.batch_size, self.seed, self.stream = n, batch_size, seed, stream
        self.per_epoch = n // batch_size
        self._epoch: tuple[int, torch.Tensor] | None = None  # the last epoch's order: one shuffle per epoch

    def order(self, epoch: int) -> torch.Tensor:
        """``[n]`` long: the shuffled rows of ``epoch``."""
        if self._epoch is None or self._epoch[0] != epoch:
            g = seeding.torch_generator(self.seed, self.stream, epoch)
            self._epoch = (epoch, torch.randperm(self.n, generator=g))
        return self._epoch[1]

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        return self.order(epoch)[i * self.batch_size : (i + 1) * self.batch_size].clone()


class SampleSampler:
    """:class:`EpochSampler` batches over one fixed random sample of ``size`` of ``n`` rows: a run that may
    keep only part of a data set (``loss.replay_pairs``). The sample depends only on (seed, stream, n,
    size)."""

    def __init__(self, n: int, size: int, batch_size: int, seed: int, stream: str):
        if not 0 < size <= n:
            raise ValueError(f"a sample of {size} rows out of {n}: it must hold 1 to {n}")
        g = seeding.torch_generator(seed, stream, "sample")
        self.rows = torch.randperm(n, generator=g)[:size].sort().values
        self.epochs = EpochSampler(size, batch_size, seed, stream)

    def indices(self, step: int) -> torch.Tensor:
        return self.rows[self.epochs.indices(step)]


REFILL_DRAWS = 256  # candidate rows drawn at a time while refilling a batch
REFILL_TRIES = 64  # draws of REFILL_DRAWS in one refill before choosing from the list of allowed rows


def dedupe_images(idx: torch.Tensor, pos_image: torch.Tensor, seed: int, step: int,
                  distinct: int | None = None) -> torch.Tensor:
    """Replace rows whose image already occurs earlier in ``idx`` by random rows with new images.

    The thesis's ``deduplicate_and_refill``: one image has many captions (HNC: ~120), and a
    duplicate would turn a true pair into an in-batch "negative". Keeps the batch size; raises
    when there are fewer distinct images than rows (``distinct``: their number, counted here if None).

    Each refill is uniform over the rows whose image the batch does not hold yet, as the thesis's walk
    through a shuffled list of every row gives it, at a cost that does not grow with the number of rows:
    candidates are drawn uniformly with replacement by the generator of ``(seed, "dedupe", step)``,
    :data:`REFILL_DRAWS` at a time, and the first whose image is new is taken (a rejected candidate's
    image is in the batch, so it stays rejected). After :data:`REFILL_TRIES` draws without one (few
    allowed rows left), the refill is drawn from the list of allowed rows itself.
    """
    pos = pos_image.numpy()
    images = pos[idx.numpy()].tolist()
    if len(set(images)) == len(images):
        return idx
    if distinct is None:
        distinct = distinct_images(pos_image)
    if distinct < len(images):
        raise ValueError(
            f"dedupe_images: batch of {len(images)} but only {distinct} distinct training images"
        )
    rng = seeding.rng(seed, "dedupe", step)
    out, seen = idx.tolist(), set()
    drawn: list[tuple[int, int]] = []  # (row, image) pairs drawn and not looked at yet, the next one last
    for r, im in enumerate(images):
        if im in seen:
            out[r], im = _refill(pos, seen, rng, drawn)
        seen.add(im)
    return torch.tensor(out, dtype=torch.long)


def _refill(
    pos: np.ndarray, seen: set[int], rng: np.random.Generator, drawn: list[tuple[int, int]]
) -> tuple[int, int]:
    """``(row, image)``: the next drawn row whose image is not in ``seen`` (:func:`dedupe_images`)."""
    tries = 0
    while True:
        while drawn:
            row, im = drawn.pop()
            if im not in seen:
                return row, im
        if tries == REFILL_TRIES:
            break
        rows = rng.integers(len(pos), size=REFILL_DRAWS)
        drawn[:] = zip(rows.tolist()[::-1], pos[rows].tolist()[::-1], strict=True)
        tries += 1
    allowed = np.flatnonzero(~np.isin(pos, list(seen)))  # few rows with new images: choose among them
    row = int(allowed[rng.integers(len(allowed))])
    return row, int(pos[row])


def distinct_images(pos_image: torch.Tensor) -> int:
    """How many distinct images ``pos_image`` ``[N]`` names."""
    return len(torch.unique(pos_image))


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

    ``records``: the records, or their :class:`~genemi.tables.RecordKeys` (a bank built from a manifest
    file). Groups are held as one array of record indices sorted by group, with group offsets.
    """

    def __init__(self, records: Sequence[Record] | RecordKeys, batching, batch_size: int, seed: int):
        self.batch_size, self.seed = batch_size, seed
        self.v, self.eps = batching.variations_per_group, batching.score_eps
        keys = records if isinstance(records, RecordKeys) else RecordKeys.from_records(records)
        codes = [i for i, s in enumerate(keys.sources) if s in batching.regular_sources]
        regular = np.isin(keys.source, codes)
        rest = np.flatnonzero(~regular)
        if not len(rest):
            raise ValueError(
                f"batching.mode={batching.mode}: every record is a regular pair "
                f"(source in {list(batching.regular_sources)}); no variations to group"
            )
        rank = keys.key_rank(batching.mode)[rest]
        by_group = np.argsort(rank, kind="stable")  # groups in sorted key order, members in record order
        self.members = rest[by_group]  # [n_variations] int64
        rank = rank[by_group]
        starts = np.flatnonzero(np.r_[True, rank[1:] != rank[:-1]])
        self.offsets = np.r_[starts, len(rank)]  # group g = members[offsets[g] : offsets[g + 1]]
        self.scores = np.asarray(keys.itm, np.float64)[self.members]
        self.regular = np.flatnonzero(regular).astype(np.int64)
        self.n = len(keys)
        self.groups = len(starts)
        self.per_step = max(1, batch_size // (self.v + batching.regular_per_group))
        if self.per_step > self.groups:
            raise ValueError(
                f"batch of {batch_size} needs {self.per_step} groups per step, "
                f"but there are only {self.groups}"
            )
        if batch_size > self.n:
            raise ValueError(f"batch size {batch_size} exceeds the {self.n} training records")
        self.per_epoch = self.groups // self.per_step
        self._epoch: tuple[int, np.ndarray] | None = None  # the last epoch's group order

    def indices(self, step: int) -> torch.Tensor:
        """``[batch_size]`` long record indices of optimizer step ``step``."""
        epoch, i = divmod(step, self.per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, seeding.rng(self.seed, "group_order", epoch).permutation(self.groups))
        order = self._epoch[1]
        rng = seeding.rng(self.seed, "group_draw", step)
        rows: list[int] = []
        for g in order[i * self.per_step : (i + 1) * self.per_step]:
            a, b = self.offsets[g], self.offsets[g + 1]
            members, m = self.members[a:b], self.scores[a:b]
            if len(members) <= self.v:
                rows += members.tolist()
            else:
                p = m - m.min() + self.eps
                rows += rng.choice(members, size=self.v, replace=False, p=p / p.sum()).tolist()
        rows = rows[: self.batch_size]
        need = self.batch_size - len(rows)
        pool = self.regular
        if len(pool) < need:  # no (or too few) regular pairs: fill with other records
            free = np.ones(self.n, bool)
            free[rows] = False
            pool = np.flatnonzero(free).astype(np.int64)
        rows += rng.choice(pool, size=need, replace=False).tolist()
        return torch.tensor(rows, dtype=torch.long)


def add_regular(
    records: list[Record], image_root, regular: Sequence[Record], regular_root
) -> tuple[list[Record], Path]:
    """``(records + the regular pairs, root)`` (GeNeMi's COCO mixing), both re-rooted under ``root``, the
    deepest folder holding ``image_root`` and ``regular_root``, so one bank reads both.

    Image paths gain a prefix (``images/...``, ``raw/coco/images/...``), never ``..``: an image root may be
    a folder that exists only as its zip (``data/mine_real/images`` read from ``images.zip``,
    :mod:`genemi.images`), and the OS cannot climb out of a folder that is not there. Regular pairs keep
    their ``source`` (e.g. ``coco``), which ``batching.regular_sources`` matches.
    """
    import dataclasses

    a, b = os.path.normpath(image_root), os.path.normpath(regular_root)
    if os.path.isabs(a) != os.path.isabs(b):
        a, b = os.path.abspath(a), os.path.abspath(b)
    root = os.path.commonpath([a, b])

    def rebase(recs: Sequence[Record], folder: str) -> list[Record]:
        prefix = os.path.relpath(folder, root)

        def move(path: str) -> str:
            return Path(os.path.normpath(os.path.join(prefix, path))).as_posix()

        return [
            dataclasses.replace(
                r,
                image=move(r.image),
                group=move(r.group) if r.group == r.image else r.group,
                negatives=tuple(
                    dataclasses.replace(n, image=move(n.image)) if n.image else n for n in r.negatives
                ),
            )
            for r in recs
        ]

    return rebase(records, a) + rebase(regular, b), Path(root or ".")


class DedupedSampler:
    """Wraps a sampler; each step's indices go through :func:`dedupe_images`."""

    def __init__(self, sampler, pos_image: torch.Tensor, seed: int):
        self.sampler, self.pos_image, self.seed = sampler, pos_image, seed
        self.distinct = distinct_images(pos_image)

    def indices(self, step: int) -> torch.Tensor:
        return dedupe_images(self.sampler.indices(step), self.pos_image, self.seed, step, self.distinct)


def make_sampler(batching, batch_size: int, seed: int, pos_image: torch.Tensor,
                 records: Sequence[Record] | RecordKeys | None = None):
    """The sampler of ``batching.mode`` over the bank's rows (``pos_image`` ``[N]``: each row's image id).

    ``batching`` None (the base run) or mode ``records``: :class:`EpochSampler`, a uniform shuffle.
    GeNeMi's group modes read ``records`` (groups, sources, ITM scores), or the bank's ``keys``.
    """
    if batching is not None and batching.mode != "records":
        if records is None:
            raise ValueError(f"batching.mode={batching.mode} groups records: pass the bank's records")
        sampler = GroupSampler(records, batching, batch_size, seed)
    else:
        sampler = EpochSampler(len(pos_image), batch_size, seed)
    if batching is not None and batching.dedupe_images:
        sampler = DedupedSampler(sampler, pos_image, seed)
    return sampler
