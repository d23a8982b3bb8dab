"""Resumable training checkpoints on top of DeepSpeed's own, loaded with ``weights_only=True``.

DeepSpeed's ``save_checkpoint``/``load_checkpoint`` know how every ZeRO stage and precision
shards model, optimizer and scheduler state, so we keep its format. Its loader calls
``torch.load(..., weights_only=False)`` (deepspeed 0.19.8, ``TorchCheckpointEngine.load``);
we force the safe unpickler around it with ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` and allow
exactly the few DeepSpeed classes its files contain.

Layout of ``directory``: one ``step00000100/`` folder per checkpoint (only the newest is kept)
and ``latest.json`` ``{"tag", "step", "fingerprint"}``, written atomically after every rank
finished writing: a run killed mid-save still finds the previous complete checkpoint.
The fingerprint (a hash of params, inputs and the genemi code that shapes training) keeps a run
from resuming another run's state, or a state written by older code.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

LATEST = "latest.json"


@contextlib.contextmanager
def _weights_only() -> Iterator[None]:
    import torch
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    old = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        with torch.serialization.safe_globals(
            [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]
        ):
            yield
    finally:
        if old is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = old


def save(engine, directory: str | os.PathLike, step: int, fingerprint: str, state: dict) -> None:
    """Checkpoint after ``step`` optimizer steps (collective: every rank calls it).

    ``state``: extra JSON-like values (floats, lists, dicts) to restore with the weights.
    """
    import torch
    import torch.distributed as dist

    from genemi.io import write_json

    directory = Path(directory)
    tag = f"step{step:08d}"
    client = {"step": step, "fingerprint": fingerprint, "torch_rng": torch.get_rng_state(), **state}
    engine.save_checkpoint(str(directory), tag=tag, client_state=client, save_latest=False)
    dist.barrier()  # every rank's shard is on disk before the pointer moves
    if dist.get_rank() == 0:
        write_json(directory / LATEST, {"fingerprint": fingerprint, "step": step, "tag": tag})
        for old in directory.glob("step*"):
            if old.name != tag:
                shutil.rmtree(old, ignore_errors=True)
    dist.barrier()


def read_latest(directory: str | os.PathLike) -> dict | None:
    """``latest.json`` of ``directory`` checked field by field (None when there is none). A damaged one
    raises ``ValueError`` naming the file, the field and the folder to delete."""
    import re

    from genemi.io import read_json

    directory = Path(directory)
    path = directory / LATEST
    if not path.is_file():
        return None
    fresh = f"delete {directory} to start over from step 0 (rm -r {directory})"
    try:
        latest = read_json(path)
    except (ValueError, OSError) as e:
        raise ValueError(f"{e}: the resume state is damaged; {fresh}") from None
    if not isinstance(latest, dict):
        raise ValueError(f"{path}: expected an object {{fingerprint, step, tag}}, found "
                         f"{type(latest).__name__}: the resume state is damaged; {fresh}")
    want = {"fingerprint": str, "step": int, "tag": str}
    for key, kind in want.items():
        value = latest.get(key)
        if key not in latest or not isinstance(value, kind) or isinstance(value, bool):
            found = "missing" if key not in latest else f"{value!r:.40} is not a {kind.__name__}"
            raise ValueError(f"{path}: field {key!r} {found}: the resume state is damaged; {fresh}")
    if latest["step"] < 1 or not re.fullmatch(r"step\d{8}", latest["tag"]) or \
            latest["tag"] != f"step{latest['step']:08d}":
        raise ValueError(f"{path}: tag {latest['tag']!r} does not name step {latest['step']} "
                         f"(step<8 digits>): the resume state is damaged; {fresh}")
    return latest


def load(engine, directory: str | os.PathLike, fingerprint: str) -> dict | None:
    """Restore the newest checkpoint into ``engine``; returns its state (``step`` etc.) or None.

    None when there is none, or when it belongs to other params/inputs (then it is ignored,
    with a message, and overwritten by this run's checkpoints). A checkpoint that is cut short or
    damaged (a missing or unreadable shard, a ``latest.json`` without a field, non-finite weights)
    raises ``ValueError`` naming it and the folder to delete; nothing is unpickled beyond tensors.
    """
    import torch

    directory = Path(directory)
    latest = read_latest(directory)
    if latest is None:
        return None
    if latest["fingerprint"] != fingerprint:
        print(f"{directory / LATEST}: checkpoint of other params or inputs; starting from step 0")
        return None
    folder = directory / latest["tag"]
    fresh = f"delete {directory} to start over from step 0 (rm -r {directory})"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: checkpoint named in {LATEST} is missing; {fresh}")
    try:
        with _weights_only():
            path, client = engine.load_checkpoint(str(directory), tag=latest["tag"])
    except Exception as e:  # a shard cut short, emptied or replaced: torch.load / DeepSpeed's own errors
        from genemi.weights import torch_load_problem

        raise ValueError(f"{folder}: the checkpoint is damaged ({torch_load_problem(e)}); {fresh}") from None
    if not isinstance(client, dict) or path is None or "torch_rng" not in client or client.get("step") != latest["step"]:
        raise ValueError(f"{folder}: the checkpoint is incomplete (its state does not match {LATEST}); {fresh}")
    floats = [(n, t) for n, t in engine.module.state_dict().items() if t.is_floating_point()]
    bad = [n for n, t in floats if not bool(torch.isfinite(t).all())]
    if bad:
        raise ValueError(f"{folder}: tensor {bad[0]} holds NaN or infinite values; {fresh}")
    torch.set_rng_state(client["torch_rng"])
    return client


def clear(directory: str | os.PathLike) -> None:
    """Remove the checkpoints once the stage's outputs are written (rank 0 only)."""
    directory = Path(directory)
    (directory / LATEST).unlink(missing_ok=True)
    for old in directory.glob("step*"):
        shutil.rmtree(old, ignore_errors=True)


# the code a checkpoint's state depends on: the package's modules (losses, loop, batches, models, ...),
# the architecture JSONs and the data readers; mining, synthesis and benchmarks only feed files in
CODE_GLOBS = ("*.py", "model_configs/*.json", "data/*.py")
PKG = Path(__file__).resolve().parent


def code_files() -> list[Path]:
    """The genemi source files that shape training (see ``CODE_GLOBS``), sorted by path in the package."""
    files = {f for g in CODE_GLOBS for f in PKG.glob(g) if f.is_file()}
    return sorted(files, key=lambda f: f.relative_to(PKG).as_posix())


def fingerprint(params: dict, *files: str | os.PathLike | None, code: bool = True) -> str:
    """sha256 of the params (JSON, sorted keys), the bytes of every input file (``None``: skipped) and,
    with ``code``, of :func:`code_files`: a checkpoint written before ``genemi/losses.py`` changed is
    not resumed."""
    import hashlib
    import json

    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for f in files:
        if f is None:
            continue
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    if code:
        for f in code_files():
            h.update(f.relative_to(PKG).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def data_files(manifest: str | os.PathLike) -> list[Path]:
    """The manifest plus, when present, the image digest beside it (``digest.json``: sha256 of every image
    it names), so replaced images also change a fingerprint."""
    from genemi.manifest import DIGEST

    digest = Path(manifest).with_name(DIGEST)
    return [Path(manifest), *([digest] if digest.is_file() else [])]
