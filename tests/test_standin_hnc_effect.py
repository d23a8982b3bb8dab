"""benchmarks/standin_hnc_effect.py's verdict on per-type metrics written here by hand."""

from __future__ import annotations

import benchmark_module
import numpy as np
import pytest


@pytest.fixture(scope="module")
def effect():
    return benchmark_module.load("standin_hnc_effect")


def _metrics(**acc) -> dict:
    out = {}
    for t, (base, tuned) in acc.items():
        out |= {f"base/{t}/text": base, f"finetuned/{t}/text": tuned, f"finetuned/{t}/n": 10}
    return out


def test_verdict_names_the_smallest_gain_and_a_control_too_close_to_100(effect, tmp_path):
    for arm in ("hn", "control"):  # items without per-item outcomes: no intervals, the verdict still holds
        (tmp_path / f"seed0_{arm}").mkdir()
        np.savez(tmp_path / f"seed0_{arm}" / "items.npz", **{"meta/digest": np.array("d")})
    results = {
        "seed0/hn": {"metrics": _metrics(relation=(60.0, 95.0), attribute_relation=(70.0, 99.0),
                                         macro=(80.0, 97.0))},
        "seed0/control": {"metrics": _metrics(relation=(60.0, 80.0), attribute_relation=(70.0, 94.0),
                                              macro=(80.0, 93.0))},
    }  # fmt: skip
    rows, verdict = effect.summarize(results, (0,), tmp_path)
    assert not verdict["met"]
    assert verdict["worst_delta"] == {"relation": 15.0, "attribute_relation": 5.0, "macro": 4.0}
    assert verdict["room"]["attribute_relation"] == 6.0
    assert "attribute_relation 6.0; a gain of 10 points cannot show there" in verdict["text"]
    assert "relation 20.0" not in verdict["text"]  # room enough: not named
    assert {r["type"]: r["delta"] for r in rows} == verdict["worst_delta"]
    results["seed0/hn"]["metrics"]["finetuned/attribute_relation/text"] = 100.0
    results["seed0/control"]["metrics"]["finetuned/attribute_relation/text"] = 85.0
    _, verdict = effect.summarize(results, (0,), tmp_path)
    assert verdict["met"] and "Room above" not in verdict["text"]

