"""Named recipes: the published training set-ups as ``params.yaml`` values.

A recipe is a YAML file in ``recipes/`` (``recipes/<name>.yaml``)::

    description: one paragraph: what it reproduces and from which source
    targets:                      # the published numbers it should reproduce (read by people, not code)
      "HNC test, pos > neg": "56.2 (thesis HNC_L2_1_L_full, epoch 3)"
    params:                       # dotted params.yaml keys -> values
      finetune.lr: 5.0e-6
      loss.l2_weight: 5.0e-6

Applying a recipe writes its values into ``params.yaml`` itself (comments and layout kept), so nothing is
hidden in code: ``git diff params.yaml``, ``dvc params diff`` and ``dvc exp show`` list every value that
shaped the run. Two ways, same result::

    python -m genemi.recipe apply hnc_l2          # rewrite params.yaml; then `dvc exp run` / `dvc repro`
    dvc exp run $(python -m genemi.recipe flags hnc_l2) -S finetune.steps=2   # the same as -S overrides

A recipe starts from the **committed** params (``git show HEAD:params.yaml``), not from whatever the file
holds: ``dvc exp run -S key=value`` leaves its values in ``params.yaml``, and a recipe that does not name
that key would otherwise inherit them. ``apply`` writes committed params + recipe; ``flags`` prints the
recipe's keys plus an override back to the committed value for every other key the file has changed. So
applying recipe A and then B gives exactly B. ``--from current`` keeps the file's other values instead,
``--from FILE`` starts from another params file.

Every key must already exist in ``params.yaml`` and the result must pass
:func:`genemi.config.params_from_dict` before anything is written.
"""

from __future__ import annotations

import copy
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genemi.config import ConfigError, load_yaml, params_from_dict

# the recipes shipped with this checkout: recipes/ beside the genemi package, wherever the command runs
RECIPE_DIR = Path(__file__).resolve().parent.parent / "recipes"
MISSING = object()  # a key absent on one side of a comparison


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    targets: dict[str, str]
    params: dict[str, Any]  # dotted key -> value


def recipe_path(name: str, recipe_dir: str | Path = RECIPE_DIR) -> Path:
    """``name`` as a file path if it is one, else ``<recipe_dir>/<name>.yaml``."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    path = Path(recipe_dir) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available(recipe_dir)) or "none"
        raise FileNotFoundError(f"recipe {name!r}: {path} not found; recipes in {recipe_dir}: {known}")
    return path


def available(recipe_dir: str | Path = RECIPE_DIR) -> list[str]:
    """The recipe names in ``recipe_dir``; a missing or empty folder raises (never an empty list)."""
    folder = Path(recipe_dir)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: no recipes folder (genemi's recipes/ sits beside the package in a checkout of the "
            "project); pass --dir <the project's recipes folder>"
        )
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    if not names:
        raise FileNotFoundError(f"{folder}: no recipe (<name>.yaml) here; pass --dir <recipes folder>")
    return names


def load_recipe(name: str, recipe_dir: str | Path = RECIPE_DIR) -> Recipe:
    path = recipe_path(name, recipe_dir)
    raw = load_yaml(path)  # a key given twice or bytes that are not UTF-8: refused, naming the line
    _check_fields(raw, path)
    targets = raw.get("targets") or {}
    params = dict(raw["params"])
    if isinstance(params.get("eval.benchmarks"), list):  # names -> their entries in the benchmark catalogue
        from genemi.benchmarks import catalogue

        known = catalogue()
        unknown = [n for n in params["eval.benchmarks"] if n not in known]
        if unknown:
            raise ConfigError(
                f"{path}: eval.benchmarks names {unknown}, not in genemi/benchmarks/catalogue.yaml "
                f"(known: {', '.join(sorted(known))}); give a full entry instead of a name"
            )
        params["eval.benchmarks"] = {n: known[n] for n in params["eval.benchmarks"]}
    return Recipe(
        path.stem,
        str(raw.get("description", "")).strip(),
        {str(k): str(v) for k, v in targets.items()},
        params,
    )


def _check_fields(raw: Any, path: Path) -> None:
    """The recipe file's shape: a mapping of description (text), targets (a mapping of text) and params
    (a non-empty mapping of dotted keys); anything else is refused naming the field."""
    if not isinstance(raw, dict) or not isinstance(raw.get("params"), dict) or not raw["params"]:
        found = type(raw.get("params") if isinstance(raw, dict) else raw).__name__
        raise ConfigError(
            f"{path}: a recipe needs a non-empty 'params' mapping of dotted params.yaml keys (found {found})"
        )
    unknown = sorted(set(raw) - {"description", "targets", "params"})
    if unknown:
        raise ConfigError(f"{path}: unknown recipe field(s) {unknown}; allowed: description, targets, params")
    if not isinstance(raw.get("description", ""), str):
        raise ConfigError(f"{path}: 'description' must be text, found {type(raw['description']).__name__}")
    targets = raw.get("targets") or {}
    if not isinstance(targets, dict) or any(isinstance(v, (dict, list)) for v in targets.values()):
        raise ConfigError(f"{path}: 'targets' must be a mapping of benchmark -> published number (text)")
    for key in raw["params"]:
        if not isinstance(key, str) or not all(key.split(".")):
            raise ConfigError(
                f"{path}: params key {key!r} is not a dotted params.yaml key (e.g. finetune.lr)"
            )


def _read_yaml(text: str, where: str) -> dict:
    """A params mapping read like ``load_params`` reads params.yaml: a key given twice is refused."""
    raw = load_yaml(text.encode("utf-8"), where)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of params sections")
    return raw


def current_params(params_path: str | Path = "params.yaml") -> dict:
    """The params file as it is now (parsed)."""
    path = Path(params_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: params file not found (run from the project root or pass --params)")
    raw = load_yaml(path)  # bytes that are not UTF-8 and keys given twice: named by line
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of params sections")
    return raw


def start_params(params_path: str | Path = "params.yaml", start: str = "HEAD") -> dict:
    """The params a recipe starts from (parsed).

    ``start``: ``"current"`` = the file as it is; the path of an existing file = that params file; else a
    git revision, whose committed version of ``params_path`` is read (``HEAD``: the committed params).
    """
    if start == "current":
        return current_params(params_path)
    if Path(start).is_file():
        return current_params(start)
    path = Path(params_path).resolve()
    try:
        r = subprocess.run(["git", "show", f"{start}:./{path.name}"], cwd=path.parent, capture_output=True,
                           text=True, encoding="utf-8")
    except FileNotFoundError:  # no git on this machine
        r = None
    if r is None or r.returncode != 0:
        why = "git is not installed" if r is None else (r.stderr.strip().splitlines() or ["git failed"])[-1]
        raise ConfigError(
            f"{params_path}: no committed version at {start!r} to start the recipe from ({why}); commit the "
            "params file, or pass --from current (keep the values it holds now) or --from <params file>"
        )
    return _read_yaml(r.stdout, f"{start}:{params_path}")


def apply_to(raw: dict, overrides: dict[str, Any], where: str = "params.yaml") -> dict:
    """A copy of the parsed params mapping ``raw`` with each dotted key set; every key must exist."""
    out = copy.deepcopy(raw)
    for key, value in overrides.items():
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(
                    f"{where}: recipe key {key!r} is not in params.yaml ({'.'.join(parts[: i + 1])})"
                )
            if i == len(parts) - 1:
                node[part] = value
            else:
                node = node[part]
    return out


def target(recipe: Recipe, base: dict) -> dict:
    """``base`` (a parsed params mapping) with ``recipe`` applied, validated like ``load_params``."""
    new = apply_to(base, recipe.params, f"recipe {recipe.name}")
    try:
        params_from_dict(new)
    except ConfigError as e:
        raise ConfigError(f"recipe {recipe.name}: {e}") from None
    return new


def check(recipe: Recipe, params_path: str | Path = "params.yaml", base: dict | None = None) -> dict:
    """The params mapping ``recipe`` gives, validated (nothing written): ``base`` + recipe, where ``base``
    defaults to the committed version of ``params_path`` (:func:`start_params`)."""
    return target(recipe, start_params(params_path) if base is None else base)


def _covered(path: str, keys) -> bool:
    """Whether dotted ``path`` is one of the recipe's ``keys`` or lies inside one of them."""
    return any(path == k or path.startswith(k + ".") for k in keys)


def differences(current: Any, wanted: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``[(dotted path, current value, wanted value)]`` where two parsed params mappings differ, mapping by
    mapping; a key on one side only has :data:`MISSING` on the other. Values compare as parsed (a float
    ``5e-06`` that PyYAML read as a string differs from the number, which only costs a redundant override)."""
    if isinstance(current, dict) and isinstance(wanted, dict):
        out = []
        for k in [*current, *(k for k in wanted if k not in current)]:
            path = f"{prefix}.{k}" if prefix else str(k)
            out += differences(current.get(k, MISSING), wanted.get(k, MISSING), path)
        return out
    return [] if _plain(current) == _plain(wanted) else [(prefix, current, wanted)]


def changes(recipe: Recipe, current: dict, base: dict) -> list[tuple[str, Any, Any]]:
    """What turns ``current`` into ``base`` + ``recipe``: the recipe keys whose value changes, then every
    other path where ``current`` left ``base`` (the leftovers of earlier ``-S`` overrides or recipes)."""
    new = target(recipe, base)
    out = []
    for key in recipe.params:
        old, value = _lookup(current, key, MISSING), _lookup(new, key, MISSING)
        if _plain(old) != _plain(value):
            out.append((key, old, value))
    out += [d for d in differences(current, new) if not _covered(d[0], recipe.params)]
    return out


def apply(
    recipe: Recipe, params_path: str | Path = "params.yaml", base: dict | None = None
) -> list[tuple[str, Any, Any]]:
    """Write ``base`` + ``recipe`` into ``params_path`` (comments kept; atomic): the recipe's values, and
    every other value back to ``base`` (default: the committed params, :func:`start_params`). Returns
    ``[(key, old, new)]`` of what changed (:data:`MISSING` for an added or removed key)."""
    from ruamel.yaml import YAML  # DVC's own YAML round-tripper (a DVC dependency)

    from genemi.io import atomic_path

    params_path = Path(params_path)
    if base is None:
        base = start_params(params_path)
    todo = changes(recipe, current_params(params_path), base)  # validates before touching the file
    rt = YAML()  # round-trip: keeps comments, key order and flow-style lists
    rt.width = 4096  # no re-wrapping: long flow mappings stay on one line (a wrapped list is joined)
    rt.preserve_quotes = True
    rt.representer.add_representer(float, _represent_float)
    doc = rt.load(params_path.read_text(encoding="utf-8"))
    for key, _old, value in todo:
        *parents, last = key.split(".")
        node = doc
        for part in parents:
            node = node[part]
        if value is MISSING:
            del node[last]
        elif isinstance(value, dict) and isinstance(node.get(last), dict):
            _sync(node[last], value)  # a recipe's mapping (eval.benchmarks): keep the entries' comments
        else:
            node[last] = _styled(value)
    mode = params_path.stat().st_mode
    with atomic_path(params_path, suffix=".yaml") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            rt.dump(doc, f)
        tmp.chmod(mode)
    return [(k, _plain(old), _plain(new)) for k, old, new in todo]


def _sync(node, wanted: dict) -> None:
    """Make the round-trip mapping ``node`` equal ``wanted``, in ``wanted``'s order: drop, replace and add
    entries; an entry that stays keeps its comment."""
    for k in [k for k in node if k not in wanted]:
        del node[k]
    for k, v in wanted.items():
        if k not in node or _plain(node[k]) != _plain(v):
            node[k] = _styled(v)
        node.move_to_end(k)


def _styled(value: Any) -> Any:
    """``value`` as params.yaml writes it: lists and flat mappings in flow style (``[a, b]``, ``{k: v}``)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, list):
        seq = CommentedSeq(value)
        seq.fa.set_flow_style()
        return seq
    if isinstance(value, dict):
        m = CommentedMap((k, _styled(v)) for k, v in value.items())
        if not any(isinstance(v, dict) for v in value.values()):
            m.fa.set_flow_style()
        return m
    return value


def _yaml11_float(v: float) -> str:
    """``5e-06`` -> ``5.0e-06``: YAML 1.1 readers (PyYAML) take an exponent without a dot for a string."""
    text = repr(float(v))
    mantissa, e, exp = text.partition("e")
    return f"{mantissa}.0e{exp}" if e and "." not in mantissa else text


def _represent_float(representer, value: float):
    return representer.represent_scalar("tag:yaml.org,2002:float", _yaml11_float(value))


def _plain(v: Any) -> Any:
    """A ruamel node as plain Python (for comparing and reporting)."""
    if v is MISSING:
        return v
    return json.loads(json.dumps(v, default=str)) if isinstance(v, (list, dict)) else v


def flags(recipe: Recipe, current: dict | None = None, base: dict | None = None) -> list[str]:
    """``-S key=value`` arguments for ``dvc exp run`` (values in DVC's override syntax).

    First the recipe's keys, every one of them. DVC merges a mapping into the one in params.yaml instead
    of replacing it, so a mapping value (the recipe's ``eval.benchmarks``) becomes one ``++key.entry=...``
    per entry (add or replace) plus ``~key.entry`` for each entry of ``current`` (the parsed params.yaml)
    the recipe does not have. Then, with ``base`` (the committed params), an override back to ``base`` for
    every other value ``current`` changed, so the experiment runs exactly ``base`` + recipe."""
    out = []
    for key, value in recipe.params.items():
        if isinstance(value, dict):
            now = _lookup(current or {}, key)
            drop = [k for k in (now if isinstance(now, dict) else {}) if k not in value]
            out += [a for k in drop for a in ("-S", f"~{key}.{k}")]
            items = [(f"++{key}.{k}", v) for k, v in value.items()]
        else:
            items = [(key, value)]
        out += _set_args(recipe, items)
    if base is not None:
        for path, old, new in changes(recipe, current or {}, base):
            if _covered(path, recipe.params):
                continue
            if new is MISSING:
                out += ["-S", f"~{path}"]
            else:
                out += _set_args(recipe, [(path if old is not MISSING else f"++{path}", new)])
    return out


def _set_args(recipe: Recipe, items) -> list[str]:
    out = []
    for k, v in items:
        text = _override_value(v)
        if any(c.isspace() for c in text):  # `dvc exp run $(... flags x)` splits words on blanks
            raise ConfigError(f"recipe {recipe.name}: {k}={text!r} holds a blank; apply the recipe instead")
        out += ["-S", f"{k}={text}"]
    return out


def _lookup(raw: dict, dotted: str, default: Any = None) -> Any:
    for part in dotted.split("."):
        if not isinstance(raw, dict) or part not in raw:
            return default
        raw = raw[part]
    return raw


def _override_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v) if (not v or any(c in v for c in " ,[]{}:='\"")) else v
    if isinstance(v, list):
        return "[" + ",".join(_override_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_override_value(x)}" for k, x in v.items()) + "}"
    return _yaml11_float(v) if isinstance(v, float) else str(v)


def _show(v: Any) -> str:
    return "(absent)" if v is MISSING else json.dumps(_plain(v))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m genemi.recipe", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["list", "show", "apply", "flags"])
    ap.add_argument("name", nargs="?", help="recipe name (recipes/<name>.yaml) or a recipe file")
    ap.add_argument("--params", default="params.yaml", help="params file to check against / rewrite")
    ap.add_argument("--from", dest="start", default="HEAD", metavar="REV|current|FILE",
                    help="params the recipe starts from: a git revision of --params (default HEAD: the "
                         "committed params), 'current' (the file's values as they are), or a params file")
    ap.add_argument("--dir", default=str(RECIPE_DIR), help="folder of the recipes (default: %(default)s)")
    a = ap.parse_args(argv)
    try:
        if a.command == "list":
            if not available(a.dir):
                raise FileNotFoundError(
                    f"no recipes in {Path(a.dir).resolve()}; run from the project root or pass "
                    "--dir <project>/recipes"
                )
            for n in available(a.dir):
                r = load_recipe(n, a.dir)
                print(f"{n}: {r.description.splitlines()[0] if r.description else ''}")
            return 0
        if not a.name:
            ap.error(f"{a.command} needs a recipe name; known: {', '.join(available(a.dir))}")
        r = load_recipe(a.name, a.dir)
        base = start_params(a.params, a.start)
        if a.command == "show":
            target(r, base)
            print(r.description, end="\n\n")
            for k, v in r.params.items():
                print(f"  {k}: {json.dumps(v)}")
            if r.targets:
                print("\npublished numbers it should reproduce:")
                for k, v in r.targets.items():
                    print(f"  {k}: {v}")
        elif a.command == "flags":
            print(" ".join(flags(r, current_params(a.params), base)))  # for `dvc exp run $(...)`: no blanks
        else:
            changed = apply(r, a.params, base)
            for k, old, new in changed:
                print(f"{k}: {_show(old)} -> {_show(new)}")
            print(
                f"recipe {r.name}: {len(changed)} value(s) changed in {a.params} (starting from "
                f"{'its current values' if a.start == 'current' else a.start}); `dvc params diff` lists them"
            )
    except (ConfigError, FileNotFoundError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
