"""Count the columns `dvc exp show` would draw, and measure how wide each given variant renders.

Usage: `python benchmarks/exp_show_columns.py [--repo .] [--out FILE.json] [--show ARGS ...]` in a
repository with metrics (a `dvc repro`'d workspace or finished experiments). A metric column is one
flattened key of one metrics file, as `dvc exp show` lays them out; `--only-changed` keeps those that vary.

Each `--show "ARGS"` runs `dvc exp show --no-pager ARGS` twice: on a terminal wide enough for the whole
table (its natural width, the longest line) and on a 200-column one, where DVC collapses the columns that
do not fit to "…"; the result lists the headline metric columns still readable there.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import click


def leaves(obj, prefix="") -> dict:
    """Flattened ``{"a.b": value}`` of nested dicts (lists are one column, as in `dvc exp show`)."""
    if not isinstance(obj, dict):
        return {prefix: obj}
    out = {}
    for k, v in obj.items():
        out.update(leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def columns(data: dict) -> dict[str, dict]:
    """``{"metrics": {file:key: value}, "params": {...}, "deps": {...}}`` of one row's ``data``."""
    out = {}
    for kind in ("metrics", "params"):
        out[kind] = {}
        for f, v in (data.get(kind) or {}).items():
            for k, x in leaves(v.get("data", {})).items():
                out[kind][f"{f}:{k}"] = x
    out["deps"] = {k: v.get("hash") for k, v in (data.get("deps") or {}).items()}
    return out


def rendered(repo: str, args: str, columns: int) -> list[str]:
    """The lines of ``dvc exp show --no-pager ARGS`` on a terminal ``columns`` wide."""
    import os
    import shlex

    env = {**os.environ, "COLUMNS": str(columns), "LINES": "200"}
    cmd = ["dvc", "exp", "show", "--no-pager", *shlex.split(args)]
    r = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise click.ClickException(f"dvc exp show {args} failed: {r.stderr.strip()[-300:]}")
    return r.stdout.rstrip("\n").splitlines()


def measure(repo: str, args: str, headline: list[str], screen: int = 200) -> dict:
    """Natural width of one variant, and which headline columns a ``screen``-wide terminal still shows."""
    wide = rendered(repo, args, 4000)
    narrow = "\n".join(rendered(repo, args, screen))
    shown = [h for h in headline if h in "\n".join(wide)]
    return {
        "args": args,
        "width": max(map(len, wide)),
        "rows": len(wide),
        "headline_columns": len(shown),
        f"headline_columns_readable_at_{screen}": sum(h in narrow for h in shown),
    }


@click.command(help=__doc__)
@click.option("--repo", default=".", type=click.Path(file_okay=False, exists=True))
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False))
@click.option("--show", "variants", multiple=True, help="Arguments of one `dvc exp show` variant to measure.")
def main(repo, out_path, variants) -> None:
    r = subprocess.run(["dvc", "exp", "show", "--json", "-A"], cwd=repo, capture_output=True, text=True)
    if r.returncode != 0:
        raise click.ClickException(f"dvc exp show --json failed: {r.stderr.strip()[-300:]}")
    rows = []
    for base in json.loads(r.stdout):
        rows.append((base.get("name") or base["rev"], base.get("data") or {}))
        for exp in base.get("experiments") or []:
            for rev in exp.get("revs") or []:
                rows.append((rev.get("name") or rev["rev"][:7], rev.get("data") or {}))
    cols = [columns(d) for _, d in rows if d.get("metrics")]
    if not cols:
        raise click.ClickException(f"{repo}: no row of `dvc exp show` has metrics")
    result = {
        "rows": len(cols),
        "metric_columns": len(set().union(*(c["metrics"] for c in cols))),
        "param_columns": len(set().union(*(c["params"] for c in cols))),
        "dep_columns": len(set().union(*(c["deps"] for c in cols))),
        "metric_files": sorted({k.split(":")[0] for c in cols for k in c["metrics"]}),
    }
    if len(cols) > 1:  # what --only-changed keeps
        for kind in ("metrics", "params"):
            keys = set().union(*(c[kind] for c in cols))
            result[f"{kind}_changed"] = sum(len({json.dumps(c[kind].get(k)) for c in cols}) > 1 for k in keys)
    if variants:
        # a headline column's header as DVC prints it: the key, prefixed by its file when another file
        # has the same key (synth_test and synth_gen share every headline key)
        keys = [k for c in cols for k in c["metrics"] if k.startswith("metrics/headline/")]
        names = [k.split(":", 1)[1] for k in dict.fromkeys(keys)]
        headline = [k if names.count(k.split(":", 1)[1]) > 1 else k.split(":", 1)[1]
                    for k in dict.fromkeys(keys)]
        result["variants"] = [measure(repo, v, headline) for v in variants]
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    if out_path:
        Path(out_path).write_text(text)
    click.echo(text)


if __name__ == "__main__":
    main()
