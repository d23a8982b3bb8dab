"""The claims sweep: every claim of the results report (``genemi.report_claims``), over seeds, as one queue of
DVC experiments.

Each **arm** is a set of ``params.yaml`` overrides on the committed params; every arm runs with every seed::

    python -m genemi.sweep claims            # print what would be queued (nothing runs)
    python -m genemi.sweep claims --queue    # build each extra seed's shared stages, then queue the runs
    dvc queue start -j 2                     # two experiments at a time
    python stages/report.py                  # the results report with a row per claim

The arms (``ARMS``) and what they test:

* ``hn``: the committed params (hard negatives, ``loss.hn_weight=1``): the reference of every other arm;
* ``control``: ``loss.hn_weight=0`` for the same steps: the compositional gain is ``hn - control``;
* ``l2`` / ``kl`` / ``dpo``: the thesis's regularisers (hnc_l2, hnc_kl, dpo_kl), at weights for this
  miniature: does each reduce the retention loss, and at what compositional cost;
* ``last_blocks``: ``finetune.trainable=last_blocks`` (the thesis's finetune_mode) against full;
* ``no_image_negatives``: ``loss.image_negatives=false``: GeNeMi's edited images as negatives, off;
* ``replay``: ``loss.replay_weight=1``: rehearsal, the base's own pretraining pairs replayed with the plain
  CLIP loss beside the fine-tuning batch (the broad world keeps being seen).

Every experiment also runs the WiSE-FT stages (``wise.alphas``), so the WiSE curve of each arm comes free.

Queued experiments share DVC's cache and run cache, and two of them building one stage at the same moment
collide there (docs/sweeps.md). So ``--queue`` first builds, for each seed, every stage that does not depend
on the fine-tuning (the seed's world, negatives and base model) with the sweep's ``COMMON`` params in a
temporary workspace (``dvc exp run --temp``), and removes that experiment: the queued runs restore those
stages from the run cache. Every run also sets ``COMMON`` (``threads=1``, so that two runs share two cores
without oversubscribing them); a seed whose shared stages the committed params already built is skipped.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SEEDS = (0, 1, 2)
PREFIX = "claims"  # experiment names: claims-<arm>-s<seed>

# arm -> overrides of the committed params; "hn" (no override) is the reference the others differ from
ARMS: dict[str, dict[str, object]] = {
    "hn": {},
    "control": {"loss.hn_weight": 0.0},
    # weights chosen on seed 0 (benchmarks/results/claims_sweep.md: l2 1e-3 .. 1, kl 1 and 10): l2 1e-3 and
    # 1e-2 lose more retention than no L2; 0.1 is the smallest that wins retention back; kl 10 falls below
    # the control on the hard types, kl 1 does not (the thesis's 5e-6 / 1e-3 go with 5e-6 learning rates)
    "l2": {"loss.l2_weight": 0.1},
    "kl": {"loss.kl_weight": 1.0},  # KL to the base over [positive | negative] captions, at T = 1
    "dpo": {"loss.contrastive_weight": 0.0, "loss.dpo_weight": 1.0},  # thesis dpo_kl: DPO alone
    "last_blocks": {"finetune.trainable": "last_blocks"},  # finetune.last_blocks (1) blocks per tower
    "no_image_negatives": {"loss.image_negatives": False},
    # plain CLIP on 64 of the base's own pretraining pairs a step, beside the 128-row hard-negative batch
    "replay": {"loss.replay_weight": 1.0},
}

# every experiment of the sweep, arms and preparation alike, also sets these. threads=1: `dvc queue
# start -j 2` runs two experiments at once, and two of the committed 2-thread runs on 2 cores oversubscribe
# them (measured: half the CPU time in the kernel, 600 fine-tuning steps in 9.7 min against ~1.5 min alone);
# two 1-thread runs use one core each. The sweep's figures are therefore 1-thread figures for every arm, the
# hn arm included.
COMMON: dict[str, object] = {"threads": 1}

# the committed value of every key an arm overrides: the "hn" arm is the run with all of these
REFERENCE: dict[str, object] = {
    "loss.hn_weight": 1.0,
    "loss.l2_weight": 0.0,
    "loss.kl_weight": 0.0,
    "loss.contrastive_weight": 1.0,
    "loss.dpo_weight": 0.0,
    "finetune.trainable": "full",
    "loss.image_negatives": True,
    "loss.replay_weight": 0.0,
}


def exp_name(arm: str, seed: int) -> str:
    return f"{PREFIX}-{arm.replace('_', '-')}-s{seed}"


def arm_params(arm: str, seed: int) -> dict[str, object]:
    """The dotted overrides of one experiment: ``COMMON``, the arm's, and ``seed``."""
    return {**COMMON, **ARMS[arm], "seed": seed}


def value_text(v: object) -> str:
    """A value in ``dvc exp run -S`` syntax (YAML: ``true``, ``0.001``, ``last_blocks``)."""
    from genemi.recipe import _override_value

    return _override_value(v)


def queue_commands(seeds=SEEDS, arms=None) -> list[list[str]]:
    """``dvc exp run --queue`` argv of every (arm, seed), arms in ``ARMS`` order within each seed."""
    out = []
    for seed in seeds:
        for arm in arms or ARMS:
            if arm not in ARMS:
                raise ValueError(f"arm {arm!r}: not one of {', '.join(ARMS)}")
            cmd = ["dvc", "exp", "run", "--queue", "--name", exp_name(arm, seed)]
            for k, v in arm_params(arm, seed).items():
                cmd += ["-S", f"{k}={value_text(v)}"]
            out.append(cmd)
    return out


def shared_stages(dvc_yaml: str | Path = "dvc.yaml", after: str = "finetune") -> list[str]:
    """The stages of ``dvc_yaml`` that ``after`` does not reach through outs -> deps (the world, the
    negatives, the base model, the placeholders of the real-data roads): one seed's queued runs share them."""
    import yaml

    stages = yaml.safe_load(Path(dvc_yaml).read_text(encoding="utf-8"))["stages"]

    def outs(st):
        listed = st.get("do", st).get("outs") or []
        return [str(next(iter(o)) if isinstance(o, dict) else o) for o in listed]

    def deps(st):
        return [str(d) for d in st.get("do", st).get("deps") or []]

    def feeds(a, b):  # an output of stage a is (or holds) a dependency of stage b
        return any(d == o or d.startswith(o.rstrip("/") + "/") or o.startswith(d.rstrip("/") + "/")
                   for o in outs(stages[a]) for d in deps(stages[b]))

    down, todo = {after}, [after]
    while todo:
        a = todo.pop()
        for b in stages:
            if b not in down and feeds(a, b):
                down.add(b)
                todo.append(b)
    return [s for s in stages if s not in down]


def prepare_commands(seeds=SEEDS, committed: dict | None = None, dvc_yaml="dvc.yaml") -> list[list[str]]:
    """For each seed whose shared stages ``dvc repro`` of the committed params did not build (``committed``:
    the committed ``seed`` and ``COMMON`` keys): build them in a temporary workspace with ``COMMON``, then
    drop that experiment (its metrics files are still the committed ones; what it built stays in the run
    cache)."""
    committed = committed or {}
    out = []
    for seed in seeds:
        wanted = {**COMMON, "seed": seed}
        if all(committed.get(k) == v for k, v in wanted.items()):
            continue
        name = f"{PREFIX}-pre-s{seed}"
        sets = [x for k, v in wanted.items() for x in ("-S", f"{k}={value_text(v)}")]
        out.append(["dvc", "exp", "run", "--temp", *sets, "--name", name, *shared_stages(dvc_yaml)])
        out.append(["dvc", "exp", "remove", name])
    return out


def _committed(params_path: str = "params.yaml") -> dict:
    """``seed`` and the ``COMMON`` keys of the committed params: what `dvc repro` built the shared stages
    with."""
    from genemi.config import ConfigError
    from genemi.recipe import start_params
    from genemi.report_runs import flatten

    try:
        flat = flatten(start_params(params_path))
    except ConfigError:
        raise ValueError(f"{params_path}: no committed version (git show HEAD:{params_path} fails); run this "
                         "from the root of the project's git checkout") from None
    return {key: flat[key] for key in ("seed", *COMMON)}


def _check_clean(params_path: str = "params.yaml") -> None:
    """The queue takes the workspace's params.yaml as the base of every -S: it must be the committed one."""
    r = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", params_path], capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(
            f"{params_path} differs from the committed version (an earlier `dvc exp run -S` or recipe left "
            "values there), and every queued run would inherit them; `git checkout params.yaml` (or commit "
            "it) first"
        )


def main(argv: list[str] | None = None) -> int:
    import argparse
    import shlex

    ap = argparse.ArgumentParser(prog="python -m genemi.sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep", choices=["claims"])
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)),
                    help="comma-separated (default %(default)s)")
    ap.add_argument("--arms", default="", help=f"comma-separated subset of {', '.join(ARMS)} (default: all)")
    ap.add_argument("--queue", action="store_true",
                    help="run the preparation and queue the experiments (default: only print them)")
    a = ap.parse_args(argv)
    try:
        seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
        arms = [s.strip() for s in a.arms.split(",") if s.strip()] or None
        cmds = prepare_commands(seeds, _committed()) + queue_commands(seeds, arms)
        if not a.queue:
            print("\n".join(shlex.join(c) for c in cmds))
            print(f"# {len(cmds) - len(prepare_commands(seeds, _committed()))} experiments; run with "
                  "--queue, then `dvc queue start -j 2`", file=sys.stderr)
            return 0
        _check_clean()
        for c in cmds:
            print("+ " + shlex.join(c), flush=True)
            if subprocess.run(c).returncode != 0:
                raise RuntimeError(f"`{shlex.join(c)}` failed; fix what it says and run this again (the "
                                   "experiments queued so far stay: `dvc queue status`)")
        print("queued; now: dvc queue start -j 2")
    except FileNotFoundError as e:
        where = e.filename or e
        print(f"Error: {where}: not found; run this from the project's root folder", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError) as e:  # ConfigError is a ValueError
        print(f"Error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
