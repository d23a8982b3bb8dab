"""Caption parsing for mining: the stanza door, parsed-document helpers and object-noun finding.

A parsed caption is a stanza ``Document``: sentences of words with ``text/lemma/upos/xpos/head/
deprel/feats`` and, per sentence, a ``constituency`` tree. Stanza models are not shipped:
:meth:`StanzaParser.from_pretrained` is the only door to them and fails naming what to download
and where. Tests build ``Document``s from annotated dicts with :func:`doc_from_dicts`, which is
also how a cached parse is reloaded. The word-level helpers here (matching lexicon phrases,
rendering a sentence with some words replaced) serve both :mod:`genemi.mining.rewrite` and
:mod:`genemi.mining.rules`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from genemi.config import STANZA_LANG, stanza_processors
from genemi.mining.lexicon import Lexicon, default_lexicon

STANZA_PROCESSORS = stanza_processors("parser")
_NO_SPACE_BEFORE = {",", ".", "!", "?", ";", ":", "'s", "'", "n't", ")", "%"}


class StanzaParser:
    """Callable ``text -> stanza Document`` with tokenize, pos, lemma, depparse, constituency."""

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, use_gpu: bool = False) -> StanzaParser:
        """Load stanza models from ``model_dir`` offline; never downloads.

        Raises FileNotFoundError naming the folder and the command that fills it.
        """
        model_dir = Path(model_dir)
        lang = STANZA_LANG
        how = (
            f"stanza models for {lang!r} not found under {model_dir}. On a machine with internet run "
            f"`python -c \"import stanza; stanza.download('{lang}', model_dir='{model_dir}', "
            f"processors='{stanza_processors()}')\"` (what the download_stanza stage "
            f"fetches) and copy that folder here (or set mine_real.stanza_dir in params.yaml to where it is)."
        )
        if not (model_dir / "resources.json").is_file() or not (model_dir / lang).is_dir():
            raise FileNotFoundError(how)
        import stanza

        try:
            pipe = stanza.Pipeline(
                STANZA_LANG,
                dir=str(model_dir),
                processors=stanza_processors("parser"),
                download_method=None,
                use_gpu=use_gpu,
                logging_level="WARN",
            )
        except (FileNotFoundError, ValueError, KeyError) as e:
            raise FileNotFoundError(f"{how} ({type(e).__name__}: {e})") from e
        return cls(pipe)

    def __call__(self, text: str) -> Any:
        return self.pipeline(text)


def doc_from_dicts(sentences: Sequence[dict]) -> Any:
    """Build a stanza ``Document`` from annotated sentences (tests, cached parses).

    Each sentence is ``{"tokens": [ {id, text, lemma, upos, xpos, head, deprel[, feats]} ...],
    "tree": "(ROOT (S ...))"}``; the tree's leaves must be the tokens' texts in order.
    """
    from stanza.models.common.doc import Document
    from stanza.models.constituency import tree_reader

    doc = Document([list(s["tokens"]) for s in sentences])
    for i, (sent, s) in enumerate(zip(doc.sentences, sentences, strict=True)):
        if s.get("tree"):
            tree = tree_reader.read_trees(s["tree"])[0]
            leaves = tree.leaf_labels()
            words = [w.text for w in sent.words]
            if leaves != words:
                raise ValueError(f"sentence {i}: tree leaves {leaves} differ from tokens {words}")
            sent.constituency = tree
    return doc


def detokenize(tokens: Iterable[str]) -> str:
    """Join tokens with spaces, none before punctuation/clitics; empty tokens are dropped."""
    out = ""
    for t in tokens:
        if not t:
            continue
        out += t if (not out or t in _NO_SPACE_BEFORE) else " " + t
    return re.sub(r",\s+,", ",", out)  # the seed's cleanup of doubled commas


def article_for(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def render(words: Sequence[Any], repl: dict[int, str]) -> str:
    """Sentence text with word ``i`` replaced by ``repl[i]`` (0-based); re-agree "a/an" before a
    replaced word (only there, so untouched text stays as written); a sentence-initial capital
    carries over to the replacement."""
    toks = [repl.get(i, w.text) for i, w in enumerate(words)]
    if 0 in repl and toks[0] and words[0].text[:1].isupper():
        toks[0] = toks[0][0].upper() + toks[0][1:]
    for i in sorted(repl):
        j = i - 1
        while j >= 0 and not toks[j]:
            j -= 1
        if j >= 0 and j not in repl and toks[j].lower() in ("a", "an") and toks[i]:
            art = article_for(toks[i])
            toks[j] = art.capitalize() if toks[j][0].isupper() else art
    return detokenize(toks)


def is_plural(w: Any) -> bool:
    return (w.xpos or "") in ("NNS", "NNPS") or "Number=Plur" in (w.feats or "")


def match_phrases(words: Sequence[Any], phrases: Sequence[tuple[str, ...]]) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, end, phrase)`` matches, longest phrase first at each position.

    A token matches on its lower-cased text, or on its lemma for the last token (plurals)."""
    hits, i, n = [], 0, len(words)
    while i < n:
        for ph in phrases:
            k = len(ph)
            if i + k > n:
                continue
            ok = all(words[i + j].text.lower() == ph[j] for j in range(k - 1))
            last = words[i + k - 1]
            if ok and ph[-1] in (last.text.lower(), (last.lemma or "").lower()):
                hits.append((i, i + k, " ".join(ph)))
                i += k
                break
        else:
            i += 1
    return hits


def caption_nouns(doc: Any, lexicon: Lexicon | None = None) -> list[str]:
    """Object words/phrases of the caption that the lexicon knows (nouns only), in order, unique.

    Plurals are given as the lemma ("dogs" -> "dog"), as a Grounding DINO prompt."""
    lex = lexicon or default_lexicon()
    out: list[str] = []
    for s in doc.sentences:
        for _, e, phrase in match_phrases(s.words, lex.object_phrases()):
            if s.words[e - 1].upos in ("NOUN", "PROPN") and phrase not in out:
                out.append(phrase)
    return out


def plain_nouns(caption: str, lexicon: Lexicon | None = None) -> list[str]:
    """Parser-free :func:`caption_nouns`: lexicon phrases found as whole words (plural -s ok)."""
    lex = lexicon or default_lexicon()
    toks = re.findall(r"[a-z]+", caption.lower())
    out: list[str] = []
    i = 0
    while i < len(toks):
        for ph in lex.object_phrases():
            k = len(ph)
            seg = toks[i : i + k]
            if len(seg) == k and seg[:-1] == list(ph[:-1]) and seg[-1] in (ph[-1], lex.pluralize(ph[-1])):
                if " ".join(ph) not in out:
                    out.append(" ".join(ph))
                i += k
                break
        else:
            i += 1
    return out
