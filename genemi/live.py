"""Training curves: dvclive logging on rank 0, with a fixed monitor set scored every few steps.

``train/*`` are the loss terms, learning rate and logit scale; ``perf/*`` the input pipeline's
throughput, data-wait fraction and peak device memory; ``val/*`` the monitor set's text-side pairwise
accuracy per negative type and R@1 both ways, so ``dvc plots`` shows when relations are learned.
"""

from __future__ import annotations

import math
from pathlib import Path

from genemi.config import EvalParams
from genemi.evalsets import EvalSet, monitor_set


def load_monitor(ev: EvalParams, data_dir) -> EvalSet | None:
    """The first ``ev.monitor_records`` records of benchmark ``ev.monitor`` (None when monitoring is off)."""
    if not ev.monitor or ev.monitor_every <= 0:
        return None
    from genemi.benchmarks import load_benchmark

    try:
        return monitor_set(load_benchmark(ev, ev.monitor, data_dir, seed=ev.seed), ev.monitor_records)
    except (FileNotFoundError, ValueError) as e:
        raise ValueError(f"eval.monitor={ev.monitor!r}: {e}") from None


class Curves:
    """``curves(step, values)`` logs one row; ``val/*`` every ``every`` steps and at ``last_step``.
    ``live_dir`` None: log nothing (ranks other than 0)."""

    def __init__(self, live_dir, resume: bool, clip=None, monitor: EvalSet | None = None, every: int = 0,
                 last_step: int = -1):
        from dvclive import Live

        # a resumed run appends to its curves instead of wiping them
        self.live = None if live_dir is None else Live(
            str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None, resume=resume)
        self.clip, self.monitor, self.every, self.last_step = clip, monitor, every, last_step

    @property
    def log_every(self) -> int:
        """Steps between rows: 25, or a divisor of the monitor's period so every scoring lands on a row."""
        return 25 if self.monitor is None else math.gcd(25, self.every)

    def __call__(self, step: int, values: dict[str, float]) -> None:
        from genemi.evaluate import monitor_scores

        if self.live is None:
            return
        self.live.step = step
        for name, v in values.items():
            self.live.log_metric(name, v)
        if self.monitor is not None and (step % self.every == 0 or step == self.last_step):
            for name, v in monitor_scores(self.clip, self.monitor).items():
                self.live.log_metric(f"val/{name}", v)
        self.live.next_step()

    def end(self) -> None:
        if self.live is not None:
            self.live.end()


def open_curves(live_dir, checkpoint_dir, clip, monitor: EvalSet | None, every: int, steps: int) -> Curves:
    """The run's curves, written by rank 0 only; they resume when ``checkpoint_dir`` holds a checkpoint."""
    import torch.distributed as dist

    from genemi import checkpoint

    resuming = checkpoint_dir is not None and (Path(checkpoint_dir) / checkpoint.LATEST).is_file()
    return Curves(live_dir if dist.get_rank() == 0 else None, resuming, clip, monitor, every, steps - 1)
