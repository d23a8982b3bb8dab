"""Wall time of a DVC experiment queue, per experiment and in all: poll ``dvc queue status`` and log each
change of an experiment's state, then summarise the log.

    python benchmarks/queue_times.py watch LOG [--every 30]   # until nothing is Queued or Running
    python benchmarks/queue_times.py summary LOG [--prefix claims-]

The log has one line per change: ``HH:MM:SS <experiment> <state>`` (the time of the poll that first saw
it, so each figure is good to the polling interval). An experiment's time runs from the poll that first saw
it ``Running`` to the one that saw it ``Success`` or ``Failed``; the queue's from the first ``Running`` to
the last end. The time of day wraps at midnight once at most (a queue of under a day).
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ENDS = ("Success", "Failed")


def poll() -> dict[str, str]:
    """``{experiment: state}`` from ``dvc queue status`` (columns: task, name, created..., state)."""
    out = subprocess.run(["dvc", "queue", "status"], capture_output=True, text=True, check=True).stdout
    states = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and cols[-1] in ("Queued", "Running", *ENDS):
            states[cols[1]] = cols[-1]
    return states


def watch(log: Path, every: float) -> None:
    seen: dict[str, str] = {}
    with log.open("a", encoding="utf-8") as f:
        while True:
            states = poll()
            for name, state in states.items():
                if seen.get(name) != state:
                    f.write(f"{datetime.now():%H:%M:%S} {name} {state}\n")
                    f.flush()
                    seen[name] = state
            if not any(s in ("Queued", "Running") for s in states.values()):
                return
            time.sleep(every)


def spans(lines: list[str], prefix: str = "") -> dict[str, tuple[float, float | None, str]]:
    """``{experiment: (start s, end s or None, last state)}``, seconds from the first line's time."""
    out: dict[str, list] = {}
    t0 = day = last = None
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"line {n}: {line!r}: expected 'HH:MM:SS <experiment> <state>'")
        hh, mm, ss = (int(x) for x in parts[0].split(":"))
        t = hh * 3600 + mm * 60 + ss
        if last is not None and t < last:
            day = (day or 0) + 86400  # past midnight
        last = t
        t += day or 0
        t0 = t if t0 is None else t0
        name, state = parts[1], parts[2]
        if not name.startswith(prefix):
            continue
        rec = out.setdefault(name, [None, None, state])
        if state == "Running" and rec[0] is None:
            rec[0] = t - t0
        if state in ENDS:
            rec[1] = t - t0
        rec[2] = state
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def summary(log: Path, prefix: str) -> str:
    s = spans(log.read_text(encoding="utf-8").splitlines(), prefix)
    ran = {k: v for k, v in s.items() if v[0] is not None}
    rows = ["| experiment | started (min) | minutes | state |", "|---|---:|---:|---|"]
    for name, (a, b, state) in sorted(ran.items(), key=lambda kv: kv[1][0]):
        dur = f"{(b - a) / 60:.1f}" if b is not None else "–"
        rows.append(f"| {name} | {a / 60:.1f} | {dur} | {state} |")
    done = [v for v in ran.values() if v[1] is not None]
    if done:
        first, end = min(v[0] for v in ran.values()), max(v[1] for v in done)
        rows.append(f"\n{len(done)} of {len(ran)} ended; first Running to last end: {(end - first) / 60:.1f} "
                    "min")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python benchmarks/queue_times.py",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["watch", "summary"])
    ap.add_argument("log", type=Path)
    ap.add_argument("--every", type=float, default=30.0, help="seconds between polls (default %(default)s)")
    ap.add_argument("--prefix", default="", help="only experiments whose name starts with this")
    a = ap.parse_args(argv)
    try:
        if a.mode == "watch":
            watch(a.log, a.every)
        else:
            print(summary(a.log, a.prefix))
    except (ValueError, FileNotFoundError, subprocess.CalledProcessError) as e:
        print(f"Error: {a.log}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
