"""The GeNeMi mining chain, sharded, resumable and merged deterministically.

Per origin image (one input :class:`~genemi.manifest.Record`)::

    tags = tagger.tag(image, caption)[:items_per_image]
    for item in tags:
        box  = grounder.ground(image, item)[0]          # first box only, like the seed
        mask = segmenter.segment(image, box)
        for portrayal in portrayer.portray(item, ...):   # long desc + short form
            variation = editor.edit(image, mask, desc, seed(origin, item, j))
            captions  = rewritten caption(s) holding `short`
            itm       = [scorer.score(variation, c) for c in captions]
        iva = iva_score(variations of this item)

The chain takes any objects with those methods (real models, the synthetic world's classic
backend, test fakes). Work is split by origin: rank ``r`` of ``world`` takes origins
``r::world`` of the id-sorted input; each finished origin is one part file written atomically
after its images, so a killed run resumes by skipping origins whose part exists, and
:func:`merge` rebuilds the manifest from the parts alone (sorted, duplicates impossible).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from genemi import seeding
from genemi.config import MineRealParams, Params
from genemi.images import ShardWriter, read_bytes, read_image
from genemi.io import read_json, safe_name, write_json, write_png, write_text
from genemi.manifest import (
    Negative,
    Record,
    read_manifest,
    same_caption,
    write_manifest,
    write_off_road_manifest,
)
from genemi.mining.chain import Chain  # noqa: F401  (re-exported: the miner drives a Chain)
from genemi.mining.corrupt import edit_variation, variation_fails
from genemi.mining.lexicon import Lexicon
from genemi.mining.models import iva_score
from genemi.mining.portrayals import LexiconPortrayer, edit_type
from genemi.mining.rewrite import CaptionRewriter, variation_captions
from genemi.mining.rules import OBJECT, rule_negatives
from genemi.mining.synthetic import synthetic_chain  # noqa: F401  (re-exported)

PARTS, IMAGES = "parts", "images"
SOURCE = "genemi"


def sample_seed(seed: int, *keys: object) -> int:
    """Stable 31-bit seed for one sample (an editor's own generator takes an int)."""
    return int(seeding.rng(seed, *keys).integers(0, 2**31))


def dist_env() -> tuple[int, int]:
    """``(rank, world_size)`` from the launcher's environment (torchrun/deepspeed); (0, 1) alone."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return rank, world


def shard(records: Sequence[Record], rank: int, world: int) -> list[Record]:
    """Origins ``rank::world`` of the id-sorted records (every origin in exactly one shard)."""
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise ValueError(f"input manifest has duplicate record ids {dup}; mining keys work on ids")
    names: dict[str, str] = {}
    for i in ids:  # part files and image folders are keyed on the file-safe id
        if names.setdefault(safe_name(i), i) != i:
            raise ValueError(
                f"record ids {names[safe_name(i)]!r} and {i!r} map to one file name {safe_name(i)!r}"
            )
    return sorted(records, key=lambda r: r.id)[rank::world]


def origins_by_image(records: Sequence[Record]) -> list[Record]:
    """One origin per distinct image, as GeNeMi mines: COCO has five captions per image, and mining
    each caption would inpaint the image five times.

    The origin is the image's first record by id (its id and caption); ``meta["original_captions"]``
    holds every caption of the image in id order (GeNeMi's ``original_captions``, which the caption
    rewriting edits too). Returned sorted by id, so ``max_images`` and sharding count images."""
    by_image: dict[str, list[Record]] = {}
    for r in sorted(records, key=lambda r: r.id):
        by_image.setdefault(r.image, []).append(r)
    out = []
    for recs in by_image.values():
        first = recs[0]
        captions = list(dict.fromkeys(r.caption for r in recs))
        out.append(replace(first, meta={**first.meta, "original_captions": captions}))
    return sorted(out, key=lambda r: r.id)


def _part_path(out_dir: Path, origin: str) -> Path:
    return out_dir / PARTS / f"{safe_name(origin)}.json"


def mine_origin(
    rec: Record, image: Image.Image, chain: Chain, p: MineRealParams, seed: int, out_images: Path
) -> tuple[list[dict], dict[str, int]]:
    """Run the chain on one origin; write its variation PNGs; return record dicts and counts."""
    origin = safe_name(rec.id)
    stats = {"items": 0, "no_box": 0, "empty_mask": 0, "variations": 0}
    rows: list[dict] = []
    tags = chain.tagger.tag(image, rec.caption)
    wrong: dict = {}  # each item's wrong object, found once for all its misplaced variations
    for item in tags[: p.items_per_image]:
        stats["items"] += 1
        dets = chain.grounder.ground(image, item)
        if not dets:  # the seed skips an item without boxes
            stats["no_box"] += 1
            continue
        mask = np.asarray(chain.segmenter.segment(image, dets[0].box), dtype=bool)
        if not mask.any():
            stats["empty_mask"] += 1
            continue
        rng = seeding.rng(seed, rec.id, item, "portray")
        portrayals = chain.portrayer.portray(item, rec.caption, p.variations_per_item, rng)
        group = f"{origin}:{item}"
        variants: list[tuple[dict, Image.Image]] = []
        seen: set[str] = set()
        for j, por in enumerate(portrayals):
            sv = safe_name(por.short)
            name = f"{group}:{sv}"
            if name in seen:  # two portrayals with one short form would overwrite each other
                continue
            seen.add(name)
            edit_seed = sample_seed(seed, rec.id, item, j)
            # a corrupted variation's image is not what its caption names, as after a failed edit
            fails = variation_fails(p.corrupt_by, seed, name, p.corrupt_fraction, por, chain.lexicon)
            fail = p.corrupt_as if fails else None
            var, shows, corrupt = edit_variation(
                chain, image, mask, item, tags, portrayals, j, edit_seed, fail, p.iva_pixel_std, wrong
            )
            save = f"{origin}/{safe_name(item)}/{sv}.png"
            write_png(out_images / save, var)
            captions = variation_captions(
                chain.rewriter, item, por.short, rec.caption, rec.meta.get("original_captions", ())
            )
            itm = [float(chain.scorer.score(var, c)) for c in captions]
            kind = edit_type(item, por.short, chain.lexicon)
            negs: list[Negative] = []
            if kind == OBJECT:  # the original caption names the replaced object: false now
                negs.append(Negative(type="object", caption=rec.caption))
            if chain.parse is not None and p.rule_types:
                nrng = seeding.rng(seed, name, "rules")
                negs += rule_negatives(chain.parse(captions[0]), nrng, p.rule_types, p.rule_max_per_type)
            # a rewrite that left the caption as it was makes the original caption no negative: a record
            # whose negative equals its positive is refused by every reader (genemi.manifest)
            negs = [n for n in negs if not same_caption(n.caption, captions[0])]
            meta = {
                "name": name,
                "origin_name": origin,
                "item": item,
                "short": por.short,
                "desc": por.desc,
                "source": rec.image,
                "original_captions": list(rec.meta.get("original_captions", [rec.caption])),
                "save": save,
                "captions": captions,
                "itm_score": itm,
                "type": kind,
                "box": [round(v, 2) for v in dets[0].box],
                "seed": edit_seed,
            }
            if corrupt:
                meta["corrupted"] = shows  # what the image shows instead of ``short``
            row = Record(
                id=name,
                image=save,
                caption=captions[0],
                split=rec.split,
                source=SOURCE,
                group=group,
                negatives=tuple(negs),
                meta=meta,
            ).to_dict()
            variants.append((row, var))
        iva = iva_score([v for _, v in variants], p.iva_pixel_std)
        for row, _ in variants:
            m = row["meta"]
            m["iva_score"] = iva
            m["passed"] = bool(np.mean(m["itm_score"]) > p.itm_min and iva > p.iva_min)
            rows.append(row)
        stats["variations"] += len(variants)
    return rows, stats


def run_shard(
    records: Sequence[Record],
    image_root: str | Path,
    out_dir: str | Path,
    chain: Chain,
    p: MineRealParams,
    seed: int,
    rank: int = 0,
    world: int = 1,
) -> dict[str, int]:
    """Mine this rank's origins into ``out_dir`` (``images/``, ``parts/``), skipping finished ones."""
    out_dir, image_root = Path(out_dir), Path(image_root)
    todo = shard(records, rank, world)
    done = skipped = 0
    for rec in todo:
        part = _part_path(out_dir, rec.id)
        if part.is_file():  # finished before an interruption: resume past it
            skipped += 1
            continue
        image = read_image(image_root / rec.image, what=f"record {rec.id!r}; check --image-root")
        rows, stats = mine_origin(rec, image, chain, p, seed, out_dir / IMAGES)
        # the part is written last: its presence means every image of this origin is on disk
        write_json(
            part,
            {"origin": rec.id, "image": rec.image, "caption": rec.caption, "records": rows, "stats": stats},
        )
        done += 1
    return {"rank": rank, "world": world, "assigned": len(todo), "mined": done, "resumed": skipped}


def fingerprint(p: MineRealParams, seed: int, manifest_bytes: bytes) -> str:
    """Hash of everything that shapes the mined files: params (not device, enabling, sheets,
    budget), seed, input manifest, mining code and lexicon."""
    from genemi.config import to_dict
    from genemi.io import dumps

    knobs = {
        k: v
        for k, v in to_dict(p).items()
        if k not in ("device", "max_images", "contact_sheets", "filter")  # filter acts at the merge only
    }
    h = hashlib.sha256(dumps({"params": knobs, "seed": seed}).encode() + manifest_bytes)
    # the mining code and lexicon shape the files too: parts from older code must not be resumed
    pkg = Path(__file__).resolve().parent
    for f in sorted([*pkg.glob("*.py"), *(pkg.parent / "lexicon").glob("*.json")]):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def check_work_dir(out_dir: str | Path, fp: str) -> None:
    """Refuse to resume into parts mined under other settings; record ``fp`` for a fresh dir.

    Resuming must never mix variations from two configurations, and deleting a user's mined
    images silently would be worse, so a mismatch stops with the command to start afresh."""
    stamp = Path(out_dir) / "fingerprint.json"
    if stamp.is_file():
        old = read_json(stamp).get("fingerprint")
        if old != fp:
            raise ValueError(
                f"{out_dir} holds mining from other params/inputs (fingerprint {old} != {fp}); "
                f"delete it (rm -r {out_dir}) to mine afresh, or restore the old params"
            )
        return
    write_json(stamp, {"fingerprint": fp})


def _clean_stale_tmp(out_dir: Path) -> int:
    """Remove temp files a killed writer left (atomic_path names them ``.<name>.<random><suffix>``)."""
    n = 0
    for f in out_dir.rglob(".*"):
        if f.is_file() and f.suffix in (".tmp", ".png"):
            f.unlink()
            n += 1
    return n


def pack_images(records: Sequence[Record], images_dir: str | Path, shard: str | Path) -> int:
    """Write the images ``records`` name (paths relative to ``images_dir``: each variation and any image
    negative) into the zip ``shard``, members ``<shard's stem>/<path>`` in sorted order; return how many.

    The work dir keeps its loose PNGs for resuming; the shard is what DVC tracks and training reads
    (``<shard without .zip>/<path>``, :mod:`genemi.images`): one file instead of one per variation, so
    ``dvc status`` stays fast. Atomic and byte-identical for the same images (:class:`ShardWriter`)."""
    shard = Path(shard)
    if shard.suffix != ".zip":
        raise ValueError(f"{shard}: the variation image shard must be a .zip file")
    folder = shard.with_suffix("")
    names = sorted({rel for r in records for rel in (r.image, *(n.image for n in r.negatives if n.image))})
    with ShardWriter(folder) as w:
        for rel in names:
            data = read_bytes(Path(images_dir) / rel, what=f"a mined variation; re-mine into {images_dir}")
            w.write(folder / rel, data)
    return len(names)


def merge(
    out_dir: str | Path, manifest: str | Path, keep_failed: bool = False, shard: str | Path | None = None
) -> dict[str, Any]:
    """Join every part into one id-sorted manifest of the variations that pass the filter
    (all of them with ``keep_failed``), and with ``shard`` pack their images into that zip
    (:func:`pack_images`); return counts. Call after every rank has finished."""
    out_dir = Path(out_dir)
    parts = sorted((out_dir / PARTS).glob("*.json")) if (out_dir / PARTS).is_dir() else []
    rows: dict[str, dict] = {}
    totals = {"origins": 0, "items": 0, "no_box": 0, "empty_mask": 0, "variations": 0, "kept": 0,
              "corrupted": 0, "corrupted_kept": 0}
    for part in parts:
        d = read_json(part)
        totals["origins"] += 1
        for k in ("items", "no_box", "empty_mask", "variations"):
            totals[k] += int(d["stats"][k])
        for r in d["records"]:
            if r["id"] in rows:
                raise ValueError(
                    f"{part}: variation {r['id']!r} also appears in another part; "
                    f"delete {out_dir / PARTS} and re-mine"
                )
            rows[r["id"]] = r
    kept = [
        Record.from_dict(rows[i], where=f"variation {i}")
        for i in sorted(rows)
        if keep_failed or rows[i]["meta"]["passed"]
    ]
    totals["kept"] = sum(1 for r in rows.values() if r["meta"]["passed"])
    bad = [r for r in rows.values() if "corrupted" in r["meta"]]
    totals["corrupted"] = len(bad)
    totals["corrupted_kept"] = sum(1 for r in bad if keep_failed or r["meta"]["passed"])
    totals["written"] = len(kept)
    totals["stale_tmp_removed"] = _clean_stale_tmp(out_dir)
    if shard is not None:  # before the manifest: a manifest on disk means its images are packed
        totals["images_packed"] = pack_images(kept, out_dir / IMAGES, shard)
    write_manifest(manifest, kept)
    return totals


def origins_for_sheets(out_dir: str | Path, n: int) -> list[dict]:
    """The first ``n`` finished parts (by origin id), for contact sheets."""
    parts = sorted((Path(out_dir) / PARTS).glob("*.json"))
    return [read_json(p) for p in parts[:n]]


def build_chain(
    p: MineRealParams, device: str = "cpu", tiny_dir: str | Path | None = None, lexicon: Lexicon | None = None
) -> Chain:
    """The real-model chain from params (``backend: pretrained``), the same chain over tiny
    random-init models saved into ``tiny_dir`` (``backend: tiny``: a plumbing smoke test, its edits are
    noise), or the world's exact models (``backend: synthetic``, :func:`synthetic_chain`).
    ``lexicon``: the words
    to tag, portray and rewrite with (default: the packaged COCO lexicon; the synthetic stand-in passes
    its own colours and shapes, so every caption stays in its vocabulary).

    Tiny models force a 64 px window and at most 4 denoising steps (their UNet is 8x8 latents)."""
    if p.backend == "synthetic":
        return synthetic_chain(lexicon)
    from genemi.mining import models as M
    from genemi.mining.parse import StanzaParser

    parse = (  # the tiny road has no stanza models (download_stanza is not needed there: genemi.roads)
        StanzaParser.from_pretrained(p.stanza_dir, use_gpu=device.startswith("cuda"))
        if p.stanza_dir and p.backend != "tiny"
        else None
    )
    gd, sam, sam_type, sd, blip = (
        p.grounding_dino,
        p.sam_checkpoint,
        p.sam_model_type,
        p.sd_inpaint,
        p.blip_itm,
    )
    # half precision is a GPU economy; on CPU it is slow or unsupported
    window, steps, dtype = p.sd_window, p.sd_steps, (p.sd_dtype if device.startswith("cuda") else "float32")
    if p.backend == "tiny":
        from genemi.mining import tiny

        if tiny_dir is None:
            raise ValueError("backend 'tiny' needs a folder to save the tiny models in (tiny_dir)")
        paths = tiny.save_all(tiny_dir)
        gd, sam, sam_type, sd, blip = (
            paths[k] for k in ("grounding_dino", "sam_checkpoint", "sam_model_type", "sd_inpaint", "blip_itm")
        )
        window, steps, dtype = tiny.SIZE, min(steps, 4), "float32"
    grounder = M.GroundingDinoGrounder.from_pretrained(
        gd, device=device, box_threshold=p.box_threshold, text_threshold=p.text_threshold, nms_iou=p.nms_iou
    )
    return Chain(
        tagger=M.CaptionNounTagger(parse, lexicon) if p.tagger == "caption" else M.GroundingTagger(grounder),
        grounder=grounder,
        segmenter=M.SamSegmenter.from_pretrained(sam, sam_type, device=device),
        editor=M.SDInpaintEditor.from_pretrained(
            sd, device=device, dtype=dtype, steps=steps, guidance=p.sd_guidance, window=window
        ),
        scorer=M.BlipItmScorer.from_pretrained(blip, device=device),
        portrayer=M.TextGenPortrayer.from_pretrained(p.portrayer, device=device)
        if p.portrayer
        else LexiconPortrayer(lexicon),
        rewriter=CaptionRewriter(parse, lexicon),
        parse=parse,
        lexicon=lexicon,
    )


def stage_settings(params: Params, tiny: bool = False) -> tuple[MineRealParams, bool, Lexicon | None]:
    """What the mine_real stage runs with: the mining params (``tiny``: random-init models on the CPU),
    whether it mines (the genemi road, ``genemi.roads``, or a ``tiny`` smoke run whatever the road) and the
    lexicon (the synthetic stand-in's captions use the world's words only: tag, portray and rewrite with
    those; else the packaged one)."""
    from genemi import roads
    from genemi.data.standin import stand_in_world, synthetic_lexicon

    p = replace(params.mine_real, backend="tiny", device="cpu") if tiny else params.mine_real
    synth = stand_in_world(params.synth, params.data.stand_in_palette)
    lexicon = synthetic_lexicon(synth) if params.data.stand_in == "synthetic" else None
    enabled = tiny or roads.mines(params)
    if enabled and p.backend == "synthetic" and lexicon is None:
        raise ValueError(
            "mine_real.backend=synthetic knows only the synthetic world's images: set "
            "data.stand_in: synthetic (the stand-in COCO files), or backend pretrained for real COCO"
        )
    return p, enabled, lexicon


def mine_real(
    p: MineRealParams,
    seed: int,
    manifest: str | Path,
    image_root: str | Path,
    work_dir: str | Path,
    out_manifest: str | Path,
    sheets: str | Path,
    *,
    shard: str | Path | None = None,
    do_mine: bool = True,
    do_merge: bool = True,
    enabled: bool = True,
    lexicon: Lexicon | None = None,
    log: Callable[[str], object] = print,
) -> dict[str, Any] | None:
    """The mine_real stage: mine this rank's share of ``manifest`` into ``work_dir`` (unless not
    ``do_mine``), then, alone or once every rank is done (``do_mine=False``), merge the parts into
    ``out_manifest`` (with ``shard``: the kept variations' images into that zip, read as
    ``<shard without .zip>/<image>``) and draw contact sheets into ``sheets``.

    Returns the metrics to record, or None when this process only mined its share (``do_merge``
    off, or several ranks: the merge waits for all of them). Not ``enabled`` (a road other than
    genemi: ``genemi.roads``), it writes a placeholder manifest, an empty shard and a note in ``sheets``
    (DVC expects every declared output, and warns about an empty one) and mines nothing.
    """
    from genemi.mining.contact_sheet import write_sheets

    if not enabled:
        write_off_road_manifest(out_manifest)
        if shard is not None:
            pack_images([], work_dir, shard)  # an empty shard: DVC expects every declared output
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        write_text(Path(sheets) / "SKIPPED.txt", "mine_real is off (data.source is not genemi): no sheet.\n")
        log("mine_real: off (data.source is not genemi); wrote an empty manifest")
        return {"enabled": False}
    rank, world = dist_env()
    if do_mine:
        # one origin per image with all its captions (COCO: 5 per image); max_images counts images
        records = origins_by_image(read_manifest(manifest))[: p.max_images or None]
        check_work_dir(work_dir, fingerprint(p, seed, Path(manifest).read_bytes()))
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if p.device == "cuda" else "cpu"
        if p.backend == "tiny":
            log("mine_real: backend tiny: random-init models paint noise; a plumbing smoke test, not a "
                "result (backend synthetic mines the synthetic stand-in exactly)")
        with tempfile.TemporaryDirectory(prefix="genemi_tiny_") as tiny_dir:
            chain = build_chain(p, device, tiny_dir=tiny_dir if p.backend == "tiny" else None, lexicon=lexicon)
            stats = run_shard(records, image_root, work_dir, chain, p, seed, rank, world)
        log(
            f"mine_real: rank {rank}/{world}: mined {stats['mined']}, resumed past {stats['resumed']} "
            f"of {stats['assigned']} origins"
        )
        if not do_merge or world > 1:
            if world > 1 and do_merge:
                log("mine_real: several ranks; merge with --merge-only once all have finished")
            return None
    totals = merge(work_dir, out_manifest, keep_failed=not p.filter, shard=shard)
    write_sheets(origins_for_sheets(work_dir, p.contact_sheets), image_root, Path(work_dir) / IMAGES, sheets)
    off = "" if p.filter else f" (filter off: all kept; {totals['kept']} pass it)"
    log(f"mine_real: {totals['written']} of {totals['variations']} variations kept{off} -> {out_manifest}")
    return {"enabled": True, "backend": p.backend, **totals}
