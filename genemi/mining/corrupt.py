"""Failed edits made on purpose, to measure what the filter buys (``mine_real.corrupt_*``).

A corrupted variation keeps its rewritten caption while its image is not what that caption names, as after a
failed inpainting. :data:`KINDS` are the failures it can stand for:

* ``unchanged``: the object as it was (an inpainting that changed nothing);
* ``portrayal``: another portrayal of the same object (the inpainting painted the wrong thing);
* ``misplaced``: the portrayal painted over another object of the image, the item left as it was (grounding
  boxed the wrong object: a box whose mask overlaps the item's by IoU < 0.5).

Which variations fail is ``mine_real.corrupt_by``'s choice (:data:`UNITS`): ``variation``, a draw of each
variation's own, so failures are independent of what was asked; ``prompt``, a draw of each inpainting
prompt's, so every variation asking for one prompt fails together, as an editor that cannot paint it; or
``color``, that share of the lexicon's colours, so every variation whose portrayal names one of them fails,
as an editor that cannot paint those colours (a portrayal naming no colour cannot fail so).

A variation that cannot fail the asked way (one portrayal only; an edit that changes no pixel; no other
object with a box and a mask of its own) stays right and is not counted as corrupted.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image

from genemi import seeding
from genemi.mining.chain import Chain
from genemi.mining.lexicon import Lexicon, default_lexicon
from genemi.mining.models import iva_score
from genemi.mining.portrayals import Portrayal

KINDS = ("unchanged", "portrayal", "misplaced")
UNITS = ("variation", "prompt", "color")


def corrupted(seed: int, name: str, fraction: float, prompt: str | None = None) -> bool:
    """Whether variation ``name`` is one of the ``fraction`` that ``mine_real.corrupt_fraction`` corrupts:
    a draw of its own ``(seed, name)``, or, given its inpainting ``prompt`` (``corrupt_by: prompt``), the
    prompt's ``(seed, prompt)``, shared by every variation that asks for it. Either way a variation's fate
    never depends on the sharding or a resume."""
    key = (name,) if prompt is None else ("prompt", prompt)
    return fraction > 0 and float(seeding.rng(seed, *key, "corrupt").random()) < fraction


@lru_cache(maxsize=64)
def failing_colors(seed: int, fraction: float, colors: tuple[str, ...]) -> frozenset[str]:
    """``round(fraction * len(colors))`` of ``colors``: those with the smallest draws ``(seed, "color", c)``,
    so exactly that share of the colours fails, whatever the seed."""
    ranked = sorted(colors, key=lambda c: float(seeding.rng(seed, "color", c, "corrupt").random()))
    return frozenset(ranked[: round(fraction * len(colors))])


def color_of(short: str, lexicon: Lexicon) -> str | None:
    """The colour ``short`` names (its first word in one of the lexicon's colour groups, as the group's
    first word), or None."""
    groups = {w: g[0] for scale in lexicon.scales["colors"].values() for g in scale for w in g}
    return next((groups[w] for w in short.lower().split() if w in groups), None)


def variation_fails(
    by: str, seed: int, name: str, fraction: float, por: Portrayal, lexicon: Lexicon | None
) -> bool:
    """Whether ``mine_real.corrupt_by`` = ``by`` makes variation ``name`` (portrayal ``por``) fail."""
    if by == "variation":
        return corrupted(seed, name, fraction)
    if by == "prompt":
        return corrupted(seed, name, fraction, por.desc)
    if by == "color":
        lex = lexicon or default_lexicon()
        return color_of(por.short, lex) in failing_colors(seed, fraction, tuple(lex.colors()))
    raise ValueError(f"mine_real.corrupt_by: {by!r} is none of {', '.join(UNITS)}; set one of them")


def wrong_object(
    chain: Chain, image: Image.Image, item: str, tags: Sequence[str], mask: np.ndarray
) -> tuple[str, np.ndarray] | None:
    """The first other tag after ``item`` (tagger order, wrapping) that grounds to a box whose mask is another
    object's, and that mask; None when the image has no such object. A mask is another object's when its
    IoU with the item's ``mask`` is below 0.5, the usual line between a wrong detection and a right one."""
    tags = list(tags)
    at = tags.index(item) if item in tags else -1
    for other in [*tags[at + 1 :], *tags[: max(at, 0)]]:
        if other == item or not (dets := chain.grounder.ground(image, other)):
            continue
        wrong = np.asarray(chain.segmenter.segment(image, dets[0].box), dtype=bool)
        if wrong.any() and (wrong & mask).sum() < 0.5 * (wrong | mask).sum():
            return other, wrong
    return None


def edit_variation(
    chain: Chain,
    image: Image.Image,
    mask: np.ndarray,
    item: str,
    tags: Sequence[str],
    portrayals: Sequence[Portrayal],
    j: int,
    edit_seed: int,
    fail: str | None,
    pixel_std: float,
    memo: dict | None = None,
) -> tuple[Image.Image, str, bool]:
    """Portrayal ``j`` of ``item`` painted through ``mask``, or, when ``fail`` names a kind of
    :data:`KINDS`, the failed edit of that kind: ``(image, what it shows, whether it failed)``. ``memo``
    (one dict per origin image) keeps each item's wrong object, so its portrayals ground it once."""
    if fail is not None and fail not in KINDS:
        raise ValueError(f"mine_real.corrupt_as: {fail!r} is none of {', '.join(KINDS)}; set one of them")
    por = portrayals[j]
    if fail == "portrayal" and len(portrayals) > 1:
        other = portrayals[(j + 1) % len(portrayals)]
        return chain.editor.edit(image, mask, other.desc, edit_seed), other.short, True
    if fail == "misplaced":
        memo = {} if memo is None else memo
        if item not in memo:
            memo[item] = wrong_object(chain, image, item, tags, mask)
        if (wrong := memo[item]) is not None:
            name, wrong_mask = wrong
            var = chain.editor.edit(image, wrong_mask, por.desc, edit_seed)
            return var, f"{por.short} over the {name}", True
    var = chain.editor.edit(image, mask, por.desc, edit_seed)
    # an edit that changes no pixel (a portrayal of the object's own look) has nothing to undo
    if fail == "unchanged" and iva_score([image, var], pixel_std) > 0:
        return image.copy(), item, True
    return var, por.short, False
