"""Caption text for mining: stanza-driven caption rewriting and rule-based HNC-type negatives.

Two jobs, both on stanza ``Document``s (words with ``text/lemma/upos/xpos/head/deprel/feats``,
sentences with a ``constituency`` tree):

* **GeNeMi caption rewriting** (positive text of a variation image): the constituency tree is cut
  into chunks exactly like the seed (recurse while a child is S/NP/VP/PP, else emit the subtree),
  and the chunk holding the object is replaced by the variation's short form. Departures from
  the seed, each fixing a defect: the object is matched on whole words/lemmas (the seed matched a
  substring, so "cat" hit "catch"); the chunk's determiner/number is kept and "a/an" re-agreed;
  the original captions are rewritten with the arguments in the right order (the seed swapped
  them and returned the bare item word).
* **Rule-based negatives** of the HNC types, driven by the dependency parse and the shipped
  lexicon (:mod:`genemi.mining.lexicon`): ``attribute`` (adjective -> contradicting one of its
  scale), ``object`` (noun -> other category of its supercategory), ``relation_pred`` (spatial
  relation -> its inverse), ``obj_count`` (number -> another number, noun and verb re-agreed).

Stanza models are not shipped: :meth:`StanzaParser.from_pretrained` is the only door to them and
fails naming what to download and where. Tests build ``Document``s from annotated dicts with
:func:`doc_from_dicts`, which is also how a cached parse is reloaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genemi.manifest import Negative, Record
from genemi.mining.lexicon import Lexicon, default_lexicon

ATTRIBUTE, OBJECT, RELATION, COUNT = "attribute", "object", "relation_pred", "obj_count"
NEGATIVE_TYPES = (ATTRIBUTE, OBJECT, RELATION, COUNT)
CHUNK_LABELS = frozenset({"S", "NP", "VP", "PP"})  # the seed's recursion labels
STANZA_PROCESSORS = "tokenize,pos,lemma,depparse,constituency"
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_NO_SPACE_BEFORE = {",", ".", "!", "?", ";", ":", "'s", "'", "n't", ")", "%"}
_DETERMINERS = {"DT", "PRP$", "CD", "WP$"}


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------
class StanzaParser:
    """Callable ``text -> stanza Document`` with tokenize, pos, lemma, depparse, constituency."""

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, lang: str = "en", use_gpu: bool = False) -> StanzaParser:
        """Load stanza models from ``model_dir`` offline; never downloads.

        Raises FileNotFoundError naming the folder and the command that fills it.
        """
        model_dir = Path(model_dir)
        how = (
            f"stanza models for {lang!r} not found under {model_dir}. On a machine with internet run "
            f"`python -c \"import stanza; stanza.download('{lang}', model_dir='{model_dir}', "
            f"processors='{STANZA_PROCESSORS}')\"` and copy that folder here "
            f"(or set mine_real.stanza_dir in params.yaml to where it is)."
        )
        if not (model_dir / "resources.json").is_file() or not (model_dir / lang).is_dir():
            raise FileNotFoundError(how)
        import stanza

        try:
            pipe = stanza.Pipeline(
                lang,
                dir=str(model_dir),
                processors=STANZA_PROCESSORS,
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


# ---------------------------------------------------------------------------------------------
# Rendering helpers
# ---------------------------------------------------------------------------------------------
def detokenize(tokens: Iterable[str]) -> str:
    """Join tokens with spaces, none before punctuation/clitics; empty tokens are dropped."""
    out = ""
    for t in tokens:
        if not t:
            continue
        out += t if (not out or t in _NO_SPACE_BEFORE) else " " + t
    return re.sub(r",\s+,", ",", out)  # the seed's cleanup of doubled commas


def _article_for(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _render(words: Sequence[Any], repl: dict[int, str]) -> str:
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
            art = _article_for(toks[i])
            toks[j] = art.capitalize() if toks[j][0].isupper() else art
    return detokenize(toks)


def _is_plural(w: Any) -> bool:
    return (w.xpos or "") in ("NNS", "NNPS") or "Number=Plur" in (w.feats or "")


def _match_phrases(words: Sequence[Any], phrases: Sequence[tuple[str, ...]]) -> list[tuple[int, int, str]]:
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


# ---------------------------------------------------------------------------------------------
# GeNeMi caption rewriting (constituency chunks)
# ---------------------------------------------------------------------------------------------
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
    hits = _match_phrases(words, [tuple(item.lower().split())])
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
        new = lexicon.pluralize(variation) if _is_plural(words[e - 1]) else variation
        for i in range(keep, e):
            repl[i] = ""
        repl[keep] = new
    return _render(words, repl)


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
            art = _article_for(new)
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


# ---------------------------------------------------------------------------------------------
# Rule-based HNC-type negatives (dependency parse + lexicon)
# ---------------------------------------------------------------------------------------------
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
    for s, e, phrase in _match_phrases(words, lex.object_phrases()):
        if words[e - 1].upos not in ("NOUN", "PROPN"):
            continue
        plural = _is_plural(words[e - 1])
        for alt in lex.object_alternatives(phrase):
            repl = {i: "" for i in range(s, e)}
            repl[s] = lex.pluralize(alt) if plural else alt
            out.append((repl, f"{phrase}->{alt}"))
    return out


def _relation_edits(words: Sequence[Any], lex: Lexicon) -> list[tuple[dict[int, str], str]]:
    out = []
    for s, e, phrase in _match_phrases(words, lex.relation_phrases()):
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
            and not _is_plural(noun)
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
            text = " ".join(base[:k] + [_render(s.words, repl)] + base[k + 1 :])
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
    import dataclasses
    import hashlib

    out = []
    for r in records:
        key = int.from_bytes(hashlib.sha256(r.id.encode()).digest()[:4], "little")
        negs = rule_negatives(
            parse(r.caption), np.random.default_rng((seed, key)), types, max_per_type, lexicon
        )
        out.append(dataclasses.replace(r, negatives=(*r.negatives, *negs)))
    return out


def caption_nouns(doc: Any, lexicon: Lexicon | None = None) -> list[str]:
    """Object words/phrases of the caption that the lexicon knows (nouns only), in order, unique.

    Plurals are given as the lemma ("dogs" -> "dog"), as a Grounding DINO prompt."""
    lex = lexicon or default_lexicon()
    out: list[str] = []
    for s in doc.sentences:
        for _, e, phrase in _match_phrases(s.words, lex.object_phrases()):
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


# ---------------------------------------------------------------------------------------------
# Portrayals (what a variation shows): the seed asked an LLM; offline we use the lexicon
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Portrayal:
    desc: str  # long visual description: the inpainting prompt
    short: str  # 2-3 words: replaces the object's chunk in the caption


_PORTRAYAL_LINE = re.compile(r"^\s*(?:\d+[).:-]\s*)?(.+?)\s*\((.+)\)\s*$")


def parse_portrayals(text: str, items: Sequence[str], per_item: int = 4) -> dict[str, list[Portrayal]]:
    """Parse an LLM reply of the seed's form (per item: a header line ``<item>:`` then lines
    ``1) long description (short form)``). Items whose section is missing or malformed are left
    out. The long description is kept (the seed dropped it, then prompted with a missing column).
    """
    out: dict[str, list[Portrayal]] = {}
    current: str | None = None
    wanted = {it.lower(): it for it in items}
    for line in text.lower().splitlines():
        head = line.strip().rstrip(":").strip()
        if head in wanted:
            current = wanted[head]
            out.setdefault(current, [])
            continue
        m = _PORTRAYAL_LINE.match(line)
        if current is not None and m and len(out[current]) < per_item:
            out[current].append(Portrayal(desc=m.group(1).strip(), short=m.group(2).strip()))
    return {k: v for k, v in out.items() if v}


class LexiconPortrayer:
    """Offline portrayals: recolourings of the object and other objects of its kind.

    Half the variations keep the object and change its colour (an ``attribute`` edit), half
    swap it for another object of its supercategory in some colour (an ``object`` edit)."""

    def __init__(
        self,
        lexicon: Lexicon | None = None,
        colors: Sequence[str] | None = None,
        objects: Sequence[str] | None = None,
        template: str = "a photo of {a} {short}, realistic, detailed",
    ):
        """``colors``/``objects`` replace the lexicon's (e.g. the synthetic world's palette and
        shapes); ``template`` makes the inpainting prompt from ``{short}`` (and its article
        ``{a}``): ``"{short}"`` suits an editor that paints "<colour> <shape>"."""
        self.lexicon = lexicon or default_lexicon()
        self.colors = list(colors) if colors is not None else self.lexicon.colors()
        self.objects = list(objects) if objects is not None else None
        self.template = template

    def portray(self, item: str, caption: str, n: int, rng: np.random.Generator) -> list[Portrayal]:
        colors = self.colors
        if self.objects is not None:
            others = [o for o in self.objects if o != item] or [item]
        else:
            others = self.lexicon.object_alternatives(item) or [item]
        out: list[Portrayal] = []
        seen: set[str] = set()
        for k in range(8 * n):
            if len(out) == n:
                break
            obj = item if k % 2 == 0 else others[int(rng.integers(len(others)))]
            short = f"{colors[int(rng.integers(len(colors)))]} {obj}"
            if short in seen:
                continue
            seen.add(short)
            out.append(Portrayal(desc=self.template.format(a=_article_for(short), short=short), short=short))
        return out


VARIATION = "variation"


def edit_type(item: str, short: str, lexicon: Lexicon | None = None) -> str:
    """What a variation changed, and so whether the original caption became false.

    * ``attribute``: the object word survives in the short form, only its look changed;
    * ``object``: the short form names a *different* known object (another category, or another
      people word: man -> woman), so a caption naming the original object is now false;
    * ``variation``: anything else, e.g. a hyponym ("bird" -> "bald eagle") for which the
      original caption may still be true; no negative is derived from it.
    """
    lex = lexicon or default_lexicon()
    if re.search(rf"\b{re.escape(item.lower())}\b", short.lower()):
        return ATTRIBUTE
    known = plain_nouns(short, lex)
    cat = lex.category(item)
    if not known or cat is None:
        return VARIATION
    new = known[-1]
    subtypes = {w for group in lex.subtypes.values() for w in group}
    if lex.category(new) != cat or (item.lower() in subtypes and new in subtypes):
        return OBJECT
    return VARIATION
