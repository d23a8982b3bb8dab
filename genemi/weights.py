"""The checks every model file passes before its weights are used (:mod:`genemi.models`, :mod:`genemi.pretrained`,
:mod:`genemi.checkpoint`, :mod:`genemi.mining.models`): one :class:`WeightsError` line naming the file, the option or
params key it came from, what is wrong and what to do. Nothing here unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


class WeightsError(ValueError):
    """A model file that cannot be what it claims: its message names the file, where it came from (the
    option or params key), what is wrong and what to do, on one line."""


def _label(path: Path, what: str) -> str:
    return f"{path} ({what})" if what else str(path)


_MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header


def read_safetensors(
    path: str | Path, what: str = "", remedy: str = ""
) -> tuple[dict[str, torch.Tensor], dict]:
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
    end = max(
        (
            int(v["data_offsets"][1])
            for k, v in meta.items()
            if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
        ),
        default=0,
    )
    if 8 + n + end > size:
        raise WeightsError(
            f"{where}: the file is cut short ({size} of {8 + n + end} bytes: an interrupted "
            f"copy or download); {redo}"
        )
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors' own checks (offsets, dtypes): the file is damaged
        raise WeightsError(
            f"{where}: damaged safetensors file ({str(e).splitlines()[0][:200]}); {redo}"
        ) from None
    info = meta.get("__metadata__") or {}
    try:
        stored = json.loads(info.get("genemi", "{}"))
    except ValueError:
        stored = {}
    return state, stored if isinstance(stored, dict) else {}


def _foreign(head: bytes) -> str:
    """What a non-safetensors file looks like, from its first bytes (a hint for the message)."""
    if head.startswith(b"PK\x03\x04"):
        return (
            " (it is a zip: a PyTorch .pt/.bin checkpoint? genemi never unpickles files; convert it with "
            "safetensors.torch.save_file)"
        )
    if head[:1] == b"\x80":
        return " (it is a Python pickle; genemi never unpickles files)"
    return ""


def check_state(
    model: torch.nn.Module,
    state: dict[str, torch.Tensor],
    path: str | Path,
    what: str = "",
    claims: str = "",
    remedy: str = "",
) -> None:
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
            parts.append(
                f"{len(shapes)} tensors of another shape (e.g. {k}: {list(state[k].shape)}, the model "
                f"needs {list(want[k].shape)})"
            )
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


def torch_load_problem(e: BaseException) -> str:
    """What ``torch.load(weights_only=True)`` refusing a file means, in one clause (never torch's advice to
    turn ``weights_only`` off: that would run code from the file)."""
    import pickle

    if isinstance(e, pickle.UnpicklingError) or "Weights only load failed" in str(e):
        return (
            "not a plain tensor checkpoint: it is not a PyTorch file, or it holds Python objects besides "
            "tensors, which genemi never unpickles"
        )
    first = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0][:160]
    return f"not a readable checkpoint (cut short or damaged: {first})"


def write_safetensors(state: dict[str, torch.Tensor], path: str | Path, meta: dict) -> None:
    """Write ``state`` as safetensors with ``meta`` as the ``genemi`` metadata (what
    :func:`read_safetensors` returns), atomically: inside a stage the file waits beside its output until
    the stage succeeds (:mod:`genemi.outputs`)."""
    from safetensors.torch import save_file

    from genemi.io import atomic_path

    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata={"genemi": json.dumps(meta, sort_keys=True)})
