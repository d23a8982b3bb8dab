"""Evaluation at scale: a benchmark held as a :class:`RecordTable` and scored with chunked cosines gives
exactly the outcomes of the plain reference (``tests/reference_metrics.py``: a list of records, every row's
features gathered at once), and texts encoded in slices are the features of one call."""

from __future__ import annotations

import numpy as np
import pytest
import reference_metrics as ref
import torch

from genemi.evalsets import EvalSet, ImageStore, RecordTable, distinct_inputs
from genemi.evaluate import encode_texts
from genemi.manifest import Negative, Record
from genemi.metrics import Features, pairwise_outcomes, row_cosines


def _records(n=400, seed=0):
    """Records sharing images, captions and groups; text, image and paired negatives of four types."""
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        negs = []
        for _ in range(int(rng.integers(0, 4))):
            kind = int(rng.integers(3))
            negs.append(
                Negative(
                    type=f"t{int(rng.integers(4))}",
                    caption=None if kind == 1 else f"neg {int(rng.integers(300))}",
                    image=None if kind == 0 else f"e{int(rng.integers(50))}.png",
                )
            )
        recs.append(
            Record(
                id=f"r{i}",
                image=f"{int(rng.integers(80))}.png",
                caption=f"cap {int(rng.integers(200))}",
                source=str(rng.choice(["hnc", "x"])),
                group=f"g{int(rng.integers(30))}",
                negatives=tuple(negs),
                meta={"type": f"m{i % 3}"} if i % 2 else {},
            )
        )
    return recs


def _features(es, seed=0):
    images, texts = distinct_inputs(es)
    g = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.normalize(torch.randn(len(images), 24, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(len(texts), 24, generator=g), dim=-1)
    return Features({r: i for i, r in enumerate(images)}, img, {t: i for i, t in enumerate(texts)}, txt)


def _same(a, b):
    assert a.samples.keys() == b.samples.keys() and a.macro == b.macro and a.counts == b.counts
    for k in a.samples:
        x, y = a.samples[k], b.samples[k]
        assert x.values.tobytes() == y.values.tobytes() and np.array_equal(x.clusters, y.clusters), k
        assert x.scale == y.scale


def test_record_table_is_the_records():
    recs = _records()
    t = RecordTable(iter(recs))
    assert len(t) == len(recs) and list(t) == recs and t[5] == recs[5] and t[3:9] == recs[3:9]
    assert not RecordTable(iter(()))
    store = ImageStore(".")
    assert distinct_inputs(EvalSet("a", store, t)) == distinct_inputs(EvalSet("a", store, recs))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pairwise_outcomes_of_a_table_match_the_reference(seed):
    recs = _records(seed=seed)
    f = _features(EvalSet("a", ImageStore("."), recs), seed)
    want = ref.pairwise_outcomes(
        recs, f, taus=(0.5, 1.0), seed=seed, macro_min_count=5, macro_exclude=frozenset({"t1"})
    )
    for records in (recs, RecordTable(recs)):
        _same(
            pairwise_outcomes(
                records, f, taus=(0.5, 1.0), seed=seed, macro_min_count=5, macro_exclude=frozenset({"t1"})
            ),
            want,
        )


def test_chunked_cosines_are_the_cosines_of_one_gather():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(300, 512, generator=g), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(500, 512, generator=g), dim=-1)
    ia, ib = (
        torch.randint(300, (5000,), generator=g).numpy(),
        torch.randint(500, (5000,), generator=g).numpy(),
    )
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):  # a reduction split over threads must not change a row's sum either
            torch.set_num_threads(n)
            whole = (a[ia] * b[ib]).sum(-1).double().numpy()
            for chunk in (1, 2, 7, 999, 5000):
                assert row_cosines(a, ia, b, ib, chunk=chunk).tobytes() == whole.tobytes()
    finally:
        torch.set_num_threads(threads)


class _Encoder:
    """Encodes in batches of ``batch_size`` as :class:`genemi.clip.Clip` does; a feature depends on its whole
    batch, so a slice that split a batch differently would change it."""

    batch_size = 3

    def encode_texts(self, texts):
        out = []
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i : i + self.batch_size]
            salt = sum(len(t) for t in batch)
            out.append(torch.tensor([[len(t) * 1.0, salt * 1.0] for t in batch]))
        return torch.cat(out)


def test_texts_encoded_in_slices_are_the_features_of_one_call():
    texts = [f"caption {'x' * (i % 7)} {i}" for i in range(100)]
    enc = _Encoder()
    for batches in (1, 2, 5, 40):
        assert torch.equal(encode_texts(enc, texts, batches=batches), enc.encode_texts(texts))
