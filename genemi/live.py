"""Training curves: dvclive logging on rank 0, with a fixed monitor set scored every few steps.

``train/*`` are the loss terms, learning rate and logit scale; ``perf/*`` the input pipeline's
throughput, data-wait fraction and peak device memory; ``val/*`` the monitor set's text-side pairwise
accuracy per negative type and R@1 both ways, so ``dvc plots`` shows when relations are learned.
"""

from __future__ import annotations

import math

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

    def __init__(self, live_dir, clip=None, monitor: EvalSet | None = None, every: int = 0,
                 last_step: int = -1):
        from dvclive import Live

        # always a fresh folder: a resumed run replays the rows saved with its checkpoint (DVC deletes the
        # plots output before rerunning a stage, so appending to the folder would lose the earlier steps)
        self.live = None if live_dir is None else Live(
            str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None, resume=False)
        self.clip, self.monitor, self.every, self.last_step = clip, monitor, every, last_step
        self.history: list = []  # [step, {metric: value}] of every logged row, saved with each checkpoint

    @property
    def log_every(self) -> int:
        """Steps between rows: 25, or a divisor of the monitor's period so every scoring lands on a row."""
        return 25 if self.monitor is None else math.gcd(25, self.every)

    def __call__(self, step: int, values: dict[str, float]) -> None:
        from genemi.evaluate import monitor_scores

        if self.live is None:
            return
        values = dict(values)
        if self.monitor is not None and (step % self.every == 0 or step == self.last_step):
            values.update({f"val/{k}": v for k, v in monitor_scores(self.clip, self.monitor).items()})
        self.history.append([step, values])
        self._emit(step, values)

    def _emit(self, step: int, values: dict[str, float]) -> None:
        self.live.step = step
        for name, v in values.items():
            self.live.log_metric(name, v)
        self.live.next_step()

    def state(self) -> dict:
        """What a checkpoint keeps of the curves (``train(extra_state=...)``)."""
        return {"live_history": self.history}

    def replay(self, state: dict) -> None:
        """Rewrite the rows a checkpoint kept, before a resumed run logs its next steps."""
        if self.live is None:
            return
        for step, values in state.get("live_history", []):
            self.history.append([step, values])
            self._emit(step, values)

    def end(self) -> None:
        if self.live is not None:
            self.live.end()


def open_curves(live_dir, clip, monitor: EvalSet | None, every: int, steps: int) -> Curves:
    """The run's curves, written by rank 0 only (a resumed run replays its checkpoint's rows first)."""
    import torch.distributed as dist

    from genemi.io import output_folder

    # dvclive writes the folder itself: it fills a fresh one that replaces live_dir with the stage's other
    # outputs (genemi.io.OutputSet), so a failed run leaves the old curves
    live = output_folder(live_dir) if dist.get_rank() == 0 and live_dir is not None else None
    return Curves(live, clip, monitor, every, steps - 1)
