"""GeNeMi caption rewriting: the positive caption(s) of a variation image.

The constituency tree is cut into chunks exactly like the seed (recurse while a child is
S/NP/VP/PP, else emit the subtree), and the chunk holding the object is replaced by the
variation's short form (docs/method.md §3.2). Departures from the seed, each fixing a defect
(§6.1): the object is matched on whole words/lemmas (the seed matched a substring, so
"cat" hit "catch"); the chunk's determiner/number is kept and "a/an" re-agreed; the original
captions are rewritten with the arguments in the right order (the seed swapped them and
returned the bare item word).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from genemi.mining.lexicon import Lexicon, default_lexicon
from genemi.mining.parse import STANZA_PROCESSORS, article_for, detokenize, is_plural, match_phrases, render

CHUNK_LABELS = frozenset({"S", "NP", "VP", "PP"})  # the seed's recursion labels
_DETERMINERS = {"DT", "PRP$", "CD", "WP$"}


def chunk_spans(tree: Any) -> list[tuple[int, int]]:
    """The seed's chunking as ``[start, end)`` word spans: recurse into a node while any child is
    an S/NP/VP/PP phrase, otherwise emit the node's leaves as one chunk."""
    spans: list[tuple[int, int]] = []
    pos = 0

    def visit(node: Any) -> None:
        nonlocal pos
        # a leaf's "label" is the word itself, so only phrase (non-leaf) children count
        if any(c.children and c.label in CHUNK_LABELS for c in node.children):
            for c in node.children:
                visit(c)
        else:
            n = len(node.leaf_labels())
            spans.append((pos, pos + n))
            pos += n

    visit(tree)
    return spans


def chunks(sentence: Any) -> list[str]:
    """Chunk texts of a parsed sentence (needs ``sentence.constituency``)."""
    words = [w.text for w in sentence.words]
    return [" ".join(words[a:b]) for a, b in chunk_spans(sentence.constituency)]


def rewrite_sentence(sentence: Any, item: str, variation: str, lexicon: Lexicon) -> str | None:
    """Replace every chunk holding ``item`` by ``variation``; None if ``item`` is absent.

    The chunk's leading determiners/numbers are kept, the variation takes the object's number
    ("two cats" -> "two golden retrievers"), and words after the object in the chunk are kept.
    """
    if getattr(sentence, "constituency", None) is None:
        raise ValueError(
            f"sentence {sentence.text or ''!r} has no constituency parse; parse with "
            f"processors={STANZA_PROCESSORS!r}"
        )
    words = sentence.words
    hits = match_phrases(words, [tuple(item.lower().split())])
    if not hits:
        return None
    repl: dict[int, str] = {}
    for a, b in chunk_spans(sentence.constituency):
        inside = [(s, e) for s, e, _ in hits if a <= s and e <= b]
        if not inside:
            continue
        s, e = inside[0]
        keep = a
        while keep < s and (words[keep].xpos or "") in _DETERMINERS:
            keep += 1
        new = lexicon.pluralize(variation) if is_plural(words[e - 1]) else variation
        for i in range(keep, e):
            repl[i] = ""
        repl[keep] = new
    return render(words, repl)


def rewrite_caption(doc: Any, item: str, variation: str, lexicon: Lexicon | None = None) -> str | None:
    """Rewrite every sentence of a parsed caption; None if no sentence holds ``item``."""
    lexicon = lexicon or default_lexicon()
    out, found = [], False
    for s in doc.sentences:
        r = rewrite_sentence(s, item, variation, lexicon)
        found |= r is not None
        out.append(r if r is not None else detokenize(w.text for w in s.words))
    return " ".join(out) if found else None


def rewrite_plain(caption: str, item: str, variation: str, lexicon: Lexicon | None = None) -> str | None:
    """Parser-free fallback: replace ``item`` (whole words, or its plural, which the variation
    then takes too) together with the lexicon attribute words right before it ("a red circle"
    -> "a blue square", as the chunk rewrite would), re-agreeing "a/an"; None if absent.

    Used where no stanza models exist (synthetic world, smoke runs); it keeps the words around
    the object, which the chunk rewrite would drop."""
    lex = lexicon or default_lexicon()
    plural = re.escape(lex.pluralize(item))
    attrs = sorted(
        {w for scales in lex.scales.values() for groups in scales.values() for g in groups for w in g},
        key=lambda w: (-len(w), w),
    )
    adj = "|".join(re.escape(w) for w in attrs)
    pat = re.compile(rf"\b(?:(a|an)\s+)?(?:(?:{adj})\s+)*(?:({plural})|{re.escape(item)})\b", re.IGNORECASE)

    def sub(m: re.Match) -> str:
        new = lex.pluralize(variation) if m.group(2) else variation
        if m.group(1):
            art = article_for(new)
            new = f"{art.capitalize() if m.group(1)[0].isupper() else art} {new}"
        return new

    return pat.sub(sub, caption) if pat.search(caption) else None


class CaptionRewriter:
    """``rewrite(caption, item, short) -> str | None`` through a parser (``text -> Document``);
    without a parser it falls back to :func:`rewrite_plain`."""

    def __init__(self, parse: Callable[[str], Any] | None = None, lexicon: Lexicon | None = None):
        self.parse = parse
        self.lexicon = lexicon or default_lexicon()

    def rewrite(self, caption: str, item: str, short: str) -> str | None:
        if self.parse is None:
            return rewrite_plain(caption, item, short, self.lexicon)
        return rewrite_caption(self.parse(caption), item, short, self.lexicon)


def variation_captions(
    rewriter: CaptionRewriter, item: str, short: str, caption: str, original_captions: Sequence[str] = ()
) -> list[str]:
    """Positive captions of a variation image, in the seed's order, de-duplicated.

    The main caption rewritten; then each original caption that mentions ``item`` rewritten
    (argument order fixed: the seed passed ``(item, caption)`` and got the bare item back);
    fallback ``"<caption> and <short>"`` when nothing mentions the item.
    """
    out: list[str] = []
    for text in (caption, *original_captions):
        r = rewriter.rewrite(text, item, short)
        if r is not None and r not in out:
            out.append(r)
    return out or [f"{caption} and {short}"]
