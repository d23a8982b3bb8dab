"""Every metric of genemi.metrics and genemi.bootstrap against a plain, slow reference (loops over explicit cosines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genemi.bootstrap import bootstrap_means, compare
from genemi.evalsets import Choice, Classification, Retrieval
from genemi.manifest import Negative, Record
from genemi.metrics import (
    Features,
    Outcomes,
    Sample,
    choice_outcomes,
    classification_outcomes,
    derangement,
    pairwise_outcomes,
    recall_at_k,
    retrieval_outcomes,
    summarize,
)


def _features(images: list[str], texts: list[str], d: int = 8, seed: int = 0) -> Features:
    g = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.normalize(torch.randn(len(images), d, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(len(texts), d, generator=g), dim=-1)
    return Features({r: i for i, r in enumerate(images)}, img, {t: i for i, t in enumerate(texts)}, txt)


def _cos(f: Features, image: str, text: str) -> float:
    return sum(
        float(a) * float(b)
        for a, b in zip(f.images[f.image_index[image]], f.texts[f.text_index[text]], strict=True)
    )


def _random_records(n: int = 30, seed: int = 1) -> list[Record]:
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        img = f"img{i % 12}.png"  # images repeat: pairs of one image form a bootstrap cluster
        negs = []
        for j in range(int(rng.integers(1, 4))):
            t = ["swap", "count", "relation"][int(rng.integers(0, 3))]
            kind = int(rng.integers(0, 3))
            negs.append(
                Negative(
                    type=t,
                    caption=f"neg {i}-{j}" if kind in (0, 2) else None,
                    image=f"edit{i}-{j}.png" if kind in (1, 2) else None,
                )
            )
        recs.append(Record(id=str(i), image=img, caption=f"pos {i}", negatives=tuple(negs)))
    return recs


def _inputs(records):
    images, texts = {}, {}
    for r in records:
        images[r.image] = None
        texts[r.caption] = None
        for n in r.negatives:
            if n.image:
                images[n.image] = None
            if n.caption:
                texts[n.caption] = None
    return list(images), list(texts)


def test_pairwise_metrics_match_brute_force():
    recs = _random_records()
    f = _features(*_inputs(recs))
    taus = (1.0, 1.1, 2.0)
    got = summarize(pairwise_outcomes(recs, f, taus))
    ref: dict[str, list[float]] = {}

    def add(key, v):
        for k in (key, "all/" + key.split("/", 1)[1]):
            ref.setdefault(k, []).append(v)

    for r in recs:
        for n in r.negatives:
            pos = _cos(f, r.image, r.caption)
            if n.caption:
                neg = _cos(f, r.image, n.caption)
                add(f"{n.type}/text", 100.0 * (pos > neg))
                add(f"{n.type}/avg_pos", pos)
                add(f"{n.type}/avg_neg", neg)
                add(f"{n.type}/margin", pos - neg)
                for tau in taus:
                    add(f"{n.type}/acc@{tau:g}", 100.0 * (pos / (neg + 1e-8) >= tau))
            if n.image:
                add(f"{n.type}/image", 100.0 * (pos > _cos(f, n.image, r.caption)))
            if n.image and n.caption:
                own, ti, it = (
                    _cos(f, n.image, n.caption),
                    _cos(f, r.image, n.caption),
                    _cos(f, n.image, r.caption),
                )
                ok = (
                    pos > ti and own > it and pos > it and own > ti
                )  # both images and both captions pick right
                add(f"{n.type}/group", 100.0 * ok)
    for k, vals in ref.items():
        assert got[k] == pytest.approx(np.mean(vals), abs=1e-6), k  # float32 features
    for m in ("text", "image", "group"):
        parts = [got[f"{t}/{m}"] for t in ("count", "relation", "swap") if f"{t}/{m}" in got]
        assert got[f"macro/{m}"] == pytest.approx(np.mean(parts))
    # pinned by hand on a fixed 2-D layout, so the reference itself cannot be wrong in the same way
    f2 = Features(
        {"I": 0, "J": 1},
        torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        {"T": 0, "U": 1},
        torch.tensor([[0.8, 0.6], [0.6, 0.8]]),
    )
    two = [Record(id="a", image="I", caption="T", negatives=(Negative("x", caption="U", image="J"),))]
    s = summarize(pairwise_outcomes(two, f2, (1.0, 1.5)))
    assert (s["x/text"], s["x/image"], s["x/group"]) == (100.0, 100.0, 100.0)
    assert s["x/margin"] == pytest.approx(0.2) and s["x/acc@1.5"] == 0.0


def test_avg_rand_neg_uses_a_seeded_derangement():
    for n in (2, 3, 10):
        p = derangement(n, 7)
        assert sorted(p.tolist()) == list(range(n)) and not np.any(p == np.arange(n))
        assert np.array_equal(p, derangement(n, 7))
    recs = _random_records()
    f = _features(*_inputs(recs))
    first = {}
    for r in recs:
        first.setdefault(r.image, r.caption)
    imgs = list(first)
    p = derangement(len(imgs), 3)
    want = np.mean([_cos(f, imgs[i], first[imgs[p[i]]]) for i in range(len(imgs))])
    assert summarize(pairwise_outcomes(recs, f, seed=3))["all/avg_rand_neg"] == pytest.approx(want)


def test_choice_metrics_match_brute_force_and_winoground_definitions():
    rng = np.random.default_rng(0)
    choices = []
    for s in range(20):
        n = int(rng.integers(1, 5))
        m = n + (4 if n == 1 else 0)  # 1 x 5: ARO Order shape
        choices.append(
            Choice(
                str(s),
                tuple(f"i{s}-{k}" for k in range(n)),
                tuple(f"t{s}-{k}" for k in range(m)),
                "a" if s % 2 else "b",
            )
        )
    f = _features([i for c in choices for i in c.images], [t for c in choices for t in c.texts])
    got = summarize(choice_outcomes(choices, f))
    ref: dict[str, list[float]] = {}
    for c in choices:
        S = np.array([[_cos(f, i, t) for t in c.texts] for i in c.images])
        n = len(c.images)
        t1 = [int(np.argmax(S[i])) == i for i in range(n)]  # GeNeMi: logits.argmax(1) == gt
        for k, v in [("text_1", x) for x in t1] + [("text", all(t1))]:
            ref.setdefault(f"{c.type}/{k}", []).append(100.0 * v)
        if n >= 2:
            i1 = [int(np.argmax(S[:, j])) == j for j in range(n)]
            g1 = [a and b for a, b in zip(t1, i1, strict=True)]
            for k, v in (
                [("image_1", x) for x in i1]
                + [("group_1", x) for x in g1]
                + [("image", all(i1)), ("group", all(g1))]
            ):
                ref.setdefault(f"{c.type}/{k}", []).append(100.0 * v)
            if n == 2:  # Winoground's own formulas
                w_text = S[0, 0] > S[0, 1] and S[1, 1] > S[1, 0]
                w_image = S[0, 0] > S[1, 0] and S[1, 1] > S[0, 1]
                assert all(t1) == w_text and all(i1) == w_image and all(g1) == (w_text and w_image)
    for k, vals in ref.items():
        assert got[k] == pytest.approx(np.mean(vals)), k


def test_choice_tie_counts_as_wrong():
    f = Features(
        {"I": 0}, torch.tensor([[1.0, 0.0]]), {"a": 0, "b": 1}, torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    )
    assert summarize(choice_outcomes([Choice("x", ("I",), ("a", "b"))], f))["all/text"] == 0.0


def test_retrieval_matches_brute_force():
    rng = np.random.default_rng(0)
    images = [f"i{k}" for k in range(15)]
    ikeys = [str(k % 12) for k in range(15)]  # three duplicate scenes
    texts = [f"t{k}" for k in range(40)]
    tkeys = [str(int(rng.integers(0, 12))) for _ in texts]
    f = _features(images, texts)
    ks = (1, 3, 10)
    got = summarize(
        retrieval_outcomes(Retrieval(tuple(images), tuple(ikeys), tuple(texts), tuple(tkeys)), f, ks)
    )
    sim = np.array([[_cos(f, i, t) for t in texts] for i in images])
    for name, S, qk, ik in (("i2t", sim, ikeys, tkeys), ("t2i", sim.T, tkeys, ikeys)):
        for k in ks:
            hits = [any(ik[j] == qk[q] for j in np.argsort(-S[q])[:k]) for q in range(len(qk))]
            assert got[f"retrieval/{name}_r@{k}"] == pytest.approx(100.0 * np.mean(hits))
    legacy = recall_at_k(torch.tensor(sim), ikeys, tkeys, ks)
    assert all(legacy[k] == pytest.approx(got[f"retrieval/i2t_r@{k}"]) for k in ks)


def test_zeroshot_matches_brute_force():
    classes = ("cat", "dog", "red car", "tree", "boat", "fish")
    templates = ("a photo of a {}.", "a {}.")
    images = [f"x{k}" for k in range(25)]
    labels = tuple(k % len(classes) for k in range(25))
    f = _features(images, [t.format(c) for c in classes for t in templates])
    got = summarize(classification_outcomes(Classification(tuple(images), labels, classes, templates), f))
    protos = []
    for c in classes:
        v = sum(f.texts[f.text_index[t.format(c)]] for t in templates)
        protos.append(v / v.norm())
    for k in (1, 5):
        hits = []
        for im, y in zip(images, labels, strict=True):
            scores = [float(f.images[f.image_index[im]] @ p) for p in protos]
            hits.append(y in np.argsort(scores)[::-1][:k])
        assert got[f"zeroshot/top{k}"] == pytest.approx(100.0 * np.mean(hits))


def test_cluster_bootstrap_matches_loop_and_is_chunk_invariant():
    rng = np.random.default_rng(5)
    clusters = rng.integers(0, 9, 40)
    a = Sample(rng.integers(0, 2, 40).astype(float), clusters)
    b = Sample(rng.random(40), clusters, scale=1.0)
    boot = bootstrap_means([a, b], 50, np.random.default_rng(11))
    chunked = bootstrap_means([a, b], 50, np.random.default_rng(11), max_cells=20)  # 2 replicates per chunk
    assert np.allclose(boot, chunked)
    # reference: draw the same cluster indices, rebuild each resampled data set unit by unit
    ids = {c: i for i, c in enumerate(dict.fromkeys(clusters.tolist()))}
    members = {i: [u for u in range(40) if ids[clusters[u]] == i] for i in ids.values()}
    idx = np.random.default_rng(11).integers(0, len(ids), size=(50, len(ids)))
    for r in range(50):
        units = [u for c in idx[r] for u in members[int(c)]]
        assert boot[0, r] == pytest.approx(100.0 * np.mean(a.values[units]))
        assert boot[1, r] == pytest.approx(np.mean(b.values[units]))


def test_compare_deltas_intervals_and_determinism():
    rng = np.random.default_rng(2)
    cl = np.repeat(np.arange(30), 2)

    def outcomes(p):
        o = Outcomes()
        for t in ("x", "y"):
            o.samples[f"{t}/text"] = Sample((rng.random(60) < p).astype(float), cl)
        o.samples["zeroshot/top1"] = Sample((rng.random(60) < p).astype(float), np.arange(60))
        o.macro["macro/text"] = ["x/text", "y/text"]
        o.counts["x/n"] = 60.0
        return o

    base, ft = outcomes(0.5), outcomes(0.9)
    flat = compare({"base": base, "finetuned": ft}, n_boot=200, seed=0)
    assert flat == compare({"base": base, "finetuned": ft}, n_boot=200, seed=0)
    for k in ("x/text", "y/text", "macro/text", "zeroshot/top1"):
        assert flat[f"delta/{k}"] == pytest.approx(flat[f"finetuned/{k}"] - flat[f"base/{k}"], abs=2e-4)
        for m in ("base", "finetuned", "delta"):
            assert flat[f"{m}/{k}_lo"] <= flat[f"{m}/{k}"] <= flat[f"{m}/{k}_hi"], (m, k)
    assert flat["delta/x/text_lo"] > 0  # 50% -> 90% on 60 pairs is clearly significant
    assert flat["retention/zeroshot/top1"] == pytest.approx(
        100 * flat["finetuned/zeroshot/top1"] / flat["base/zeroshot/top1"], abs=1e-3
    )
    assert "delta/x/n" not in flat and flat["base/x/n"] == 60.0
    same = compare({"base": base, "finetuned": base}, n_boot=100, seed=0)
    assert (
        same["delta/x/text_lo"] == same["delta/x/text_hi"] == 0.0
    )  # paired: identical models, zero-width delta


def test_bootstrap_clusters_follow_the_record_group():
    """Crops of one scene (ARO) share a group, so their pairs resample together; other scenes do not."""
    recs = [
        Record(
            id=str(i),
            image=f"s{i // 2}.jpg#crop={i}",
            caption=f"p{i}",
            group=f"s{i // 2}.jpg",
            negatives=(Negative("rel", caption=f"n{i}"),),
        )
        for i in range(6)
    ]
    f = _features([r.image for r in recs], [t for r in recs for t in (r.caption, r.negatives[0].caption)])
    o = pairwise_outcomes(recs, f)
    assert o.samples["rel/text"].clusters.tolist() == [0, 0, 1, 1, 2, 2]
    ret = retrieval_outcomes(
        Retrieval(("a", "b"), ("k1", "k2"), ("x", "y", "z"), ("k1", "k1", "k2")),
        _features(["a", "b"], ["x", "y", "z"]),
        (1,),
    )
    assert ret.samples["retrieval/t2i_r@1"].clusters.tolist() == [0, 0, 1]
