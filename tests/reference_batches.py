"""Plain reference versions of the training bank's index tables and the samplers (not collected by pytest).

Python lists, dicts and one object per record: slow and memory-hungry at scale, but easy to read. The
array-based :mod:`genemi.bank` and :mod:`genemi.samplers` must draw exactly the rows these draw
(``tests/test_bank_scale.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from genemi import seeding


def tables(records, tokenizer, types=None):
    """``(image paths, tokens, pos_image, pos_text, neg_text, neg_image)`` of ``records``: each distinct
    image and caption once, in first-seen order; only negatives whose type is in ``types`` (all if None)."""
    img_ids, txt_ids = {}, {}
    pos_i, pos_t, neg_t, neg_i = [], [], [], []
    for r in records:
        pos_i.append(img_ids.setdefault(r.image, len(img_ids)))
        pos_t.append(txt_ids.setdefault(r.caption, len(txt_ids)))
        negs = [n for n in r.negatives if types is None or n.type in types]
        neg_t.append(
            [txt_ids.setdefault(n.caption, len(txt_ids)) if n.caption is not None else -1 for n in negs]
        )
        neg_i.append([img_ids.setdefault(n.image, len(img_ids)) if n.image is not None else -1 for n in negs])
    kmax = max(1, max(len(x) for x in neg_t))

    def pad(rows):
        return torch.tensor([x + [-1] * (kmax - len(x)) for x in rows], dtype=torch.long)

    return (
        sorted(img_ids, key=img_ids.get),
        tokenizer(sorted(txt_ids, key=txt_ids.get)),
        torch.tensor(pos_i),
        torch.tensor(pos_t),
        pad(neg_t),
        pad(neg_i),
    )


def epoch_indices(n, batch_size, seed, step):
    epoch, i = divmod(step, n // batch_size)
    perm = torch.randperm(n, generator=seeding.torch_generator(seed, "epoch", epoch))
    return perm[i * batch_size : (i + 1) * batch_size]


def dedupe_images(idx, pos_image, seed, step, draws=256, tries=64):
    """Refill each row whose image is already in the batch with the first of the rows drawn uniformly
    with replacement (``draws`` at a time, seeded by (seed, step)) whose image is new; after ``tries``
    draws without one, a uniform choice among every row with a new image."""
    images = pos_image[idx].tolist()
    if len(set(images)) == len(images):
        return idx
    rng = seeding.rng(seed, "dedupe", step)
    out, seen, drawn = idx.tolist(), set(), []
    for r, im in enumerate(images):
        if im in seen:
            found = None
            for t in range(tries + 1):
                while drawn and found is None:
                    c = drawn.pop(0)
                    if int(pos_image[c]) not in seen:
                        found = c
                if found is not None or t == tries:
                    break
                drawn = rng.integers(len(pos_image), size=draws).tolist()
            if found is None:
                allowed = [j for j in range(len(pos_image)) if int(pos_image[j]) not in seen]
                found = allowed[int(rng.integers(len(allowed)))]
            out[r], im = found, int(pos_image[found])
        seen.add(im)
    return torch.tensor(out, dtype=torch.long)


def thesis_dedupe_images(idx, pos_image, seed, step):
    """The thesis's ``deduplicate_and_refill``: refills are the next rows of a shuffled list of every row
    whose image is new (the same distribution as :func:`dedupe_images`; a cost that grows with the rows)."""
    images = pos_image[idx].tolist()
    rng = seeding.rng(seed, "dedupe", step)
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
    """GeNeMi's group batches over a list of records (the per-record-object version)."""

    def __init__(self, records, batching, batch_size, seed):
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
        self.groups = [np.array(keys[k]) for k in sorted(keys)]
        self.scores = [
            np.array([float(np.mean(records[i].meta.get("itm_score", 0.0))) for i in g]) for g in self.groups
        ]
        self.regular = np.array(regular, dtype=np.int64)
        self.n = len(records)
        self.per_step = max(1, batch_size // (self.v + batching.regular_per_group))
        self.per_epoch = len(self.groups) // self.per_step

    def indices(self, step):
        epoch, i = divmod(step, self.per_epoch)
        order = seeding.rng(self.seed, "group_order", epoch).permutation(len(self.groups))
        rng = seeding.rng(self.seed, "group_draw", step)
        rows = []
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
        if len(pool) < need:
            taken = set(rows)
            pool = np.array([j for j in range(self.n) if j not in taken], dtype=np.int64)
        rows += rng.choice(pool, size=need, replace=False).tolist()
        return torch.tensor(rows, dtype=torch.long)
