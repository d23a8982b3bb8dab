"""Benchmark registry: one reader per published format, each turning files into an :class:`EvalSet`.

A benchmark is a ``params.yaml`` entry ``eval.benchmarks.<name> = {loader, file, images, subset[, root]}``; ``loader``
names a reader below. :func:`required_files` lists what a benchmark needs so a run fails before any model
is built, naming each missing file and where it goes (docs/benchmarks.md). Formats:

========================  ==========================================================================
loader                    format (``file``; images relative to ``images``)
========================  ==========================================================================
``manifest``              genemi manifest JSONL (the synthetic splits ``negatives/{test,gen}.jsonl``)
``byo``                   bring-your-own JSONL ``{"image", "positive", "negatives", "type"}``
``hnc``                   HNC test (``{"<name>.jpg": {cap id: {...}}}``) or train/val (``cpt_p_id``)
``coco_neg``              thesis COCO list ``[{"image", "text", "neg_text"}]`` (val2014 file names)
``sugarcrepe``            folder of the 7 ``<category>.json`` ``{id: {filename, caption, negative_caption}}``
``aro_relation``          ARO ``visual_genome_relation.json`` (bbox crops; macro without ARO's symmetric list)
``aro_attribution``       ARO ``visual_genome_attribution.json`` (macro over attribute pairs seen >= 25x)
``aro_order``             BLIP ``coco_karpathy_test.json`` / ``flickr30k_test.json`` + ARO's 4 shuffles
``winoground``            ``examples.jsonl`` + ``images/<image_i>.png``
``genemi_val``            GeNeMi test rows ``num_sample``, ``caption_i``, ``image_i`` (JSONL/JSON/parquet)
``karpathy_retrieval``    Karpathy ``dataset_coco.json``, split ``test`` (5k images, first 5 captions each)
``image_folder``          ``<class>/<image>`` folders for zero-shot classification
``valse``                 VALSE ``data/<piece>.json`` (validated foils), images per piece
``vl_checklist``          VL-CheckList checkout (``corpus/v1/**.yaml`` naming ``data/**.json``)
``whatsup``               WhatsUp Controlled-A/B ``[{"image_path", "caption_options"}]`` (4-way)
``whatsup_qa``            WhatsUp COCO-QA / VG-QA ``[[image id, true, false]]``
``sugarcrepe_pp``         folder of the 5 SugarCrepe++ ``<category>.json`` (two positives, one negative)
``eqben``                 EqBen Winoground-style ``[{"image0", "caption0", "image1", "caption1"}]``
========================  ==========================================================================
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from genemi.config import EvalParams, EvalSource
from genemi.evalsets import EvalSet, Loader


def _registry() -> dict[str, Loader]:
    from genemi.benchmarks import choice, compositional, pairwise, retrieval

    return {**pairwise.LOADERS, **choice.LOADERS, **retrieval.LOADERS, **compositional.LOADERS}


def resolve(data_dir: str | Path, rel: str) -> Path:
    """A source path: absolute as given, else relative to the stage's data folder."""
    p = Path(rel)
    return p if p.is_absolute() else Path(data_dir) / p


def _resolved(src: EvalSource, data_dir: str | Path) -> EvalSource:
    """``src`` with its model folder (``models``: ARO Order's stanza models) resolved like its files."""
    return dataclasses.replace(src, models=str(resolve(data_dir, src.models))) if src.models else src


CATALOGUE = Path(__file__).with_name("catalogue.yaml")


def catalogue() -> dict[str, dict]:
    """Every known benchmark's ``eval.benchmarks`` entry (``catalogue.yaml``), as plain mappings."""
    import yaml

    return yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))


def catalogue_source(name: str) -> EvalSource:
    """The catalogue entry of ``name`` as an :class:`EvalSource`; unknown names list the known ones."""
    from genemi.config import _build

    known = catalogue()
    if name not in known:
        raise ValueError(f"benchmark {name!r} is not in {CATALOGUE.name}; known: {', '.join(sorted(known))}")
    return _build(EvalSource, known[name], f"catalogue.{name}")


def source(p: EvalParams, name: str) -> EvalSource:
    if name not in p.benchmarks:
        raise ValueError(
            f"benchmark {name!r} has no entry eval.benchmarks.{name} in params.yaml; "
            f"listed: {', '.join(sorted(p.benchmarks))} (docs/benchmarks.md has every known entry)"
        )
    return p.benchmarks[name]


def required_files(p: EvalParams, name: str, data_dir: str | Path) -> list[tuple[Path, str]]:
    """``[(path, what it is)]`` the benchmark needs; each path is a file or a folder."""
    src = source(p, name)
    loader = _registry()[src.loader]
    return loader.needs(
        _resolved(src, data_dir), resolve(data_dir, src.file), resolve(data_dir, src.image_root), p
    )


def check_files(p: EvalParams, name: str, data_dir: str | Path) -> None:
    """Fail fast, listing every missing input of benchmark ``name`` and where it goes."""
    missing = [(path, what) for path, what in required_files(p, name, data_dir) if not path.exists()]
    if missing:
        src = source(p, name)
        lines = "\n".join(f"  {path}  <- {what}" for path, what in missing)
        raise FileNotFoundError(
            f"benchmark {name!r} is enabled (eval.benchmarks) but its files are missing:\n{lines}\n"
            f"Get them as described in docs/benchmarks.md ({src.loader}: {_registry()[src.loader].doc}) and "
            f"put them there, or point eval.benchmarks.{name}.file/images at them; to skip it, remove it "
            f"(dvc exp run -S '~eval.benchmarks.{name}')."
        )
    from genemi.io import Port, declare

    # inputs of the running stage: an output onto (or a folder output over) one of them is refused
    src = source(p, name)
    declare(inputs=[Port(f"eval.benchmarks.{name}.{key}", resolve(data_dir, rel), key != "file")
                    for key, rel in (("file", src.file), ("images", src.image_root)) if rel])


def load_benchmark(p: EvalParams, name: str, data_dir: str | Path, seed: int = 0) -> EvalSet:
    """Check the files, then read benchmark ``name`` into an :class:`EvalSet`."""
    check_files(p, name, data_dir)
    src = source(p, name)
    es = _registry()[src.loader].load(
        _resolved(src, data_dir), resolve(data_dir, src.file), resolve(data_dir, src.image_root), p, seed
    )
    es.name, es.file = name, str(resolve(data_dir, src.file))
    if not (es.records or es.choices or es.triplets or es.retrieval or es.classification):
        subset = ""
        if src.subset < 1:
            subset = f" (eval.benchmarks.{name}.subset = {src.subset:g} may have drawn none)"
        raise ValueError(
            f"{resolve(data_dir, src.file)}: benchmark {name!r} yields 0 items{subset}; check the file's "
            f"content against its format ({src.loader}, docs/benchmarks.md)"
        )
    check_items(es, resolve(data_dir, src.file))
    return es


def check_items(es: EvalSet, file) -> None:
    """Refuse what makes a score meaningless, naming the file and the item: an image path that leaves the
    image root (absolute, ``..``), a negative identical to its positive (a tie by construction), and two
    options of one multiple-choice item that are the same image or the same true caption. Cheap: one
    pass over the items, no image is read."""
    from genemi.manifest import IDENTICAL, escapes, identical_negative, same_caption

    label = f"{file}: benchmark {es.name!r}"
    refs = [es.store.crops.get(r, (r, None))[0] for r in _refs(es) if r not in es.store.blobs]
    for ref in refs:
        if why := escapes(ref):
            raise ValueError(f"{label}: image {ref!r} {why}")
    for r in es.records:
        if (i := identical_negative(r.image, r.caption, r.negatives)) is not None:
            raise ValueError(f"{label}: record {r.id!r}: negatives[{i}] {IDENTICAL}")
    for c in es.choices:
        n = len(c.images)
        for i in range(n):
            for j in range(i):
                if c.images[i] == c.images[j] or same_caption(c.texts[i], c.texts[j]):
                    same = "image" if c.images[i] == c.images[j] else "caption"
                    raise ValueError(
                        f"{label}: item {c.id!r}: options {j} and {i} have the same {same}, so no model can "
                        "tell them apart (a tie, scored as wrong); fix or remove the item"
                    )


def _refs(es: EvalSet) -> list[str]:
    from genemi.evalsets import distinct_inputs

    return distinct_inputs(es)[0]


def check_images(es: EvalSet) -> int:
    """Decode every image ``es`` refers to once, so a truncated or corrupt file fails (naming it) before
    any model is built rather than halfway through scoring; returns how many were read."""
    from genemi.evalsets import distinct_inputs

    refs, _ = distinct_inputs(es)
    for ref in refs:
        es.store.load(ref)
    return len(refs)


def missing_images(es: EvalSet, limit: int = 5) -> tuple[int, list[str]]:
    """How many referenced image files are absent, and the first ``limit`` of them (cheap: stat only)."""
    from genemi.evalsets import distinct_inputs
    from genemi.images import image_exists

    refs, _ = distinct_inputs(es)
    paths = {es.store.crops.get(r, (r, None))[0] for r in refs if r not in es.store.blobs}
    absent = sorted(p for p in paths if not image_exists(es.store.file(p)))
    return len(absent), [str(es.store.root / p) for p in absent[:limit]]


def loaders() -> list[str]:
    return sorted(_registry())
