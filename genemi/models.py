"""Model construction, tokenizers and weight I/O (the :class:`genemi.clip.Clip` wrapper builds on these).

Architectures are data: open_clip JSON configs in ``genemi/model_configs/`` are registered
with ``open_clip.add_model_config``, exactly like open_clip's own. The synthetic world uses a
word-level tokenizer over its closed vocabulary so the text tower's embedding table is 32
rows instead of 49,408.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from genemi.config import ModelParams
from genemi.synth import world

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
    The vocabulary covers the whole palette and shape list, so one model config serves any
    subset chosen in params.
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
            for w in text.lower().split():
                if w not in self.vocab:
                    raise ValueError(
                        f"word {w!r} in caption {text!r} is not in the synthetic vocabulary; "
                        "use model.tokenizer=open_clip for free text"
                    )
                ids.append(self.vocab[w])
            ids.append(self.EOT)
            if len(ids) > self.context_length:
                raise ValueError(f"caption {text!r} is longer than the context length {self.context_length}")
            out[r, : len(ids)] = torch.tensor(ids)
        return out


def make_tokenizer(p: ModelParams):
    import open_clip

    register_configs()
    if p.tokenizer == "word":
        cfg = open_clip.get_model_config(p.arch)
        if cfg is None:
            raise ValueError(f"model.arch: unknown architecture {p.arch!r}")
        return WordTokenizer(cfg["text_cfg"]["context_length"])
    return open_clip.get_tokenizer(p.arch)


def build_model(p: ModelParams, pretrained: str | None = None) -> torch.nn.Module:
    """An open_clip model of ``p.arch``; ``pretrained`` is an open_clip tag or a file path.

    ``logit_scale`` is reshaped from a 0-dim to a ``[1]`` parameter: DeepSpeed's flattening
    of parameters crashes on 0-dim tensors.
    """
    import open_clip

    register_configs()
    if p.arch not in open_clip.list_models():
        raise ValueError(f"model.arch: unknown architecture {p.arch!r}; see open_clip.list_models()")
    model = open_clip.create_model(p.arch, pretrained=pretrained or None)
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


class WeightsError(ValueError):
    """A model file that cannot be what it claims: its message names the file, where it came from (the
    option or params key), what is wrong and what to do, on one line."""


def _label(path: Path, what: str) -> str:
    return f"{path} ({what})" if what else str(path)


_MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header


def read_safetensors(path: str | Path, what: str = "", remedy: str = "") -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, metadata)`` of a safetensors file, checked before anything is loaded: an empty,
    truncated or foreign file (random bytes, a PyTorch pickle or zip) raises :class:`WeightsError`
    naming ``path`` and ``what`` (the option or key it came from). Never unpickles anything."""
    from safetensors.torch import load_file

    path = Path(path)
    where = _label(path, what)
    redo = remedy or "regenerate it (dvc repro) or point the option at the right file"
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not found"
        raise WeightsError(f"{where}: model weights {kind}; {redo}")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        header = f.read(n) if 0 <= n <= min(_MAX_HEADER, size - 8) else b""
    if size == 0:
        raise WeightsError(f"{where}: the weights file is empty (0 bytes); {redo}")
    foreign = _foreign(head)
    try:
        meta = json.loads(header) if header else None
    except (UnicodeDecodeError, ValueError):
        meta = None
    if not isinstance(meta, dict):
        raise WeightsError(f"{where}: not a safetensors file{foreign} ({size} bytes); {redo}")
    end = max((int(v["data_offsets"][1]) for k, v in meta.items()
               if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v), default=0)
    if 8 + n + end > size:
        raise WeightsError(f"{where}: the file is cut short ({size} of {8 + n + end} bytes: an interrupted "
                           f"copy or download); {redo}")
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors' own checks (offsets, dtypes): the file is damaged
        raise WeightsError(f"{where}: damaged safetensors file ({str(e).splitlines()[0][:200]}); {redo}") from None
    info = meta.get("__metadata__") or {}
    try:
        stored = json.loads(info.get("genemi", "{}"))
    except ValueError:
        stored = {}
    return state, stored if isinstance(stored, dict) else {}


def _foreign(head: bytes) -> str:
    """What a non-safetensors file looks like, from its first bytes (a hint for the message)."""
    if head.startswith(b"PK\x03\x04"):
        return " (it is a zip: a PyTorch .pt/.bin checkpoint? genemi never unpickles files; convert it with " \
               "safetensors.torch.save_file)"
    if head[:1] == b"\x80":
        return " (it is a Python pickle; genemi never unpickles files)"
    return ""


def check_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path, what: str = "",
                claims: str = "", remedy: str = "") -> None:
    """Refuse ``state`` for ``model`` unless every tensor ``model`` has is there with its shape, nothing
    else is, and every value is finite: one line naming ``path`` (``what``), how many tensors differ with
    the first examples, and what the file says it is (``claims``) -- never torch's per-tensor dump."""
    where = _label(Path(path), what)
    redo = remedy or "point the option at weights of this architecture"
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    shapes = [k for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    if missing or extra or shapes:
        parts = []
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} tensors of another shape (e.g. {k}: {list(state[k].shape)}, the model "
                         f"needs {list(want[k].shape)})")
        if missing:
            parts.append(f"{len(missing)} of the model's {len(want)} tensors missing (e.g. {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} tensors the model does not have (e.g. {extra[0]})")
        said = f"; the file says it is {claims}" if claims else ""
        raise WeightsError(f"{where}: weights of another architecture: {', '.join(parts)}{said}; {redo}")
    for k, v in state.items():
        # a NaN or inf anywhere makes the sum non-finite, so one reduction per tensor clears it; a non-finite
        # sum of finite values (float overflow) is told apart by the exact test
        if v.is_floating_point() and not bool(torch.isfinite(v.sum())) and not bool(torch.isfinite(v).all()):
            bad = int((~torch.isfinite(v)).sum())
            raise WeightsError(
                f"{where}: tensor {k} holds {bad} NaN or infinite value(s) (a diverged or damaged run); "
                "these weights cannot be scored or trained on: retrain them (lower the learning rate if the "
                "run diverged) or point the option at other weights"
            )


def load_weights(model: torch.nn.Module, path: str | Path, what: str = "", expect: dict | None = None) -> dict:
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
    redo = f"this run has {ours}: set model.* as the run that wrote it, or point the option at weights for {ours}"
    check_state(model, state, path, what, claims, redo if ours else "")
    differ = [k for k, v in expect.items() if meta.get(k) and meta[k] != v]
    if differ:
        raise WeightsError(f"{_label(path, what)}: written for {claims}, but {redo}")
    model.load_state_dict(state, strict=True)
    return meta
