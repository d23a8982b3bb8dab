"""Real-data stages: download HNC, GQA, COCO, stanza and the mining checkpoints; HNC/COCO -> manifests.

All of them are gated by ``data.source`` (params.yaml). With the default ``synthetic`` each command only
writes its output folder with a SKIPPED.txt note (and the manifest commands empty manifests): no network,
so the default ``dvc repro`` never downloads. ``dvc exp run -S data.source=hnc`` re-runs them for real
(see docs/real-data.md).

Downloads are kept in --downloads (default data/downloads, not a DVC output): an interrupted transfer
resumes there, and a file fetched by hand is accepted there. Their sha256 is pinned in --lock.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

# this checkout's genemi first: `dvc exp` runs stages in temporary copies of the repo, and an editable
# install or PYTHONPATH would otherwise import the workspace's code, not the experiment's
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genemi.config import Params, load_params  # noqa: E402
from genemi.io import write_json  # noqa: E402
from genemi.manifest import write_manifest  # noqa: E402

SKIPPED = (
    "data.source is 'synthetic': nothing was downloaded into this folder.\n"
    "Turn the real pipeline on with: dvc exp run -S data.source=hnc   (docs/real-data.md)\n"
)


def _params(path: str) -> Params:
    return load_params(path)


def _skip_dir(out: str) -> None:
    from genemi.download import atomic_dir

    with atomic_dir(out) as tmp:
        (tmp / "SKIPPED.txt").write_text(SKIPPED, encoding="utf-8")


def _real(p: Params) -> bool:
    return p.data.source != "synthetic"


def _lock(path: str):
    from genemi.download import Lock

    return Lock(path)


def _run(what: str, fn) -> None:
    """Turn a download failure into a one-paragraph click error instead of a traceback."""
    from genemi.download import DownloadError

    try:
        fn()
    except DownloadError as e:
        raise click.ClickException(f"{what}: {e}") from None


params_opt = click.option(
    "--params",
    "params_path",
    default="params.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="params.yaml to read (data.source, real.*).",
)
downloads_opt = click.option(
    "--downloads",
    default="data/downloads",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Persistent download folder: partial files resume here; put manually fetched files here.",
)
lock_opt = click.option(
    "--lock",
    "lock_path",
    default="downloads.lock.json",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Lock file with the sha256/size of every download (commit it).",
)
out_opt = click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder (a DVC output; replaced whole).",
)
quiet_opt = click.option("--quiet", is_flag=True, help="No progress bars.")


@click.group()
def cli() -> None:
    """Download real data and checkpoints (only when data.source != synthetic) and build manifests."""


@cli.command()
@params_opt
@downloads_opt
@lock_opt
@out_opt
@quiet_opt
def hnc(params_path: str, downloads: str, lock_path: str, out: str, quiet: bool) -> None:
    """HNC hnc_clean_strict_{train,val,test}.json from the Hugging Face dataset real.hnc_repo."""
    p = _params(params_path)
    if not _real(p):
        return _skip_dir(out)
    from genemi.data.sources import fetch_hnc

    _run("download_hnc", lambda: fetch_hnc(p.real, out, downloads, _lock(lock_path), progress=not quiet))


@cli.command()
@params_opt
@downloads_opt
@lock_opt
@out_opt
@quiet_opt
def gqa(params_path: str, downloads: str, lock_path: str, out: str, quiet: bool) -> None:
    """GQA images.zip (~20 GB) from real.gqa_images_url, extracted to OUT/images/<id>.jpg."""
    p = _params(params_path)
    if not _real(p):
        return _skip_dir(out)
    from genemi.data.sources import fetch_gqa

    _run("download_gqa", lambda: fetch_gqa(p.real, out, downloads, _lock(lock_path), progress=not quiet))


@cli.command()
@params_opt
@downloads_opt
@lock_opt
@out_opt
@quiet_opt
def coco(params_path: str, downloads: str, lock_path: str, out: str, quiet: bool) -> None:
    """COCO 2014 val images, 2014 annotations and the Karpathy split, extracted under OUT."""
    p = _params(params_path)
    if not _real(p):
        return _skip_dir(out)
    from genemi.data.sources import fetch_coco

    _run("download_coco", lambda: fetch_coco(p.real, out, downloads, _lock(lock_path), progress=not quiet))


@cli.command()
@params_opt
@downloads_opt
@lock_opt
@out_opt
def stanza(params_path: str, downloads: str, lock_path: str, out: str) -> None:
    """Stanza models (real.stanza_lang, real.stanza_processors) for GeNeMi's caption editing."""
    p = _params(params_path)
    if not _real(p):
        return _skip_dir(out)
    from genemi.data.sources import fetch_stanza

    _run("download_stanza", lambda: fetch_stanza(p.real, out, downloads, _lock(lock_path)))


@cli.command()
@click.option("--name", required=True, help="Key of real.models in params.yaml (e.g. sam_vit_h).")
@params_opt
@downloads_opt
@lock_opt
@out_opt
@quiet_opt
def model(name: str, params_path: str, downloads: str, lock_path: str, out: str, quiet: bool) -> None:
    """One generative-mining checkpoint: a single file (url) or a Hugging Face snapshot (repo)."""
    p = _params(params_path)
    if name not in p.real.models:
        raise click.BadParameter(
            f"no real.models.{name} in {params_path}; known: {sorted(p.real.models)}", param_hint="--name"
        )
    if not _real(p):
        return _skip_dir(out)
    from genemi.data.sources import fetch_model

    _run(
        f"download_{name}",
        lambda: fetch_model(
            name, p.real.models[name], p.real, out, downloads, _lock(lock_path), progress=not quiet
        ),
    )


@cli.command("hnc-manifest")
@params_opt
@click.option(
    "--hnc",
    "hnc_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder with hnc_clean_strict_{train,val,test}.json (download_hnc output).",
)
@click.option(
    "--images",
    required=True,
    type=click.Path(file_okay=False),
    help="GQA image root (download_gqa output + /images).",
)
@out_opt
@click.option(
    "--stats",
    "stats_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="JSON counts per split (records, skipped missing images, orphans).",
)
def hnc_manifest(params_path: str, hnc_dir: str, images: str, out: str, stats_path: str) -> None:
    """HNC -> OUT/{train,val,test}.jsonl manifests (train: data.hnc_subset, val: real.hnc_val_subset)."""
    p = _params(params_path)
    from genemi.data.hnc import HNC_FILES, convert_hnc

    out_dir = Path(out)
    if not _real(p):
        for split in HNC_FILES:
            write_manifest(out_dir / f"{split}.jsonl", [])
        write_json(stats_path, {"skipped": "data.source is synthetic"})
        return
    fractions = {"train": p.data.hnc_subset, "val": p.real.hnc_val_subset, "test": 1.0}
    stats = {}
    for split, fname in HNC_FILES.items():
        s = convert_hnc(
            Path(hnc_dir) / fname,
            out_dir / f"{split}.jsonl",
            split,
            image_root=images,
            subset=fractions[split],
            seed=p.real.subset_seed,
        )
        if s.records == 0 and s.images_missing:
            raise click.ClickException(
                f"{fname}: none of its {s.images_missing} images is under {images}; is download_gqa's output "
                f"complete (images/<id>.jpg)?"
            )
        stats[split] = {"subset": fractions[split], **s.as_dict()}
        click.echo(f"hnc {split}: {s.records} records, {s.images_missing} images missing (skipped)", err=True)
    write_json(stats_path, stats)


@cli.command("coco-manifest")
@params_opt
@click.option(
    "--coco", "coco_dir", required=True, type=click.Path(file_okay=False), help="download_coco output folder."
)
@click.option(
    "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Manifest (JSONL) to write."
)
@click.option("--stats", "stats_path", required=True, type=click.Path(dir_okay=False), help="JSON counts.")
def coco_manifest(params_path: str, coco_dir: str, out_path: str, stats_path: str) -> None:
    """Karpathy-split COCO captions (splits real.coco_splits, val2014 images only) -> one manifest."""
    p = _params(params_path)
    if not _real(p):
        write_manifest(out_path, [])
        write_json(stats_path, {"skipped": "data.source is synthetic"})
        return
    from genemi.data.coco import CocoStats, iter_karpathy_records

    root = Path(coco_dir)
    s = CocoStats()
    write_manifest(
        out_path,
        iter_karpathy_records(
            root / "caption_datasets" / "dataset_coco.json",
            splits=p.real.coco_splits,
            image_root=root / "images",
            stats=s,
        ),
    )
    if s.records == 0:
        raise click.ClickException(
            f"no COCO caption of splits {list(p.real.coco_splits)} has its image under "
            f"{root / 'images'}; is download_coco's output complete?"
        )
    write_json(stats_path, {"splits": list(p.real.coco_splits), **s.as_dict()})


if __name__ == "__main__":
    cli()
