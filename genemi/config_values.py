"""One value of ``params.yaml``: its conversion to the field's type and its valid range.

``_build`` turns one section's mapping into its dataclass (:mod:`genemi.schema`): unknown and missing keys,
wrong types and values out of range raise :class:`~genemi.schema.ConfigError` naming the dotted key and
what is valid. ``RANGES`` holds every numeric knob's range, including the caps that are no part of a
knob's meaning but keep the machine alive (threads, processes, counts).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from genemi.schema import (
    BatchingParams,
    ConfigError,
    DataParams,
    DeepSpeedParams,
    EvalParams,
    EvalSource,
    LossParams,
    MineParams,
    MineRealParams,
    ModelSource,
    OptimParams,
    Params,
    RealDataParams,
    SynthParams,
    WiseParams,
)

# A number in exponent form without a dot ("5e-06"): a float in YAML 1.2 (DVC), a string in YAML 1.1 (PyYAML)
_EXP_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
# ------------------------------------------------------------------------------------------ value ranges


@dataclass(frozen=True)
class Range:
    """The valid values of one numeric knob: ``lo``/``hi`` bounds (None = unbounded), each inclusive
    unless ``*_open``; ``multiple_of`` for sizes that must tile; ``cap``: an inclusive upper limit that
    is no part of the knob's meaning but keeps the machine alive (threads, processes, counts).
    Tuples are checked element by element."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    multiple_of: int = 0
    cap: float | None = None

    def ok(self, v: float) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        if self.cap is not None and v > self.cap:
            return False
        return not (self.multiple_of and v % self.multiple_of)

    def __str__(self) -> str:
        lo = None if self.lo is None else f"{self.lo:g}"
        hi = None if self.hi is None else f"{self.hi:g}"
        if lo is not None and hi is not None:
            text = f"must be in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
        elif lo is not None:
            text = f"must be {'>' if self.lo_open else '>='} {lo}"
        elif hi is not None:
            text = f"must be {'<' if self.hi_open else '<='} {hi}"
        else:
            text = "any number"
        return text + (f" and a multiple of {self.multiple_of}" if self.multiple_of else "")

    def why(self, v: float) -> str:
        """What is wrong with ``v`` (which fails :meth:`ok`)."""
        if self.cap is not None and v > self.cap:
            cap = int(self.cap) if float(self.cap).is_integer() else self.cap
            return (f"must be <= {cap}: a larger value would exhaust the machine (threads, processes, "
                    "memory) or overflow what it seeds or counts")
        return str(self)


def _at_least(lo: float) -> Range:
    return Range(lo=lo)


_POSITIVE = Range(lo=0, lo_open=True)  # > 0
_FRACTION = Range(lo=0, hi=1, lo_open=True)  # (0, 1]: a subset must keep something
_UNIT = Range(lo=0, hi=1)  # [0, 1]: probabilities, thresholds, IoU
_ANY = Range()  # declared unbounded on purpose (e.g. a raw logit threshold)

# Every int/float field of every params dataclass has an entry here (tests/test_config.py checks that
# none is missing), checked at load so `-S finetune.steps=-5` fails before any work, naming the key.
# Every integer knob also has an upper bound (tests/test_bad_data.py checks that): counts of threads,
# processes, images and steps far past any real run starve the machine (torch.set_num_threads(100000)
# spawns threads until it segfaults), and a seed past 2**32 - 1 overflows the RNGs it seeds.
_SEED = Range(lo=0, cap=2**32 - 1)  # numpy's legacy seed and every torch/numpy generator take it
_COUNT = Range(lo=1, cap=10**9)  # steps, items, records: large, but not an overflow
_BATCH = Range(lo=1, cap=2**20)
RANGES: dict[type, dict[str, Range]] = {
    Params: {"seed": _SEED, "threads": Range(lo=0, cap=1024)},
    DataParams: {
        "hnc_subset": _FRACTION, "workers": Range(lo=-1, cap=64),  # each worker is a process holding torch
        "stand_in_size": Range(lo=1, hi=1_000_000),  # stand-in GQA/COCO ids are unique up to 10**6 scenes
        "stand_in_coco_colors": _UNIT,
    },
    SynthParams: {
        "image_size": Range(lo=16, cap=1024), "n_train": Range(lo=1, cap=10**7),
        "n_test": Range(lo=1, cap=10**7), "n_gen": Range(lo=1, cap=10**7),
        "n_pretrain": Range(lo=1, cap=10**7), "n_broad": Range(lo=2, cap=10**7),
        "max_objects": Range(lo=1, hi=3),  # 3 slots per scene (genemi/synth/world.py)
        "jitter": Range(lo=0, cap=1024),
    },
    MineParams: {"max_per_type": Range(lo=1, cap=1000)},
    OptimParams: {
        "steps": _COUNT, "batch_size": _BATCH, "lr": _POSITIVE, "weight_decay": _at_least(0),
        "warmup_steps": Range(lo=0, cap=10**9), "grad_clip": _at_least(0),
        "last_blocks": Range(lo=1, cap=1000),
        "checkpoint_every": Range(lo=0, cap=10**9),
    },
    LossParams: {
        "hn_weight": _at_least(0), "negatives_per_sample": Range(lo=0, cap=1000),
        "contrastive_weight": _at_least(0),
        "temperature": _at_least(0), "l2_weight": _at_least(0), "kl_weight": _at_least(0),
        "kl_temperature": _POSITIVE, "dpo_weight": _at_least(0), "dpo_beta": _POSITIVE,
        "replay_weight": _at_least(0), "replay_batch": _BATCH,
        "replay_pairs": Range(lo=0, cap=10**9),
    },
    BatchingParams: {
        "variations_per_group": Range(lo=1, cap=10**6), "regular_per_group": Range(lo=0, cap=10**6),
        "score_eps": _POSITIVE,
    },
    DeepSpeedParams: {"zero_stage": Range(lo=0, hi=3), "grad_accum": Range(lo=1, cap=2**16)},
    EvalSource: {"subset": _FRACTION},
    EvalParams: {
        "batch_size": _BATCH, "seed": _SEED, "bootstrap": Range(lo=0, cap=10**6), "acc_taus": _POSITIVE,
        "retrieval_ks": Range(lo=1, cap=10**7), "monitor_every": Range(lo=0, cap=10**9),
        "monitor_records": Range(lo=1, cap=10**7),
    },
    WiseParams: {"alphas": _UNIT},
    ModelSource: {},
    RealDataParams: {
        "hnc_val_subset": _FRACTION, "subset_seed": _SEED, "timeout_s": _POSITIVE,
        "retries": Range(lo=0, cap=1000), "reserve_gb": _at_least(0),
    },
    MineRealParams: {
        "box_threshold": _UNIT, "text_threshold": _UNIT, "nms_iou": _UNIT,
        "sd_steps": Range(lo=1, cap=10_000),
        "sd_guidance": _at_least(0), "sd_window": Range(lo=64, cap=8192, multiple_of=8),
        "items_per_image": Range(lo=1, cap=1000),
        "variations_per_item": Range(lo=2, cap=1000),  # the image-variation area needs >= 2 variations
        "itm_min": _ANY, "iva_min": Range(lo=0, hi=100), "iva_pixel_std": _at_least(0),
        "corrupt_fraction": _UNIT,
        "rule_max_per_type": Range(lo=0, cap=1000), "max_images": Range(lo=0, cap=10**9),
        "contact_sheets": Range(lo=0, cap=10**6),
    },
}


def _check_range(value: Any, rng: Range, key: str) -> None:
    for i, v in enumerate(value) if isinstance(value, tuple) else [(None, value)]:
        where = key if i is None else f"{key}[{i}]"
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{where} = {v!r}: must be a finite number ({rng})")
        if not rng.ok(v):
            raise ConfigError(f"{where} = {v!r}: {rng.why(v)}")


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping (section), got {value!r}")
        return _build(tp, value, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {list(args)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for a in args:
            if a is type(None) and value is None:
                return None
            try:
                return _convert(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: {value!r} matches none of {args}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = args[0]
        return tuple(_convert(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = args
        return {_convert(k, kt, key): _convert(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _EXP_FLOAT.fullmatch(value.strip()):
            value = float(value)  # `dvc exp run -S lr=5e-6` writes 5e-06, which YAML 1.1 reads as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")


def _build(cls: type, raw: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    where = f"{prefix}." if prefix else ""
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s): {', '.join(where + k for k in unknown)}")
    optional = {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    missing = [n for n in names if n not in raw and n not in optional]
    if missing:
        raise ConfigError(f"missing key(s): {', '.join(where + k for k in missing)}")
    values = {n: _convert(raw[n], hints[n], where + n) for n in names if n in raw}
    for n, rng in RANGES.get(cls, {}).items():
        _check_range(values[n], rng, where + n)
    return cls(**values)
