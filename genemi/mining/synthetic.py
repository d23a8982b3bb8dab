"""The synthetic world's exact mining models for the COCO stand-in (``mine_real.backend: synthetic``).

Every stand-in image is a scene of the world (:mod:`genemi.synth.world`): flat background, saturated palette
colours, one object per slot of a horizontal row, each shape spanning its whole box. So the scene can be
read back from the pixels exactly (:func:`read_scene`), JPEG or not, and every mining model has an exact
counterpart that knows the truth:

==================  ==================================================================  ==========
class               does                                                                interface
==================  ==================================================================  ==========
WorldTagger         the shapes the image shows (slot order), whatever the caption says  Tagger
WorldGrounder       one box over every object of that shape, then one box per object    Grounder
WorldSegmenter      the object pixels inside the box                                    Segmenter
WorldPainter        per object of the mask: erase its box, paint the prompt's colour +   Editor
                    shape at the same place and size
WorldScorer         +5 if the caption is true of the image's scene, -5 if not            Scorer
==================  ==================================================================  ==========

The grounder's first box covers every object the phrase names, as Grounding DINO often boxes a group for
a plural phrase: the pipeline inpaints its first box only, so "two red circles" recoloured becomes "two
green circles", not one of each. The painter grows the mask to each object's box because a new shape needs
pixels outside the old silhouette (the box holds only that object and background). The scorer's values
stand where BLIP's raw ITM "match" logit stands (``mine_real.itm_min: 0`` splits them), so the chain's
filter, ITM-weighted group sampling and contact sheets read them unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from PIL import Image

from genemi.mining.chain import Chain
from genemi.mining.interfaces import Detection
from genemi.mining.lexicon import Lexicon
from genemi.mining.portrayals import LexiconPortrayer
from genemi.mining.rewrite import CaptionRewriter
from genemi.synth import world

MATCH, MISMATCH = 5.0, -5.0  # the scorer's values: a confident BLIP ITM logit either way
_FOREGROUND = 48  # a pixel is an object's when a channel differs from the background by more (JPEG-safe)
_PLACES = {v: k for k, v in world.PLACE.items()}  # "on the left" -> slot 0
_NUMBERS = {v: k for k, v in world.NUMBER_WORDS.items()}
_SINGULAR = {v: k for k, v in world.PLURAL.items()}


def _array(image: Image.Image | np.ndarray) -> np.ndarray:
    return np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)


def foreground(image: Image.Image | np.ndarray) -> np.ndarray:
    """``[H, W]`` bool: pixels that are not the world's background."""
    arr = _array(image).astype(np.int16)
    return np.abs(arr - np.array(world.BACKGROUND, dtype=np.int16)).max(axis=-1) > _FOREGROUND


def _slot_of(x: float, size: int) -> int:
    return min(world.SLOTS - 1, int(x // (size / world.SLOTS)))


def read_objects(image: Image.Image | np.ndarray) -> list[dict]:
    """The objects of a world image, left to right: ``{"color", "shape", "slot", "dx", "dy", "box", "mask"}``.

    Per slot, the foreground pixels are one object: its box gives centre and half-extent (every shape spans
    its box), its median pixel the nearest palette colour, and the shape is the one whose drawn mask at that
    place overlaps the pixels best (IoU). ``box`` is end-exclusive pixels, ``mask`` ``[H, W]`` bool."""
    arr = _array(image)
    size = arr.shape[1]
    fg = foreground(arr)
    cell = size / world.SLOTS
    xs_all = np.arange(size)
    out = []
    for slot in range(world.SLOTS):
        in_slot = fg & ((xs_all >= round(cell * slot)) & (xs_all < round(cell * (slot + 1))))[None, :]
        if in_slot.sum() < 4:  # a few stray JPEG pixels are not an object
            continue
        ys, xs = np.nonzero(in_slot)
        x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
        half = max(x1 - x0, y1 - y0) // 2
        cx, cy = (x0 + x1 + 1) // 2, (y0 + y1 + 1) // 2
        rgb = np.median(arr[in_slot].astype(np.float32), axis=0)
        color = min(world.PALETTE, key=lambda c: float(np.sum((rgb - np.array(world.PALETTE[c])) ** 2)))

        drawn = {s: world.shape_mask(s, cx, cy, half, size) for s in world.SHAPES}
        iou = {s: (m & in_slot).sum() / max(1, (m | in_slot).sum()) for s, m in drawn.items()}
        shape = max(world.SHAPES, key=iou.__getitem__)
        out.append({
            "color": color, "shape": shape, "slot": slot,
            "dx": cx - int(cell * slot + cell / 2), "dy": cy - size // 2,
            "box": (float(cx - half), float(cy - half), float(cx + half + 1), float(cy + half + 1)),
            "mask": in_slot,
        })  # fmt: skip
    return out


def read_scene(image: Image.Image | np.ndarray) -> dict:
    """The scene a world image shows (:mod:`genemi.synth.world`'s dict): two different objects are a
    ``pair`` (named left first), identical objects a ``count``; no object is an empty count."""
    objs = [{k: o[k] for k in ("color", "shape", "slot", "dx", "dy")} for o in read_objects(image)]
    kind = "pair" if len(objs) == 2 and world.combo(objs[0]) != world.combo(objs[1]) else "count"
    return {"kind": kind, "objects": objs, "order": list(range(len(objs)))}


_COLOR = "(?:(" + "|".join(world.PALETTE) + ") )?"  # a caption may leave an object's colour out
_COMBO = rf"{_COLOR}(\w+)"
_PAIR = re.compile(rf"^an? {_COMBO} (left|right) of an? {_COMBO}$")
_COUNT = re.compile(rf"^(one|two|three) {_COMBO}(?: (on the left|in the middle|on the right))?$")
_PLACED = re.compile(rf"^an? {_COMBO} (on the left|in the middle|on the right)$")


def _is(obj: dict, color: str | None, shape: str) -> bool:
    """Whether ``obj`` is a ``color shape`` (any colour when the caption names none)."""
    return obj["shape"] == shape and color in (None, obj["color"])


def caption_true(caption: str, scene: dict) -> bool:
    """Whether a caption of the world's grammar is true of ``scene``; anything else is not confirmed (False).
    Each object is named ``C S`` or, as the COCO stand-in's captions may name it, ``S`` alone (any colour).

    * ``"a C S left|right of a C S"``: the scene holds exactly these two objects in that order;
    * ``"one C S <place>"``, ``"two|three C Ss"``: exactly that many objects, all ``C S`` (and the place);
    * ``"a C S <place>"``: an object ``C S`` stands in that place (the COCO stand-in's per-object captions).
    """
    text = " ".join(caption.lower().split())
    objs = sorted(scene["objects"], key=lambda o: o["slot"])
    if m := _PAIR.match(text):
        a, rel, b = (m[1], m[2]), m[3], (m[4], m[5])
        left, right = (a, b) if rel == "left" else (b, a)
        return len(objs) == 2 and _is(objs[0], *left) and _is(objs[1], *right)
    if m := _COUNT.match(text):
        k, color, shape, place = _NUMBERS[m[1]], m[2], m[3], m[4]
        shape = shape if k == 1 else _SINGULAR.get(shape, "")
        if len(objs) != k or not all(_is(o, color, shape) for o in objs):
            return False
        return place is None if k > 1 else (place is not None and objs[0]["slot"] == _PLACES[place])
    if m := _PLACED.match(text):
        color, shape, slot = m[1], m[2], _PLACES[m[3]]
        return any(_is(o, color, shape) and o["slot"] == slot for o in objs)
    return False


def prompt_object(prompt: str) -> tuple[str, str] | None:
    """``(colour, shape)`` an inpainting prompt asks for (its last palette colour and shape words), or None
    when it names no colour or no shape: the painter then only erases."""
    words = re.findall(r"[a-z]+", prompt.lower())
    colors = [w for w in words if w in world.PALETTE]
    shapes = [w if w in world.SHAPES else _SINGULAR[w] for w in words if w in world.SHAPES or w in _SINGULAR]
    return (colors[-1], shapes[-1]) if colors and shapes else None


class WorldTagger:
    def tag(self, image: Image.Image, caption: str | None = None) -> list[str]:
        """The shapes in the image, left to right, each once (the caption is not read)."""
        return list(dict.fromkeys(o["shape"] for o in read_objects(image)))


class WorldGrounder:
    def ground(self, image: Image.Image, phrase: str) -> list[Detection]:
        """Boxes of the objects whose shape ``phrase`` names (its last shape word, singular or plural): first
        one box over all of them, then each object's own box when there are several; [] if none."""
        words = re.findall(r"[a-z]+", phrase.lower())
        shapes = {w if w in world.SHAPES else _SINGULAR.get(w) for w in words} & set(world.SHAPES)
        found = [o for o in read_objects(image) if o["shape"] in shapes]
        if not found:
            return []
        boxes = [o["box"] for o in found]
        group = tuple(f(b[i] for b in boxes) for i, f in enumerate((min, min, max, max)))
        each = [Detection(b, 1.0, phrase.strip()) for b in boxes] if len(boxes) > 1 else []
        return [Detection(group, 1.0, phrase.strip()), *each]


class WorldSegmenter:
    def segment(self, image: Image.Image, box: Sequence[float]) -> np.ndarray:
        """``[H, W]`` bool: the pixels of the objects whose box lies inside ``box`` (exactly their shapes)."""
        arr = _array(image)
        x0, y0, x1, y1 = box
        out = np.zeros(arr.shape[:2], dtype=bool)
        for o in read_objects(arr):
            b = o["box"]
            if b[0] >= x0 - 0.5 and b[1] >= y0 - 0.5 and b[2] <= x1 + 0.5 and b[3] <= y1 + 0.5:
                cx, cy = int((b[0] + b[2] - 1) // 2), int((b[1] + b[3] - 1) // 2)
                out |= world.shape_mask(o["shape"], cx, cy, int((b[2] - b[0] - 1) // 2), arr.shape[1])
        return out


class WorldPainter:
    def edit(self, image: Image.Image, mask: np.ndarray, prompt: str, seed: int = 0) -> Image.Image:
        """Each object under ``mask`` (one per slot) repainted as the prompt's ``colour shape`` at the same
        centre and size, on a background-erased box; a prompt without both words only erases."""
        arr = _array(image).copy()
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != arr.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image (H, W) {arr.shape[:2]}")
        size, cell = arr.shape[1], arr.shape[1] / world.SLOTS
        want = prompt_object(prompt)
        cols = np.arange(size)
        for slot in range(world.SLOTS):
            part = mask & ((cols >= round(cell * slot)) & (cols < round(cell * (slot + 1))))[None, :]
            if not part.any():
                continue
            ys, xs = np.nonzero(part)
            x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
            arr[y0 : y1 + 1, x0 : x1 + 1] = world.BACKGROUND
            if want is not None:
                half = max(x1 - x0, y1 - y0) // 2
                world.paint(arr, want[0], want[1], (x0 + x1 + 1) // 2, (y0 + y1 + 1) // 2, half)
        return Image.fromarray(arr)


class WorldScorer:
    def score(self, image: Image.Image, caption: str) -> float:
        """:data:`MATCH` if ``caption`` is true of the scene the image shows, else :data:`MISMATCH`."""
        return MATCH if caption_true(caption, read_scene(image)) else MISMATCH


def synthetic_chain(lexicon: Lexicon | None) -> Chain:
    """``backend: synthetic``: the world's exact tagger, grounder, segmenter, painter and scorer
    (:mod:`genemi.mining.synthetic`) with the same portrayer and caption rewriter as the real chain (the
    lexicon's, no stanza parser: the world's captions need none). For the synthetic stand-in's images only."""
    if lexicon is None:
        raise ValueError(
            "mine_real.backend=synthetic reads the synthetic world's images with its own words: set "
            "data.stand_in: synthetic (the stand-in COCO files), or use backend pretrained for real images"
        )
    return Chain(
        tagger=WorldTagger(),
        grounder=WorldGrounder(),
        segmenter=WorldSegmenter(),
        editor=WorldPainter(),
        scorer=WorldScorer(),
        portrayer=LexiconPortrayer(lexicon),
        rewriter=CaptionRewriter(None, lexicon),
        parse=None,
        lexicon=lexicon,
    )
