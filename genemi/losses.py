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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NEG_INF = -1e4  # large but finite: masked columns must not produce NaN gradients in fp16/bf16


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over the batch (open_clip's ClipLoss, single process)."""
    scale = logit_scale.exp().reshape(())
    logits = scale * image_features @ text_features.T
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def _own_negative_ce(anchor: torch.Tensor, pos: torch.Tensor, negs: torch.Tensor, mask: torch.Tensor, scale):
    """Mean over rows of CE(scale*[<a,p>, <a,n_1..K>] -> 0), masked negatives excluded."""
    pos_logit = (anchor * pos).sum(-1, keepdim=True)  # [B, 1]
    neg_logit = torch.einsum("bd,bkd->bk", anchor, negs)  # [B, K]
    logits = scale * torch.cat([pos_logit, neg_logit], dim=1)
    logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(~mask, NEG_INF)], dim=1)
    has_neg = mask.any(dim=1)
    if not has_neg.any():
        return logits.sum() * 0.0
    target = torch.zeros(int(has_neg.sum()), dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits[has_neg], target)


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
) -> dict[str, torch.Tensor]:
    """CLIP loss plus hard-negative terms; returns ``{"loss", "contrastive", "hn_text", "hn_image"}``."""
    scale = logit_scale.exp().reshape(())
    zero = image_features.sum() * 0.0
    out = {"hn_text": zero, "hn_image": zero}
    if neg_mask is None and neg_text_features is not None:
        neg_mask = torch.ones(neg_text_features.shape[:2], dtype=torch.bool, device=image_features.device)
    if neg_image_mask is None and neg_image_features is not None:
        neg_image_mask = torch.ones(neg_image_features.shape[:2], dtype=torch.bool, device=image_features.device)
    if form == "additive":
        out["contrastive"] = clip_loss(image_features, text_features, logit_scale)
        total = out["contrastive"]
        if neg_text_features is not None:
            out["hn_text"] = _own_negative_ce(image_features, text_features, neg_text_features, neg_mask, scale)
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
