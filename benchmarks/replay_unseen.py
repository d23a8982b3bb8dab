"""Does replay keep the broad world only where it shows it? Replay of pretraining pairs without its classes.

The ``replay`` arm (``loss.replay_weight=1``) replays the base's pretraining pairs, which come from the
broad world that ``synth_broad`` (the retention benchmark) is drawn from: every one of its zero-shot classes
keeps being seen. A real CLIP can replay only web pairs, related to its benchmarks but not the same. This
script fine-tunes the committed set-up (seed, threads, every other value) with ``loss.replay_weight=1`` twice:

* ``whole``: replaying every pretraining pair (``data/synth/pretrain.jsonl``), as the pipeline does;
* ``unseen``: replaying only the pretraining scenes whose objects all have a fine-tuning colour and shape
  (:func:`without_broad`): none of the broad-only colours or shapes that make up ``synth_broad``'s classes.

and scores both with the evaluate stage on ``synth_broad``, ``synth_test`` and ``synth_gen``, beside the
committed hard-negative run (no replay, ``metrics/``).

    dvc repro                               # the committed pipeline: its base, negatives and metrics
    python benchmarks/replay_unseen.py      # about 6 min on 2 cores

Writes ``benchmarks/results/replay_unseen.{json,md}``. Stage scripts run directly (not through DVC), so the
two models are written to a temporary folder and nothing under ``models/`` or ``metrics/`` changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click
from _setup import ROOT, committed_raw, params_source

RESULTS = ROOT / "benchmarks" / "results"
BENCHMARKS = ("synth_broad", "synth_test", "synth_gen")
NEEDED = ("data/synth/pretrain.jsonl", "data/negatives/train.jsonl", "models/base.safetensors",
          "metrics/eval/synth_broad.json", "metrics/headline/synth_test.json",
          "metrics/headline/synth_gen.json")


def without_broad(lines, synth) -> list[str]:
    """The manifest lines whose scene has no object of a broad-only colour or shape."""
    from genemi.synth.dataset import broad_only

    keep = []
    for line in lines:
        objects = json.loads(line)["meta"]["scene"]["objects"]
        if not any(broad_only(synth, o["color"], o["shape"]) for o in objects):
            keep.append(line)
    return keep


def figures(broad: dict, test: dict, gen: dict) -> dict:
    """hard (mean of synth_test and synth_gen ``hard_text``), broad zero-shot top-1 and its interval,
    broad R@1."""
    return {
        "hard": (test["finetuned/hard_text"] + gen["finetuned/hard_text"]) / 2,
        "broad": broad["finetuned/zeroshot/top1"],
        "broad_lo": broad["finetuned/zeroshot/top1_lo"], "broad_hi": broad["finetuned/zeroshot/top1_hi"],
        "broad_r1": (broad["finetuned/retrieval/i2t_r@1"] + broad["finetuned/retrieval/t2i_r@1"]) / 2,
        "base_broad": broad["base/zeroshot/top1"],
    }


def _run(args: list[str]) -> None:
    env = dict(os.environ, RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=os.environ.get("MASTER_PORT", "29547"))
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True)


def check_workspace() -> None:
    """The base, negatives and metrics read here must be what `dvc repro` of the committed params wrote: a
    `dvc exp run -S` in the workspace leaves other params and outputs behind."""
    missing = [f for f in NEEDED if not (ROOT / f).exists()]
    if missing:
        raise click.ClickException(f"{missing[0]}: not found; run `dvc repro` first")
    changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "params.yaml"], cwd=ROOT)
    stale = subprocess.run(["dvc", "status", "--quiet"], cwd=ROOT, capture_output=True)
    if changed.returncode or stale.returncode:
        raise click.ClickException("params.yaml differs from the committed one, or the pipeline's outputs "
                                   "are not up to date with it; run `git checkout params.yaml && dvc repro` "
                                   "first")


def measure(tmp: Path) -> dict:
    import yaml

    from genemi.config import params_from_dict
    from genemi.recipe import apply_to

    check_workspace()
    raw, source = committed_raw()
    raw = apply_to(raw, {"loss.replay_weight": 1.0}, f"benchmark overrides on {source}")
    p = params_from_dict(raw)
    params = tmp / "replay_params.yaml"  # the committed params + the override, for the stages
    params.write_text(yaml.safe_dump(raw), encoding="utf-8")
    lines = (ROOT / "data/synth/pretrain.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    kept = without_broad(lines, p.synth)
    unseen = tmp / "pretrain_unseen.jsonl"
    unseen.write_text("".join(kept), encoding="utf-8")
    out = {"params": params_source() + " + loss.replay_weight=1", "pretrain_pairs": len(lines),
           "unseen_pairs": len(kept), "arms": {}}
    read = lambda f: json.loads(Path(f).read_text(encoding="utf-8"))  # noqa: E731
    out["arms"]["no replay (committed run)"] = figures(read(ROOT / "metrics/eval/synth_broad.json"),
                                                       read(ROOT / "metrics/headline/synth_test.json"),
                                                       read(ROOT / "metrics/headline/synth_gen.json"))
    for arm, manifest in (("whole", "data/synth/pretrain.jsonl"), ("unseen", str(unseen))):
        d = tmp / arm
        _run(["stages/finetune.py", "--params", str(params), "--train", "data/negatives/train.jsonl",
              "--image-root", "data", "--base", "models/base.safetensors", "--out", str(d / "ft.safetensors"),
              "--metrics", str(d / "finetune.json"), "--live-dir", str(d / "live"), "--data", "data",
              "--replay", manifest, "data"])
        for b in BENCHMARKS:
            _run(["stages/evaluate.py", "--params", str(params), "--benchmark", b, "--data", "data",
                  "--base", "models/base.safetensors", "--finetuned", str(d / "ft.safetensors"),
                  "--metrics", str(d / f"eval_{b}.json"), "--plot-dir", str(d / "plots"),
                  "--headline", str(d / f"head_{b}.json"), "--items", str(d / f"items_{b}.npz")])
        out["arms"][arm] = figures(read(d / "eval_synth_broad.json"), read(d / "head_synth_test.json"),
                                   read(d / "head_synth_gen.json"))
    return out


def markdown(res: dict) -> str:
    none = res["arms"]["no replay (committed run)"]
    lines = [
        "# Replay of pretraining pairs that show none of the retention benchmark's classes",
        "",
        f"Measured with `python benchmarks/replay_unseen.py` ({res['params']}; one seed, the committed one). "
        f"`whole` replays all {res['pretrain_pairs']} pretraining pairs, `unseen` only the "
        f"{res['unseen_pairs']} whose objects all have a fine-tuning colour and shape (no broad-only colour "
        "or shape, so none of `synth_broad`'s classes). Hard = mean of synth_test and synth_gen "
        "`hard_text`; broad = `synth_broad` zero-shot top-1 [95% interval]; loss left = (base − run) / "
        "(base − no replay).",
        "",
        "| replay | hard | broad zero-shot | loss left | broad R@1 |",
        "|---|---|---|---|---|",
    ]
    for arm, f in res["arms"].items():
        left = (f["base_broad"] - f["broad"]) / (none["base_broad"] - none["broad"])
        interval = f"[{f['broad_lo']:.1f}, {f['broad_hi']:.1f}]"
        lines.append(f"| {arm} | {f['hard']:.1f} | {f['broad']:.1f} {interval} | {100 * left:.0f}% | "
                     f"{f['broad_r1']:.1f} |")
    lines.append(f"\nThe base: broad zero-shot {none['base_broad']:.1f}.")
    return "\n".join(lines) + "\n"


@click.command(help=__doc__)
def main() -> None:
    from genemi.io import write_json, write_text

    with tempfile.TemporaryDirectory() as tmp:
        res = measure(Path(tmp))
    write_json(RESULTS / "replay_unseen.json", res)
    write_text(RESULTS / "replay_unseen.md", markdown(res))
    click.echo(markdown(res))


if __name__ == "__main__":
    main()
