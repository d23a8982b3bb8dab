"""Pretrained open_clip weights for real runs: any architecture + tag or local checkpoint.

The only code that touches the open_clip/Hugging Face caches. Offline, a missing file is an
error that names the file and where to put it, never a silent random init. open_clip reads
checkpoints with ``torch.load(weights_only=True)`` (or safetensors).
"""

from __future__ import annotations

import os
from pathlib import Path

from genemi.config import PRETRAINED_DIR, ModelParams, pretrained_is_file


def check_quickgelu(arch: str, pretrained: str) -> None:
    """OpenAI-trained weights (and other QuickGELU tags) need the ``-quickgelu`` architecture.

    open_clip only warns, and the model then computes with GELU where it was trained with
    x*sigmoid(1.702x): features are subtly wrong. A tag whose training activation differs from
    the architecture's raises; a local file cannot be checked (name it ``*-quickgelu`` archs).
    """
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not cfg:
        return
    model_cfg = open_clip.get_model_config(arch) or {}
    if bool(cfg.get("quick_gelu", False)) != bool(model_cfg.get("quick_gelu", False)):
        want = f"{arch}-quickgelu" if cfg.get("quick_gelu") else arch.replace("-quickgelu", "")
        raise ValueError(
            f"model.arch={arch!r} with model.pretrained={pretrained!r}: these weights were trained with "
            f"{'QuickGELU' if cfg.get('quick_gelu') else 'GELU'}; set model.arch: {want}"
        )


def hub_files(hub: str) -> tuple[str, str]:
    """``(repo id, file name)`` of an open_clip ``hf_hub`` entry, split as open_clip itself splits it:
    ``"org/name/"`` (trailing slash) is repo ``org/name`` with the default weights file, and
    ``"org/name/file.bin"`` names the file."""
    repo, filename = os.path.split(hub)
    return repo, filename or "open_clip_pytorch_model.bin"


def load_pretrained(p: ModelParams):
    """``build_model(p, p.pretrained)`` with precise offline errors. ``p.pretrained``: tag or file."""
    import open_clip

    from genemi.models import build_model, register_configs

    register_configs()
    tag = p.pretrained
    if pretrained_is_file(tag):
        if not Path(tag).is_file():
            raise FileNotFoundError(
                f"model.pretrained: checkpoint file {tag} not found; place the {p.arch} checkpoint there "
                f"(e.g. the NegCLIP .pt, in {PRETRAINED_DIR}/ for the pipeline) or set model.pretrained "
                "to an open_clip tag"
            )
        return load_checkpoint_file(p, Path(tag))
    if p.arch in open_clip.list_models():
        known = open_clip.list_pretrained_tags_by_model(p.arch)
        if tag not in known:
            raise ValueError(
                f"model.pretrained={tag!r} is neither a file nor a tag of {p.arch}; tags: {known}"
            )
        check_quickgelu(p.arch, tag)
    try:
        return build_model(p, pretrained=tag)
    except (RuntimeError, OSError) as e:
        cfg = open_clip.get_pretrained_cfg(p.arch, tag) or {}
        hub = cfg.get("hf_hub", "")
        where = (
            f"the Hugging Face cache (HF_HOME, default ~/.cache/huggingface): "
            f"huggingface-cli download {' '.join(hub_files(hub))}"
            if hub
            else f"~/.cache/clip/ (from {cfg.get('url', '?')})"
        )
        raise FileNotFoundError(
            f"model.pretrained={tag!r} for {p.arch}: weights are not available offline ({e}). "
            f"Place them in {where}, or download the checkpoint file and set model.pretrained to its path."
        ) from e


def load_checkpoint_file(p: ModelParams, path: Path, what: str = "model.pretrained"):
    """``p.arch`` with the weights of checkpoint file ``path`` (safetensors, or a PyTorch file read with
    ``weights_only=True``; open_clip's conversions of OpenAI/timm layouts apply), checked like every model
    file (:mod:`genemi.models`): an empty, cut-short or foreign file, another architecture or non-finite
    values are one :class:`~genemi.models.WeightsError` naming the file and ``what``."""
    import re

    import open_clip

    from genemi.models import build_model
    from genemi.weights import WeightsError, check_state, read_safetensors, torch_load_problem

    where = f"{path} ({what})"
    redo = f"place the {p.arch} checkpoint there (re-download it) or set {what} to another file"
    if path.suffix == ".safetensors":
        read_safetensors(path, what, redo)  # refuses an empty, cut-short or foreign file before open_clip reads it
    elif path.stat().st_size == 0:
        raise WeightsError(f"{where}: the checkpoint file is empty (0 bytes); {redo}")
    model = build_model(p)
    try:
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except RuntimeError as e:
        msg = str(e)
        shapes = re.findall(r"size mismatch for ([\w.]+)", msg)
        missing = re.search(r"Missing key\(s\) in state_dict: \"([\w.]+)\"", msg)
        extra = re.search(r"Unexpected key\(s\) in state_dict: \"([\w.]+)\"", msg)
        if not (shapes or missing or extra):
            raise WeightsError(f"{where}: {torch_load_problem(e)}; {redo}") from None
        parts = [f"{len(shapes)} tensors of another shape (e.g. {shapes[0]})"] if shapes else []
        parts += [f"missing tensors (e.g. {missing.group(1)})"] if missing else []
        parts += [f"tensors {p.arch} does not have (e.g. {extra.group(1)})"] if extra else []
        raise WeightsError(f"{where}: weights of another architecture than model.arch={p.arch}: "
                           f"{', '.join(parts)}; set model.arch to the checkpoint's architecture") from None
    except Exception as e:  # torch.load's reasons: cut short, not a checkpoint, Python objects beyond tensors
        raise WeightsError(f"{where}: {torch_load_problem(e)}; {redo}") from None
    check_state(model, model.state_dict(), path, what)  # the values: finite
    return model
