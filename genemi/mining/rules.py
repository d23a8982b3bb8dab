"""Rule-based negatives of the HNC types, driven by the dependency parse and the lexicon.

``attribute`` (adjective -> a contradicting one of its scale), ``object`` (noun -> another
category of its supercategory), ``relation_pred`` (spatial relation -> its inverse),
``obj_count`` (number -> another number, noun and verb re-agreed); docs/method.md §2.3. Words and lexicon:
:mod:`genemi.mining.parse`, :mod:`genemi.mining.lexicon`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from genemi import seeding
from genemi.manifest import Negative, Record
from genemi.mining.lexicon import Lexicon, default_lexicon
from genemi.mining.parse import detokenize, is_plural, match_phrases, render

ATTRIBUTE, OBJECT, RELATION, COUNT = "attribute", "object", "relation_pred", "obj_count"
NEGATIVE_TYPES = (ATTRIBUTE, OBJECT, RELATION, COUNT)
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _children(words: Sequence[Any], head_idx: int) -> list[int]:
    """0-based indices of the dependents of word ``head_idx`` (0-based)."""
    return [i for i, w in enumerate(words) if w.head == head_idx + 1]


def _verb_for_number(w: Any, plural: bool) -> str | None:
    """``w`` inflected for a subject of the new number, or None if it needs no change."""
    low = w.text.lower()
    be = {"is": "are", "was": "were", "has": "have"}
    if plural and low in be:
        return be[low]
    if not plural and low in {v: k for k, v in be.items()}:
        return {v: k for k, v in be.items()}[low]
    if plural and (w.xpos == "VBZ") and w.lemma:
        return w.lemma
    if not plural and (w.xpos == "VBP") and w.lemma and w.lemma not in ("be", "have"):
        lem = w.lemma
        return lem + "es" if lem.endswith(("s", "sh", "ch", "x", "z", "o")) else lem + "s"
    return None


def _agree_subject(words: Sequence[Any], noun: int, plural: bool, repl: dict[int, str]) -> None:
    """Re-inflect the verb/auxiliary/copula whose subject is word ``noun`` (in ``repl``)."""
    if words[noun].deprel not in ("nsubj", "nsubj:pass"):
        return
    head = words[noun].head - 1
    if head < 0:
        return
    # the finite word agrees: an auxiliary/copula if there is one ("is sitting" -> "are sitting"),
    # else the head verb itself ("sits" -> "sit", "There is" -> "There are")
    aux = [i for i in _children(words, head) if words[i].deprel in ("aux", "aux:pass", "cop")]
    for i in [*aux, head]:
        if words[i].upos in ("VERB", "AUX"):
            v = _verb_for_number(words[i], plural)
            if v is not None:
                repl[i] = v
            return


def _attribute_edits(words: Sequence[Any], lex: Lexicon) -> list[tuple[dict[int, str], str]]:
    out = []
    for i, w in enumerate(words):
        if w.upos in ("ADJ", "NOUN") and (w.upos == "ADJ" or w.deprel in ("amod", "compound")):
            for alt in lex.attribute_alternatives(w.text):
                out.append(({i: alt}, f"{w.text}->{alt}"))
    return out


def _object_edits(words: Sequence[Any], lex: Lexicon) -> list[tuple[dict[int, str], str]]:
    out = []
    for s, e, phrase in match_phrases(words, lex.object_phrases()):
        if words[e - 1].upos not in ("NOUN", "PROPN"):
            continue
        plural = is_plural(words[e - 1])
        for alt in lex.object_alternatives(phrase):
            repl = {i: "" for i in range(s, e)}
            repl[s] = lex.pluralize(alt) if plural else alt
            out.append((repl, f"{phrase}->{alt}"))
    return out


def _relation_edits(words: Sequence[Any], lex: Lexicon) -> list[tuple[dict[int, str], str]]:
    out = []
    for s, e, phrase in match_phrases(words, lex.relation_phrases()):
        first = words[s]
        # a preposition linking two things (UD "case"), not e.g. the particle of "turned on"
        if not (first.deprel == "case" or (first.upos == "ADP" and first.deprel != "compound:prt")):
            continue
        inv = lex.inverse_relation(phrase)
        repl = {i: "" for i in range(s, e)}
        repl[s] = inv
        out.append((repl, f"{phrase}->{inv}"))
    return out


def _count_edits(words: Sequence[Any], lex: Lexicon) -> list[tuple[dict[int, str], str]]:
    out = []
    for i, w in enumerate(words):
        head = w.head - 1
        if head < 0 or words[head].upos != "NOUN":
            continue
        noun = words[head]
        low = w.text.lower()
        if w.deprel == "nummod" and (low in NUMBER_WORDS or low.isdigit()):
            n = NUMBER_WORDS.index(low) if low in NUMBER_WORDS else int(low)
            news = [m for m in (n - 1, n + 1) if m >= 1]
        elif (
            w.deprel == "det"
            and low in ("a", "an")
            and not is_plural(noun)
            and lex.category(noun.lemma or noun.text)
        ):
            n, news = 1, [2]  # "a dog" is a count of one for a countable object
        else:
            continue
        for m in news:
            word = str(m) if low.isdigit() else NUMBER_WORDS[m] if m < len(NUMBER_WORDS) else str(m)
            repl = {i: word}
            if (m > 1) != (n > 1):
                lemma = noun.lemma or noun.text
                repl[head] = lex.pluralize(lemma) if m > 1 else lemma
                _agree_subject(words, head, m > 1, repl)
            out.append((repl, f"{n}->{m}"))
    return out


_EDITS = {ATTRIBUTE: _attribute_edits, OBJECT: _object_edits, RELATION: _relation_edits, COUNT: _count_edits}


def negative_candidates(doc: Any, type_: str, lexicon: Lexicon | None = None) -> list[str]:
    """Every negative caption of ``type_`` the rules derive from ``doc``, sorted, de-duplicated,
    never equal to the positive caption."""
    if type_ not in _EDITS:
        raise ValueError(f"unknown negative type {type_!r}; expected one of {list(NEGATIVE_TYPES)}")
    lex = lexicon or default_lexicon()
    sents = list(doc.sentences)
    base = [detokenize(w.text for w in s.words) for s in sents]
    out = set()
    for k, s in enumerate(sents):
        for repl, _why in _EDITS[type_](s.words, lex):
            text = " ".join(base[:k] + [render(s.words, repl)] + base[k + 1 :])
            out.add(text)
    out.discard(" ".join(base))
    return sorted(out)


def rule_negatives(
    doc: Any,
    rng: np.random.Generator,
    types: Sequence[str] = NEGATIVE_TYPES,
    max_per_type: int = 1,
    lexicon: Lexicon | None = None,
) -> list[Negative]:
    """Up to ``max_per_type`` text negatives per type, drawn with ``rng`` (seed it per sample)."""
    negs = []
    for t in types:
        cands = negative_candidates(doc, t, lexicon)
        if not cands:
            continue
        take = rng.choice(len(cands), size=min(max_per_type, len(cands)), replace=False)
        negs.extend(Negative(type=t, caption=cands[j]) for j in sorted(take))
    return negs


def add_rule_negatives(
    records: Iterable[Record],
    parse: Callable[[str], Any],
    seed: int,
    types: Sequence[str] = NEGATIVE_TYPES,
    max_per_type: int = 1,
    lexicon: Lexicon | None = None,
) -> list[Record]:
    """Records with rule-based text negatives of their caption appended (per-record seeded by
    ``(seed, id)``, so a record's negatives do not depend on which others are in the list)."""
    out = []
    for r in records:
        negs = rule_negatives(parse(r.caption), seeding.rng(seed, r.id), types, max_per_type, lexicon)
        out.append(dataclasses.replace(r, negatives=(*r.negatives, *negs)))
    return out
