"""Contrastive losses with hard negatives, following open_clip's contract.

The model side produces L2-normalised features; a loss takes them as keyword arguments and
returns a dict of named terms whose ``"loss"`` entry is the total to back-propagate.

Shapes: ``image_features``/``text_features`` ``[B, D]`` (row i is a true pair);
``neg_text_features`` ``[B, K, D]`` (hard negative captions of image i);
``neg_image_features`` ``[B, K, D]`` (edited images for which caption i is false);
``neg_mask`` / ``neg_image_mask`` ``[B, K]`` bool (False = padding; a sample may have fewer
than K negatives, or a caption negative without an edited image).

Two public forms of the hard-negative term, selected by ``loss.form``:

* ``additive`` (NegCLIP-style auxiliary term):
  ``L = CLIP + w * CE_i(s*[cos(I_i,T_i), cos(I_i,T-_i1..K)] -> 0)``
  (+ the same over edited images for text -> image when image negatives are given).
  ``w = 0`` is exactly the CLIP loss.
* ``in_softmax`` (the HNC thesis, final version): every in-batch negative caption is an extra
  column of image i's softmax, and the sample's *own* negatives' logits are multiplied by
  ``w``. Note that ``w = 0`` then sets those logits to 0 (it does not remove them), as in
  the thesis.

Further terms, all off by default (weights 0), combined by :func:`training_loss`:
L2 to the initial weights, KL to a frozen teacher, and DPO against a frozen reference.

Distributed: with ``world_size > 1`` every feature tensor is all-gathered *with gradient*
before the loss (open_clip's ``gather_features(local_loss=False, gather_with_grad=True)``),
so each rank computes the loss of the whole global batch. DeepSpeed then averages the
ranks' gradients, which equals the single-process gradient of the same global batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

NEG_INF = -1e4  # large but finite: masked columns must not produce NaN gradients in fp16/bf16


class _GatherRows(torch.autograd.Function):
    """all_gather along dim 0 whose backward sums every rank's gradient for this rank's rows.

    Not ``torch.distributed.nn.functional.all_gather``: on gloo (torch 2.14.1) its backward
    receives into ``empty_like(grad)``, which keeps a non-contiguous gradient's strides, while
    ``scatter`` writes contiguously -- the negatives' gradients (from an einsum) came back
    scrambled. An all_reduce of one contiguous tensor has no such corner.
    """

    @staticmethod
    def forward(ctx, x):
        import torch.distributed as dist

        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        ctx.rows, ctx.rank = x.shape[0], dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # every rank's loss depends on every rank's rows
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_rows(x: torch.Tensor | None, world_size: int) -> torch.Tensor | None:
    """Concatenate ``x`` (``[b, ...]`` per rank, same ``b`` on all) over ranks in rank order.

    Returns ``[world*b, ...]``. Float tensors keep their gradient path (each rank's rows get
    the sum of all ranks' gradients, which DeepSpeed's averaging turns back into the
    single-process gradient). Bool masks carry no gradient.
    """
    if x is None or world_size == 1:
        return x
    if x.dtype == torch.bool:  # gloo has no bool all_gather
        import torch.distributed as dist

        parts = [torch.empty_like(x, dtype=torch.uint8) for _ in range(world_size)]
        dist.all_gather(parts, x.to(torch.uint8).contiguous())
        return torch.cat(parts).bool()
    return _GatherRows.apply(x)


def clip_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE over the batch (open_clip's ClipLoss, single process)."""
    scale = logit_scale.exp().reshape(())
    logits = scale * image_features @ text_features.T
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` (same shape), 0 where nothing is selected.

    Arithmetic instead of boolean indexing: no data-dependent shape, so no host-device sync on a GPU,
    and the graph is the same every step. Unselected entries must be finite (they are multiplied by 0).
    """
    w = mask.to(values.dtype)
    return (values * w).sum() / w.sum().clamp(min=1.0)


def _own_negative_ce(anchor: torch.Tensor, pos: torch.Tensor, negs: torch.Tensor, mask: torch.Tensor, scale):
    """Mean over rows of CE(scale*[<a,p>, <a,n_1..K>] -> 0), masked negatives excluded."""
    pos_logit = (anchor * pos).sum(-1, keepdim=True)  # [B, 1]
    neg_logit = torch.einsum("bd,bkd->bk", anchor, negs)  # [B, K]
    logits = scale * torch.cat([pos_logit, neg_logit], dim=1)
    logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(~mask, NEG_INF)], dim=1)
    target = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
    return masked_mean(F.cross_entropy(logits, target, reduction="none"), mask.any(dim=1))


def _in_softmax_ce(anchor, pos_all, negs, mask, scale, w):
    """CE over [all positives | all in-batch negatives], own negatives' logits times ``w``."""
    b, k, _ = negs.shape
    pos_logits = anchor @ pos_all.T  # [B, B]
    neg_logits = anchor @ negs.reshape(b * k, -1).T  # [B, B*K]
    own = torch.zeros(b, b, k, dtype=torch.bool, device=anchor.device)
    own[torch.arange(b), torch.arange(b)] = True
    own = own.reshape(b, b * k)
    weight = torch.where(own, torch.as_tensor(w, dtype=neg_logits.dtype, device=anchor.device), 1.0)
    neg_logits = scale * neg_logits * weight
    neg_logits = neg_logits.masked_fill(~mask.reshape(1, b * k), NEG_INF)
    logits = torch.cat([scale * pos_logits, neg_logits], dim=1)
    return F.cross_entropy(logits, torch.arange(b, device=anchor.device))


def hard_negative_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    neg_text_features: torch.Tensor | None = None,
    neg_image_features: torch.Tensor | None = None,
    neg_mask: torch.Tensor | None = None,
    neg_image_mask: torch.Tensor | None = None,
    hn_weight: float = 0.0,
    form: str = "additive",
    world_size: int = 1,
) -> dict[str, torch.Tensor]:
    """CLIP loss plus hard-negative terms; returns ``{"loss", "contrastive", "hn_text", "hn_image"}``.

    With ``world_size > 1`` the inputs are this rank's rows; they are gathered first.
    """
    if world_size > 1:
        image_features, text_features, neg_text_features, neg_image_features, neg_mask, neg_image_mask = (
            gather_rows(t, world_size)
            for t in (
                image_features,
                text_features,
                neg_text_features,
                neg_image_features,
                neg_mask,
                neg_image_mask,
            )
        )
    scale = logit_scale.exp().reshape(())
    zero = image_features.sum() * 0.0
    out = {"hn_text": zero, "hn_image": zero}
    if neg_mask is None and neg_text_features is not None:
        neg_mask = torch.ones(neg_text_features.shape[:2], dtype=torch.bool, device=image_features.device)
    if neg_image_mask is None and neg_image_features is not None:
        neg_image_mask = torch.ones(
            neg_image_features.shape[:2], dtype=torch.bool, device=image_features.device
        )
    if form == "additive":
        out["contrastive"] = clip_loss(image_features, text_features, logit_scale)
        total = out["contrastive"]
        if neg_text_features is not None:
            out["hn_text"] = _own_negative_ce(
                image_features, text_features, neg_text_features, neg_mask, scale
            )
            total = total + hn_weight * out["hn_text"]
        if neg_image_features is not None:
            out["hn_image"] = _own_negative_ce(
                text_features, image_features, neg_image_features, neg_image_mask, scale
            )
            total = total + hn_weight * out["hn_image"]
    elif form == "in_softmax":
        labels = torch.arange(image_features.shape[0], device=image_features.device)
        if neg_text_features is not None:
            i2t = _in_softmax_ce(image_features, text_features, neg_text_features, neg_mask, scale, hn_weight)
        else:
            i2t = F.cross_entropy(scale * image_features @ text_features.T, labels)
        if neg_image_features is not None:
            t2i = _in_softmax_ce(
                text_features, image_features, neg_image_features, neg_image_mask, scale, hn_weight
            )
        else:
            t2i = F.cross_entropy(scale * text_features @ image_features.T, labels)
        out["contrastive"] = (i2t + t2i) / 2
        total = out["contrastive"]
    else:
        raise ValueError(f"loss.form: unknown form {form!r}; use 'additive' or 'in_softmax'")
    out["loss"] = total
    return out


def l2_to_reference(model: torch.nn.Module, reference: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``sum over trainable params of ||theta - theta_0||^2`` (scalar, fp32).

    ``reference`` is keyed by the *unwrapped* module's parameter names. A trainable parameter
    without a reference raises instead of being skipped: the thesis's Jan version looked up
    DeepSpeed's ``module.``-prefixed names, found none, and silently trained with L2 = 0.
    """
    total = None
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name not in reference:
            raise KeyError(f"l2_to_reference: no reference weights for parameter {name!r}")
        term = (p.float() - reference[name].to(p.device, torch.float32)).pow(2).sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("l2_to_reference: the model has no trainable parameters")
    return total


def caption_logits(image_features, text_features, neg_text_features, neg_mask, scale) -> torch.Tensor:
    """``[B, B + B*K]``: each image against every positive and every in-batch negative caption.

    Padding negatives get ``NEG_INF``; without negatives this is the ``[B, B]`` CLIP matrix.
    """
    logits = scale * image_features @ text_features.T
    if neg_text_features is None:
        return logits
    b, k, d = neg_text_features.shape
    neg = (scale * image_features @ neg_text_features.reshape(b * k, d).T).masked_fill(
        ~neg_mask.reshape(1, b * k), NEG_INF
    )
    return torch.cat([logits, neg], dim=1)


def kl_to_teacher(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, mean over rows (thesis ``hnc_kl``).

    Both logit matrices ``[B, C]`` must use the same scale (the thesis uses the teacher's
    ``logit_scale`` for both), so the term measures how the similarity ranking moved.
    """
    log_p = F.log_softmax(student_logits / temperature, dim=1)
    q = F.softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_p, q, reduction="batchmean") * temperature**2


def own_pair_logits(image_features, text_features, neg_text_features, scale):
    """``(pos [B], neg [B, K])``: ``scale*cos`` of each image with its caption and its own negatives."""
    pos = scale * (image_features * text_features).sum(-1)
    neg = scale * torch.einsum("bd,bkd->bk", image_features, neg_text_features)
    return pos, neg


def dpo_loss(pos, neg, mask, beta: float, ref_pos=None, ref_neg=None) -> torch.Tensor:
    """DPO preference of each caption over its own negatives, mean over valid ``(i, k)``.

    ``z = beta*[(pos_i - ref_pos_i) - (neg_ik - ref_neg_ik)]``, ``L = -log sigmoid(z)``; without a
    reference (``ref_pos is None``) the thesis's "noref" form ``z = beta*(pos_i - neg_ik)``.
    ``pos`` ``[B]``, ``neg``/``mask`` ``[B, K]``. ``logsigmoid`` replaces the thesis's
    ``log(sigmoid(z) + 1e-8)``: equal where that is finite, without its floor at ``log 1e-8``.
    """
    margin = pos[:, None] - neg
    if ref_pos is not None:
        margin = margin - (ref_pos[:, None] - ref_neg)
    return masked_mean(-F.logsigmoid(beta * margin), mask)


def needs_teacher(params) -> bool:
    """Whether a selected term reads a frozen teacher's features (KL, DPO against a reference)."""
    return params.kl_weight > 0 or (params.dpo_weight > 0 and params.dpo_reference)


def uses_negatives(params) -> bool:
    """Whether a selected term reads hard negatives; if not, they are not even encoded (the control run
    then costs what plain CLIP costs). ``in_softmax`` reads them at any weight (``w = 0`` zeroes logits)."""
    return not (
        params.hn_weight == 0 and params.form == "additive" and params.kl_weight == 0 and params.dpo_weight == 0
    )


def training_loss(
    features: Mapping[str, torch.Tensor | None],
    logit_scale: torch.Tensor,
    params,
    world_size: int = 1,
    teacher_features: Mapping[str, torch.Tensor | None] | None = None,
    teacher_logit_scale: torch.Tensor | None = None,
    model: torch.nn.Module | None = None,
    reference: Mapping[str, torch.Tensor] | None = None,
    replay_features: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Every selected term for one step; ``"loss"`` is the total to back-propagate.

    ``features``: this rank's ``image_features``, ``text_features`` ``[b, D]`` and optionally
    ``neg_text_features``/``neg_image_features`` ``[b, K, D]`` with ``neg_mask``/``neg_image_mask``;
    ``teacher_features`` the same keys from the frozen teacher (needed by KL and referenced DPO).
    ``params`` is a :class:`~genemi.config.LossParams`:
    ``replay_features``: this rank's ``image_features``/``text_features`` of the replayed pretraining pairs.
    ``loss = contrastive_weight*(CLIP or HN form) + l2_weight*L2 + kl_weight*KL + dpo_weight*DPO
    + replay_weight*CLIP(replay)``.
    With the default weights (1, 0, 0, 0) this is exactly :func:`hard_negative_loss`.
    """
    f = {k: gather_rows(v, world_size) for k, v in features.items()}
    out = hard_negative_loss(**f, logit_scale=logit_scale, hn_weight=params.hn_weight, form=params.form)
    if params.contrastive_weight != 1.0:
        out["loss"] = params.contrastive_weight * out["loss"]
    if needs_teacher(params) and teacher_features is None:
        raise ValueError("loss.kl_weight / loss.dpo_reference need a frozen teacher; none was given")
    t = {k: gather_rows(v, world_size) for k, v in (teacher_features or {}).items()}
    if params.l2_weight > 0:
        if model is None or reference is None:
            raise ValueError("loss.l2_weight > 0 needs the model and its initial weights")
        out["l2"] = l2_to_reference(model, reference)
        out["loss"] = out["loss"] + params.l2_weight * out["l2"]
    if params.kl_weight > 0:
        scale = teacher_logit_scale.exp().reshape(()).detach()
        s_logits = caption_logits(
            f["image_features"], f["text_features"], f.get("neg_text_features"), f.get("neg_mask"), scale
        )
        with torch.no_grad():
            t_logits = caption_logits(
                t["image_features"], t["text_features"], t.get("neg_text_features"), t.get("neg_mask"), scale
            )
        out["kl"] = kl_to_teacher(s_logits, t_logits, params.kl_temperature)
        out["loss"] = out["loss"] + params.kl_weight * out["kl"]
    if params.dpo_weight > 0:
        if f.get("neg_text_features") is None:
            raise ValueError("loss.dpo_weight > 0 needs caption negatives (loss.negatives_per_sample > 0)")
        scale = logit_scale.exp().reshape(())
        pos, neg = own_pair_logits(f["image_features"], f["text_features"], f["neg_text_features"], scale)
        ref_pos = ref_neg = None
        if params.dpo_reference:
            with torch.no_grad():
                ref_pos, ref_neg = own_pair_logits(
                    t["image_features"],
                    t["text_features"],
                    t["neg_text_features"],
                    teacher_logit_scale.exp().reshape(()),
                )
        out["dpo"] = dpo_loss(pos, neg, f["neg_mask"], params.dpo_beta, ref_pos, ref_neg)
        out["loss"] = out["loss"] + params.dpo_weight * out["dpo"]
    if params.replay_weight > 0:
        if replay_features is None:
            raise ValueError("loss.replay_weight > 0 needs a batch of replayed pretraining pairs; none given")
        r = {k: gather_rows(v, world_size) for k, v in replay_features.items()}
        out["replay"] = clip_loss(r["image_features"], r["text_features"], logit_scale)
        out["loss"] = out["loss"] + params.replay_weight * out["replay"]
    return out
