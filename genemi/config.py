"""``params.yaml`` -> frozen dataclasses, checked before any work starts.

Every key in ``params.yaml`` maps to a field of :mod:`genemi.schema`. An unknown key, a missing key, a
value of the wrong type or out of range (:mod:`genemi.config_values`), or a combination of keys that would
spoil a run silently (:mod:`genemi.config_rules`) raises :class:`ConfigError` naming the dotted key, so a
typo in ``dvc exp run -S loss.hn_wieght=0.3`` fails in a second instead of after training. Defaults live in
``params.yaml`` (not here) so ``dvc params diff`` shows everything. Callers import every name from here.
"""

from __future__ import annotations

import re
from pathlib import Path

from genemi.config_rules import (  # noqa: F401  (re-exported)
    MAX_PRETRAINED_LR,
    MODEL_LOADERS,
    PRETRAINED_DIR,
    RULE_TYPES,
    SYNTH_TYPES,
    _check_benchmark_models,
    _check_layout,
    _check_negatives,
    _check_pretrained,
    _check_real_run,
    _check_stanza,
    _check_synthetic_model,
    pretrained_is_file,
)
from genemi.config_values import RANGES, Range, _build, _check_range, _convert  # noqa: F401
from genemi.schema import (  # noqa: F401  (re-exported)
    STANZA_LANG,
    STANZA_PROCESSORS,
    STANZA_USERS,
    BatchingParams,
    ConfigError,
    DataParams,
    DeepSpeedParams,
    EvalParams,
    EvalSource,
    LossParams,
    MineParams,
    MineRealParams,
    ModelParams,
    ModelSource,
    OptimParams,
    Params,
    RealDataParams,
    SynthParams,
    WiseParams,
    stanza_processors,
    term,
    to_dict,
)
from genemi.yamlfile import load_yaml  # noqa: F401


def params_from_dict(raw: dict) -> Params:
    """Validate a parsed params mapping; raises :class:`ConfigError` naming the key."""
    if not isinstance(raw, dict):
        raise ConfigError("params: top level must be a mapping")
    p = _build(Params, raw, "")
    for name in p.eval.benchmarks:  # a DVC stage name (evaluate@<name>) and a file name (metrics/eval/<name>.json)
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ConfigError(f"eval.benchmarks.{name}: a benchmark name may hold only letters, digits and _")
    if p.eval.monitor and p.eval.monitor not in p.eval.benchmarks:
        raise ConfigError(
            f"eval.monitor = {p.eval.monitor!r}: must be \"\" (off) or one of eval.benchmarks "
            f"({', '.join(sorted(p.eval.benchmarks))}); add it there (docs/benchmarks.md has every entry)"
        )
    if p.batching.negative_rows and p.loss.form == "in_softmax":
        raise ConfigError(
            "batching.negative_rows: the in_softmax form adds every negative as an extra column, but "
            "negative rows already are columns of the batch; use loss.form=additive or negative_rows=false"
        )
    _check_real_run(p)
    _check_negatives(p)
    _check_synthetic_model(p)
    _check_layout(p)
    _check_stanza(p.real)
    _check_benchmark_models(raw["eval"]["benchmarks"], p.eval.benchmarks)
    _check_pretrained(p.model.pretrained)
    return p


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load and validate ``params.yaml``; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (run from the project root or pass --params)")
    raw = load_yaml(path)
    try:
        return params_from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
