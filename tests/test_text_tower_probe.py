"""benchmarks/text_tower_probe.py's captions against the scene they describe: each caption is read back into a
(left object, right object) layout by a parser written here from the template, independent of
world.caption."""

from __future__ import annotations

import re

import benchmark_module
import pytest

COLORS = ["red", "green", "blue", "yellow", "purple", "white"]
SHAPES = ["circle", "square", "triangle", "cross", "ring"]
HELD = ["red triangle", "green cross", "blue circle", "yellow square", "purple ring", "white circle"]
PAIR = re.compile(r"^a (\w+ \w+) (left|right) of a (\w+ \w+)$")


@pytest.fixture(scope="module")
def items():
    return benchmark_module.load("text_tower_probe").pair_items(COLORS, SHAPES, HELD)


def layout(caption: str) -> tuple[str, str]:
    m = PAIR.match(caption)
    assert m, caption
    first, rel, second = m.groups()
    return (first, second) if rel == "left" else (second, first)


def scene_layout(scene: dict) -> tuple[str, str]:
    a, b = sorted(scene["objects"], key=lambda o: o["slot"])
    return f"{a['color']} {a['shape']}", f"{b['color']} {b['shape']}"


def test_paraphrase_describes_the_scene_and_the_flip_its_mirror(items):
    for split in items.values():
        for it in split:
            truth = scene_layout(it["scene"])
            assert layout(it["caption"]) == truth
            assert layout(it["paraphrase"]) == truth
            assert it["paraphrase"] != it["caption"]
            # the other mention order: the paraphrase names first the object the caption names second
            assert it["paraphrase"].split()[1:3] == it["caption"].split()[-2:]
            assert layout(it["flip"]) == truth[::-1]
            assert scene_layout(it["flip_scene"]) == truth[::-1]
            # the flip uses the caption's words: a bag of words cannot tell it from the caption
            assert sorted(it["flip"].split()) == sorted(it["caption"].split())


def test_every_layout_and_order_once_and_splits_by_unordered_pair(items):
    pairs = {}
    for name, split in items.items():
        caps = [it["caption"] for it in split]
        assert len(caps) == len(set(caps))
        for it in split:
            pairs.setdefault(tuple(sorted(scene_layout(it["scene"]))), set()).add(name)
    assert all(len(v) == 1 for v in pairs.values())  # no unordered pair in two splits
    n = len(COLORS) * len(SHAPES)
    assert len(pairs) == n * (n - 1) // 2
    for pair, (name,) in ((k, tuple(v)) for k, v in pairs.items()):
        assert (name == "gen") == any(c in HELD for c in pair)
    counts = {name: sum(1 for v in pairs.values() if name in v) for name in items}
    assert counts["unseen_pairs"] == (len(pairs) - counts["gen"]) // 5
    assert all(len(items[k]) == 4 * counts[k] for k in items)  # 2 layouts x 2 mention orders each
