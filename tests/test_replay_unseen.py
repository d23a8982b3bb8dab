"""benchmarks/replay_unseen.py: which pretraining pairs it keeps, and its table from hand figures."""

from __future__ import annotations

import json

import benchmark_module
import frozen_params
import pytest


@pytest.fixture(scope="module")
def unseen():
    return benchmark_module.load("replay_unseen")


def _line(*objects):
    scene = {"objects": [{"color": c, "shape": s} for c, s in objects]}
    return json.dumps({"caption": "x", "meta": {"scene": scene}}) + "\n"


def test_keeps_only_scenes_without_a_broad_only_colour_or_shape(unseen):
    p = frozen_params.load()
    narrow = _line(("red", "circle"), ("blue", "square"))
    lines = [
        narrow,
        _line(("pink", "circle")),  # broad-only colour
        _line(("red", "diamond")),  # broad-only shape
        _line(("red", "circle"), ("cyan", "frame")),  # one broad object is enough to drop the scene
        _line(("white", "ring"), ("white", "ring"), ("white", "ring")),
    ]
    assert unseen.without_broad(lines, p.synth) == [narrow, lines[4]]


def test_table_from_hand_figures(unseen):
    def arm(broad, hard=99.0):
        return {"hard": hard, "broad": broad, "broad_lo": broad - 2, "broad_hi": broad + 2, "broad_r1": 50.0,
                "base_broad": 80.0}

    res = {"params": "p", "pretrain_pairs": 100, "unseen_pairs": 20,
           "arms": {"no replay (committed run)": arm(20.0), "whole": arm(90.0), "unseen": arm(50.0)}}
    md = unseen.markdown(res)
    assert "| no replay (committed run) | 99.0 | 20.0 [18.0, 22.0] | 100% | 50.0 |" in md
    assert "| whole | 99.0 | 90.0 [88.0, 92.0] | -17% | 50.0 |" in md  # (80 - 90) / (80 - 20)
    assert "| unseen | 99.0 | 50.0 [48.0, 52.0] | 50% | 50.0 |" in md
