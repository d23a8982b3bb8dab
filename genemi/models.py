"""Model construction, tokenizers and weight I/O (the :class:`genemi.clip.Clip` wrapper builds on these).

Architectures are data: open_clip JSON configs in ``genemi/model_configs/`` are registered
with ``open_clip.add_model_config``, exactly like open_clip's own. The synthetic world uses a
word-level tokenizer over its closed vocabulary so the text tower's embedding table is 48
rows instead of 49,408.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from genemi.config import ModelParams
from genemi.synth import world
from genemi.weights import WeightsError, _label, check_state, read_safetensors  # noqa: F401  (the model-file checks)

CONFIG_DIR = Path(__file__).parent / "model_configs"
_registered = False


def register_configs() -> None:
    """Make our architecture JSONs visible to ``open_clip.create_model`` (idempotent)."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


class WordTokenizer:
    """Word-level tokenizer for the synthetic world.

    Ids: 0 = pad, 1 = start, 2 = end (the text tower pools at ``eos_id`` = 2), words from 3.
    The vocabulary covers the whole palette and shape list (the broad pretraining world), so one
    model config serves any subset chosen in params. A full stop is a word of its own, as CLIP's
    tokenizer splits it off ("a photo of a red circle." ends with the word ".").
    """

    PAD, SOT, EOT = 0, 1, 2

    def __init__(self, context_length: int):
        words = world.vocabulary(list(world.PALETTE), list(world.SHAPES))
        self.vocab = {w: i + 3 for i, w in enumerate(words)}
        self.context_length = context_length

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """``[N, context_length]`` int64 token ids."""
        if isinstance(texts, str):
            texts = [texts]
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for r, text in enumerate(texts):
            ids = [self.SOT]
            for w in text.lower().replace(".", " . ").split():
                if w not in self.vocab:
                    raise ValueError(
                        f"word {w[:40]!r} in caption {_show(text)} is not in the synthetic vocabulary; "
                        "use model.tokenizer=open_clip for free text"
                    )
                ids.append(self.vocab[w])
            ids.append(self.EOT)
            if len(ids) > self.context_length:
                raise ValueError(
                    f"caption {_show(text)} has {len(ids) - 2} words, more than the "
                    f"{self.context_length - 2} the synthetic text tower reads; shorten it"
                )
            out[r, : len(ids)] = torch.tensor(ids)
        return out


def _show(text: str, limit: int = 80) -> str:
    """A caption for a one-line message: its start, and its length when it is cut."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def make_tokenizer(p: ModelParams):
    import open_clip

    register_configs()
    if p.tokenizer == "word":
        cfg = open_clip.get_model_config(p.arch)
        if cfg is None:
            raise ValueError(f"model.arch: unknown architecture {p.arch!r}")
        return WordTokenizer(cfg["text_cfg"]["context_length"])
    return open_clip.get_tokenizer(p.arch)


@contextlib.contextmanager
def _without_random_init_notice() -> Iterator[None]:
    """Drop open_clip's "No pretrained weights loaded ... Model initialized randomly" (a root-logger warning
    it gives every model built without a pretrained tag) while such a model is built on purpose."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def build_model(p: ModelParams, pretrained: str | None = None) -> torch.nn.Module:
    """An open_clip model of ``p.arch``; ``pretrained`` is an open_clip tag or a file path.

    ``logit_scale`` is reshaped from a 0-dim to a ``[1]`` parameter: DeepSpeed's flattening
    of parameters crashes on 0-dim tensors.
    """
    import open_clip

    register_configs()
    if p.arch not in open_clip.list_models():
        raise ValueError(f"model.arch: unknown architecture {p.arch!r}; see open_clip.list_models()")
    if pretrained:
        model = open_clip.create_model(p.arch, pretrained=pretrained)
    else:  # random init is the intent: the synthetic model trains from scratch, saved weights load after
        with _without_random_init_notice():
            model = open_clip.create_model(p.arch, pretrained=None)
    model.logit_scale = torch.nn.Parameter(model.logit_scale.detach().reshape(1).clone())
    return model


def preprocess_array(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``[N, H, W, 3]`` uint8 -> ``[N, 3, H, W]`` float, scaled to [-1, 1]."""
    # numpy converts to float itself: a read-only array (np.asarray of a PIL image) then needs no
    # writable view, and the float copy is made once either way
    t = torch.from_numpy(images.astype(np.float32)) if isinstance(images, np.ndarray) else images.float()
    return t.permute(0, 3, 1, 2).div_(127.5).sub_(1.0)


def save_weights(model: torch.nn.Module, path: str | Path, meta: dict) -> None:
    """Write weights as safetensors (atomic) with the model params as metadata."""
    from safetensors.torch import save_file

    from genemi.io import atomic_path

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata={"genemi": json.dumps(meta, sort_keys=True)})


def load_weights(model: torch.nn.Module, path: str | Path, what: str = "",
                 expect: dict | None = None) -> dict:
    """Load genemi's safetensors weights into ``model`` (every tensor, right shapes, finite values);
    returns the stored metadata. ``what`` names where the path came from (``--base``; default: the running
    stage's option for it) in errors. ``expect`` (e.g. ``{"arch": ..., "tokenizer": ...}``): metadata the
    file must not contradict -- ``ViT-B-32`` weights load into ``ViT-B-32-quickgelu`` without a shape
    error, and then compute other features."""
    from genemi.io import option_of

    path = Path(path)
    what = what or option_of(path)
    state, meta = read_safetensors(path, what)
    expect = {k: v for k, v in (expect or {}).items() if v}
    claims = ", ".join(f"model.{k}={meta[k]}" for k in expect if meta.get(k))
    ours = ", ".join(f"model.{k}={v}" for k, v in expect.items())
    redo = (f"this run has {ours}: set model.* as the run that wrote it, or point the option at weights "
            f"for {ours}")
    check_state(model, state, path, what, claims, redo if ours else "")
    differ = [k for k, v in expect.items() if meta.get(k) and meta[k] != v]
    if differ:
        raise WeightsError(f"{_label(path, what)}: written for {claims}, but {redo}")
    model.load_state_dict(state, strict=True)
    return meta
