"""Real-data loaders: HNC (``hnc``) and COCO captions (``coco``), each producing manifest records."""

from pathlib import Path


def training_set(source: str, synthetic: tuple[str, str], hnc: tuple[str | None, str | None]) -> tuple[str, str]:
    """``(manifest, image root)`` of the training data that ``data.source`` selects.

    Both sets are DVC dependencies of the fine-tuning stage, so switching the source
    re-runs it; the one not selected is simply not read.
    """
    if source == "synthetic":
        return synthetic
    if source == "hnc":
        manifest, root = hnc
        if not manifest or not root:
            raise ValueError("data.source=hnc needs --hnc-train and --hnc-image-root (see dvc.yaml)")
        if not Path(manifest).is_file() or Path(manifest).stat().st_size == 0:
            raise ValueError(
                f"{manifest}: the HNC training manifest is missing or empty. Run the real pipeline with "
                "`dvc exp run -S data.source=hnc ...` so download_hnc/download_gqa/hnc_manifest fetch and "
                "convert it, or place the files by hand as docs/real-data.md describes."
            )
        return manifest, root
    raise ValueError(f"data.source: unknown source {source!r}; use synthetic or hnc")
