"""Process-wide set-up shared by the stage scripts: threads, seeds, determinism."""

from __future__ import annotations

import os
import random

import numpy as np


def setup(seed: int, threads: int = 0) -> None:
    """Seed every RNG and make torch deterministic.

    Same params + same seed must give byte-identical metrics, so deterministic kernels are
    required (``warn_only`` keeps ops without a deterministic variant usable on GPU).
    """
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def loader_workers(requested: int, in_memory: bool) -> int:
    """``data.workers``: ``-1`` = automatic (none for an in-memory bank, else the CPUs split over this
    node's ranks, at most 8); ``0`` = this process; ``n`` = n worker processes."""
    if requested >= 0:
        return requested
    if in_memory:
        return 0
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(8, (os.cpu_count() or 1) // max(1, local) - 1))
