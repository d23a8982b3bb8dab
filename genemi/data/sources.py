"""Fetch each real-data source into a stage output folder (verified, resumable, atomic).

Every function takes the ``real`` params section, the output folder (a DVC output, replaced whole), the
persistent downloads folder (resume state and the place for manually fetched files) and the lock file.
Layouts of the outputs (what the loaders and mining stages read):

* ``hnc``:   ``<out>/hnc_clean_strict_{train,val,test}.json``
* ``gqa``:   ``<out>/images.zip``, members ``images/<gqa id>.jpg``  (image root: ``<out>/images``)
* ``coco``:  ``<out>/images/val2014.zip``, members ``val2014/COCO_val2014_*.jpg`` (root: ``<out>/images``)
             ``<out>/annotations_trainval2014/annotations/captions_val2014.json``
             ``<out>/caption_datasets/dataset_coco.json``       (Karpathy split)
* ``genemi_val``: ``<out>/test.jsonl`` (or ``.json`` / ``.parquet``) and the images its rows name
* ``stanza``: ``<out>/`` a stanza model dir (``resources.json``, ``en/...``), for ``stanza.Pipeline(dir=...)``
* a model:  ``<out>/<file name>`` (url source) or the repo snapshot (HF source), for ``from_pretrained``

Large files live once in the downloads folder; outputs hold hard links to them (no second copy).

Image archives are kept as the verified published zip, never extracted: an image root names the
folder the zip would unzip to (``<out>/images``), and :mod:`genemi.images` reads ``<folder>/<name>``
as a member of ``<folder>.zip`` beside it (an extracted folder placed there by hand wins). DVC then
tracks one file per image set instead of GQA's 148k or COCO's 40k images, so ``dvc status`` stays
fast. The small archives of a few annotation files (COCO annotations, Karpathy split) are extracted.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import urllib.parse
import zipfile
from collections.abc import Callable
from pathlib import Path

from genemi.config import STANZA_LANG, STANZA_PROCESSORS, ModelSource, RealDataParams, stanza_processors
from genemi.data.hnc import HNC_FILES
from genemi.download import fetch, hf_file_url
from genemi.extract import atomic_dir, link_or_copy, link_tree, safe_extract_zip
from genemi.lockfile import DownloadError, Lock
from genemi.snapshot import fetch_tree

PathLike = str | os.PathLike


def fetch_or_skip(
    needed: str | None,
    out: PathLike,
    fetch_real: Callable[[], object],
    *,
    skipped: str = "nothing downstream needs this folder, so nothing was downloaded into it.\n",
    stand_in: str = "none",
    write_stand_in: Callable[[Path], object] | None = None,
) -> bool:
    """The gate of every download stage; returns whether it fetched.

    * ``needed`` is None (nothing downstream needs the folder: :func:`genemi.roads.download_needed`):
      only ``<out>/SKIPPED.txt`` is written, saying ``skipped`` (no network), because DVC expects every
      declared output to exist.
    * ``stand_in == "synthetic"``: ``write_stand_in(folder)`` writes the synthetic world in this
      download's published format and layout instead (no network, nothing in the lock file; the
      writers are in :mod:`genemi.data.standin`); a download without a stand-in writes only
      SKIPPED.txt, saying so.
    * otherwise ``fetch_real()``.

    Whatever is written replaces ``out`` whole, only once complete.
    """
    if needed is None:
        why = skipped
    elif stand_in == "synthetic" and write_stand_in is None:
        why = (
            f"needed ({needed}), but data.stand_in is 'synthetic' and this download has no synthetic stand-in "
            "(only HNC, GQA, COCO and genemi_val do); nothing was downloaded into this folder.\n"
        )
    elif stand_in == "synthetic":
        with atomic_dir(out) as tmp:
            write_stand_in(tmp)
        return False
    else:
        fetch_real()
        return True
    with atomic_dir(out) as tmp:
        (tmp / "SKIPPED.txt").write_text(why, encoding="utf-8")
    return False


def gated_fetch(p, stage: str, out: PathLike, fetch: Callable[[], object], stand_in: Callable | None = None) -> bool:
    """Download stage ``stage`` under params ``p``: ``fetch()``, the synthetic stand-in (``stand_in(synth,
    seed, size, folder, palette=)`` of :mod:`genemi.data.standin`, drawn with ``real.subset_seed``, the
    data's own seed, so a training-seed sweep keeps the same stand-in, from ``data.stand_in_palette``; the
    writers of COCO captions also get ``coco_colors=data.stand_in_coco_colors``) or only ``SKIPPED.txt``, as
    :func:`genemi.roads.download_needed` decides. Returns whether it fetched."""
    import inspect

    from genemi import roads

    def writer(folder):  # reads the stand-in keys only when a stand-in is written
        kw = {"palette": p.data.stand_in_palette}
        if "coco_colors" in inspect.signature(stand_in).parameters:
            kw["coco_colors"] = p.data.stand_in_coco_colors
        return stand_in(p.synth, p.real.subset_seed, p.data.stand_in_size, folder, **kw)

    return fetch_or_skip(roads.download_needed(p, stage), out, fetch, skipped=roads.skipped_note(p, stage),
                         stand_in=p.data.stand_in,
                         write_stand_in=None if stand_in is None else writer)  # fmt: skip


def _url_name(url: str) -> str:
    name = posixpath.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise ValueError(f"{url}: URL has no file name")
    return name


def _mirror(src: Path, dst: Path) -> None:
    """Hard-link the contents of folder ``src`` into the existing folder ``dst``."""
    for p in sorted(src.iterdir()):
        if p.is_dir():
            link_tree(p, dst / p.name)
        else:
            link_or_copy(p, dst / p.name)


def fetch_hnc(
    real: RealDataParams,
    out: PathLike,
    downloads: PathLike,
    lock: Lock,
    *,
    endpoint: str | None = None,
    progress: bool = True,
) -> Path:
    """The three HNC JSON files of ``real.hnc_repo`` (a HF dataset) into ``out``."""
    paths = [
        _fetch_file(
            hf_file_url(real.hnc_repo, fname, real.hnc_revision, repo_type="dataset", endpoint=endpoint),
            f"hnc/{fname}",
            downloads,
            lock,
            real,
            progress,
        )
        for fname in HNC_FILES.values()
    ]
    with atomic_dir(out) as tmp:
        for p in paths:
            link_or_copy(p, tmp / p.name)
    return Path(out)


def _fetch_file(
    url: str, rel: str, downloads: PathLike, lock: Lock, real: RealDataParams, progress: bool
) -> Path:
    """:func:`fetch` ``url`` to ``<downloads>/<rel>``; ``rel`` is also its key in the lock file."""
    return fetch(
        url,
        Path(downloads) / rel,
        key=rel,
        lock=lock,
        timeout=real.timeout_s,
        retries=real.retries,
        progress=progress,
    )


def _fetch_zip(
    url: str, subdir: str, downloads: Path, lock: Lock, real: RealDataParams, progress: bool
) -> Path:
    return _fetch_file(url, f"{subdir}/{_url_name(url)}", downloads, lock, real, progress)


def check_image_zip(archive: Path, folder: str, what: str) -> int:
    """Check that ``archive`` opens as a zip holding ``.jpg`` images at ``<folder>/<name>`` or at its top
    (the two layouts :func:`genemi.images.locate` reads); return how many. The bytes were verified
    against the lock already; this catches a zip of the wrong thing before a stage reads it."""
    try:
        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise DownloadError(f"{archive}: not a readable zip archive ({e}); delete it and run again") from None
    n = sum(1 for m in names if m.lower().endswith(".jpg") and m.count("/") <= 1
            and (m.count("/") == 0 or m.startswith(f"{folder}/")))  # fmt: skip
    if n == 0:
        raise DownloadError(
            f"{archive}: no {folder}/<name>.jpg images in it (the published {what} layout); delete it and "
            "run again, or pin the right file with --relock"
        )
    return n


def fetch_gqa(
    real: RealDataParams, out: PathLike, downloads: PathLike, lock: Lock, *, progress: bool = True
) -> Path:
    """GQA ``images.zip`` (20 GB; its entries are ``images/<id>.jpg``) kept whole as ``<out>/images.zip``
    (a hard link to the verified download); the image root ``<out>/images`` reads its members."""
    archive = _fetch_zip(real.gqa_images_url, "gqa", Path(downloads), lock, real, progress)
    check_image_zip(archive, "images", "GQA images.zip")
    with atomic_dir(out) as tmp:
        link_or_copy(archive, tmp / "images.zip")
    return Path(out)


def fetch_coco(
    real: RealDataParams, out: PathLike, downloads: PathLike, lock: Lock, *, progress: bool = True
) -> Path:
    """COCO 2014 val images kept whole as ``<out>/images/val2014.zip`` (its entries are
    ``val2014/COCO_val2014_*.jpg``; the image root ``<out>/images`` reads them), the 2014 annotations and
    the Karpathy split extracted into ``out`` (a few JSON files each)."""
    downloads = Path(downloads)
    reserve = int(real.reserve_gb * 2**30)
    images = _fetch_zip(real.coco_images_url, "coco", downloads, lock, real, progress)
    archives = {
        "annotations_trainval2014": _fetch_zip(
            real.coco_annotations_url, "coco", downloads, lock, real, progress
        ),
        "caption_datasets": _fetch_zip(real.karpathy_url, "coco", downloads, lock, real, progress),
    }
    folder = images.name.removesuffix(".zip")  # val2014 (train2014 if the URL names that zip)
    check_image_zip(images, folder, "COCO val2014.zip")
    with atomic_dir(out) as tmp:
        link_or_copy(images, tmp / "images" / images.name)
        for sub, archive in archives.items():
            safe_extract_zip(archive, tmp / sub, reserve_bytes=reserve, progress=progress)
    return Path(out)


GENEMI_VAL_FILES = ("test.jsonl", "test.json", "test.parquet")  # what load_genemi_val reads
GENEMI_VAL_SOURCE = (
    "https://huggingface.co/datasets/ugursahin/generative-negative-mining-dataset (split test)"
)


def fetch_genemi_val(real: RealDataParams, out: PathLike, downloads: PathLike, lock: Lock) -> Path:
    """GeNeMi's validation set, placed by hand in ``<downloads>/genemi_val/`` (its hub dataset needs a
    login): ``test.jsonl`` (or ``.json`` / ``.parquet``) and the images its rows name, verified as one
    tree against the lock (pinned on first use) and hard-linked into ``out``."""
    src = Path(downloads) / "genemi_val"
    if not src.is_dir() or not any((src / f).is_file() for f in GENEMI_VAL_FILES):
        raise DownloadError(
            f"genemi_val is fetched by hand: export {GENEMI_VAL_SOURCE} as "
            f"{src.resolve()}/test.jsonl (rows num_sample, caption_i, image_i: {{path}}) with its images "
            f"beside it, or test.parquet with embedded images (docs/benchmarks.md), then run again"
        )

    def fill(d: Path) -> None:  # never called: the folder exists
        raise DownloadError(f"{src}: vanished while being verified")

    tree = fetch_tree(src, fill, key="genemi_val", lock=lock, source=GENEMI_VAL_SOURCE)
    with atomic_dir(out) as tmp:
        _mirror(tree, tmp)
    return Path(out)


def fetch_stanza(real: RealDataParams, out: PathLike, downloads: PathLike, lock: Lock) -> Path:
    """The stanza models of ``genemi.config.STANZA_USERS`` (every parser's and tagger's) into ``out``."""
    lang, processors = STANZA_LANG, stanza_processors()
    key = f"stanza/{lang}"
    dest = Path(downloads) / "stanza" / lang

    def require_all(d: Path) -> None:
        # checked before the lock pins a tree: one fetched (or placed) for an older, shorter list
        # would pass the lock and fail only later, in the parser or ARO Order
        lacking = stanza_missing(d)
        if lacking:
            raise DownloadError(
                f"{d}: no stanza model for {', '.join(lacking)} (needed: {processors}); delete that folder "
                f"and run again, or place there a folder from stanza.download('{lang}', processors="
                f"'{processors}') and rerun with --relock (GENEMI_RELOCK={key} under dvc repro)"
            )

    def fill(d: Path) -> None:
        import stanza

        stanza.download(lang, model_dir=str(d), processors=processors, verbose=False)
        require_all(d)

    if dest.is_dir():
        require_all(dest)
    src = fetch_tree(dest, fill, key=key, lock=lock, source=f"stanza models {lang}:{processors}")
    with atomic_dir(out) as tmp:
        _mirror(src, tmp)
    return Path(out)


def stanza_missing(model_dir: PathLike) -> list[str]:
    """The processors of ``STANZA_PROCESSORS`` with no model in ``model_dir`` (stanza's layout:
    ``<model_dir>/<lang>/<processor>/<package>.pt``); [] when the folder serves every user."""
    root = Path(model_dir) / STANZA_LANG
    return [p for p in STANZA_PROCESSORS if not any((root / p).glob("*.pt"))]


def check_model_source(name: str, src: ModelSource) -> None:
    if bool(src.url) == bool(src.repo):
        raise ValueError(
            f"real.models.{name}: set exactly one of url (a single file) or repo (a Hugging Face "
            f"snapshot); got url={src.url!r}, repo={src.repo!r}"
        )


def fetch_model(
    name: str,
    src: ModelSource,
    real: RealDataParams,
    out: PathLike,
    downloads: PathLike,
    lock: Lock,
    *,
    progress: bool = True,
) -> Path:
    """One checkpoint (``real.models[name]``) into ``out``: the single file, or the repo snapshot."""
    check_model_source(name, src)
    base = Path(downloads) / "models" / name
    if src.url:
        fname = _url_name(src.url)
        f = _fetch_file(src.url, f"models/{name}/{fname}", downloads, lock, real, progress)
        with atomic_dir(out) as tmp:
            link_or_copy(f, tmp / fname)
        return Path(out)

    def fill(d: Path) -> None:
        from huggingface_hub import snapshot_download

        snapshot_download(
            src.repo,
            revision=src.revision,
            local_dir=d,
            allow_patterns=list(src.patterns) or None,
            etag_timeout=real.timeout_s,
        )
        shutil.rmtree(d / ".cache", ignore_errors=True)  # huggingface_hub's resume metadata, not model files

    tree = fetch_tree(
        base / "snapshot",
        fill,
        key=f"models/{name}",
        lock=lock,
        source=f"https://huggingface.co/{src.repo} @ {src.revision}",
    )
    with atomic_dir(out) as tmp:
        _mirror(tree, tmp)
    return Path(out)
