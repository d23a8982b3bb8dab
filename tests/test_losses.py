"""Every loss against open_clip's ClipLoss or a naive per-row Python loop."""

from __future__ import annotations

import dataclasses
import math

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import pytest
import torch
import torch.nn.functional as F

from genemi.losses import (
    caption_logits,
    dpo_loss,
    hard_negative_loss,
    kl_to_teacher,
    l2_to_reference,
    own_pair_logits,
    training_loss,
)

B, K, D = 6, 3, 16


def _unit(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


@pytest.fixture
def feats():
    mask = torch.ones(B, K, dtype=torch.bool)
    mask[1, 2] = mask[3, 1:] = False
    mask[4] = False  # a sample without any negative
    img_mask = mask.clone()
    img_mask[0, 0] = False  # caption negative without an edited image
    return dict(
        image_features=_unit(B, D, seed=1),
        text_features=_unit(B, D, seed=2),
        neg_text_features=_unit(B, K, D, seed=3),
        neg_image_features=_unit(B, K, D, seed=4),
        neg_mask=mask,
        neg_image_mask=img_mask,
    )


SCALE = torch.tensor([math.log(1 / 0.07)], dtype=torch.float64)


def _ce(logits: list[float], target: int) -> float:
    m = max(logits)
    return -(logits[target] - m - math.log(sum(math.exp(x - m) for x in logits)))


def _dot(a, b) -> float:
    return float((a * b).sum())


def _naive_clip(img, txt, s):
    i2t = [_ce([s * _dot(img[i], txt[j]) for j in range(len(img))], i) for i in range(len(img))]
    t2i = [_ce([s * _dot(txt[i], img[j]) for j in range(len(img))], i) for i in range(len(img))]
    return (sum(i2t) / len(img) + sum(t2i) / len(img)) / 2


def _naive_own(anchor, pos, negs, mask, s):
    rows = []
    for i in range(len(anchor)):
        valid = [k for k in range(negs.shape[1]) if mask[i, k]]
        if valid:
            logits = [s * _dot(anchor[i], pos[i])] + [s * _dot(anchor[i], negs[i, k]) for k in valid]
            rows.append(_ce(logits, 0))
    return sum(rows) / len(rows)


def _naive_in_softmax(anchor, pos, negs, mask, s, w):
    rows = []
    for i in range(len(anchor)):
        logits = [s * _dot(anchor[i], pos[j]) for j in range(len(anchor))]
        for j in range(len(anchor)):
            for k in range(negs.shape[1]):
                if mask[j, k]:
                    logits.append(s * _dot(anchor[i], negs[j, k]) * (w if j == i else 1.0))
        rows.append(_ce(logits, i))
    return sum(rows) / len(rows)


def test_zero_weight_equals_open_clip_cliploss(feats):
    from open_clip.loss import ClipLoss

    ref = ClipLoss()(feats["image_features"], feats["text_features"], SCALE.exp())
    ours = hard_negative_loss(**feats, logit_scale=SCALE, hn_weight=0.0, form="additive")["loss"]
    assert abs(float(ours) - float(ref)) < 1e-6
    # and in fp32, the precision training runs the loss in
    f32 = {k: v.float() if v.is_floating_point() else v for k, v in feats.items()}
    ref32 = ClipLoss()(f32["image_features"], f32["text_features"], SCALE.float().exp())
    ours32 = hard_negative_loss(**f32, logit_scale=SCALE.float(), hn_weight=0.0)["loss"]
    assert abs(float(ours32) - float(ref32)) < 1e-6


@pytest.mark.parametrize("w", [0.0, 0.5, 2.0])
def test_additive_matches_loop(feats, w):
    s = float(SCALE.exp())
    out = hard_negative_loss(**feats, logit_scale=SCALE, hn_weight=w, form="additive")
    clip = _naive_clip(feats["image_features"], feats["text_features"], s)
    hn_t = _naive_own(
        feats["image_features"], feats["text_features"], feats["neg_text_features"], feats["neg_mask"], s
    )
    hn_i = _naive_own(
        feats["text_features"],
        feats["image_features"],
        feats["neg_image_features"],
        feats["neg_image_mask"],
        s,
    )
    assert float(out["contrastive"]) == pytest.approx(clip, abs=1e-9)
    assert float(out["hn_text"]) == pytest.approx(hn_t, abs=1e-9)
    assert float(out["hn_image"]) == pytest.approx(hn_i, abs=1e-9)
    assert float(out["loss"]) == pytest.approx(clip + w * (hn_t + hn_i), abs=1e-9)


@pytest.mark.parametrize("w", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("image_negs", [False, True])
def test_in_softmax_matches_loop(feats, w, image_negs):
    s = float(SCALE.exp())
    kwargs = dict(feats)
    if not image_negs:
        kwargs.pop("neg_image_features"), kwargs.pop("neg_image_mask")
    out = hard_negative_loss(**kwargs, logit_scale=SCALE, hn_weight=w, form="in_softmax")
    i2t = _naive_in_softmax(
        feats["image_features"], feats["text_features"], feats["neg_text_features"], feats["neg_mask"], s, w
    )
    if image_negs:
        t2i = _naive_in_softmax(
            feats["text_features"],
            feats["image_features"],
            feats["neg_image_features"],
            feats["neg_image_mask"],
            s,
            w,
        )
    else:  # thesis hnc_l2: text -> image over positives only
        empty = torch.zeros(B, 1, D, dtype=torch.float64)
        t2i = _naive_in_softmax(
            feats["text_features"], feats["image_features"], empty, torch.zeros(B, 1, dtype=torch.bool), s, w
        )
    assert float(out["loss"]) == pytest.approx((i2t + t2i) / 2, abs=1e-9)


def test_l2_to_reference_matches_loop_and_names_are_unwrapped():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    ref = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model[1].bias.requires_grad_(False)  # frozen params do not count
    expected = sum(
        float(((p.detach() - ref[n]) ** 2).sum()) for n, p in model.named_parameters() if p.requires_grad
    )
    assert float(l2_to_reference(model, ref).detach()) == pytest.approx(expected, rel=1e-6)
    assert expected > 0
    # names as DeepSpeed's engine reports them ("module.0.weight") must not silently give 0
    prefixed = {f"module.{n}": v for n, v in ref.items()}
    with pytest.raises(KeyError, match="0.weight"):
        l2_to_reference(model, prefixed)


def test_kl_matches_loop(feats):
    s = float(SCALE.exp())
    student = caption_logits(
        feats["image_features"], feats["text_features"], feats["neg_text_features"], feats["neg_mask"], s
    )
    t_img, t_txt = _unit(B, D, seed=7), _unit(B, D, seed=8)
    teacher = caption_logits(t_img, t_txt, feats["neg_text_features"], feats["neg_mask"], s)
    T = 2.0
    got = float(kl_to_teacher(student, teacher, T))
    total = 0.0
    for i in range(B):
        cols = [s * _dot(feats["image_features"][i], feats["text_features"][j]) for j in range(B)]
        tcols = [s * _dot(t_img[i], t_txt[j]) for j in range(B)]
        for j in range(B):
            for k in range(K):
                if feats["neg_mask"][j, k]:
                    cols.append(s * _dot(feats["image_features"][i], feats["neg_text_features"][j, k]))
                    tcols.append(s * _dot(t_img[i], feats["neg_text_features"][j, k]))
        zs = sum(math.exp(c / T) for c in cols)
        zt = sum(math.exp(c / T) for c in tcols)
        for c, tc in zip(cols, tcols, strict=True):
            q, p = math.exp(tc / T) / zt, math.exp(c / T) / zs
            total += q * (math.log(q) - math.log(p))
    assert got == pytest.approx(total / B * T * T, rel=1e-7)


@pytest.mark.parametrize("with_ref", [False, True])
def test_dpo_matches_loop(feats, with_ref):
    s, beta = float(SCALE.exp()), 0.1
    img, txt, neg, mask = (
        feats[k] for k in ("image_features", "text_features", "neg_text_features", "neg_mask")
    )
    r_img = _unit(B, D, seed=9)
    pos, negl = own_pair_logits(img, txt, neg, s)
    rp = rn = None
    if with_ref:
        rp, rn = own_pair_logits(r_img, txt, neg, s)
    got = float(dpo_loss(pos, negl, mask, beta, rp, rn))
    terms = []
    for i in range(B):
        for k in range(K):
            if mask[i, k]:
                z = s * _dot(img[i], txt[i]) - s * _dot(img[i], neg[i, k])
                if with_ref:
                    z -= s * _dot(r_img[i], txt[i]) - s * _dot(r_img[i], neg[i, k])
                terms.append(-math.log(1 / (1 + math.exp(-beta * z))))
    assert got == pytest.approx(sum(terms) / len(terms), rel=1e-9)


def test_training_loss_default_is_hard_negative_loss(feats):
    lp = frozen_params.load().loss
    a = training_loss(feats, SCALE, lp)
    b = hard_negative_loss(**feats, logit_scale=SCALE, hn_weight=lp.hn_weight, form=lp.form)
    assert set(a) == set(b) and torch.equal(a["loss"], b["loss"])


def test_training_loss_combines_terms(feats):
    lp = dataclasses.replace(
        frozen_params.load().loss, contrastive_weight=0.5, kl_weight=0.3, dpo_weight=0.5, l2_weight=0.01
    )
    model = torch.nn.Linear(2, 2).double()
    ref = {n: p.detach() + 1.0 for n, p in model.named_parameters()}
    teacher = {k: (v.flip(0) if v.is_floating_point() else v) for k, v in feats.items()}
    out = training_loss(
        feats, SCALE, lp, teacher_features=teacher, teacher_logit_scale=SCALE, model=model, reference=ref
    )
    base = hard_negative_loss(**feats, logit_scale=SCALE, hn_weight=lp.hn_weight, form=lp.form)["loss"]
    expected = 0.5 * base + 0.01 * out["l2"] + 0.3 * out["kl"] + 0.5 * out["dpo"]
    assert float(out["loss"].detach()) == pytest.approx(float(expected.detach()), rel=1e-12)
    assert float(out["l2"].detach()) == pytest.approx(6.0) and float(out["kl"]) > 0
    with pytest.raises(ValueError, match="teacher"):
        training_loss(feats, SCALE, lp, model=model, reference=ref)
