"""Imported by the benchmark scripts: this checkout's ``genemi`` first, and the params a benchmark measures.

A benchmark measures the set-up it names: the committed ``params.yaml`` (``git show HEAD:params.yaml``)
plus the overrides the script itself states, never the workspace's ``params.yaml``. ``dvc exp run -S ...``
and ``python -m genemi.recipe apply`` leave their values in the workspace file, and a benchmark of the
default pipeline read from it would time another set-up (or fail: a recipe's ``batching.mode`` does not
fit a benchmark's own records). Outside a git checkout (a copy of the files without history, where no
``dvc exp run`` can have left values behind) the working tree's ``params.yaml`` is the committed one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path[:1] != [str(ROOT)]:
    sys.path.insert(0, str(ROOT))


def committed_raw() -> tuple[dict, str]:
    """The parsed committed ``params.yaml`` and where it came from (``git HEAD <rev>`` or the file)."""
    import yaml

    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if git.returncode != 0:  # not a git checkout: the copy's params.yaml is all there is
        return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")), "params.yaml (no git)"
    rev = git.stdout.strip()
    shown = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=ROOT, capture_output=True, text=True)
    if shown.returncode != 0:
        raise SystemExit(f"Error: git show HEAD:params.yaml failed in {ROOT}: {shown.stderr.strip()}")
    return yaml.safe_load(shown.stdout), f"git HEAD {rev}"


def shipped_params(overrides: dict[str, Any] | None = None):
    """:class:`genemi.config.Params` of the committed ``params.yaml`` with dotted ``overrides`` set."""
    from genemi.config import ConfigError, params_from_dict
    from genemi.recipe import apply_to

    raw, source = committed_raw()
    try:
        return params_from_dict(apply_to(raw, overrides or {}, f"benchmark overrides on {source}"))
    except ConfigError as e:
        raise SystemExit(f"Error: committed params.yaml ({source}): {e}") from None


def params_source() -> str:
    """Where :func:`shipped_params` reads from, for a result's record."""
    return committed_raw()[1]


def workspace_is_committed(path: str = "params.yaml") -> bool:
    """Whether the workspace's ``params.yaml`` parses to the committed one (for ``dvc exp run`` benchmarks,
    which start from the workspace)."""
    import yaml

    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8")) == committed_raw()[0]
