"""Portrayals (what a variation shows) and what kind of edit a variation is.

The seed asked an LLM for portrayals (docs/method.md §3.1); :func:`parse_portrayals` reads a reply
of its form, and offline :class:`LexiconPortrayer` draws them from the lexicon.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genemi.mining.lexicon import Lexicon, default_lexicon
from genemi.mining.parse import article_for, plain_nouns
from genemi.mining.rules import ATTRIBUTE, OBJECT


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
            out.append(Portrayal(desc=self.template.format(a=article_for(short), short=short), short=short))
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
