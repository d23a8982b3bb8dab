"""The report's cells: a mean over seeds with its 95% t-interval (:class:`Stat`, :func:`seed_stat`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` >= 1 degrees of freedom."""
    if df < 1:
        raise ValueError(f"t quantile needs df >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Stat:
    """Mean over seeds with the half-width of its 95% t-interval (NaN for a single seed)."""

    mean: float
    half: float
    n: int


def seed_stat(values: Sequence[float]) -> Stat:
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return Stat(float("nan"), float("nan"), 0)
    if len(x) == 1:
        return Stat(float(x[0]), float("nan"), 1)
    return Stat(float(x.mean()), float(t975(len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))), len(x))
