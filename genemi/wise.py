"""WiSE-FT (Wortsman et al., CVPR 2022): the weight-space ensemble of a model before and after fine-tuning.

``theta_a = (1 - a) * theta_base + a * theta_finetuned`` for each ``a`` of ``wise.alphas``: ``a = 0`` is the
base model, ``a = 1`` the fine-tuned one, and the models between trade the fine-tuning's gain against what
it cost elsewhere, with no training. Both files pass the checks every model file passes
(:func:`genemi.weights.read_safetensors`), and must be one architecture: the same tensors with the same
shapes and dtypes, written for the same ``model.arch`` / ``model.tokenizer`` / ``model.pretrained``.
``stages/wise.py`` writes ``models/wise/<a>.safetensors``; ``stages/wise_eval.py`` scores them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from genemi.weights import WeightsError, read_safetensors

# the metadata that says which architecture a file holds (genemi.run writes it with every model)
IDENTITY = ("arch", "tokenizer", "pretrained")


def alpha_name(a: float) -> str:
    """The file and metric name of ``a``: ``0.25`` -> ``"0.25"``, ``1`` -> ``"1"`` (as ``%g`` writes it)."""
    return f"{float(a):g}"


def check_pair(base: Mapping[str, torch.Tensor], ft: Mapping[str, torch.Tensor], base_meta: dict,
               ft_meta: dict, base_path, ft_path) -> None:
    """Refuse two state dicts that are not one architecture: one :class:`WeightsError` line naming both
    files, how they differ (the first example) and what to do."""
    why = ""
    only_b = [k for k in base if k not in ft]
    only_f = [k for k in ft if k not in base]
    shape = [k for k in base if k in ft and (base[k].shape != ft[k].shape or base[k].dtype != ft[k].dtype)]
    differ = [k for k in IDENTITY if base_meta.get(k) != ft_meta.get(k)]
    if only_b or only_f:
        k = (only_b or only_f)[0]
        side = base_path if only_b else ft_path
        why = (f"{len(only_b) + len(only_f)} tensor(s) are in one file only (e.g. {k}, only in {side})")
    elif shape:
        k = shape[0]
        why = (f"{len(shape)} tensor(s) differ in shape or dtype (e.g. {k}: {list(base[k].shape)} "
               f"{base[k].dtype} vs {list(ft[k].shape)} {ft[k].dtype})")
    elif differ:
        k = differ[0]
        why = f"they were written for model.{k}={base_meta.get(k)!r} and {ft_meta.get(k)!r}"
    if why:
        raise WeightsError(
            f"{base_path} and {ft_path}: not one architecture, so they cannot be interpolated: {why}; "
            "point --base at the model the fine-tuned one started from"
        )


def interpolate(base: Mapping[str, torch.Tensor], ft: Mapping[str, torch.Tensor],
                a: float) -> dict[str, torch.Tensor]:
    """``(1 - a) * base + a * ft`` per tensor, in the tensors' dtype (``a`` in [0, 1]). The end points are
    the inputs' own tensors, bit for bit (the formula would turn a -0.0 into +0.0 there). Tensors that
    are not floating point (counters, index buffers) must be equal in both and are kept."""
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"wise.alphas: {a!r} is outside [0, 1] (0 = the base model, 1 = the fine-tuned one)")
    out = {}
    for k, b in base.items():
        f = ft[k]
        if a == 0.0 or a == 1.0:
            out[k] = (b if a == 0.0 else f).clone()
        elif b.is_floating_point():
            out[k] = (1.0 - a) * b + a * f
        elif torch.equal(b, f):
            out[k] = b.clone()
        else:
            raise ValueError(f"tensor {k} ({b.dtype}) differs between the models and is not floating point: "
                             "it cannot be interpolated")
    return out


def write_interpolations(base_path, ft_path, alphas: Sequence[float], out_dir) -> list[Path]:
    """``<out_dir>/<a>.safetensors`` for each ``a`` (:func:`alpha_name`), each with the fine-tuned file's
    metadata plus ``wise_alpha``; written through :func:`genemi.weights.write_safetensors` (held back until
    the stage succeeds). Returns the paths."""
    from genemi.weights import write_safetensors

    base, base_meta = read_safetensors(base_path, "--base")
    ft, ft_meta = read_safetensors(ft_path, "--finetuned")
    check_pair(base, ft, base_meta, ft_meta, base_path, ft_path)
    names = [alpha_name(a) for a in alphas]
    if len(set(names)) != len(names):
        raise ValueError(f"wise.alphas {list(alphas)}: a value is given twice; list each once")
    paths = []
    for a, name in zip(alphas, names, strict=True):
        path = Path(out_dir) / f"{name}.safetensors"
        write_safetensors(interpolate(base, ft, float(a)), path, {**ft_meta, "wise_alpha": float(a)})
        paths.append(path)
    return paths
