"""Report: the results table, the trade-off picture and failure galleries over many runs.

Reads runs -- every DVC experiment (`dvc exp show --json`, the default), the ones named with --exp
(an experiment name, branch, tag or commit), or run folders (--run-dir, e.g. the workspace: `.`) --
groups them by params with the seeds aggregated, and writes into --out:

  results.md             headline numbers per benchmark (mean ± 95% t-interval over seeds), each run's
                         difference from its control (loss.hn_weight=0, same finetune.steps) with a
                         paired bootstrap p-value over the same items, per-type detail, the run list
  tradeoff.png           compositional gain against retention, one point per group
  failures/<bench>.png   the fine-tuned model's most confident mistakes per type, with the base model's
                         verdict on the same pairs (from the run of --gallery-run, else the best group)

Not a DVC stage: it reads git refs of experiments, which no stage can declare as dependencies.
Example: `python stages/report.py` after `dvc queue start`; `python stages/report.py --exp exp-a1b2c
--exp exp-d3e4f --out reports/ab`.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command(help=__doc__)
@click.option(
    "--exp",
    "exps",
    multiple=True,
    help="An experiment name (as in `dvc exp show`), branch, tag or commit; repeatable. "
    "Default without --exp/--run-dir: every successful experiment.",
)
@click.option(
    "--run-dir",
    "run_dirs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="A folder holding params.yaml and the metrics/ files of one run (e.g. `.` for the "
    "workspace); repeatable.",
)
@click.option(
    "--repo",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, exists=True),
    help="The git/DVC repository the experiments live in.",
)
@click.option("--out", "out_dir", default="reports", show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--bootstrap",
    "n_boot",
    default=1000,
    show_default=True,
    type=click.IntRange(min=100),
    help="Paired bootstrap resamples per comparison (the smallest p is 1/(n+1)).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap resampling.")
@click.option(
    "--gallery-run",
    default=None,
    help="Run (name as in the table's run list) whose mistakes "
    "the failure galleries show; default: first seed of the group with the largest hard-type "
    "gain over its control.",
)
@click.option(
    "--per-type",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Mistakes per negative type in a gallery (at most what the evaluate stage saved).",
)
def main(exps, run_dirs, repo, out_dir, n_boot, seed, gallery_run, per_type) -> None:
    from genemi import report
    from genemi.io import write_text

    runs = []
    try:
        named = list(exps)
        if not named and not run_dirs:
            found = report.dvc_experiments(repo)
            if not found:
                raise click.ClickException(
                    f"{repo}: `dvc exp show` lists no successful experiment; run a sweep first "
                    "(README: Sweeps) or name runs with --exp / --run-dir"
                )
            runs += [report.load_run(name, report.git_reader(sha, repo)) for name, sha in found]
        known: dict[str, str] | None = None  # experiment name -> sha, asked of dvc only when needed
        for name in named:
            sha = _git_commit(name, repo)
            if sha is None:
                known = dict(report.dvc_experiments(repo)) if known is None else known
                if name not in known:
                    raise click.ClickException(
                        f"--exp {name!r}: neither a git revision nor an experiment of `dvc exp show`"
                    )
                sha = known[name]
            runs.append(report.load_run(name, report.git_reader(sha, repo)))
        for d in run_dirs:
            runs.append(report.load_run(str(d), report.dir_reader(d)))
        groups = report.group_runs(runs)
        out = Path(out_dir)
        write_text(out / "results.md", report.results_markdown(groups, n_boot, seed))
        report.tradeoff_figure(groups, out / "tradeoff.png")
        chosen = report.pick_gallery_run(groups, gallery_run)
        for bench in report.benchmarks_of([chosen]):
            title = f"{bench}: most confident mistakes of run {chosen.name}"
            report.failure_figure(chosen.items(bench), title, out / "failures" / f"{bench}.png", per_type)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(
        f"report: {len(runs)} runs in {len(groups)} groups -> {out}/results.md, tradeoff.png, "
        f"failures/ (gallery: {chosen.name})"
    )


def _git_commit(rev: str, repo: str) -> str | None:
    """The commit sha of a branch, tag, sha or experiment ref; None if git does not know it."""
    import subprocess

    r = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    return r.stdout.strip() if r.returncode == 0 else None


if __name__ == "__main__":
    main()
