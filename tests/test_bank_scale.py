"""The array-based training bank and samplers draw exactly the rows of the plain reference versions
(``tests/reference_batches.py``: lists, dicts and one object per record), and the bank memory-mapped
from a manifest's cache gives the same batches as the bank built from records in memory."""

from __future__ import annotations

import dataclasses
import os
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
import reference_batches as ref
import torch
from test_batches import _batching  # the same GeNeMi batching settings as the sampler tests

from genemi.bank import ImageFiles, PairBank
from genemi.bank_cache import cached_tables
from genemi.manifest import Negative, Record, write_manifest
from genemi.samplers import EpochSampler, GroupSampler, dedupe_images, make_sampler
from genemi.tables import RecordKeys
from genemi.train import micro_batches


def _tok(texts):
    """A fixed-length tokenizer whose ids reach past uint16 for some captions (the narrow-dtype ladder)."""
    out = torch.zeros(len(texts), 6, dtype=torch.long)
    for r, t in enumerate(texts):
        words = t.split()
        out[r, 0] = len(words)
        for j, w in enumerate(words[:5]):
            out[r, j + 1] = zlib.crc32(w.encode()) % 500 + (65_500 if "big" in t else 0)
    return out


def _records(n=300, seed=0, sources=("genemi", "coco")):
    """Records with repeated images and captions, groups, origins (some only in ``group``), ITM scores
    (lists and scalars), and text, image and paired negatives of three types."""
    rng = np.random.default_rng(seed)
    recs = []
    for i in rng.permutation(n):
        o, item = int(rng.integers(12)), int(rng.integers(3))
        meta = {"itm_score": [float(rng.random()), float(rng.random())]} if rng.random() < 0.6 else {}
        if rng.random() < 0.3:
            meta["itm_score"] = float(rng.random())
        if rng.random() < 0.7:
            meta["origin_name"] = f"o{o}"
        negs = []
        for k in range(int(rng.integers(0, 4))):
            kind = int(rng.integers(3))
            negs.append(
                Negative(
                    type=["swap", "count", "big"][int(rng.integers(3))],
                    caption=None
                    if kind == 1
                    else f"neg {int(rng.integers(40))} word{k} big" * (k == 2)
                    or f"neg {int(rng.integers(40))} w{k}",
                    image=None if kind == 0 else f"edit/{int(rng.integers(30))}.png",
                )
            )
        recs.append(
            Record(
                id=f"r{i:04d}",
                image=f"img/{int(rng.integers(60))}.png",
                caption=f"cap {int(rng.integers(150))} of {o}",
                source=str(rng.choice(sources)),
                group=f"o{o}:{item}",
                negatives=tuple(negs),
                meta=meta,
            )
        )
    return recs


def _per_record(paths, tokens, pos_image, pos_text, neg_text, neg_image):
    """What each record resolves to: its image path and caption tokens, and its negatives'."""
    tok = (
        tokens if isinstance(tokens, torch.Tensor) else torch.from_numpy(np.asarray(tokens).astype(np.int64))
    )
    out = []
    for i in range(len(pos_image)):
        negs = [
            (tok[t].tolist() if t >= 0 else None, paths[m] if m >= 0 else None)
            for t, m in zip(neg_text[i].tolist(), neg_image[i].tolist(), strict=True)
            if t >= 0 or m >= 0
        ]
        out.append((paths[int(pos_image[i])], tok[int(pos_text[i])].tolist(), negs, neg_text.shape[1]))
    return out


@pytest.mark.parametrize("types", [None, (), ("swap",), ("count", "big")])
def test_tables_match_the_reference(tmp_path, types):
    recs = _records()
    want = ref.tables(recs, _tok, types)
    mem = PairBank.from_records(recs, tmp_path, _tok, types=types, transform=lambda im: im)
    # in memory: the very ids of the reference
    assert mem.images.paths == want[0] and torch.equal(mem.tokens, want[1])
    for a, b in zip((mem.pos_image, mem.pos_text, mem.neg_text, mem.neg_image), want[2:], strict=True):
        assert torch.equal(a, b)
    # from the manifest's cache: every negative is stored; the same images, tokens and negatives per record
    write_manifest(tmp_path / "train.jsonl", recs)
    mapped = PairBank.from_manifest(
        tmp_path / "train.jsonl", tmp_path, _tok, types=types, transform=lambda im: im, progress=False
    )
    assert mapped.tokens.dtype == np.int32  # ids past 65,535 widened the uint16 start
    got = _per_record(
        mapped.images.paths,
        mapped.tokens,
        mapped.pos_image,
        mapped.pos_text,
        mapped.neg_text,
        mapped.neg_image,
    )
    assert got == _per_record(*want)
    if types is None:
        assert torch.equal(mapped.pos_text, want[3]) and torch.equal(mapped.neg_text, want[4])


def test_epoch_sampler_and_dedupe_match_the_reference():
    for n, b, seed in ((300, 32, 0), (301, 7, 5), (64, 64, 2)):
        s = EpochSampler(n, b, seed)
        for step in (*range(0, 3 * (n // b) + 2), 1000):
            assert torch.equal(s.indices(step), ref.epoch_indices(n, b, seed, step))
    pos_image = torch.from_numpy(np.random.default_rng(1).integers(0, 50, 300))
    s = make_sampler(_batching(mode="records", dedupe_images=True), 32, 4, pos_image)
    for step in range(40):
        want = ref.dedupe_images(ref.epoch_indices(300, 32, 4, step), pos_image, 4, step)
        assert torch.equal(s.indices(step), want)
        assert len(set(pos_image[want].tolist())) == 32
    idx = torch.arange(40)
    assert torch.equal(dedupe_images(idx, pos_image, 9, 3), ref.dedupe_images(idx, pos_image, 9, 3))


def test_dedupe_refill_is_uniform_over_rows_with_new_images_like_the_thesis():
    """Each refill is uniform over the rows whose image the batch lacks: the distribution of the thesis's
    walk through a shuffled list of every row (counted over many steps, chi-square against uniform)."""
    pos_image = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 5])
    idx = torch.tensor([0, 5, 1])  # row 1 repeats image 0; rows 3, 4, 6..11 hold new images
    allowed = [3, 4, 6, 7, 8, 9, 10, 11]
    steps = 4000
    for dedupe in (dedupe_images, ref.thesis_dedupe_images):
        got = [dedupe(idx, pos_image, 3, s)[2].item() for s in range(steps)]
        counts = np.bincount(got, minlength=12)
        assert counts[[0, 1, 2, 5]].sum() == 0
        expected = steps / len(allowed)
        chi2 = float(((counts[allowed] - expected) ** 2 / expected).sum())
        assert chi2 < 24.3, (dedupe, counts)  # 7 degrees of freedom: p = 0.001


def test_dedupe_refill_falls_back_to_the_list_of_allowed_rows(monkeypatch):
    """Where rows with new images are rare the refill chooses among them directly; the same rows as the
    reference, for several draw sizes."""
    from genemi import samplers

    pos_image = torch.zeros(3000, dtype=torch.long)
    pos_image[[17, 2500]] = torch.tensor([1, 2])
    idx = torch.tensor([0, 1, 2])
    for draws, tries in ((256, 64), (4, 2), (1, 1)):
        monkeypatch.setattr(samplers, "REFILL_DRAWS", draws)
        monkeypatch.setattr(samplers, "REFILL_TRIES", tries)
        for step in range(20):
            out = dedupe_images(idx, pos_image, 5, step)
            assert torch.equal(out, ref.dedupe_images(idx, pos_image, 5, step, draws, tries))
            assert out[0] == 0 and sorted(out[1:].tolist()) == [17, 2500]


@pytest.mark.parametrize("mode", ["item_based", "image_based", "allinone"])
@pytest.mark.parametrize("sources", [("genemi", "coco"), ("genemi",), ("genemi", "genemi", "genemi", "coco")])
def test_group_sampler_matches_the_reference(tmp_path, mode, sources):
    recs = _records(seed=len(sources), sources=sources)
    write_manifest(tmp_path / "train.jsonl", recs)
    keys = cached_tables(tmp_path / "train.jsonl", _tok, progress=False).keys
    for seed, batch in ((0, 8), (3, 20), (11, 30)):
        batching = _batching(mode=mode)
        want = ref.GroupSampler(recs, batching, batch, seed)
        if want.per_step > len(want.groups):
            continue
        a, b = GroupSampler(recs, batching, batch, seed), GroupSampler(keys, batching, batch, seed)
        assert a.groups == b.groups == len(want.groups)
        for step in (*range(2 * want.per_epoch + 3), 517):
            w = want.indices(step)
            assert torch.equal(a.indices(step), w) and torch.equal(b.indices(step), w), (seed, step)


def test_record_keys_read_the_records(tmp_path):
    recs = _records(50)
    write_manifest(tmp_path / "m.jsonl", recs)
    for keys in (
        RecordKeys.from_records(recs),
        cached_tables(tmp_path / "m.jsonl", _tok, progress=False).keys,
    ):
        assert [keys.ids[i] for i in range(len(recs))] == [r.id for r in recs]
        assert [keys.sources[s] for s in keys.source] == [r.source for r in recs]
        assert [keys.group_names[g] for g in keys.group] == [r.group for r in recs]
        origin = [r.meta.get("origin_name") or r.group.rsplit(":", 1)[0] for r in recs]
        assert [keys.origin_names[o] for o in keys.origin] == origin
        assert keys.itm.tolist() == [float(np.mean(r.meta.get("itm_score", 0.0))) for r in recs]


def _run(bank, sampler, k, rows, accum=2, image_negatives=True):
    loss = SimpleNamespace(image_negatives=image_negatives)
    return SimpleNamespace(
        bank=bank,
        sampler=sampler,
        negatives=k,
        accum=accum,
        seed=7,
        loss=loss,
        negative_rows=rows,
        records_per_step=24,
        replay=None,
    )


@pytest.mark.parametrize(
    "k,rows,mode",
    [(0, False, "records"), (2, False, "records"), (2, True, "item_based"), (3, False, "image_based")],
)
def test_batches_from_the_mapped_bank_match_the_reference(tmp_path, k, rows, mode):
    """Whole micro-batches (2 ranks x 2 accumulation steps): the reference tables and samplers against the
    bank mapped from the manifest's cache and the array samplers."""
    recs = _records(240)
    if rows:  # negative rows need caption + edited image
        recs = [
            dataclasses.replace(r, negatives=tuple(n for n in r.negatives if n.caption and n.image))
            for r in recs
        ]
    paths, tokens, *tabs = ref.tables(recs, _tok)
    pixel = {p: torch.full((3, 2, 2), float(zlib.crc32(p.encode()) % 997)) for p in paths}

    class Files(ImageFiles):
        def pixels(self, ids):
            return torch.stack([pixel[self.paths[i]] for i in ids.tolist()])

    want_bank = PairBank(Files(tmp_path, paths, None), tokens, *tabs)
    write_manifest(tmp_path / "train.jsonl", recs)
    got_bank = PairBank.from_manifest(
        tmp_path / "train.jsonl", tmp_path, _tok, transform=lambda im: im, progress=False
    )
    got_bank.images = Files(tmp_path, got_bank.images.paths, None)
    batching = _batching(mode=mode, dedupe_images=mode == "image_based")
    if mode == "records":
        want_s = SimpleNamespace(indices=lambda s: ref.epoch_indices(len(recs), 24, 7, s))
    else:
        group = ref.GroupSampler(recs, batching, 24, 7)
        want_s = SimpleNamespace(
            indices=lambda s: (
                ref.dedupe_images(group.indices(s), tabs[0], 7, s)
                if batching.dedupe_images
                else group.indices(s)
            )
        )
    got_s = make_sampler(batching, 24, 7, got_bank.pos_image, got_bank.keys)
    want, got = _run(want_bank, want_s, k, rows), _run(got_bank, got_s, k, rows)
    for step in range(12):
        for rank in range(2):
            for a, b in zip(
                micro_batches(want, step, rank, 2), micro_batches(got, step, rank, 2), strict=True
            ):
                for f in vars(a):
                    x, y = getattr(a, f), getattr(b, f)
                    assert (
                        (torch.equal(x, y) and x.dtype == y.dtype) if isinstance(x, torch.Tensor) else x == y
                    ), f


def test_cache_is_built_once_reused_and_replaced(tmp_path):
    path = tmp_path / "train.jsonl"
    write_manifest(path, _records(40))
    cached_tables(path, _tok, progress=False)
    (entry,) = [e for e in (tmp_path / "train.jsonl.bank").iterdir() if e.is_dir()]
    stamp = (entry / "tokens.bin").stat().st_mtime_ns
    cached_tables(path, _tok, progress=False)
    assert (entry / "tokens.bin").stat().st_mtime_ns == stamp  # reused, not rebuilt
    os.utime(path, ns=(1, 1))  # same bytes, another mtime: rehashed, found, still reused
    cached_tables(path, _tok, progress=False)
    assert (entry / "tokens.bin").stat().st_mtime_ns == stamp
    write_manifest(path, _records(41))
    t = cached_tables(path, _tok, progress=False)
    assert len(t.pos_image) == 41
    assert [e.name for e in (tmp_path / "train.jsonl.bank").iterdir() if e.is_dir()] != [entry.name]
    assert not entry.exists()  # the old version's entry is gone
    other = cached_tables(
        path, lambda texts: _tok(texts) + 1, progress=False
    )  # another tokenizer: its own entry
    assert int(np.asarray(other.tokens)[0, 0]) == int(np.asarray(t.tokens)[0, 0]) + 1


def test_bad_manifests_fail_naming_the_row(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="no records"):
        cached_tables(empty, _tok, progress=False)
    bad = tmp_path / "bad.jsonl"
    write_manifest(bad, _records(5))
    bad.write_text(bad.read_text() + '{"id": "x", "image": "a.png"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:6"):
        cached_tables(bad, _tok, progress=False)

    def refuses(texts):
        if any("cap 3 " in t for t in texts):
            raise ValueError("word 'cap 3' is not in the vocabulary")
        return _tok(texts)

    recs = [
        Record(id="a", image="1.png", caption="cap 1 x"),
        Record(id="b", image="1.png", caption="cap 3 x"),
    ]
    write_manifest(tmp_path / "oov.jsonl", recs)
    with pytest.raises(ValueError, match="record 'b': word"):
        cached_tables(tmp_path / "oov.jsonl", refuses, progress=False)
    assert not [e for e in (tmp_path / "oov.jsonl.bank").iterdir() if e.is_dir()]  # nothing half-written


def test_cache_folder_from_the_environment_and_an_unwritable_one(tmp_path, monkeypatch):
    path = tmp_path / "data" / "train.jsonl"
    path.parent.mkdir()
    write_manifest(path, _records(20))
    monkeypatch.setenv("GENEMI_BANK_CACHE", str(tmp_path / "cache"))
    t = cached_tables(path, _tok, progress=False)
    assert len(t.pos_image) == 20 and not (tmp_path / "data" / "train.jsonl.bank").exists()
    assert [p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()] == ["train.jsonl"]
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("GENEMI_BANK_CACHE", str(tmp_path / "file" / "cache"))  # cannot be created
    with pytest.raises(OSError, match="cannot write the training bank's cache.*GENEMI_BANK_CACHE"):
        cached_tables(path, _tok, progress=False)
