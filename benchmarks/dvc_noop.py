"""What a no-op `dvc status` / `dvc repro` costs on this project, and why: four measurements, one each.

``floor`` -- how low could it go? Clones of HEAD with the default pipeline's outputs checked out of an
existing DVC cache (nothing recomputed), ``dvc.yaml`` edited per variant and ``dvc commit -f`` so the
edited pipeline is itself up to date, then the same no-op commands timed in all of them: ``shipped`` (every
stage lists the modules it imports and the params keys it reads), ``code-as-folders`` (code deps replaced
by the folders ``genemi`` and ``stages``), ``+param-sections`` (params reduced to top-level sections too),
``synthetic-only`` (only the synthetic road's stages), ``synthetic-only+coarse`` (both) and ``one-stage``
(a new repository with one stage: DVC's own start-up). The edited variants only bound what changing the
pipeline's shape could buy; none is proposed. Result: ``results/dvc_floor.json``, read in ``dvc_floor.md``.

``layout`` -- loose image files against zip shards: two clones, ``--loose-rev`` (the last commit that wrote
63,430 loose PNGs) and ``--shards-rev`` (HEAD), each timed with DVC's YAML parsed in pure Python (the C
parser hidden) and with the C parser. ``--full`` instead builds both pipelines from scratch, times that
and checks the two give byte-identical weights and metrics. Result: ``results/dvc_noop.json``
(``--full``: ``results/dvc_noop_full.json``), read in ``dvc_noop.md``.

``where status|repro`` -- where one no-op run spends its time: DVC's own command line in this process,
with timers around the functions that grow with the pipeline (YAML parsing per file, dep/out objects,
``dpath`` params look-ups, schema validation, the per-stage read/write lock). Run it in an up-to-date
checkout. Result: ``results/dvc_noop_where_<command>.json``, read in ``dvc_floor.md``.

``scale`` -- `dvc status` on a GQA-sized image set: ``--files`` tiny distinct JPEGs in one stored zip
(:class:`genemi.images.ShardWriter`, GQA's member layout) tracked with ``dvc add`` in a scratch repository,
against ``--loose-files`` of them loose in a folder. Result: ``results/dvc_status_scale.json``, read in
``dvc_status_scale.md``.

Every timed command must be a no-op: the script stops if ``dvc status`` is not clean or ``dvc repro`` runs
a stage. Rounds alternate between the set-ups, so machine load hits all of them alike; medians are
reported, with the load average (on a shared machine a figure includes waiting for a core).

    python benchmarks/dvc_noop.py floor --rounds 5
    python benchmarks/dvc_noop.py layout --rounds 5          # add --full for the from-scratch builds
    python benchmarks/dvc_noop.py where repro
    nice -n 19 python benchmarks/dvc_noop.py scale --workdir /tmp
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _setup  # this checkout's genemi
import click

ROOT = _setup.ROOT
RESULTS = ROOT / "benchmarks" / "results"
_NEXT_TO_PYTHON = Path(sys.executable).parent / "dvc"
DVC_EXE = str(_NEXT_TO_PYTHON) if _NEXT_TO_PYTHON.is_file() else "dvc"
# DVC's environment without this shell's PYTHONPATH (a stage must import its own checkout's genemi)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "b@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "b@example.com",
}


# ------------------------------------------------------------------------------------ shared by all four


def sh(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``cmd`` (``dvc``: this environment's DVC); a failure stops the benchmark with its output."""
    if cmd[0] == "dvc":
        cmd = [DVC_EXE, *cmd[1:]]
    r = subprocess.run(cmd, cwd=cwd, env=env or ENV, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise click.ClickException(
            f"{' '.join(cmd)} in {cwd} failed ({r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
        )
    return r


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "dvc": sh(["dvc", "--version"], ROOT).stdout.strip(),
        "loadavg_after": os.getloadavg(),
    }


def noop_rounds(setups: dict[str, tuple[list[str], Path, dict]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each set-up's ``(command, repo, env)`` per round, set-ups alternating within a round."""
    times: dict[str, list[float]] = {name: [] for name in setups}
    for i in range(rounds):
        for name, (cmd, repo, env) in setups.items():
            t = time.perf_counter()
            r = sh(cmd, repo, env)
            times[name].append(round(time.perf_counter() - t, 3))
            if "Running stage" in r.stdout + r.stderr:
                raise click.ClickException(f"{name}: `{' '.join(cmd)}` ran a stage; not a no-op")
        click.echo(f"round {i + 1}/{rounds} done", err=True)
    return times


def check_clean(name: str, repo: Path, env: dict | None = None) -> None:
    """Warm DVC's state database (file hashes) and stop unless ``dvc status`` is clean in ``repo``."""
    out = sh(["dvc", "status"], repo, env).stdout
    if "up to date" not in out:
        raise click.ClickException(f"{name}: `dvc status` is not clean:\n{out[-2000:]}")


def clone_with_outputs(rev: str, where: Path, cache: Path, rebuild: bool = False) -> Path:
    """A clone of ``rev`` with its default-pipeline outputs checked out of ``cache`` (nothing recomputed);
    ``rebuild``: outputs a cache cannot hold (``cache: false`` in old revisions) are rebuilt once."""
    sh(["git", "clone", "-q", "--no-checkout", str(ROOT), str(where)], ROOT)
    sh(["git", "checkout", "-q", rev], where)
    sh(["dvc", "cache", "dir", "--local", str(cache)], where)
    sh(["dvc", "config", "--local", "cache.type", "hardlink,copy"], where)
    sh(["dvc", "checkout", "-q"], where, check=False)
    if rebuild:
        ran = re.findall(r"Running stage '([^']+)'", sh(["dvc", "repro"], where).stdout)
        click.echo(f"{where.name}: checked out {rev}; rebuilt {ran}", err=True)
    elif sh(["dvc", "status", "-q"], where, check=False).returncode != 0:
        raise click.ClickException(
            f"{cache} does not hold the outputs of {rev}; run `dvc repro` in {ROOT} first"
        )
    return where


def medians(times: dict) -> dict:
    return {k: medians(v) if isinstance(v, dict) else statistics.median(v) for k, v in times.items()}


def write_result(out: Path, result: dict, table: list[str]) -> None:
    """``result`` as JSON at ``out`` (machine and load recorded after the runs); ``table`` to stdout."""
    result["machine"] = machine()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    click.echo("\n".join(table))
    click.echo(f"wrote {out}", err=True)


def _scratch(workdir: str | None, prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=workdir))


@click.group(help=__doc__)
def cli() -> None:
    pass


_cache = click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=ROOT / ".dvc" / "cache",
    show_default=True,
    help="DVC cache holding the revisions' outputs (a `dvc repro` fills it).",
)
_rounds = click.option(
    "--rounds", type=int, default=5, show_default=True, help="Alternating rounds (median)."
)


# -------------------------------------------------------------------------------------------------- floor

TARGETED = (("status", "evaluate@synth_test"), ("status", "base"), ("repro", "evaluate@synth_test"))
SYNTHETIC_ROAD = {"synth_data", "mine", "base", "finetune", "evaluate"}


def _bodies(spec: dict) -> list[dict]:
    return [s.get("do", s) for s in spec["stages"].values()]


def code_as_folders(spec: dict) -> None:
    for s in _bodies(spec):
        s["deps"] = [
            "genemi",
            "stages",
            *(d for d in s.get("deps", []) if not d.startswith(("genemi/", "stages/"))),
        ]


def param_sections(spec: dict) -> None:
    for s in _bodies(spec):
        if "params" in s:
            s["params"] = list(dict.fromkeys(str(p).split(".")[0] for p in s["params"]))


def synthetic_only(spec: dict) -> None:
    spec["stages"] = {k: v for k, v in spec["stages"].items() if k in SYNTHETIC_ROAD}


VARIANTS: dict[str, list[Callable[[dict], None]]] = {
    "shipped": [],
    "code-as-folders": [code_as_folders],
    "+param-sections": [code_as_folders, param_sections],
    "synthetic-only": [synthetic_only],
    "synthetic-only+coarse": [synthetic_only, code_as_folders, param_sections],
}


def _variant(edits: list, where: Path, cache: Path) -> Path:
    import yaml

    clone_with_outputs("HEAD", where, cache)
    if edits:
        spec = yaml.safe_load((where / "dvc.yaml").read_text())
        for edit in edits:
            edit(spec)
        (where / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        lock = yaml.safe_load(
            (where / "dvc.lock").read_text()
        )  # a deleted stage's entry would still be parsed
        lock["stages"] = {k: v for k, v in lock["stages"].items() if k.split("@")[0] in spec["stages"]}
        (where / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
        sh(["dvc", "commit", "-f", "-q"], where)
    return where


def _one_stage(where: Path) -> Path:
    where.mkdir()
    sh(["git", "init", "-q"], where)
    sh(["dvc", "init", "-q"], where)
    sh(["dvc", "config", "core.analytics", "false"], where)  # as this project's .dvc/config has it
    (where / "dvc.yaml").write_text("stages:\n  one:\n    cmd: echo one > one.txt\n    outs: [one.txt]\n")
    sh(["dvc", "repro", "-q"], where)
    return where


def _shape(repo: Path) -> dict:
    """Stages (``foreach`` expanded), file/folder deps and params keys, as DVC itself counts them."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        stages = list(r.index.stages)
        deps = [d for st in stages for d in st.deps]
    return {
        "stages": len(stages),
        "deps": sum(not isinstance(d, ParamsDependency) for d in deps),
        "param_keys": sum(len(d.params) for d in deps if isinstance(d, ParamsDependency)),
        "dvc_lock_bytes": (repo / "dvc.lock").stat().st_size if (repo / "dvc.lock").exists() else 0,
    }


@cli.command(help="Shipped pipeline against coarser or smaller variants of it (-> results/dvc_floor.json).")
@_cache
@_rounds
@click.option(
    "--also-dvc", help="Another dvc executable (an older release in its own venv) on the shipped pipeline."
)
@click.option("--workdir", type=click.Path(file_okay=False), default=None, help="Scratch parent [temp].")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=RESULTS / "dvc_floor.json",
    show_default=True,
)
def floor(cache: Path, rounds: int, also_dvc: str | None, workdir: str | None, out: Path) -> None:
    work = _scratch(workdir, "dvc_floor.")
    try:
        repos = {n: _variant(e, work / n, cache.resolve()) for n, e in VARIANTS.items()}
        repos["one-stage"] = _one_stage(work / "one-stage")
        for name, repo in repos.items():
            check_clean(name, repo)
        dvcs = {n: "dvc" for n in repos}
        if also_dvc:
            name = f"shipped, dvc {sh([also_dvc, '--version'], ROOT).stdout.strip()}"
            repos[name] = work / "shipped-other-dvc"
            shutil.copytree(repos["shipped"], repos[name], symlinks=True)
            dvcs[name] = also_dvc
        setups = {f"{n}/{w}": ([dvcs[n], w], r, ENV) for n, r in repos.items() for w in ("status", "repro")}
        setups |= {f"targeted/{' '.join(c)}": (["dvc", *c], repos["shipped"], ENV) for c in TARGETED}
        flat = noop_rounds(setups, rounds)
        times = {n: {w: flat[f"{n}/{w}"] for w in ("status", "repro")} for n in repos}
        targeted = {" ".join(c): flat[f"targeted/{' '.join(c)}"] for c in TARGETED}
        shape = {n: _shape(r) for n, r in repos.items()}  # counted by this environment's DVC
        result = {
            "what": "no-op dvc status / dvc repro: the shipped pipeline against coarser or smaller variants",
            "rev": sh(["git", "rev-parse", "--short", "HEAD"], ROOT).stdout.strip(),
            "shape": shape,
            "seconds": times,
            "median": medians(times),
            "targeted_on_shipped": {
                c: {"seconds": v, "median": statistics.median(v)} for c, v in targeted.items()
            },
        }
        table = [
            "| variant | stages | deps | param keys | dvc status (s) | dvc repro (s) |",
            "|---|---|---|---|---|---|",
        ]
        for n, m in result["median"].items():
            s = shape[n]
            table.append(
                f"| {n} | {s['stages']} | {s['deps']} | {s['param_keys']} "
                f"| {m['status']:.2f} | {m['repro']:.2f} |"
            )
        table += [
            f"shipped, `dvc {c}`: {v['median']:.2f} s" for c, v in result["targeted_on_shipped"].items()
        ]
        write_result(out, result, table)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------------- layout

PURE_YAML = (
    "import sys\nsys.modules['_ruamel_yaml'] = None\n"  # sitecustomize: ruamel.yaml falls back to Python
)
COMPARED = (
    "models/base.safetensors",
    "models/finetuned.safetensors",
    "metrics/base.json",
    "metrics/finetune.json",
    "metrics/eval/synth_test.json",
    "metrics/eval/synth_gen.json",
    "metrics/headline/synth_test.json",
    "metrics/headline/synth_gen.json",
)


@cli.command(
    help="Loose image files against zip shards, pure-Python against C YAML (-> results/dvc_noop.json)."
)
@_cache
@click.option("--loose-rev", default="6ef6a14", show_default=True, help="A revision that wrote loose PNGs.")
@click.option("--shards-rev", default="HEAD", show_default=True)
@click.option("--rounds", type=int, default=3, show_default=True, help="Alternating rounds (median).")
@click.option(
    "--full", is_flag=True, help="Build both pipelines from scratch (own caches) and time that too."
)
@click.option("--workdir", type=click.Path(file_okay=False), default=None, help="Scratch parent [temp].")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="[results/dvc_noop.json; with --full results/dvc_noop_full.json]",
)
def layout(
    cache: Path,
    loose_rev: str,
    shards_rev: str,
    rounds: int,
    full: bool,
    workdir: str | None,
    out: Path | None,
) -> None:
    work = _scratch(workdir, "dvc_noop.")
    (work / "pure").mkdir()
    (work / "pure" / "sitecustomize.py").write_text(PURE_YAML)
    try:
        revs = {
            k: sh(["git", "rev-parse", "--short", r], ROOT).stdout.strip()
            for k, r in (("loose", loose_rev), ("shards", shards_rev))
        }
        repos, built = {}, {}
        for k, rev in revs.items():
            if full:
                sh(["git", "clone", "-q", "--no-checkout", str(ROOT), str(work / k)], ROOT)
                sh(["git", "checkout", "-q", rev], work / k)
                t = time.perf_counter()
                sh(["dvc", "repro", "-f"], work / k)
                built[k] = round(time.perf_counter() - t, 1)
                click.echo(f"{k}: full dvc repro of {rev} in {built[k]} s", err=True)
                repos[k] = work / k
            else:
                repos[k] = clone_with_outputs(rev, work / k, cache.resolve(), rebuild=True)
        same = {f: (repos["loose"] / f).read_bytes() == (repos["shards"] / f).read_bytes() for f in COMPARED}
        envs = {"pure-yaml": ENV | {"PYTHONPATH": str(work / "pure")}, "c-yaml": ENV}
        for name, repo in repos.items():
            check_clean(name, repo)
        setups = {
            f"{r}/{y}/{w}": (["dvc", w], repos[r], envs[y])
            for r in repos
            for y in envs
            for w in ("status", "repro")
        }
        flat = noop_rounds(setups, rounds)
        times = {
            f"{r}/{y}": {w: flat[f"{r}/{y}/{w}"] for w in ("status", "repro")} for r in repos for y in envs
        }
        files = {r: sum(len(f) for _, _, f in os.walk(p / "data")) for r, p in repos.items()}
        result = {
            "what": "no-op dvc status / dvc repro on the default pipeline (outputs in place, nothing to run)",
            "revs": revs,
            "files_under_data": files,
            "full_repro_seconds": built,
            "identical_outputs": same,
            "seconds": times,
            "median": medians(times),
        }
        table = ["| set-up | files under data/ | dvc status (s) | dvc repro (s) |", "|---|---|---|---|"]
        table += [
            f"| {k} | {files[k.split('/')[0]]} | {m['status']:.2f} | {m['repro']:.2f} |"
            for k, m in result["median"].items()
        ]
        table.append(f"full repro: {built}; identical outputs: {same}")
        write_result(out or RESULTS / ("dvc_noop_full.json" if full else "dvc_noop.json"), result, table)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -------------------------------------------------------------------------------------------------- where


def _instrument(seconds: dict, calls: dict) -> None:
    """Wrap DVC's functions that grow with the pipeline with timers adding into ``seconds`` / ``calls``."""
    import contextlib
    import functools

    import dpath
    import dvc.output
    import dvc.rwlock
    import dvc.utils.serialize._yaml as yaml_io
    import dvc.utils.strictyaml
    import voluptuous.schema_builder as vs

    def timed(label, f, outermost: list | None = None):  # with outermost: nested calls count once
        @functools.wraps(f)
        def g(*a, **k):
            if outermost is not None:
                outermost[0] += 1
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                if outermost is None or outermost[0] == 1:
                    seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - t
                    calls[label] = calls.get(label, 0) + 1
                if outermost is not None:
                    outermost[0] -= 1

        return g

    parse = yaml_io.parse_yaml

    def parse_yaml(text, path, *a, **k):
        return timed(f"parse {Path(str(path)).name}", parse)(text, path, *a, **k)

    yaml_io.parse_yaml = parse_yaml
    dvc.utils.strictyaml.parse_yaml = parse_yaml  # dvc.yaml and dvc.lock come this way
    dpath.get = timed("dpath look-ups of params keys", dpath.get)
    vs.Schema.__call__ = timed("schema validation (voluptuous)", vs.Schema.__call__, [0])
    out = dvc.output.Output
    out.__init__ = timed("build dep/out objects", out.__init__)
    out.workspace_status = timed("check deps/outs against the lock", out.workspace_status)
    rwlock, label = dvc.rwlock.rwlock, "per-stage read/write lock (take + release)"

    @contextlib.contextmanager
    def timed_rwlock(*a, **k):
        t = time.perf_counter()
        with rwlock(*a, **k):
            seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - t
            yield
            t = time.perf_counter()
        seconds[label] += time.perf_counter() - t
        calls[label] = calls.get(label, 0) + 1

    dvc.rwlock.rwlock = timed_rwlock


@cli.command(
    help="Where one no-op run in this checkout spends its time, by DVC function "
    "(-> results/dvc_noop_where_<command>.json). Interpreter start-up is not included."
)
@click.argument("command", type=click.Choice(["status", "repro"]))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="[results/dvc_noop_where_<command>.json]",
)
def where(command: str, out: Path | None) -> None:
    seconds: dict[str, float] = {}
    calls: dict[str, int] = {}
    t0 = time.perf_counter()
    from dvc.cli import main as dvc_main

    _instrument(seconds, calls)
    rc = dvc_main([command, "-q"])
    total = time.perf_counter() - t0
    if rc != 0:
        raise click.ClickException(
            f"`dvc {command}` was not a no-op here (exit {rc}); run it in an up-to-date checkout"
        )
    parts = {
        k: {"seconds": round(v, 3), "calls": calls.get(k, 0)}
        for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])
    }
    table = [f"dvc {command} (no-op): {total:.2f} s in this process"]
    table += [f"  {v['seconds']:6.3f} s  {v['calls']:4d} calls  {k}" for k, v in parts.items()]
    table.append(
        f"  {total - sum(seconds.values()):6.3f} s  the rest (imports, repository set-up, graph, git)"
    )
    write_result(
        out or RESULTS / f"dvc_noop_where_{command}.json",
        {"command": command, "total": round(total, 3), "parts": parts},
        table,
    )


# -------------------------------------------------------------------------------------------------- scale


def _jpegs(n: int, pixels: int):
    """``(name, bytes)`` of ``n`` distinct tiny JPEGs (each a different flat colour plus a dot)."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        img = np.full((pixels, pixels, 3), [(i >> 16) & 255, (i >> 8) & 255, i & 255], np.uint8)
        img[rng.integers(pixels), rng.integers(pixels)] = rng.integers(256, size=3, dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=90)
        yield f"{1_000_000 + i}.jpg", buf.getvalue()


def _tracked(repo: Path, target: str, runs: int) -> dict:
    """``dvc add`` ``target`` in scratch repository ``repo``, commit, time ``dvc status`` ``runs`` times."""
    before = os.getloadavg()[0]
    t = time.perf_counter()
    sh(["dvc", "add", "-q", target], repo)
    add = time.perf_counter() - t
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", f"track {target}"], repo)
    status = noop_rounds({"status": (["dvc", "status", "-q"], repo, ENV)}, runs)[
        "status"
    ]  # -q: exit 0 = clean
    return {
        "dvc_add_s": round(add, 2),
        "dvc_status_s": status,
        "dvc_status_median_s": round(statistics.median(status), 3),
        "load_average_1min": {"before": round(before, 2), "after": round(os.getloadavg()[0], 2)},
    }


def _scratch_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    sh(["git", "init", "-q"], root)
    sh(["dvc", "init", "-q"], root)
    sh(["dvc", "config", "core.analytics", "false"], root)
    sh(["git", "commit", "-qm", "init"], root)
    return root


@cli.command(
    help="`dvc status` on a GQA-sized image set: one tracked zip against loose files "
    "(-> results/dvc_status_scale.json)."
)
@click.option("--files", type=int, default=150_000, show_default=True, help="Images in the zip (GQA: 148k).")
@click.option(
    "--loose-files",
    type=int,
    default=150_000,
    show_default=True,
    help="Of those, how many to also track loose in a folder for comparison (0 = skip).",
)
@click.option("--pixels", type=int, default=16, show_default=True, help="Image side.")
@click.option("--runs", type=int, default=3, show_default=True, help="Timed `dvc status` runs (median).")
@click.option("--workdir", type=click.Path(file_okay=False), default=None, help="Scratch parent [temp].")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=RESULTS / "dvc_status_scale.json",
    show_default=True,
)
def scale(files: int, loose_files: int, pixels: int, runs: int, workdir: str | None, out: Path) -> None:
    from genemi.images import ShardWriter, read_rgb

    record: dict = {"files": files, "pixels": pixels, "runs": runs, "loadavg_before": os.getloadavg()}
    work = _scratch(workdir, "dvc_status_scale.")
    try:
        repo = _scratch_repo(work / "zipped")
        folder = repo / "data" / "gqa" / "images"
        t = time.perf_counter()
        with ShardWriter(folder) as shard:
            for name, data in _jpegs(files, pixels):
                shard.write(folder / name, data)
        zip_path = folder.with_name("images.zip")
        record["zip"] = {
            "write_s": round(time.perf_counter() - t, 2),
            "mbytes": round(zip_path.stat().st_size / 2**20, 1),
        }
        if read_rgb(folder / f"{1_000_000 + files - 1}.jpg").shape != (pixels, pixels, 3):
            raise click.ClickException(
                f"{zip_path}: the last member does not read back through genemi.images"
            )
        record["zip"] |= _tracked(repo, "data/gqa/images.zip", runs)
        click.echo(f"zip: {record['zip']}", err=True)
        shutil.rmtree(repo)
        if loose_files:
            repo = _scratch_repo(work / "loose")
            folder = repo / "data" / "gqa" / "images"
            folder.mkdir(parents=True)
            t = time.perf_counter()
            for name, data in _jpegs(loose_files, pixels):
                (folder / name).write_bytes(data)
            record["loose"] = {"files": loose_files, "write_s": round(time.perf_counter() - t, 2)}
            record["loose"] |= _tracked(repo, "data/gqa/images", runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = ["| layout | dvc add (s) | dvc status runs (s) | median (s) |", "|---|---|---|---|"]
    table += [
        f"| {k} | {v['dvc_add_s']} | {v['dvc_status_s']} | {v['dvc_status_median_s']:.2f} |"
        for k, v in record.items()
        if k in ("zip", "loose")
    ]
    write_result(out, record, table)


if __name__ == "__main__":
    cli()
