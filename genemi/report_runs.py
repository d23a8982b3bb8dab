"""Reading finished runs for the report: DVC experiments, git commits and folders.

A :class:`Run` is one finished pipeline: its flattened params and, per benchmark, the headline and detail
metrics and the per-item outcomes (:mod:`genemi.items`), read through a ``read(path) -> bytes | None``
function, so an experiment ref, a commit and a folder are read alike.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genemi.headline import HEADLINES
from genemi.items import Items, load_items


def flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    """Nested params -> ``{"loss.hn_weight": 1.0, ...}``; lists become tuples (hashable)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = tuple(v) if isinstance(v, list) else v
    return out


@dataclass
class Run:
    """One finished pipeline. ``read(path)`` returns a file's bytes at that run (None if absent)."""

    name: str
    params: dict[str, Any]
    headline: dict[str, dict[str, float]]  # benchmark -> flat headline (genemi.headline)
    detail: dict[str, dict[str, float]]  # benchmark -> flat detail metrics
    items_loader: dict[str, Callable[[], Items]] = field(default_factory=dict)
    _items: dict[str, Items] = field(default_factory=dict)
    # WiSE-FT (stage wise_eval): benchmark -> a -> headline of the mix in the fine-tuned model's place
    wise: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    wise_items_loader: dict[str, Callable[[], Items]] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.params.get("seed", 0))

    def wise_items(self, bench: str) -> Items:
        """The per-item outcomes of the WiSE-FT mixes on ``bench`` (models ``base`` and each ``a``)."""
        key = f"wise/{bench}"
        if key not in self._items:
            if bench not in self.wise_items_loader:
                raise FileNotFoundError(f"run {self.name!r}: no WiSE-FT per-item outcomes of {bench!r}")
            self._items[key] = self.wise_items_loader[bench]()
        return self._items[key]

    def items(self, bench: str) -> Items:
        if bench not in self._items:
            if bench not in self.items_loader:
                raise FileNotFoundError(f"run {self.name!r}: no per-item outcomes of {bench!r}")
            self._items[bench] = self.items_loader[bench]()
        return self._items[bench]


@dataclass(frozen=True)
class Layout:
    """Where a run keeps its files (the evaluate stage's paths in dvc.yaml)."""

    params: str = "params.yaml"
    headline: str = "metrics/headline/{bench}.json"
    detail: str = "metrics/eval/{bench}.json"
    items: str = "metrics/items/{bench}.npz"
    wise_headline: str = "metrics/wise/headline/{bench}.json"  # optional: runs without WiSE-FT stages
    wise_items: str = "metrics/wise/items/{bench}.npz"


def load_run(name: str, read: Callable[[str], bytes | None], layout: Layout = Layout()) -> Run:
    """A run from a file reader (a folder, a git revision); errors name the run and the file."""
    import json

    raw = read(layout.params)
    if raw is None:
        raise FileNotFoundError(f"run {name!r}: {layout.params} not found")
    from genemi.config import load_yaml

    raw_params = load_yaml(raw, f"run {name!r}: {layout.params}") or {}
    if not isinstance(raw_params, dict):
        raise ValueError(f"run {name!r}: {layout.params}: top level must be a mapping of params sections")
    params = flatten(raw_params)
    benches = ((raw_params.get("eval") or {}).get("benchmarks")) or ()  # a mapping; a list in older runs
    run = Run(name, params, {}, {})
    for b in benches:
        for attr, tmpl in (("headline", layout.headline), ("detail", layout.detail)):
            path = tmpl.format(bench=b)
            data = read(path)
            if data is None:
                if attr == "headline":
                    raise FileNotFoundError(
                        f"run {name!r}: {path} not found (a run from before headline metrics: "
                        "rerun its evaluate stages, e.g. `dvc exp run` on it)"
                    )
                continue
            try:
                getattr(run, attr)[b] = json.loads(data)
            except json.JSONDecodeError as e:
                raise ValueError(f"run {name!r}: {path}: invalid JSON: {e.msg}") from None
        path = layout.items.format(bench=b)
        run.items_loader[b] = lambda path=path: _items_from(name, path, read)
        path = layout.wise_headline.format(bench=b)
        data = read(path)
        if data is not None:
            try:
                run.wise[b] = json.loads(data)
            except json.JSONDecodeError as e:
                raise ValueError(f"run {name!r}: {path}: invalid JSON: {e.msg}") from None
            path = layout.wise_items.format(bench=b)
            run.wise_items_loader[b] = lambda path=path: _items_from(name, path, read)
    return run


def _items_from(name: str, path: str, read: Callable[[str], bytes | None]) -> Items:
    data = read(path)
    if data is None:
        raise FileNotFoundError(f"run {name!r}: {path} not found (rerun its evaluate stages)")
    return load_items(io.BytesIO(data), label=f"run {name!r}: {path}")


def dir_reader(root: str | Path) -> Callable[[str], bytes | None]:
    root = Path(root)

    def read(path: str) -> bytes | None:
        f = root / path
        return f.read_bytes() if f.is_file() else None

    return read


def git_reader(rev: str, repo: str | Path = ".") -> Callable[[str], bytes | None]:
    """Files of a commit or experiment ref, read with ``git show <rev>:<path>`` (the metrics and
    per-item files are git-tracked, ``cache: false``)."""

    def read(path: str) -> bytes | None:
        r = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True)
        return r.stdout if r.returncode == 0 else None

    return read


def dvc_experiments(repo: str | Path = ".") -> list[tuple[str, str]]:
    """``(name, sha)`` of every successful experiment in ``dvc exp show --json`` (all baselines)."""
    import json
    import shutil
    import sys

    # the dvc of this environment when its bin folder is not on PATH (a venv used without activation)
    dvc = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
    r = subprocess.run(
        [dvc, "exp", "show", "--json", "--all-commits"], cwd=repo, capture_output=True, text=True
    )
    if r.returncode != 0:
        raise RuntimeError(f"dvc exp show --json failed in {repo}: {r.stderr.strip()[-400:]}")
    return parse_exp_show(json.loads(r.stdout or "[]"))


def parse_exp_show(entries: list) -> list[tuple[str, str]]:
    """The finished experiments (not the baselines or the workspace) of ``dvc exp show --json`` output:
    ``[{rev, name, experiments: [{name, executor: {state}, revs: [{rev, name, error}]}]}]``; queued,
    running and failed ones are skipped."""
    out: dict[str, str] = {}
    for base in entries:
        for exp in base.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state", "success")
            if state != "success":
                continue
            for rev in exp.get("revs") or []:
                if rev.get("error") or rev.get("rev") in (None, "workspace"):
                    continue
                out.setdefault(rev["rev"], rev.get("name") or exp.get("name") or rev["rev"][:7])
    return [(name, sha) for sha, name in out.items()]


def git_commit(rev: str, repo) -> str | None:
    """The commit sha of a branch, tag, sha or experiment ref; None if git does not know it."""
    import subprocess

    r = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=repo,
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def collect_runs(exps: list[str], run_dirs: list, repo) -> list:
    """The runs to report: ``exps`` (experiment names or git revisions) and ``run_dirs``; with neither,
    every successful experiment of ``dvc exp show``."""
    runs = []
    if not exps and not run_dirs:
        found = dvc_experiments(repo)
        if not found:
            raise ValueError(f"{repo}: `dvc exp show` lists no successful experiment; run a sweep first "
                             "(docs/sweeps.md) or name runs with --exp / --run-dir")
        runs += [load_run(name, git_reader(sha, repo)) for name, sha in found]
    known: dict[str, str] | None = None  # experiment name -> sha, asked of dvc only when needed
    for name in exps:
        sha = git_commit(name, repo)
        if sha is None:
            known = dict(dvc_experiments(repo)) if known is None else known
            if name not in known:
                raise ValueError(f"--exp {name!r}: neither a git revision nor an experiment of `dvc exp show`")
            sha = known[name]
        runs.append(load_run(name, git_reader(sha, repo)))
    runs += [load_run(str(d), dir_reader(d)) for d in run_dirs]
    fill_new_keys(runs, committed_params(repo))
    return runs


def committed_params(repo) -> dict[str, Any]:
    """The flattened params.yaml committed at ``repo``'s HEAD; {} where there is none (no git, no commit)."""
    from genemi.config import ConfigError
    from genemi.recipe import start_params

    try:
        return flatten(start_params(Path(repo) / "params.yaml"))
    except (ConfigError, OSError):
        return {}


def fill_new_keys(runs: Sequence[Run], committed: Mapping[str, Any]) -> None:
    """Give each run the committed value of every params key it lacks. A run made before a key existed ran
    as the key's committed default runs (a new key's default keeps what the code did before it), so such a
    run and a newer one with the same values are one experiment: same group, same arm of the claims sweep.
    Benchmark entries are left alone: a benchmark a run lacks was not scored."""
    for r in runs:
        for k, v in committed.items():
            if k not in r.params and not k.startswith("eval.benchmarks"):
                r.params[k] = v


def benchmarks_of(runs: Sequence[Run]) -> list[str]:
    seen: dict[str, None] = {}
    for r in runs:
        seen.update(dict.fromkeys(r.headline))
    return list(seen)


def headline_names(runs: Sequence[Run], bench: str) -> list[str]:
    present = {k.split("/", 1)[1] for r in runs for k in r.headline.get(bench, {})}
    return [h for h in HEADLINES if h in present]
