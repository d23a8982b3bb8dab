"""Report: the results table, the trade-off picture and failure galleries over many runs.

Reads runs -- every DVC experiment (`dvc exp show --json`, the default), the ones named with --exp
(an experiment name, branch, tag or commit), or run folders (--run-dir, e.g. the workspace: `.`) --
groups them by params with the seeds aggregated, and writes into --out:


  results.md             headline numbers per benchmark (mean ± 95% t-interval over seeds), each run's
                         difference from its control (loss.hn_weight=0, same finetune.steps, same
                         items) with a paired bootstrap p-value over them, per-type detail, the run list,
                         and a row per claim of the claims sweep (python -m genemi.sweep claims)
  tradeoff.png           compositional gain against retention (synth_broad when the runs have it), one
                         point per group, and WiSE-FT curves
  failures/<bench>.png   the fine-tuned model's most confident mistakes per type, with the base model's
                         verdict on the same pairs (from the run of --gallery-run, else the best group),
                         for each benchmark whose per-item file holds such mistakes

Not a DVC stage: it reads git refs of experiments, which no stage can declare as dependencies.
Example: `python stages/report.py --exp exp-a1b2c --exp exp-d3e4f --out reports/ab`.
"""

from __future__ import annotations

import _checkout  # noqa: F401  (this checkout's genemi first; see _checkout.py)
import click

from genemi.errors import Output, Stage


@click.command(cls=Stage, help=__doc__)
@click.option("--exp", "exps", multiple=True,
              help="An experiment name (as in `dvc exp show`), branch, tag or commit; repeatable. "
                   "Default without --exp/--run-dir: every successful experiment.")
@click.option("--run-dir", "run_dirs", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="A folder holding params.yaml and the metrics/ files of one run (e.g. `.`); repeatable.")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False, exists=True),
              help="The git/DVC repository the experiments live in.")
@click.option("--out", "out_dir", default="reports", show_default=True, type=Output(folder=True))
@click.option("--bootstrap", "n_boot", default=1000, show_default=True, type=click.IntRange(min=100),
              help="Paired bootstrap resamples per comparison (the smallest p is 1/(n+1)).")
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap resampling.")
@click.option("--gallery-run", default=None,
              help="Run (as named in the table) whose mistakes the failure galleries show; default: first "
                   "seed of the group with the largest hard-type gain over its control.")
@click.option("--per-type", default=4, show_default=True, type=click.IntRange(min=1),
              help="Mistakes per negative type in a gallery (at most what the evaluate stage saved).")
def main(exps, run_dirs, repo, out_dir, n_boot, seed, gallery_run, per_type) -> None:
    from genemi import report

    runs = report.collect_runs(list(exps), list(run_dirs), repo)
    groups, chosen, written = report.write_report(runs, out_dir, n_boot, seed, gallery_run, per_type)
    repeats = sum(len(g.repeats) for g in groups)  # same params and seed as another run: counted once
    click.echo(f"report: {len(runs)} runs in {len(groups)} groups -> " + ", ".join(map(str, written))
               + (f"; {repeats} repeated run(s) not counted, named in results.md" if repeats else ""))
    if not any(p.parent.name == "failures" for p in written):
        click.echo(f"no failure gallery: the per-item files of run {chosen.name} hold no text-side mistakes")


if __name__ == "__main__":
    main()
