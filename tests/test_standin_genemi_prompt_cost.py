"""benchmarks/standin_genemi_prompt_cost.py: which prompts failed, which elements name them, the split."""

from __future__ import annotations

import json

import benchmark_module
import click
import numpy as np
import pytest
import yaml

cost = benchmark_module.load("standin_genemi_prompt_cost")


def _variation(short: str, corrupted: bool) -> str:
    meta = {"short": short, **({"corrupted": "ring"} if corrupted else {})}
    return json.dumps({"id": short, "meta": meta})


def test_a_prompt_failed_when_any_of_its_variations_was_corrupted(tmp_path):
    f = tmp_path / "variations.jsonl"
    lines = [("blue ring", True), ("blue ring", False), ("red cross", False), ("green square", True)]
    f.write_text("\n".join(_variation(s, c) for s, c in lines) + "\n")
    # a failing prompt's own-look edit stays right (it changes no pixel): the prompt still failed
    assert cost.failing(f) == ({"blue ring", "green square"}, {"red cross"})


def test_an_element_names_a_prompt_as_whole_words_anywhere_in_its_caption():
    failed = {"blue ring", "red cross"}
    assert cost.names("a blue ring left of a square", failed)
    assert cost.names("a square left of a Red Cross", failed)
    assert not cost.names("a blue rings left of a square", failed)
    assert not cost.names("a blue square left of a ring", failed)
    assert not cost.names("a dark-blue ringed cross", {"blue ring"})


def test_the_split_and_the_page_from_hand_figures():
    items = {
        f"{who}/all/{m}": np.array(vals, dtype=np.uint8)
        for m in cost.METRICS
        for who, vals in (("base", [1, 1, 0, 1]), ("finetuned", [0, 1, 1, 1]))
    }
    mask = np.array([True, True, False, False])
    assert cost.split(items, mask)["group_1"] == [100.0, 50.0, 2]
    assert cost.split(items, ~mask)["text_1"] == [50.0, 100.0, 2]
    seed = {
        "failed_prompts": ["blue ring"],
        "right_prompts": 2,
        "elements": 4,
        "off_vs_clean": {"naming_failed": {"group_1": [90.0, 80.0, 2]}, "other": {"group_1": [95, 94.0, 2]}},
        "on_vs_off": {"naming_failed": {"group_1": [80.0, 88.0, 2]}, "other": {"group_1": [94.0, 96.0, 2]}},
    }
    runs = {"0": "unchanged"}, {"0": "color"}
    page = cost.markdown({"seeds": {"0": seed}, "corrupt_as": runs[0], "corrupt_by": runs[1]})
    assert "`-S mine_real.corrupt_by=color` (corrupt_as: unchanged)" in page
    row = "| 0 | 1 of 3 | 2 | 90.0 | 80.0 (-10.0) | 88.0 (+8.0) | 2 | 95.0 | 94.0 (-1.0) | 96.0 (+2.0) |"
    assert row in page
    assert "- seed 0: blue ring" in page


def test_a_run_mined_by_variation_is_refused_in_one_line(tmp_path):
    (tmp_path / "params").mkdir()
    on = {"mine_real": {"corrupt_by": "variation", "corrupt_as": "unchanged"}}
    (tmp_path / "params" / "s0_corrupt_on.yaml").write_text(yaml.safe_dump(on))
    with pytest.raises(click.ClickException, match="mined with mine_real.corrupt_by 'variation'"):
        cost.seed_cost(tmp_path, 0, {})
    with pytest.raises(click.ClickException, match="no seed with the three arms trained"):
        cost.main.main(["--work", str(tmp_path), "--out", str(tmp_path / "r")], standalone_mode=False)


def test_elements_come_row_by_row_with_their_rows(tmp_path):
    f = tmp_path / "test.jsonl"
    rows = [{"num_sample": 2, "caption_0": "a", "caption_1": "b"}, {"num_sample": 3, **{f"caption_{k}": c
            for k, c in enumerate("cde")}}]  # fmt: skip
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    caps, row_of = cost.elements(f)
    assert caps == list("abcde") and row_of.tolist() == [0, 0, 1, 1, 1]


def test_the_words_every_prompt_of_which_failed_are_the_failing_colours():
    failed = {"purple ring", "purple cross", "yellow ring", "yellow cross", "blue square"}
    right = {"blue ring", "red cross", "red ring"}
    # "blue" has a right prompt; "ring" and "cross" too; "square" is in one failing prompt only
    assert cost.whole_words(failed, right) == ["purple", "yellow"]
    assert cost.whole_words({"blue ring"}, {"red ring"}) == []


def test_the_page_gives_each_failing_word_beside_the_base_and_the_control():
    part = {"naming_failed": {"group_1": [86.0, 78.0, 100]}, "other": {"group_1": [95.0, 93.3, 300]}}
    seed = {"failed_prompts": ["purple ring"], "right_prompts": 29, "elements": 400,
            "off_vs_clean": part, "on_vs_off": part,
            "by_word": {"purple": {"n": 60, "regular": [58, 1788], "base": 76.7, "control": 71.7,
                                   "clean": 88.3, "filter_off": 78.3,
                                   "filter_on": 70.0}}}  # fmt: skip
    runs = {"corrupt_as": {"0": "unchanged"}, "corrupt_by": {"0": "color"}}
    page = cost.markdown({"seeds": {"0": seed}, **runs})
    assert "| 0 | purple | 58 of 1788 | 60 | 76.7 | 71.7 | 88.3 | 78.3 | 70.0 |" in page
    seed.pop("by_word")
    assert "| seed | word |" not in cost.markdown({"seeds": {"0": seed}, "corrupt_as": {"0": "unchanged"},
                                                  "corrupt_by": {"0": "prompt"}})  # fmt: skip


def test_the_regular_captions_are_the_runs_coco_manifest(tmp_path):
    f = tmp_path / "karpathy.jsonl"
    f.write_text('{"caption": "a purple ring", "id": 1}\n\n{"caption": "a red cross", "id": 2}\n')
    caps = cost.regular_captions(f)
    assert caps == ["a purple ring", "a red cross"]
    assert sum(cost.names(c, {"purple"}) for c in caps) == 1
