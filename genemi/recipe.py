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

Every key must already exist in ``params.yaml`` and the result must pass
:func:`genemi.config.params_from_dict` before anything is written.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genemi.config import ConfigError, load_yaml, params_from_dict

RECIPE_DIR = Path("recipes")


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
    return sorted(p.stem for p in Path(recipe_dir).glob("*.yaml"))


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


def check(recipe: Recipe, params_path: str | Path = "params.yaml") -> dict:
    """The params mapping with ``recipe`` applied, validated like ``load_params`` (nothing written)."""
    params_path = Path(params_path)
    if not params_path.is_file():
        raise FileNotFoundError(
            f"{params_path}: params file not found (run from the project root or pass --params)"
        )
    raw = load_yaml(params_path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{params_path}: top level must be a mapping of params sections")
    new = apply_to(raw, recipe.params, f"recipe {recipe.name}")
    try:
        params_from_dict(new)
    except ConfigError as e:
        raise ConfigError(f"recipe {recipe.name} applied to {params_path}: {e}") from None
    return new


def apply(recipe: Recipe, params_path: str | Path = "params.yaml") -> list[tuple[str, Any, Any]]:
    """Write ``recipe``'s values into ``params_path`` (comments kept; atomic); ``[(key, old, new)]``
    of the values that changed."""
    from ruamel.yaml import YAML  # DVC's own YAML round-tripper (a DVC dependency)

    from genemi.io import atomic_path

    params_path = Path(params_path)
    check(recipe, params_path)  # validate before touching the file
    rt = YAML()  # round-trip: keeps comments, key order and flow-style lists
    rt.width = 4096  # no re-wrapping: long flow mappings stay on one line (a wrapped list is joined)
    rt.preserve_quotes = True
    rt.representer.add_representer(float, _represent_float)
    doc = rt.load(params_path.read_text(encoding="utf-8"))
    changed = []
    for key, value in recipe.params.items():
        *parents, last = key.split(".")
        node = doc
        for part in parents:
            node = node[part]
        old = node[last]
        if _plain(old) != value:
            changed.append((key, _plain(old), value))
        if isinstance(value, list):
            from ruamel.yaml.comments import CommentedSeq

            seq = CommentedSeq(value)
            seq.fa.set_flow_style()
            value = seq
        node[last] = value
    mode = params_path.stat().st_mode
    with atomic_path(params_path, suffix=".yaml") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            rt.dump(doc, f)
        tmp.chmod(mode)
    return changed


def _yaml11_float(v: float) -> str:
    """``5e-06`` -> ``5.0e-06``: YAML 1.1 readers (PyYAML) take an exponent without a dot for a string."""
    text = repr(float(v))
    mantissa, e, exp = text.partition("e")
    return f"{mantissa}.0e{exp}" if e and "." not in mantissa else text


def _represent_float(representer, value: float):
    return representer.represent_scalar("tag:yaml.org,2002:float", _yaml11_float(value))


def _plain(v: Any) -> Any:
    """A ruamel node as plain Python (for comparing and reporting)."""
    return json.loads(json.dumps(v, default=str)) if isinstance(v, (list, dict)) else v


def flags(recipe: Recipe, current: dict | None = None) -> list[str]:
    """``-S key=value`` arguments for ``dvc exp run`` (values in DVC's override syntax).

    DVC merges a mapping into the one in params.yaml instead of replacing it, so a mapping value (the
    recipe's ``eval.benchmarks``) becomes one ``++key.entry=...`` per entry (add or replace) plus
    ``~key.entry`` for each entry of ``current`` (the parsed params.yaml) the recipe does not have."""
    out = []
    for key, value in recipe.params.items():
        if isinstance(value, dict):
            now = _lookup(current or {}, key)
            out += [a for k in (now if isinstance(now, dict) else {}) if k not in value for a in ("-S", f"~{key}.{k}")]
            items = [(f"++{key}.{k}", v) for k, v in value.items()]
        else:
            items = [(key, value)]
        for k, v in items:
            text = _override_value(v)
            if any(c.isspace() for c in text):  # `dvc exp run $(... flags x)` splits words on blanks
                raise ConfigError(f"recipe {recipe.name}: {k}={text!r} holds a blank; apply the recipe instead")
            out += ["-S", f"{k}={text}"]
    return out


def _lookup(raw: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        raw = raw.get(part) if isinstance(raw, dict) else None
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


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m genemi.recipe", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["list", "show", "apply", "flags"])
    ap.add_argument("name", nargs="?", help="recipe name (recipes/<name>.yaml) or a recipe file")
    ap.add_argument("--params", default="params.yaml", help="params file to check against / rewrite")
    ap.add_argument("--dir", default=str(RECIPE_DIR), help="folder of the recipes")
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
        if a.command == "show":
            check(r, a.params)
            print(r.description, end="\n\n")
            for k, v in r.params.items():
                print(f"  {k}: {json.dumps(v)}")
            if r.targets:
                print("\npublished numbers it should reproduce:")
                for k, v in r.targets.items():
                    print(f"  {k}: {v}")
        elif a.command == "flags":
            current = check(r, a.params) and load_yaml(a.params)
            print(" ".join(flags(r, current)))  # for `dvc exp run $(python -m genemi.recipe flags NAME)`: no blanks
        else:
            changed = apply(r, a.params)
            for k, old, new in changed:
                print(f"{k}: {json.dumps(old)} -> {json.dumps(new)}")
            print(
                f"recipe {r.name}: {len(changed)} value(s) changed in {a.params}; "
                "`dvc params diff` lists them"
            )
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
