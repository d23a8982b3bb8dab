"""DeepSpeed set-up: the config derived from params, and process-group bootstrapping.

Every training run goes through a DeepSpeed engine, also a single CPU process: the same
code then scales to ``deepspeed --num_gpus 8 stages/finetune.py ...`` or multi-node.
"""

from __future__ import annotations

import logging
import math
import os
import socket

from genemi.config import DeepSpeedParams, LossParams, OptimParams


def ensure_dist_env() -> None:
    """Fill in the rendezvous variables a bare ``python`` process lacks.

    Without RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT DeepSpeed tries MPI discovery and fails;
    under ``deepspeed``/``torchrun`` they are already set and left alone.
    """
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        os.environ.setdefault("LOCAL_RANK", os.environ["RANK"])
        return
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:  # a free port, so parallel runs (tests, exps) don't collide
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])


def _single_process_setup() -> None:
    """Skip DeepSpeed's CPU shared-memory all-reduce op for a one-process run.

    DeepSpeed's torch backend JIT-compiles that op (~1 min on 2 cores) into the extensions folder
    every run shares (``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``): parallel
    experiments wait on its build lock, and a build killed mid-way leaves the lock behind so later
    runs wait forever. The op only serves all-reduces between several local ranks; one process
    never calls it.
    """
    import importlib

    try:
        # not `import deepspeed.comm.torch as m`: that binds deepspeed.comm's attribute `torch`,
        # which is the torch package
        ds_torch = importlib.import_module("deepspeed.comm.torch")
    except ImportError:  # another DeepSpeed layout: it builds the op as before
        return
    if hasattr(ds_torch, "build_shm_op"):
        ds_torch.build_shm_op = lambda: None


def _last_blocks(model, n: int) -> list[str]:
    """Name prefixes of the final ``n`` residual blocks of each tower (open_clip layout)."""
    prefixes = []
    for tower in ("visual.transformer", "transformer"):
        blocks = model.get_submodule(tower).resblocks
        if n > len(blocks):
            raise ValueError(f"finetune.last_blocks = {n} but {tower} has only {len(blocks)} blocks")
        prefixes += [f"{tower}.resblocks.{i}." for i in range(len(blocks) - n, len(blocks))]
    return prefixes


def set_trainable(model, opt: OptimParams, loss: LossParams) -> list[str]:
    """Freeze all but ``opt.trainable`` and apply a fixed temperature; returns the trainable names.

    ``full``: every parameter, including ``logit_scale``; ``vision``: ``visual.*``; ``text``:
    everything outside ``visual.`` except ``logit_scale``; ``last_blocks``: the final
    ``opt.last_blocks`` resblocks of both towers (the thesis's ``last_encoder`` with n = 1).
    ``loss.temperature > 0`` sets ``logit_scale = log(1/tau)`` and freezes it.
    """
    import torch

    if opt.trainable == "last_blocks":
        prefixes = _last_blocks(model, opt.last_blocks)
    for name, p in model.named_parameters():
        if opt.trainable == "full":
            train = True
        elif opt.trainable == "vision":
            train = name.startswith("visual.")
        elif opt.trainable == "text":
            train = not name.startswith("visual.") and name != "logit_scale"
        else:
            train = any(name.startswith(x) for x in prefixes)
        p.requires_grad_(train)
    if loss.temperature > 0:
        with torch.no_grad():
            model.logit_scale.fill_(math.log(1.0 / loss.temperature))
        model.logit_scale.requires_grad_(False)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if not names:
        raise ValueError(f"trainable = {opt.trainable!r} leaves no parameter to train")
    return names


def frozen_copy(model):
    """A detached, eval-mode copy of ``model`` (teacher for KL/DPO): ``[frozen module]``."""
    import copy

    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def reference_weights(model) -> dict:
    """Initial values of the trainable parameters, keyed by the unwrapped module's names (for L2)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def deepspeed_config(opt: OptimParams, ds: DeepSpeedParams, world_size: int) -> dict:
    """DeepSpeed JSON config for one optimisation phase.

    ``opt.batch_size`` is the global batch; it must split evenly over ranks x accumulation.
    ``torch_adam`` avoids compiling DeepSpeed's fused Adam op (minutes on first use).
    """
    per_step = world_size * ds.grad_accum
    if opt.batch_size % per_step:
        raise ValueError(
            f"batch_size {opt.batch_size} is not divisible by world_size x deepspeed.grad_accum = {per_step}"
        )
    if ds.zero_stage not in (0, 1, 2):
        raise ValueError(f"deepspeed.zero_stage must be 0, 1 or 2, got {ds.zero_stage}")
    return {
        "train_batch_size": opt.batch_size,
        "train_micro_batch_size_per_gpu": opt.batch_size // per_step,
        "gradient_accumulation_steps": ds.grad_accum,
        "gradient_clipping": opt.grad_clip,
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": opt.lr,
                "weight_decay": opt.weight_decay,
                "betas": [0.9, 0.98],
                "eps": 1e-6,
                "torch_adam": True,
            },
        },
        "scheduler": {
            "type": "WarmupCosineLR",
            "params": {
                "total_num_steps": max(opt.steps, 1),
                "warmup_num_steps": max(opt.warmup_steps, 1),
                "warmup_min_ratio": 0.0,
                "cos_min_ratio": 0.01,
                "warmup_type": "linear",
            },
        },
        "zero_optimization": {"stage": ds.zero_stage},
        "bf16": {"enabled": ds.precision == "bf16"},
        "fp16": {"enabled": ds.precision == "fp16", "initial_scale_power": 12},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def _not_started_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Attempting to get learning rate from scheduler before it has")


def init_engine(model, opt: OptimParams, ds: DeepSpeedParams):
    """Wrap ``model``'s trainable parameters in a DeepSpeed engine (gloo on CPU, nccl on GPU)."""
    import torch

    if not torch.cuda.is_available():  # DeepSpeed would pick the CPU too, after a warning nobody can act on
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    ensure_dist_env()
    if int(os.environ["WORLD_SIZE"]) == 1:
        _single_process_setup()
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if int(os.environ["WORLD_SIZE"]) == 1:
            # one process needs no rendezvous: an in-memory store, not a TCP port, so parallel runs
            # (`dvc queue start -j N`, tests, a MASTER_PORT left in the shell) cannot collide on it
            torch.distributed.init_process_group(
                backend, store=torch.distributed.HashStore(), rank=0, world_size=1
            )
        else:
            deepspeed.init_distributed(dist_backend=backend, verbose=False)
    world_size = torch.distributed.get_world_size()
    params = [p for p in model.parameters() if p.requires_grad]
    # DeepSpeed's warm-up schedulers read their rate once before step 0 and warn "Attempting to get learning
    # rate from scheduler before it has started" on every run: nothing for the user to do, so dropped here
    quiet = logging.getLogger("DeepSpeed")
    quiet.addFilter(_not_started_notice)
    try:
        engine, _, _, scheduler = deepspeed.initialize(
            model=model, model_parameters=params, config=deepspeed_config(opt, ds, world_size)
        )
    finally:
        quiet.removeFilter(_not_started_notice)
    if world_size == 1 and ds.zero_stage == 0:
        # one rank: the gradient all-reduce is an identity (sum of one, divided by 1) that still
        # flattens and copies every gradient each step; skipping it changes no bit
        engine.enable_backward_allreduce = False
    return engine, scheduler
