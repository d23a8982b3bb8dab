"""benchmarks/genemi_val_words.py: which validation rows a bag of words can separate, on hand-made rows."""

from __future__ import annotations

import json

from benchmark_module import load

gw = load("genemi_val_words")


def test_separable_by_words_and_by_counts():
    assert gw.separable(["a red circle left of a blue square", "a green circle left of a blue square"]) == (
        True, True)
    # a colour swap names the same words: only binding tells them apart
    assert gw.separable(["a red circle left of a blue square.", "A blue circle left of a red square"]) == (
        False, False)
    # a place swap: the same words in another order
    assert gw.separable(["a red circle left of a blue square", "a blue square left of a red circle"]) == (
        False, False)
    # the same words, other counts: apart by multiset only
    assert gw.separable(["a red circle, a red circle", "a red circle"]) == (False, True)


def test_count_rows_on_a_written_file(tmp_path):
    rows = [
        {"num_sample": 2, "caption_0": "a red circle", "caption_1": "a blue circle"},
        {"num_sample": 3, "caption_0": "a red circle left of a blue square",
         "caption_1": "a blue circle left of a red square", "caption_2": "a red cross left of a blue square"},
    ]
    f = tmp_path / "test.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = gw.count_rows(f)
    assert got["rows"] == 2 and got["captions_per_row"] == {"2": 1, "3": 1}
    assert got["set_separable"] == got["multiset_separable"] == 1 and got["set_separable_pct"] == 50.0
