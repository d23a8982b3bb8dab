"""open_clip's token rows for many captions at once, with its byte-pair encoding done once per distinct word.

Building the training bank of an HNC-size manifest tokenises millions of distinct captions. open_clip's
``SimpleTokenizer`` spends most of its ~40 us a caption on ``ftfy.fix_text`` and on per-word Python work
(regex split, byte mapping, BPE cache lookup) that repeats for every caption, since captions share a small
vocabulary. :func:`fast_rows` returns a callable giving the same ``[n, context_length]`` rows:

* a caption of printable ASCII without ``&`` is one ``ftfy.fix_text`` and ``html.unescape`` leave as it
  is (they change only non-ASCII text, control characters, line breaks, terminal escapes and HTML
  entities), so its clean text is its words joined by single spaces, lower-cased;
* open_clip's word pattern never matches whitespace, so a clean text's tokens are those of its
  space-separated words in order; each distinct word is encoded once by the tokenizer itself
  (``tokenizer.encode(word)``) and remembered;
* any other caption goes through ``tokenizer.encode`` whole.

Rows are assembled as open_clip does: start token, tokens, end token, cut at the context length with the
end token last, zero padding. ``tests/test_token_rows.py`` checks them against open_clip's own rows on
unicode, punctuation, HTML entities, control characters and over-long captions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def fast_rows(tokenizer: Callable) -> Callable[[Sequence[str]], np.ndarray]:
    """A callable with ``tokenizer``'s rows (``[n, L]`` int64) that encodes each distinct word once, for
    open_clip's ``SimpleTokenizer`` with its default (``lower``) cleaning and no reduction mask; any other
    tokenizer is returned as it is."""
    from open_clip import tokenizer as oc

    if not (
        type(tokenizer) is oc.SimpleTokenizer
        and getattr(tokenizer, "clean_fn", None) is oc._clean_lower
        and getattr(tokenizer, "reduction_fn", None) is None
        and tokenizer.context_length
    ):
        return tokenizer
    return _WordRows(tokenizer)


class _WordRows:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.length = tokenizer.context_length
        self.sot, self.eot = tokenizer.sot_token_id, tokenizer.eot_token_id
        self.words: dict[str, list[int]] = {}

    def encode(self, caption: str) -> list[int]:
        """``tokenizer.encode(caption)``."""
        if not (caption.isascii() and caption.isprintable() and "&" not in caption):
            return self.tokenizer.encode(caption)
        ids: list[int] = []
        words = self.words
        for w in caption.lower().split():
            got = words.get(w)
            if got is None:
                got = words[w] = self.tokenizer.encode(w)
            ids += got
        return ids

    def __call__(self, captions: Sequence[str]) -> np.ndarray:
        """``[len(captions), L]`` int64, equal to ``tokenizer(captions)``."""
        keep = self.length - 2  # room for the start and end tokens
        flat: list[int] = []
        lengths = np.empty(len(captions), np.int64)
        for i, caption in enumerate(captions):
            ids = self.encode(caption)
            if len(ids) > keep:  # open_clip cuts the row at L and writes the end token last
                ids = ids[: keep + 1]
                ids[-1] = self.eot
                row = [self.sot, *ids]
            else:
                row = [self.sot, *ids, self.eot]
            flat += row
            lengths[i] = len(row)
        out = np.zeros((len(captions), self.length), np.int64)
        rows = np.repeat(np.arange(len(captions)), lengths)
        cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[rows, cols] = flat
        return out
