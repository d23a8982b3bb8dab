"""Where a no-op `dvc status` / `dvc repro` spends its time, by DVC function, in one run.

Runs DVC's own command line in this process, with timers wrapped around the functions that grow
with the pipeline: YAML parsing (per file), building and checking dep/out objects, the params
look-ups (``dpath``), schema validation and the per-stage read/write lock. Nothing of DVC is
changed but the timers; run it in an up-to-date checkout (a no-op), from the repository root:

    python benchmarks/dvc_noop_where.py repro
    python benchmarks/dvc_noop_where.py status

Prints the seconds and call counts, largest first; ``--json FILE`` also writes them.
Interpreter start-up (about 0.05 s) is not included.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import json
import sys
import time
from pathlib import Path

SECONDS: collections.Counter = collections.Counter()
CALLS: collections.Counter = collections.Counter()


def timed(label, f, outermost: list | None = None):
    """``f`` with its wall time added to ``label``; with ``outermost``, nested calls count once."""

    @functools.wraps(f)
    def g(*a, **k):
        if outermost is not None:
            outermost[0] += 1
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            if outermost is None or outermost[0] == 1:
                SECONDS[label] += time.perf_counter() - t
                CALLS[label] += 1
            if outermost is not None:
                outermost[0] -= 1

    return g


def instrument() -> None:
    import dpath
    import dvc.output
    import dvc.rwlock
    import dvc.utils.serialize._yaml as yaml_io
    import dvc.utils.strictyaml
    import voluptuous.schema_builder as vs

    parse = yaml_io.parse_yaml

    def parse_yaml(text, path, *a, **k):
        label = f"parse {Path(str(path)).name}"
        return timed(label, parse)(text, path, *a, **k)

    yaml_io.parse_yaml = parse_yaml
    dvc.utils.strictyaml.parse_yaml = parse_yaml  # dvc.yaml and dvc.lock come this way
    dpath.get = timed("dpath look-ups of params keys", dpath.get)
    vs.Schema.__call__ = timed("schema validation (voluptuous)", vs.Schema.__call__, [0])
    out = dvc.output.Output
    out.__init__ = timed("build dep/out objects", out.__init__)
    out.workspace_status = timed("check deps/outs against the lock", out.workspace_status)
    rwlock = dvc.rwlock.rwlock

    @contextlib.contextmanager
    def timed_rwlock(*a, **k):
        t = time.perf_counter()
        with rwlock(*a, **k):
            SECONDS["per-stage read/write lock (take + release)"] += time.perf_counter() - t
            yield
            t = time.perf_counter()
        SECONDS["per-stage read/write lock (take + release)"] += time.perf_counter() - t
        CALLS["per-stage read/write lock (take + release)"] += 1

    dvc.rwlock.rwlock = timed_rwlock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["status", "repro"])
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    from dvc.cli import main as dvc_main

    instrument()
    rc = dvc_main([args.command, "-q"])
    total = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(
            f"`dvc {args.command}` was not a no-op here (exit {rc}); run it in an up-to-date checkout"
        )
    rows = {k: {"seconds": round(v, 3), "calls": CALLS[k]} for k, v in SECONDS.most_common()}
    print(f"dvc {args.command} (no-op): {total:.2f} s in this process")
    for k, v in rows.items():
        print(f"  {v['seconds']:6.3f} s  {v['calls']:4d} calls  {k}")
    print(f"  {total - sum(SECONDS.values()):6.3f} s  the rest (imports, repository set-up, graph, git)")
    if args.json:
        args.json.write_text(
            json.dumps({"command": args.command, "total": round(total, 3), "parts": rows}, indent=2)
        )


if __name__ == "__main__":
    sys.exit(main())
