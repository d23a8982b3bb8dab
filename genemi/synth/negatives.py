"""Hard negatives of the synthetic world, derived from the scene graph.

Each negative is a *caption* (the edited scene's caption, false for the original image) and an
*image* (the original edited through the Segmenter -> Editor interfaces, for which the negative
caption is true and the original caption false).

Types (names shared with the evaluation):

* ``attribute_swap``  -- two objects exchange colours ("a blue circle left of a red square")
* ``attribute_replace`` -- one object (all, for count scenes) gets another colour
* ``object_replace`` -- one object (all, for count scenes) gets another shape
* ``relation_flip`` -- the two objects exchange places; the caption keeps its relation word and
  swaps the arguments ("a blue square left of a red circle"), as ARO's relation set does
* ``count_change`` -- one object more or fewer ("two red circles" -> "three red circles")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from genemi.mining.interfaces import Editor, Segmenter
from genemi.synth import world
from genemi.synth.backend import box_mask

NEGATIVE_TYPES = ("attribute_swap", "attribute_replace", "object_replace", "relation_flip", "count_change")


@dataclass(frozen=True)
class Edit:
    """Repaint the object region ``box`` with ``prompt``; ``exact`` uses the segment, else the box."""

    box: tuple[float, float, float, float]
    prompt: str
    exact: bool


@dataclass(frozen=True)
class SceneNegative:
    type: str
    scene: dict
    caption: str
    edits: tuple[Edit, ...]


def _others(values: Sequence[str], current: str) -> list[str]:
    return [v for v in values if v != current]


def propose(
    scene: dict, neg_type: str, rng: np.random.Generator, colors: Sequence[str], shapes: Sequence[str],
    size: int, layout: str = "fill",
) -> SceneNegative | None:
    """One random negative of ``neg_type`` for ``scene``, or None if the type does not apply; its edits' boxes
    hold each object as ``layout`` draws it (:data:`genemi.synth.world.LAYOUTS`)."""
    objs = scene["objects"]
    b = [world.box(o, size, layout) for o in objs]
    if neg_type == "attribute_swap":
        if scene["kind"] != "pair" or objs[0]["color"] == objs[1]["color"]:
            return None
        c0, c1 = objs[0]["color"], objs[1]["color"]
        new = world.edited(scene, objects={0: {"color": c1}, 1: {"color": c0}})
        edits = (Edit(b[0], f"{c1} {objs[0]['shape']}", True), Edit(b[1], f"{c0} {objs[1]['shape']}", True))
    elif neg_type in ("attribute_replace", "object_replace"):
        field_, pool = ("color", colors) if neg_type == "attribute_replace" else ("shape", shapes)
        idx = [int(rng.integers(len(objs)))] if scene["kind"] == "pair" else list(range(len(objs)))
        value = str(rng.choice(_others(pool, objs[idx[0]][field_])))
        new = world.edited(scene, objects={i: {field_: value} for i in idx})
        exact = neg_type == "attribute_replace"  # a new shape may need pixels outside the old one
        edits = tuple(Edit(b[i], world.combo(new["objects"][i]), exact) for i in idx)
    elif neg_type == "relation_flip":
        if scene["kind"] != "pair":
            return None
        place = ("slot", "dx", "dy")
        new = world.edited(
            scene,
            objects={0: {k: objs[1][k] for k in place}, 1: {k: objs[0][k] for k in place}},
        )
        new["order"] = scene["order"][::-1]  # name first the object now in the first-named one's slot
        edits = (Edit(b[0], world.combo(objs[1]), False), Edit(b[1], world.combo(objs[0]), False))
    elif neg_type == "count_change":
        if scene["kind"] != "count":
            return None
        k = len(objs)
        grow = k == 1 or (k < world.SLOTS and rng.random() < 0.5)
        if grow:
            free = sorted(set(range(world.SLOTS)) - {o["slot"] for o in objs})
            added = dict(objs[0], slot=int(rng.choice(free)), dx=0, dy=0)
            new = dict(scene, objects=sorted([*objs, added], key=lambda o: o["slot"]), order=list(range(k + 1)))
            edits = (Edit(world.box(added, size, layout), world.combo(added), False),)
        else:
            drop = int(rng.integers(k))
            kept = [o for i, o in enumerate(objs) if i != drop]
            new = dict(scene, objects=kept, order=list(range(k - 1)))
            edits = (Edit(b[drop], "", False),)
    else:
        raise ValueError(f"unknown negative type {neg_type!r}; known: {', '.join(NEGATIVE_TYPES)}")
    if world.scene_key(new) == world.scene_key(scene):
        return None  # the "negative" would still be true of the image
    if new["kind"] == "pair" and world.combo(new["objects"][0]) == world.combo(new["objects"][1]):
        return None  # two identical objects: no longer a well-formed pair scene
    return SceneNegative(neg_type, new, world.caption(new), edits)


def apply_edits(image: Image.Image, edits: Sequence[Edit], segmenter: Segmenter, editor: Editor, seed: int):
    """Run each edit through segment -> edit; returns the edited PIL image.

    Masks are all computed on the *original* image first, so swapping two objects works
    (the second edit must not see the first one's result as its segment).
    """
    masks = []
    for e in edits:
        if e.exact:
            masks.append(segmenter.segment(image, e.box))
        else:
            masks.append(box_mask(e.box, (image.height, image.width)))
    out = image
    for e, m in zip(edits, masks):
        out = editor.edit(out, m, e.prompt, seed)
    return out


def mine(
    scene: dict,
    rng: np.random.Generator,
    types: Sequence[str],
    max_per_type: int,
    colors: Sequence[str],
    shapes: Sequence[str],
    size: int,
    allowed=lambda color, shape: True,
    layout: str = "fill",
) -> list[SceneNegative]:
    """Up to ``max_per_type`` distinct negatives of each type, in ``types`` order.

    ``allowed(color, shape)`` rejects negatives showing a forbidden combination, so that
    training negatives never reveal the generalisation split's held-out combinations.
    """
    out: list[SceneNegative] = []
    for t in types:
        seen: set[str] = set()
        for _ in range(4 * max_per_type):
            if len(seen) >= max_per_type:
                break
            neg = propose(scene, t, rng, colors, shapes, size, layout)
            if neg is not None and not all(allowed(o["color"], o["shape"]) for o in neg.scene["objects"]):
                neg = None
            if neg is None:
                if t in ("attribute_swap", "relation_flip"):
                    break  # deterministic: retrying cannot help
                continue
            if neg.caption not in seen:
                seen.add(neg.caption)
                out.append(neg)
    return out
