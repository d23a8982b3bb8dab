"""The pipeline spec itself: dvc.yaml <-> params.yaml <-> stage scripts <-> registries."""

import re
from pathlib import Path

import pytest
import yaml

from genemi.config import load_params

ROOT = Path(__file__).resolve().parent.parent
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
# The shipped params.yaml, not the frozen tests/fixtures/params.yaml the other tests read: this file's job
# is to check the shipped dvc.yaml <-> params.yaml pair (and that its defaults stay offline).
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def _stages():
    for name, stage in DVC["stages"].items():
        yield name, stage.get("do", stage)


def _lookup(dotted: str):
    node = PARAMS
    for part in dotted.split("."):
        if "${item}" in part or "${key}" in part:
            return True  # foreach-templated key, checked per benchmark below
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@pytest.mark.parametrize("name,stage", list(_stages()))
def test_every_stage_lists_its_script_and_existing_params(name, stage):
    cmd = " ".join(stage["cmd"]) if isinstance(stage["cmd"], list) else stage["cmd"]
    scripts = re.findall(r"python (stages/\w+\.py)", cmd)
    assert scripts, f"{name}: cmd runs no stage script"
    for script in scripts:
        assert (ROOT / script).is_file(), f"{name}: {script} missing"
        assert script in stage["deps"], f"{name}: {script} not in deps"
    for dep in stage["deps"]:
        if dep.startswith(("genemi/", "stages/")):
            assert (ROOT / dep).exists(), f"{name}: dep {dep} does not exist"
    for key in stage.get("params", []):
        key = key if isinstance(key, str) else next(iter(key))
        assert _lookup(key) is not None, f"{name}: params key {key!r} not in params.yaml"


def _producers() -> dict[str, str]:
    """Each ``outs`` path of dvc.yaml (templated ``foreach`` stages aside) -> the stage writing it."""
    out = {}
    for name, stage in DVC["stages"].items():
        for o in stage.get("outs", []):
            out[next(iter(o)) if isinstance(o, dict) else o] = name
    return out


def _producer(path: str) -> str | None:
    """The stage whose output ``path`` is or lies under; None if no stage writes it (placed by hand)."""
    for out, name in _producers().items():
        if path == out or path.startswith(out.rstrip("/") + "/"):
            return name
    return None


def _upstream(stage: str) -> set[str]:
    """``stage`` and every stage it depends on through dvc.yaml's outs -> deps edges."""
    seen, todo = set(), [stage]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        deps = DVC["stages"][name].get("deps", [])
        todo += [p for d in deps if (p := _producer(str(d))) is not None]
    return seen


def _runs_download(stage: str) -> bool:
    cmd = DVC["stages"][stage].get("cmd", "")
    return "stages/download_" in (" ".join(cmd) if isinstance(cmd, list) else cmd)


def test_shipped_defaults_stay_offline(tmp_path):
    """A fresh clone's `dvc repro` must run without network. Reads the live params.yaml on purpose (what a
    user gets); each check is one way a default would reach the network or a hand-placed file."""
    from genemi import roads
    from genemi.data.sources import fetch_or_skip

    raw, p = PARAMS, load_params(ROOT / "params.yaml")
    # every download stage asks genemi.roads whether it is needed: with the shipped params none is
    assert raw["data"]["source"] == "synthetic"
    assert raw["data"].get("stand_in", "none") in ("none", ""), "a stand-in data set is opt-in"

    def network(*a, **k):
        raise AssertionError("the shipped params reach the download code")

    downloads = [name for name, _ in _stages() if _runs_download(name)]
    assert set(downloads) == set(roads.DOWNLOADS), "genemi/roads.py must know every download stage"
    for name in downloads:
        assert roads.download_needed(p, name) is None, f"{name} is needed by the shipped params"
        assert fetch_or_skip(roads.download_needed(p, name), tmp_path / name, network) is False
        assert {"data.source", "eval.benchmarks"} <= {str(k).split()[0] for k in DVC["stages"][name]["params"]}

    # the base model is trained from scratch: an open_clip tag downloads weights, a path needs a file
    assert raw["model"]["pretrained"] == ""
    # ... from a local architecture whose towers and tokenizer come from no hub
    arch = ROOT / "genemi" / "model_configs" / f"{raw['model']['arch']}.json"
    assert arch.is_file(), f"model.arch {raw['model']['arch']!r} is not one of genemi/model_configs"
    assert "hf_model_name" not in arch.read_text() and "hf_tokenizer_name" not in arch.read_text()

    # GeNeMi's mining (multi-GB models from the hub) runs on the genemi road only
    assert not roads.mines(p) and not raw["mine_real"]["portrayer"]

    # every evaluated benchmark (and the fine-tuning monitor) reads a set this pipeline generates,
    # upstream of no download stage; a hand-placed benchmark is not there on a fresh clone
    ev = raw["eval"]
    selected = ev["benchmarks"]
    entries = selected if isinstance(selected, dict) else {n: ev["sources"][n] for n in selected}
    if ev.get("monitor"):
        entries[ev["monitor"]] = entries.get(ev["monitor"]) or (ev.get("sources") or selected)[ev["monitor"]]
    assert entries, "no benchmark evaluated by default"
    for name, src in entries.items():
        stage = _producer(f"data/{src['file']}")
        assert stage is not None, f"eval benchmark {name}: data/{src['file']} is written by no stage"
        bad = sorted(s for s in _upstream(stage) if _runs_download(s))
        assert not bad, f"eval benchmark {name}: its file comes through {bad}, which need network"
        assert src["loader"] not in ("aro_order",), f"{name}: ARO Order needs downloaded stanza models"


def test_every_benchmark_is_registered_and_configured():
    from genemi.benchmarks import _registry, catalogue, catalogue_source

    registry = _registry()
    p = load_params(ROOT / "params.yaml")
    for name, src in p.eval.benchmarks.items():
        assert src.loader in registry, f"eval.benchmarks.{name}: loader {src.loader!r} is not registered"
    for name in catalogue():
        assert catalogue_source(name).loader in registry, f"catalogue {name}: loader not registered"


def test_metrics_are_small_uncached_files_under_metrics():
    for name, stage in _stages():
        for m in stage.get("metrics", []):
            path, opts = next(iter(m.items())) if isinstance(m, dict) else (m, {})
            assert path.startswith("metrics/"), f"{name}: metrics file {path} outside metrics/"
            assert opts.get("cache") is False, f"{name}: {path} must be cache: false (git-tracked)"


def _imports(path: Path) -> set[str]:
    """Every ``genemi`` module a file imports, at any depth of the file (function-level imports too)."""
    import ast

    tree = ast.parse(path.read_text())
    pkg = path.relative_to(ROOT).with_suffix("").parts[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*pkg[: len(pkg) - node.level + 1], *([base] if base else [])])
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in out if m.split(".")[0] == "genemi"}


def _module_file(name: str) -> Path | None:
    p = ROOT.joinpath(*name.split("."))
    for f in (p / "__init__.py", p.with_suffix(".py")):
        if f.is_file():
            return f
    return None


def import_closure(script: str) -> set[str]:
    """The files of ``genemi/`` that ``script`` runs: its imports, theirs, and so on (parent packages too)."""
    seen: set[Path] = set()
    todo = [ROOT / script]
    while todo:
        for name in _imports(todo.pop()):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                f = _module_file(".".join(parts[:i]))
                if f is not None and f not in seen:
                    seen.add(f)
                    todo.append(f)
    return {f.relative_to(ROOT).as_posix() for f in seen}


STAGE_HELPERS = ("_checkout", "download_options")  # modules in stages/ that stage scripts import


def stage_closure(script: str) -> set[str]:
    """:func:`import_closure` of a stage script plus the stage helpers it imports, with their closures."""
    closure = import_closure(script)
    text = (ROOT / script).read_text()
    for m in STAGE_HELPERS:
        if f"import {m}" in text or f"from {m} import" in text:
            closure |= {f"stages/{m}.py"} | stage_closure(f"stages/{m}.py")
    return closure


@pytest.mark.parametrize("name,stage", list(_stages()))
def test_code_deps_are_exactly_the_code_the_stage_runs(name, stage):
    """Editing a module a stage imports must rerun it, and a dep it does not import must not: the code deps
    in dvc.yaml (genemi/ files and folders) equal the stage scripts' import closure inside genemi/."""
    cmd = " ".join(stage["cmd"]) if isinstance(stage["cmd"], list) else stage["cmd"]
    closure: set[str] = set()
    for script in re.findall(r"python (stages/\w+\.py)", cmd):
        closure |= stage_closure(script)
    code = {str(d) for d in stage["deps"] if str(d).startswith(("genemi/", *(f"stages/{m}" for m in STAGE_HELPERS)))}
    data_dirs = {"genemi/model_configs", "genemi/lexicon"}  # data the code reads, not imports
    folders = {d for d in code if (ROOT / d).is_dir() and d not in data_dirs}
    covered = {f for f in closure if f in code or any(f.startswith(d + "/") for d in folders)}
    assert covered == closure, f"{name}: add to deps {sorted(closure - covered)}"
    unused = {d for d in code - data_dirs if d not in closure and not any(f.startswith(d + "/") for f in closure)}
    assert not unused, f"{name}: deps it does not import {sorted(unused)}"


def _dag_edges() -> set[tuple[str, str]]:
    """``dvc dag``'s edges (stage -> stage that depends on its output), with the default params."""
    import shutil
    import subprocess
    import sys

    dvc = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
    if not Path(dvc).is_file():
        pytest.skip("dvc is not installed in this environment")
    out = subprocess.run([dvc, "dag", "--dot"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(re.findall(r'"([^"]+)" -> "([^"]+)"', out))


def test_readme_graph_is_dvc_dag():
    """The README's mermaid graph has exactly the edges `dvc dag` draws for the shipped params."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```mermaid\n(.*?)```", readme, re.S)
    assert block, "README.md has no ```mermaid graph"
    drawn = set()
    for line in block.group(1).splitlines():
        nodes = [re.sub(r"\[.*?\]|\(.*?\)", "", n).strip() for n in re.split(r"-->|-\.->", line)]
        if len(nodes) > 1:
            for a, b in zip(nodes, nodes[1:], strict=False):
                for x in a.split("&"):
                    for y in b.split("&"):
                        drawn.add((x.strip(), y.strip()))
    def at(node: str) -> str:  # mermaid names cannot hold "@": evaluate_x stands for evaluate@x
        return re.sub(r"^(evaluate|wise_eval)_", r"\1@", node)

    drawn = {(at(a), at(b)) for a, b in drawn}
    dag = _dag_edges()
    assert drawn == dag, f"only in README: {sorted(drawn - dag)}; only in dvc dag: {sorted(dag - drawn)}"


def _dvc_stages(tmp_path, extra_benchmarks=()):
    """The stages DVC itself resolves from the shipped dvc.yaml + params.yaml (with the catalogue entries
    ``extra_benchmarks`` listed too): ``(name -> Stage, params mapping)``."""
    import shutil

    from dvc.repo import Repo

    from genemi.benchmarks import catalogue

    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, repo / name)
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / "config").write_text("[core]\n    no_scm = true\n")
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["eval"]["benchmarks"].update({n: catalogue()[n] for n in extra_benchmarks})
    (repo / "params.yaml").write_text(yaml.safe_dump(raw))
    return {s.name: s for s in Repo(str(repo)).index.stages}, raw


def _data_deps(stage) -> set[str]:
    return {d.def_path for d in stage.deps if not d.def_path.startswith(("genemi/", "stages/"))}


def test_each_evaluate_stage_depends_on_its_own_benchmark_files_only(tmp_path):
    """evaluate@<name> (resolved by DVC itself) reads exactly data/<file> and data/<images> of its entry
    besides the two models and its code, plus the stanza models for ARO Order alone, so a changed benchmark
    file (or tagger) marks that stage and no other evaluate stage stale; listing a benchmark adds its stage,
    with its own paths."""
    stages, raw = _dvc_stages(tmp_path, ["winoground", "aro_coco_order", "aro_flickr_order", "sugarcrepe"])
    evaluated = sorted(n for n in stages if n.startswith("evaluate@"))
    assert evaluated == sorted(f"evaluate@{b}" for b in raw["eval"]["benchmarks"])
    stanza = next(o for o in stages["download_stanza"].outs).def_path
    for name in evaluated:
        entry = raw["eval"]["benchmarks"][name.split("@")[1]]
        want = {f"data/{entry['file']}", f"data/{entry['images']}", "models/base.safetensors",
                "models/finetuned.safetensors", "params.yaml"}  # fmt: skip
        if entry["loader"] == "aro_order":
            want.add(stanza)  # its POS tagger: download_stanza's output, and nothing else's
        assert _data_deps(stages[name]) == want, name
    assert stanza in _data_deps(stages["evaluate@aro_coco_order"]) and stanza in _data_deps(
        stages["evaluate@aro_flickr_order"]
    )
    # the stage's params: its own entry, and no eval key only one loader reads
    params = {k for d in stages["evaluate@synth_test"].deps if hasattr(d, "params") for k in d.params}
    assert "eval.benchmarks.synth_test" in params and not any("stanza" in k for k in params)


def test_base_depends_on_the_hand_placed_checkpoint_folder(tmp_path):
    """model.pretrained as a file must lie in PRETRAINED_DIR (genemi/config.py), which base (and only
    base: the others read its output) depends on; git keeps the folder so the dep exists on a fresh clone,
    and DVC skips its README."""
    import subprocess

    from genemi.config import PRETRAINED_DIR

    stages, _ = _dvc_stages(tmp_path)
    assert PRETRAINED_DIR in _data_deps(stages["base"])
    assert [n for n, s in stages.items() if PRETRAINED_DIR in _data_deps(s)] == ["base"]
    readme = f"{PRETRAINED_DIR}/README.md"
    tracked = subprocess.run(["git", "ls-files", PRETRAINED_DIR], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode == 0:  # a git checkout: the README keeps the folder, nothing else is committed
        assert tracked.stdout.split() == [readme]
        ignored = subprocess.run(["git", "check-ignore", "-q", f"{PRETRAINED_DIR}/negclip.pt"], cwd=ROOT)
        assert ignored.returncode == 0, "a checkpoint placed there must stay out of git"
    assert f"/{readme}" in (ROOT / ".dvcignore").read_text().splitlines()
