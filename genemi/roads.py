"""The data roads (``data.source``) and which stages each one needs.

``dvc.yaml`` holds every road at once, because DVC cannot switch stages on and off by a parameter. A stage
that nothing downstream needs still runs (DVC expects its outputs) but does no work: a download writes
only ``SKIPPED.txt``, ``mine_real`` an empty manifest. This module is the one place that decides "needed":

* ``synthetic`` (default): the synthetic world, offline; no download is needed.
* ``hnc``: HNC JSON + GQA images -> ``hnc_manifest`` -> fine-tune on caption negatives -> ``hnc_test`` ...
* ``genemi``: COCO Karpathy -> ``mine_real`` variations -> fine-tune with GeNeMi batching and regular COCO
  pairs -> ``genemi_val``-format evaluation. The mining models are needed with ``mine_real.backend:
  pretrained`` only (``tiny`` builds random-init ones, a plumbing smoke test; ``synthetic`` is the world's
  exact models, for the synthetic stand-in).

Besides its road, a download is needed when a listed benchmark (``eval.benchmarks``) reads files inside
its output folder (``hnc_test`` reads ``raw/gqa/images.zip``; an ARO Order entry's ``models`` is
``models/stanza``, the POS tagger of its shuffles).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from genemi.config import Params

ROADS = ("synthetic", "hnc", "genemi")

# download stage -> its output folder under data/ (as in dvc.yaml)
DOWNLOADS = {
    "download_hnc": "raw/hnc",
    "download_gqa": "raw/gqa",
    "download_coco": "raw/coco",
    "download_stanza": "models/stanza",
    "download_grounding_dino": "models/grounding_dino",
    "download_sam_vit_h": "models/sam_vit_h",
    "download_sd_inpaint": "models/sd_inpaint",
    "download_blip_itm": "models/blip_itm",
    "download_genemi_val": "raw/eval/genemi_val",
}
MINING_MODELS = ("download_grounding_dino", "download_sam_vit_h", "download_sd_inpaint", "download_blip_itm")


def mines(p: Params) -> bool:
    """Whether ``mine_real`` mines (the genemi road)."""
    return p.data.source == "genemi"


def mines_with_real_models(p: Params) -> bool:
    return mines(p) and p.mine_real.backend == "pretrained"


def _inside(path: str, folder: str) -> bool:
    parts, top = PurePosixPath(path).parts, PurePosixPath(folder).parts
    return parts[: len(top)] == top


def benchmarks_reading(p: Params, folder: str) -> list[str]:
    """Listed benchmarks whose annotation, images or models (ARO Order's stanza) lie inside ``folder``
    (relative to data/)."""
    return [
        name
        for name, src in p.eval.benchmarks.items()
        if any(_inside(path, folder) for path in (src.file, src.images, src.root, src.models) if path)
    ]


def download_needed(p: Params, stage: str) -> str | None:
    """Why download stage ``stage`` must fetch, or None when nothing downstream needs it."""
    if stage not in DOWNLOADS:
        raise ValueError(f"unknown download stage {stage!r}; known: {', '.join(DOWNLOADS)}")
    source = p.data.source
    if stage in ("download_hnc", "download_gqa") and source == "hnc":
        return "data.source=hnc trains on HNC"
    if stage == "download_coco" and source == "genemi":
        return "data.source=genemi mines COCO and mixes regular COCO pairs into its batches"
    if stage in MINING_MODELS and mines_with_real_models(p):
        return "data.source=genemi mines with mine_real.backend=pretrained"
    if stage == "download_stanza" and mines_with_real_models(p):
        return "mine_real parses captions with stanza (data.source=genemi, mine_real.backend=pretrained)"
    # ARO Order's POS tagger reaches stanza this way too: its entry's `models` is models/stanza
    readers = benchmarks_reading(p, DOWNLOADS[stage])
    if readers:
        return f"{', '.join(readers)} in eval.benchmarks read{'s' if len(readers) == 1 else ''} its files"
    return None


def skipped_note(p: Params, stage: str) -> str:
    """What ``SKIPPED.txt`` of an unneeded download says."""
    return (
        f"{stage}: nothing downstream needs this folder (data.source={p.data.source}, no listed benchmark "
        f"reads data/{DOWNLOADS[stage]}), so nothing was downloaded.\n"
        "It is fetched by: dvc exp run -S data.source=hnc (HNC, GQA), -S data.source=genemi (COCO; with "
        "mine_real.backend=pretrained also the mining models and stanza), or by listing a benchmark that "
        "reads it (docs/real-data.md).\n"
    )
