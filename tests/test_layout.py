"""The library's shape: no import circle among genemi's modules, no file under genemi/ over 500 lines.

Imports are read with ``ast`` (nothing is imported), at any depth of a file: a ``genemi`` import inside a
function counts as much as one at the top. The project defers imports into functions to keep heavy
third-party libraries off ``import genemi``, not to let two of its own modules lean on each other; a
circle closed by a function-level import still means neither module can be read, tested or changed
without the other, and each becomes the other's DVC dependency (``tests/test_pipeline_spec.py`` counts
function-level imports for a stage's deps for the same reason).
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500
# Over the limit, to be split; remove an entry when its file is split (the test fails until you do).
KNOWN_OVER: set[str] = set()


def _module_name(root: Path, f: Path) -> str:
    parts = f.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_file(root: Path, name: str) -> Path | None:
    p = root.joinpath(*name.split("."))
    for f in (p / "__init__.py", p.with_suffix(".py")):
        if f.is_file():
            return f
    return None


def import_graph(root: Path, package: str = "genemi") -> dict[str, set[str]]:
    """``module -> modules of package it imports`` for every ``.py`` under ``root/package``.

    ``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``; relative imports
    are resolved against the importing file's package. Implicit parent-package imports are not edges.
    """
    graph: dict[str, set[str]] = {}
    for f in sorted((root / package).rglob("*.py")):
        me = _module_name(root, f)
        pkg = me if f.name == "__init__.py" else me.rpartition(".")[0]
        named: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            if isinstance(node, ast.Import):
                named.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join([*up, *([base] if base else [])])
                named.update(f"{base}.{a.name}" if _module_file(root, f"{base}.{a.name}") else base
                             for a in node.names)  # fmt: skip
        deps = set()
        for name in named:
            if name.split(".")[0] != package:
                continue
            parts = name.split(".")
            for i in range(len(parts), 0, -1):  # the most specific module the dotted name reaches
                target = _module_file(root, ".".join(parts[:i]))
                if target is not None:
                    deps.add(_module_name(root, target))
                    break
        graph[me] = deps - {me}
    return graph


def circle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A shortest import path ``start -> ... -> start`` (breadth-first), or None when there is none."""
    parent: dict[str, str] = {}
    todo = deque(sorted(graph.get(start, ())))
    for d in todo:
        parent[d] = start
    while todo:
        m = todo.popleft()
        if m == start:
            path = [start]
            while True:
                path.append(parent[path[-1]])
                if path[-1] == start:
                    return path[::-1]
        for d in sorted(graph.get(m, ())):
            if d not in parent:
                parent[d] = m
                todo.append(d)
    return None


def circles(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """Every module that lies on an import circle, with one circle through it."""
    return {m: c for m in sorted(graph) if (c := circle_through(graph, m)) is not None}


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_circle_finder_sees_function_level_relative_and_package_imports(tmp_path):
    root = _package(tmp_path, {
        "genemi/__init__.py": "",
        "genemi/a.py": "import os\n\ndef f():\n    from genemi.b import g\n",  # function level
        "genemi/b.py": "from . import c\n",  # relative: genemi.c
        "genemi/c.py": "import genemi.a\n",
        "genemi/d.py": "from genemi.a import f\n",  # leads into the circle, is not on it
        "genemi/sub/__init__.py": "def h():\n    from genemi.sub import leaf\n",
        "genemi/sub/leaf.py": "from genemi.sub import h\n",  # a package's __init__ and its submodule
        "genemi/e.py": "from genemi.sub.leaf import h\nimport numpy\n",
    })  # fmt: skip
    graph = import_graph(root)
    assert graph["genemi.b"] == {"genemi.c"} and graph["genemi.d"] == {"genemi.a"}
    assert graph["genemi.sub"] == {"genemi.sub.leaf"} and graph["genemi.e"] == {"genemi.sub.leaf"}
    found = circles(graph)
    assert set(found) == {"genemi.a", "genemi.b", "genemi.c", "genemi.sub", "genemi.sub.leaf"}
    assert found["genemi.a"] == ["genemi.a", "genemi.b", "genemi.c", "genemi.a"]
    assert found["genemi.sub.leaf"] == ["genemi.sub.leaf", "genemi.sub", "genemi.sub.leaf"]


def test_no_module_of_genemi_is_on_an_import_circle():
    graph = import_graph(ROOT)
    assert len(graph) > 50 and graph["genemi.mining.pipeline"]  # the walk reached the package
    found = circles(graph)
    assert not found, "import circles (move the shared code to a module both can import):\n" + "\n".join(
        " -> ".join(c) for m, c in found.items()
    )


def _long_files() -> dict[str, int]:
    out = {}
    for f in sorted((ROOT / "genemi").rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            n = f.read_bytes().count(b"\n")
            if n > MAX_LINES:
                out[f.relative_to(ROOT).as_posix()] = n
    return out


def test_no_file_under_genemi_is_over_500_lines():
    long = _long_files()
    new = {f: n for f, n in long.items() if f not in KNOWN_OVER}
    assert not new, f"over {MAX_LINES} lines; split by job: {new}"
    split = sorted(KNOWN_OVER - set(long))
    assert not split, f"{split} are {MAX_LINES} lines or fewer now: remove them from KNOWN_OVER"


@pytest.mark.parametrize("script", sorted((ROOT / "stages").glob("*.py")), ids=lambda p: p.name)
def test_stage_scripts_stay_thin(script):
    n = script.read_bytes().count(b"\n")
    assert n <= 60, f"{script.name}: {n} lines; move the logic into genemi/"


def test_benchmarks_read_the_committed_params_not_the_workspace_file():
    """A benchmark measures the set-up it names (``benchmarks/_setup.py``): a recipe or ``dvc exp run -S``
    left in the workspace's params.yaml must not change it, so no script opens that file itself."""
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        if script.name == "_setup.py":
            continue
        text = script.read_text(encoding="utf-8")
        for reads in ('/ "params.yaml"', "default=\"params.yaml\"", "load_params(ROOT"):
            assert reads not in text, f"{script.name} reads the workspace params.yaml ({reads}): use _setup"
