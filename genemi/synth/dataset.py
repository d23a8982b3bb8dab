"""Splits of the synthetic world as manifest records, and their mined negatives.

Splits:

* ``train`` / ``test``: scenes whose objects avoid the held-out colour-shape combinations;
* ``gen``: compositional generalisation -- every scene holds at least one held-out combination
  (each of its colours and shapes was seen in training, never together).

These three are the *narrow* world: ``synth.colors`` x ``synth.shapes``, plain wording; fine-tuning and
mining read only them. The *broad* world adds ``synth.broad_colors``, ``synth.broad_shapes`` and the
wordings ``synth.broad_styles`` (web-scale pretraining to fine-tuning's COCO / HNC, docs/method.md):

* ``pretrain``: what the base model learns from -- the whole broad world (the narrow part included),
  held-out combinations excluded as in ``train``;
* ``broad``: the retention benchmark ``synth_broad`` -- every object has a broad-only colour or shape
  (:func:`broad_only`), so nothing fine-tuning trains on is in it; plain wording; every other scene is a
  lone object whose ``meta["class"]`` (its colour and shape) the zero-shot classification reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from genemi import seeding
from genemi.config import MineParams, SynthParams
from genemi.images import ShardWriter, encode_png, read_image
from genemi.io import write_json
from genemi.manifest import DIGEST, Negative, Record, iter_manifest, write_manifest, written_digest
from genemi.plots import Tile
from genemi.synth import negatives as negs
from genemi.synth import world
from genemi.synth.backend import PixelSegmenter, ShapePainter

SPLITS = ("train", "test", "gen")  # the narrow (fine-tuning) world: mined, fine-tuned on, scored
BROAD_SPLITS = ("pretrain", "broad")  # the broad world: the base's data and the retention benchmark
_SPLIT_CODE = {s: i for i, s in enumerate(SPLITS + BROAD_SPLITS)}
# the manifest ``split`` of the broad splits' records: a training reader refuses ``test`` records
# (genemi.manifest.HELD_OUT_SPLITS), so the retention scenes can never be trained on
_RECORD_SPLIT = {"pretrain": "train", "broad": "test"}


def check_params(p: SynthParams, retention: bool = True) -> None:
    """Fail early, naming the key, on a synthetic world that cannot be built; ``retention``: also one whose
    retention split (``broad``) cannot be (a stand-in world, :func:`genemi.data.standin.stand_in_world`,
    has no broad-only part and never builds it)."""
    for c in p.colors:
        if c not in world.PALETTE:
            raise ValueError(f"synth.colors: unknown colour {c!r}; known: {', '.join(world.PALETTE)}")
    for s in p.shapes:
        if s not in world.SHAPES:
            raise ValueError(f"synth.shapes: unknown shape {s!r}; known: {', '.join(world.SHAPES)}")
    for h in p.heldout_combos:
        parts = h.split()
        if len(parts) != 2 or parts[0] not in p.colors or parts[1] not in p.shapes:
            raise ValueError(f"synth.heldout_combos: {h!r} must be '<colour> <shape>' from synth.colors/shapes")
    for key, names, known in (("synth.broad_colors", p.broad_colors, world.PALETTE),
                              ("synth.broad_shapes", p.broad_shapes, world.SHAPES)):
        for n in names:
            if n not in known:
                raise ValueError(f"{key}: unknown {n!r}; known: {', '.join(known)}")
            if n in p.colors or n in p.shapes:
                raise ValueError(f"{key}: {n!r} is in the fine-tuning world (synth.colors/shapes) too; "
                                 "list only what fine-tuning never shows")
    if retention and not p.broad_colors and not p.broad_shapes:
        raise ValueError("synth.broad_colors and synth.broad_shapes are both empty: the retention split "
                         "(synth_broad) needs a colour or shape that fine-tuning never shows")
    for st in p.broad_styles:
        if st not in world.STYLES:
            raise ValueError(f"synth.broad_styles: unknown wording {st!r}; known: {', '.join(world.STYLES)}")
    if not 1 <= p.max_objects <= world.SLOTS:
        raise ValueError(f"synth.max_objects must be in 1..{world.SLOTS}, got {p.max_objects}")
    if p.image_size < 24:
        raise ValueError(f"synth.image_size must be >= 24 pixels, got {p.image_size}")
    if not 0 <= p.jitter <= world.max_jitter(p.image_size):
        raise ValueError(
            f"synth.jitter={p.jitter} lets objects touch at image_size={p.image_size}; "
            f"use 0..{world.max_jitter(p.image_size)}"
        )


def split_size(p: SynthParams, split: str) -> int:
    return {"train": p.n_train, "test": p.n_test, "gen": p.n_gen, "pretrain": p.n_pretrain,
            "broad": p.n_broad}[split]


def broad_palette(p: SynthParams) -> tuple[list[str], list[str]]:
    """Colours and shapes of the broad (pretraining) world: the narrow world's, then the broad-only ones."""
    return [*p.colors, *p.broad_colors], [*p.shapes, *p.broad_shapes]


def broad_only(p: SynthParams, color: str, shape: str) -> bool:
    """True for a colour-shape combination fine-tuning never shows: its colour or its shape is broad-only."""
    return color in p.broad_colors or shape in p.broad_shapes


def _broad_scene(p: SynthParams, split: str, i: int, rng) -> dict:
    """Scene ``i`` of a broad split (``pretrain`` or ``broad``, module docstring)."""
    colors, shapes = broad_palette(p)
    held = set(p.heldout_combos)
    if split == "pretrain":
        return world.sample_scene(rng, colors, shapes, p.max_objects, p.jitter,
                                  lambda c, s: f"{c} {s}" not in held, p.mention_order, styles=p.broad_styles)
    lone = i % 2 == 0  # the zero-shot images: one object, its class its colour and shape
    return world.sample_scene(rng, colors, shapes, 1 if lone else p.max_objects, p.jitter,
                              lambda c, s: broad_only(p, c, s), p.mention_order, p_pair=0.0 if lone else 0.6)


def generate_split(p: SynthParams, split: str, seed: int) -> Iterator[tuple[Record, np.ndarray]]:
    """Yield ``(record, image)`` for each scene of ``split``; image is HWC uint8 RGB.

    Scene ``i`` depends only on ``(seed, split, i)``, so sizes can change without
    reshuffling the scenes that stay.
    """
    check_params(p, retention=split == "broad")
    if split not in _SPLIT_CODE:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(_SPLIT_CODE)}")
    held = set(p.heldout_combos)
    if split == "gen" and not held:
        raise ValueError("synth.heldout_combos is empty, so the 'gen' split cannot be built")
    gen = split == "gen"
    allowed = (lambda c, s: True) if gen else (lambda c, s: f"{c} {s}" not in held)
    for i in range(split_size(p, split)):
        rng = seeding.rng(seed, _SPLIT_CODE[split], i)
        if split in BROAD_SPLITS:
            yield _record(split, i, _broad_scene(p, split, i, rng), p.image_size, p.color_layout)
            continue
        # a gen scene is redrawn from the same generator until it holds a held-out combination
        for _ in range(1000 if gen else 1):
            scene = world.sample_scene(
                rng, p.colors, p.shapes, p.max_objects, p.jitter, allowed, mention_order=p.mention_order
            )
            if not gen or any(world.combo(o) in held for o in scene["objects"]):
                break
        else:
            raise ValueError("could not sample a generalisation scene; check synth.heldout_combos")
        yield _record(split, i, scene, p.image_size, p.color_layout)


def _record(split: str, i: int, scene: dict, size: int, layout: str) -> tuple[Record, np.ndarray]:
    rid = f"{split}-{i:06d}"
    meta = {"scene": scene, "key": world.scene_key(scene)}
    if split == "broad" and scene["kind"] == "count" and len(scene["objects"]) == 1:
        meta["class"] = world.combo(scene["objects"][0])
    rec = Record(
        id=rid,
        image=f"{split}/{rid}.png",
        caption=world.caption(scene),
        split=_RECORD_SPLIT.get(split, split),
        source="synthetic",
        group=rid,
        meta=meta,
    )
    return rec, world.render(scene, size, layout)


def scene_negatives(rec: Record, p: SynthParams, m: MineParams, seed: int) -> list[negs.SceneNegative]:
    """The negatives :func:`mine_record` mines for ``rec``, as edited scenes (no images drawn)."""
    scene = rec.meta.get("scene")
    if scene is None:
        raise ValueError(
            f"record {rec.id}: no meta.scene; only synthetic records can be mined from a scene graph"
        )
    index = int(rec.id.rsplit("-", 1)[-1])
    rng = seeding.rng(seed, _SPLIT_CODE.get(rec.split, 9), index, 1)
    held = set(p.heldout_combos) if rec.split != "gen" else set()
    return negs.mine(
        scene, rng, m.types, m.max_per_type, p.colors, p.shapes, p.image_size,
        lambda c, s: f"{c} {s}" not in held, p.color_layout,
    )


def mine_record(
    rec: Record, image: Image.Image, p: SynthParams, m: MineParams, seed: int
) -> tuple[Record, list[tuple[str, Image.Image]]]:
    """Hard negatives for one synthetic record: the record with ``negatives`` filled in, and
    the edited images to write, as ``(relative path, image)``.
    """
    found = scene_negatives(rec, p, m, seed)
    segmenter, editor = PixelSegmenter(), ShapePainter(layout=p.color_layout)
    out_negs, files = [], []
    stem = rec.image.rsplit(".", 1)[0]
    for n, neg in enumerate(found):
        path = f"{stem}.neg{n}.{neg.type}.png"
        img = negs.apply_edits(image, neg.edits, segmenter, editor, seed)
        files.append((path, img))
        out_negs.append(Negative(type=neg.type, caption=neg.caption, image=path))
    meta = dict(rec.meta, negative_keys=[world.scene_key(x.scene) for x in found])
    return dataclasses.replace(rec, negatives=tuple(out_negs), meta=meta), files


# PNGs of the synthetic world are written fast (level 1): ~12k small images per run
_PNG_LEVEL = 1


def write_synth_data(p: SynthParams, seed: int, root: Path, log: Callable[[str], object] = print) -> None:
    """The synth_data stage: every split's scenes (narrow and broad) as ``<root>/synth/<split>/<id>.png``,
    stored in the one shard ``<root>/synth/<split>.zip`` (:class:`~genemi.images.ShardWriter`), and
    ``<root>/synth/<split>.jsonl`` (image paths relative to ``root``), then
    ``<root>/synth/digest.json`` over all of them."""
    from tqdm import tqdm

    check_params(p)  # before any split is written
    root = Path(root)
    written: list[Record] = []
    hashes: dict[str, str] = {}  # image path -> sha256 of its bytes, for the digest
    for split in SPLITS + BROAD_SPLITS:
        records = []
        with ShardWriter(root / "synth" / split) as shard:
            for rec, img in tqdm(generate_split(p, split, seed), desc=f"synth {split}", mininterval=2):
                rec = dataclasses.replace(rec, image=f"synth/{rec.image}")
                _write(shard, root, rec.image, encode_png(Image.fromarray(img), _PNG_LEVEL), hashes)
                records.append(rec)
        n = write_manifest(root / "synth" / f"{split}.jsonl", records)
        written += records
        log(f"{split}: {n} scenes")
    write_json(root / "synth" / DIGEST, written_digest(written, hashes))


def _write(shard: ShardWriter, root: Path, rel: str, data: bytes, hashes: dict[str, str]) -> None:
    import hashlib

    shard.write(root / rel, data)
    hashes[rel] = hashlib.sha256(data).hexdigest()


def mine_synth_data(
    p: SynthParams,
    m: MineParams,
    seed: int,
    root: Path,
    out_name: str,
    sheet_rows: int = 10,
    log: Callable[[str], object] = print,
) -> list[list[Tile]]:
    """The mine stage: every record of ``<root>/synth/<split>.jsonl`` with its hard negatives
    (:func:`mine_record`) as ``<root>/<out_name>/<split>.jsonl``, the record's image and its edited
    images under ``<root>/<out_name>/<split>/`` (stored in the shard ``<split>.zip``), then ``<root>/<out_name>/digest.json``.

    Returns the contact-sheet rows of the first ``sheet_rows`` test records: each original
    beside its negatives."""
    from tqdm import tqdm

    root = Path(root)
    rows: list[list[Tile]] = []
    written: list[Record] = []
    hashes: dict[str, str] = {}  # image path -> sha256 of its bytes, for the digest
    for split in SPLITS:
        mined = []
        records = iter_manifest(root / "synth" / f"{split}.jsonl")
        with ShardWriter(root / out_name / split) as shard:
            for rec in tqdm(records, desc=f"mine {split}", mininterval=2):
                image = read_image(root / rec.image, what=f"record {rec.id!r}")
                rec = dataclasses.replace(rec, image=rec.image.replace("synth/", f"{out_name}/", 1))
                out, files = mine_record(rec, image, p, m, seed)
                _write(shard, root, out.image, encode_png(image, _PNG_LEVEL), hashes)
                for rel, img in files:
                    _write(shard, root, rel, encode_png(img, _PNG_LEVEL), hashes)
                mined.append(out)
                if split == "test" and len(rows) < sheet_rows:
                    pairs = zip(files, out.negatives, strict=True)
                    tiles = [Tile(img, f"{n.type}: {n.caption}") for (_, img), n in pairs]
                    rows.append([Tile(image, "TRUE: " + out.caption), *tiles])
        write_manifest(root / out_name / f"{split}.jsonl", mined)
        written += mined
        log(f"{split}: {len(mined)} records, {sum(len(r.negatives) for r in mined)} negatives")
    write_json(root / out_name / DIGEST, written_digest(written, hashes))
    return rows
