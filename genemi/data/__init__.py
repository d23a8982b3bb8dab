"""Real-data loaders: HNC (``hnc``) and COCO captions (``coco``), each producing manifest records."""

from pathlib import Path

from genemi.manifest import has_records

NAMES = {"hnc": "HNC", "genemi": "GeNeMi variation"}
HOW = {  # how each real road's training manifest comes to exist
    "hnc": "`dvc exp run -S data.source=hnc ...` runs download_hnc/download_gqa/hnc_manifest (or place the files "
    "by hand, docs/real-data.md)",
    "genemi": "`dvc exp run -S data.source=genemi ...` runs download_coco/coco_manifest/mine_real; an empty "
    "manifest means every variation was filtered out (metrics/mine_real.json counts them)",
}


def training_set(source: str, **roads: tuple[str | None, str | None]) -> tuple[str, str]:
    """``(manifest, image root)`` of the training data that ``data.source`` selects among ``roads``
    (``synthetic=(manifest, root)``, ``hnc=...``, ``genemi=...``).

    Every road's files are DVC dependencies of the fine-tuning stage, so switching the source re-runs it;
    the ones not selected are simply not read.
    """
    if source not in roads:
        raise ValueError(f"data.source: unknown source {source!r}; use {' | '.join(roads)}")
    manifest, root = roads[source]
    if not manifest or not root:
        raise ValueError(f"data.source={source} needs --{source}-train and --{source}-image-root (see dvc.yaml)")
    if source != "synthetic" and (not Path(manifest).is_file() or not has_records(manifest)):
        raise ValueError(f"{manifest}: the {NAMES[source]} training manifest is missing or empty. {HOW[source]}")
    return manifest, root
