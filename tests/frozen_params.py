"""The params file the tests read: ``tests/fixtures/params.yaml``, a frozen copy of ``params.yaml``.

Tests must not read the live ``params.yaml``: the README's own ``dvc exp run -S finetune.steps=7`` rewrites
it in the workspace, and a test would then change meaning or fail. The copy is test input and drifts
from the shipped file on purpose; update it only when the schema changes (a key added, renamed or
removed). The tests whose job is to check the shipped files (``tests/test_pipeline_spec.py``,
``test_shipped_defaults_stay_offline``) read ``params.yaml`` itself, and say so.
"""

from pathlib import Path

import yaml

PATH = Path(__file__).resolve().parent / "fixtures" / "params.yaml"


def raw() -> dict:
    """A fresh parsed copy (callers may mutate it)."""
    return yaml.safe_load(PATH.read_text(encoding="utf-8"))


def load():
    """The frozen params, validated (:class:`genemi.config.Params`)."""
    from genemi.config import load_params

    return load_params(PATH)
