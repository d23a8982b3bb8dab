"""Procedural scenes: coloured shapes in a row of slots, captions from templates.

The world is deliberately small so that a tiny CLIP learns it on a CPU in minutes:
few colours and shapes, big objects, one horizontal row of ``SLOTS`` slots (so "left of"
is unambiguous), and a closed vocabulary (see :func:`vocabulary`). ``PALETTE`` and ``SHAPES`` hold
every colour and shape of the *broad* world the base model is pretrained on; ``synth.colors`` /
``synth.shapes`` pick the narrower part that fine-tuning sees (docs/method.md).

Two scene kinds:

* ``pair``: two different objects in two slots, captioned
  ``"a red circle left of a blue square"``. With ``mention_order="left_first"`` (the default)
  the left object is always named first, so the caption's word order *is* the scene's
  left-to-right order (ARO/Winoground style: "B left of A" is the relation flip). With
  ``"random"`` either object may come first ("a blue square right of a red circle"), and the
  text tower must also learn that "left of" and "right of" with swapped arguments mean the
  same: a harder, XOR-like task (see benchmarks/results/synthetic_effect.md).
* ``count``: ``k`` identical objects (k = 1..3), captioned ``"two red circles"``; a lone object
  also names its place, ``"one red circle on the left"``.

A caption's wording is its scene's ``style`` (``STYLES``): ``plain`` (the wording above, the only one
the fine-tuning splits use), ``to`` (``"a red circle to the left of a blue square"``, ``"one red circle to
the left"``) and ``photo`` (``"a photo of a red circle."``, ``"a photo of two red circles."``: web alt-text
wording, and CLIP's zero-shot prompt). ``photo`` leaves out a lone object's place.

How a scene looks is its ``layout`` (``synth.color_layout``, ``LAYOUTS``): ``fill`` paints each shape in its
colour, so colour and shape arrive together in one 16-px patch and a ViT binds them at its patch embedding;
``swatch`` draws each shape in a neutral grey and its colour as a small square (a swatch) in the patch below
it, so which colour belongs to which shape is a relation between two patches, which the image tower has to
learn, as a relation ("left of") is (docs/method.md).

A scene is a plain dict (it travels in ``Record.meta["scene"]``):
``{"kind": "pair"|"count", "objects": [{"color", "shape", "slot", "dx", "dy"}], "order": [i, j]}``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

SLOTS = 3
BACKGROUND = (30, 30, 30)
# Saturated, well separated colours; a small per-object brightness jitter stops the
# model from keying on exact pixel values.
PALETTE = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 240),
    "yellow": (235, 215, 40),
    "purple": (160, 60, 200),
    "white": (235, 235, 235),
    # the broad world's further colours (params synth.broad_colors): pretraining only by default
    "pink": (245, 130, 190),
    "cyan": (40, 210, 220),
    "brown": (150, 90, 40),
    "gray": (128, 128, 128),
    "lime": (170, 245, 60),
}
SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond", "frame", "hourglass")
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses",
          "ring": "rings", "diamond": "diamonds", "frame": "frames", "hourglass": "hourglasses"}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three"}
# Where a lone object sits. Absolute positions are what plain CLIP training *can* learn from
# in-batch negatives; relations between two objects ("left of") need hard negatives.
PLACE = {0: "on the left", 1: "in the middle", 2: "on the right"}
MENTION_ORDERS = ("left_first", "random")
LAYOUTS = ("fill", "swatch")
NEUTRAL = (200, 200, 200)  # the shape's colour in the swatch layout: a grey that is no PALETTE colour
# caption wordings (module docstring) and the scene kinds each can word; a kind a style cannot word
# (a pair in ``photo``: too long for the text tower's 10 words) keeps the plain wording
STYLES = {"plain": ("pair", "count"), "to": ("pair", "count"), "photo": ("count",)}


def vocabulary(colors: Sequence[str], shapes: Sequence[str]) -> list[str]:
    """Every word a caption of this world can contain, in a fixed order ("." is a word, as in CLIP's
    tokenizer: the ``photo`` wording and the zero-shot prompt end with it)."""
    words = ["a", "left", "right", "of", "on", "the", "in", "middle", *NUMBER_WORDS.values(), *colors]
    for s in shapes:
        words += [s, PLURAL[s]]
    return [*words, "to", "photo", "."]


def combo(obj: dict) -> str:
    return f"{obj['color']} {obj['shape']}"


def sample_scene(
    rng: np.random.Generator,
    colors: Sequence[str],
    shapes: Sequence[str],
    max_objects: int,
    jitter: int,
    allowed: callable,
    mention_order: str = "left_first",
    p_pair: float = 0.6,
    styles: Sequence[str] = ("plain",),
) -> dict:
    """Draw one scene whose objects all satisfy ``allowed(color, shape)``.

    ``allowed`` lets the caller keep held-out colour-shape combinations out of train
    (or force them into the generalisation split, see :func:`generate_split`).
    ``mention_order`` picks which object of a pair the caption names first (module docstring);
    both orders draw the same random numbers, so they give the same scenes. ``styles``: the wordings
    (``STYLES``) a caption is drawn from; with one, no number is drawn for it, so the plain world's scenes
    do not depend on this argument.
    """
    if mention_order not in MENTION_ORDERS:
        raise ValueError(f"unknown mention order {mention_order!r}; known: {', '.join(MENTION_ORDERS)}")
    for _ in range(1000):
        kind = "pair" if rng.random() < p_pair else "count"
        if kind == "pair":
            slots = sorted(rng.choice(SLOTS, size=2, replace=False).tolist())
            objs = []
            for slot in slots:
                objs.append({"color": str(rng.choice(colors)), "shape": str(rng.choice(shapes)), "slot": slot})
            if combo(objs[0]) == combo(objs[1]):
                continue
            coin = rng.random()
            order = [1, 0] if mention_order == "random" and coin >= 0.5 else [0, 1]
        else:
            k = int(rng.integers(1, min(max_objects, SLOTS) + 1))
            color, shape = str(rng.choice(colors)), str(rng.choice(shapes))
            slots = sorted(rng.choice(SLOTS, size=k, replace=False).tolist())
            objs = [{"color": color, "shape": shape, "slot": s} for s in slots]
            order = list(range(k))
        if not all(allowed(o["color"], o["shape"]) for o in objs):
            continue
        for o in objs:
            o["dx"] = int(rng.integers(-jitter, jitter + 1))
            o["dy"] = int(rng.integers(-jitter, jitter + 1))
        scene = {"kind": kind, "objects": objs, "order": order}
        if len(styles) > 1:
            scene["style"] = str(styles[int(rng.integers(len(styles)))])
        return scene
    raise ValueError("could not sample a scene: the allowed colour/shape combinations are too restrictive")


def caption(scene: dict) -> str:
    """The scene's positive caption (lower case; only the ``photo`` wording ends with a full stop)."""
    objs = scene["objects"]
    style = scene.get("style", "plain")
    if style not in STYLES:
        raise ValueError(f"unknown caption style {style!r}; known: {', '.join(STYLES)}")
    if scene["kind"] not in STYLES[style]:
        style = "plain"
    if scene["kind"] == "pair":
        i, j = scene["order"]
        a, b = objs[i], objs[j]
        rel = "left" if a["slot"] < b["slot"] else "right"
        rel = f"to the {rel} of" if style == "to" else f"{rel} of"
        return f"a {a['color']} {a['shape']} {rel} a {b['color']} {b['shape']}"
    k = len(objs)
    o = objs[0]
    if style == "photo":
        if k == 1:
            return f"a photo of a {o['color']} {o['shape']}."
        return f"a photo of {NUMBER_WORDS[k]} {o['color']} {PLURAL[o['shape']]}."
    if k == 1:
        place = PLACE[o["slot"]]
        return f"one {o['color']} {o['shape']} " + (f"to the {place.split()[-1]}" if style == "to" and
                                                   o["slot"] != 1 else place)
    return f"{NUMBER_WORDS[k]} {o['color']} {PLURAL[o['shape']]}"


def scene_key(scene: dict) -> str:
    """Canonical meaning of a scene: scenes with equal keys satisfy the same captions.

    Used as the retrieval ground truth, so that "a red circle left of a blue square" and
    "a blue square right of a red circle" (same scene) both count as hits.
    """
    objs = sorted(scene["objects"], key=lambda o: o["slot"])
    if scene["kind"] == "pair":
        return "pair:" + "|".join(combo(o) for o in objs)
    if len(objs) == 1:
        return f"count:1 {combo(objs[0])} @{objs[0]['slot']}"
    return f"count:{len(objs)} {combo(objs[0])}"


def half_extent(size: int) -> int:
    """Half-extent of every object: about 2/3 of a slot, leaving room for jitter."""
    return int(size / SLOTS * 0.34)


def max_jitter(size: int) -> int:
    """Largest centre jitter that keeps neighbouring objects from touching."""
    return max(0, int((size / SLOTS - 2 * half_extent(size) - 2) // 2))


def geometry(obj: dict, size: int) -> tuple[int, int, int]:
    """Centre x, centre y and half-extent (pixels) of an object on a ``size`` canvas."""
    cell = size / SLOTS
    half = half_extent(size)
    cx = int(cell * obj["slot"] + cell / 2) + obj.get("dx", 0)
    cy = size // 2 + obj.get("dy", 0)
    return cx, cy, half


def swatch_geometry(cx: int, cy: int, half: int, size: int) -> tuple[int, int, int]:
    """Centre and half-extent of the colour swatch of a shape centred at (cx, cy) in the ``swatch`` layout:
    one slot below the shape, so it lies in the next row of 16-px patches."""
    return cx, cy + size // SLOTS, max(2, half - 1)


def box(obj: dict, size: int, layout: str = "fill") -> tuple[float, float, float, float]:
    """Pixel box (x0, y0, x1, y1), end-exclusive, that contains the object (in ``swatch``: and its swatch)."""
    cx, cy, h = geometry(obj, size)
    y1 = cy + h + 1
    if layout == "swatch":
        _, sy, sh = swatch_geometry(cx, cy, h, size)
        y1 = sy + sh + 1
    return (float(cx - h), float(cy - h), float(cx + h + 1), float(y1))


def shape_mask(shape: str, cx: int, cy: int, half: int, size: int) -> np.ndarray:
    """``[size, size]`` bool mask of one shape centred at (cx, cy) with half-extent ``half``."""
    yy, xx = np.mgrid[0:size, 0:size]
    dx, dy = xx - cx, yy - cy
    inside = (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if shape == "circle":
        return dx * dx + dy * dy <= half * half
    if shape == "square":
        # every shape spans the full box, so a mask's bounding box gives back (cx, cy, half)
        return inside
    if shape == "triangle":
        # apex up: the half-width grows linearly from the top edge to the bottom edge
        t = (dy + half) / max(2 * half, 1)
        return inside & (np.abs(dx) <= t * half + 1e-6)
    if shape == "cross":
        arm = max(1, half // 3)
        return inside & ((np.abs(dx) <= arm) | (np.abs(dy) <= arm))
    if shape == "ring":
        r2 = dx * dx + dy * dy
        return (r2 <= half * half) & (r2 >= (half * 0.55) ** 2)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= half
    if shape == "frame":
        # a square's outline, as a ring is a circle's
        return inside & ((np.abs(dx) >= half * 0.55) | (np.abs(dy) >= half * 0.55))
    if shape == "hourglass":
        # two triangles meeting at the centre, apexes inward
        return inside & (np.abs(dx) <= np.abs(dy))
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def paint(canvas: np.ndarray, color: str, shape: str, cx: int, cy: int, half: int) -> np.ndarray:
    """Draw one shape onto ``canvas`` (HWC uint8, modified in place) and return its mask."""
    if color not in PALETTE:
        raise ValueError(f"unknown colour {color!r}; known: {', '.join(PALETTE)}")
    m = shape_mask(shape, cx, cy, half, canvas.shape[0])
    canvas[m] = PALETTE[color]
    return m


def paint_object(
    canvas: np.ndarray, color: str, shape: str, cx: int, cy: int, half: int, layout: str = "fill"
) -> np.ndarray:
    """Draw one object as ``layout`` shows it (module docstring) onto ``canvas`` (in place); returns its
    mask."""
    if layout == "fill":
        return paint(canvas, color, shape, cx, cy, half)
    if layout != "swatch":
        raise ValueError(f"unknown colour layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if color not in PALETTE:
        raise ValueError(f"unknown colour {color!r}; known: {', '.join(PALETTE)}")
    m = shape_mask(shape, cx, cy, half, canvas.shape[0])
    canvas[m] = NEUTRAL
    return m | paint(canvas, color, "square", *swatch_geometry(cx, cy, half, canvas.shape[0]))


def render(scene: dict, size: int, layout: str = "fill") -> np.ndarray:
    """Render a scene to a ``[size, size, 3]`` uint8 RGB array."""
    canvas = np.empty((size, size, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    for o in scene["objects"]:
        cx, cy, h = geometry(o, size)
        paint_object(canvas, o["color"], o["shape"], cx, cy, h, layout)
    return canvas


def edited(scene: dict, **changes) -> dict:
    """Deep copy of ``scene`` with ``changes`` applied per object index: ``{i: {field: value}}``."""
    new = copy.deepcopy(scene)
    for i, fields in changes.get("objects", {}).items():
        new["objects"][i].update(fields)
    return new

