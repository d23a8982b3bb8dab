"""genemi.token_rows gives exactly open_clip's token rows (its tokenizer is the reference)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from genemi.token_rows import fast_rows

open_clip = pytest.importorskip("open_clip")

CAPTIONS = [
    "The yellow plate is to the left of the straw.",
    "the YELLOW plate  is\tto the left of the straw",
    "  leading and trailing spaces  ",
    "",
    " ",
    "...",
    "!!! ??? ,,, ;;",
    "It's the man's horse; they're sure it'll run, we've seen I'm right, he'd go.",
    "IT'S THE MAN'S HORSE",
    "There are more than 12 apples and 3,456 pears (about 7.5%).",
    "a <start_of_text> literal and an <end_of_text> one, x<end_of_text>y",
    "fish &amp; chips &lt;b&gt; &#39;quoted&#39; &nbsp;",
    "AT&T and R&D",
    "a line\nbreak, a\r\nwindows one and a\rcarriage return",
    "control \x00 char \x07 bell \x1b[31mred\x1b[0m",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c9COLE",
    "cafe\u0301 (combining accent)",
    "\u5b57 \u732b\u304c\u3044\u308b \ud55c\uad6d\uc5b4",
    "emoji \U0001f642\U0001f436 and \u2764\ufe0f",
    "mojibake: \u00c3\u00a9t\u00c3\u00a9 and \u00e2\u20ac\u0153quotes\u00e2\u20ac\u009d",
    "\u201ccurly\u201d \u2018quotes\u2019 and \u2014 dashes \u2026",
    "non\u00a0breaking\u2009thin space",
    "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 letters",
    "\ufb01ne ligature",
    "tabs\tand\x0bvertical\x0cform feeds\x1c\x1d\x1e\x1f",
    " ".join(f"word{i}" for i in range(100)),
    " ".join(["banana"] * 75),
    " ".join(["banana"] * 76),
    " ".join(["banana"] * 74) + " left-of",
    "supercalifragilisticexpialidocious " * 30,
    "x" * 500,
]


def _fuzz(n: int, seed: int = 0) -> list[str]:
    """Random captions over ASCII printables, a few control characters and some non-ASCII letters."""
    g = random.Random(seed)
    alphabet = (
        [chr(c) for c in range(32, 127)] * 4 + list("\t\n\r\x1b\x7f") + list("\u00e9\u00fc\u5b57\u2019\u00a0")
    )
    words = ["the", "cat", "left", "of", "Red", "CUBE", "it's", "&amp;", "<end_of_text>", "9"]
    out = []
    for _ in range(n):
        if g.random() < 0.5:
            out.append("".join(g.choices(alphabet, k=g.randrange(0, 60))))
        else:
            out.append(" ".join(g.choices(words, k=g.randrange(0, 90))))
    return out


def test_rows_equal_open_clips_rows():
    tok = open_clip.get_tokenizer("ViT-B-32")
    rows = fast_rows(tok)
    assert rows is not tok  # the fast path is taken
    captions = CAPTIONS + _fuzz(2000)
    want = tok(captions).numpy()
    got = rows(captions)
    assert got.dtype == np.int64 and got.shape == want.shape
    for c, g, w in zip(captions, got, want, strict=True):
        assert np.array_equal(g, w), repr(c)
    # the cut: over-long rows end with the end token, exactly at the context length
    assert (want[:, -1] != 0).any() and ((want[:, -1] == 0) | (want[:, -1] == tok.eot_token_id)).all()
    assert np.array_equal(rows(captions[::-1]), want[::-1])  # remembered words give the same rows
    assert rows([]).shape == (0, tok.context_length)


def test_other_tokenizers_are_returned_as_they_are():
    tok = open_clip.tokenizer.SimpleTokenizer(clean="canonicalize")
    assert fast_rows(tok) is tok

    def words(texts):
        return np.zeros((len(texts), 4), np.int64)

    assert fast_rows(words) is words
