"""Stage mine_real: GeNeMi generative negative mining with the real models.

Reads a manifest of (image, caption) records and writes, per origin image and tagged object,
``variations_per_item`` inpainted variations with rewritten captions, scored by BLIP ITM and IVA.

\b
Outputs
  --work-dir   images/<origin>/<item>/<short>.png and parts/<origin>.json (one per finished origin)
  --out        the variation manifest (records passing itm_min / iva_min), images under <work-dir>/images
  --sheets     contact sheets: each original beside its variations (green = kept, red = dropped)
  --metrics    counts (origins, items, variations, kept, skips)

\b
Off by default (mine_real.enabled: false): it then writes an empty manifest and metrics, so the
default `dvc repro` stays offline. `--tiny` runs the same chain on random-init tiny models (CPU,
seconds): a smoke test of the plumbing, with noise for images.

\b
Multi-GPU: run under a launcher, e.g.
  torchrun --nproc_per_node 8 stages/mine_real.py ... --no-merge
  python stages/mine_real.py ... --merge-only
Rank r (RANK/WORLD_SIZE) mines origins r::world on GPU LOCAL_RANK. A killed run resumes: rerun the
same command and finished origins are skipped.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genemi.config import load_params  # noqa: E402
from genemi.errors import Stage  # noqa: E402
from genemi.io import check_writable, write_json  # noqa: E402
from genemi.manifest import read_manifest, write_manifest  # noqa: E402


@click.command(cls=Stage, help=__doc__)
@click.option(
    "--manifest",
    "manifest",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Input records (JSONL manifest) whose images are mined.",
)
@click.option(
    "--image-root",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder the input manifest's image paths are relative to.",
)
@click.option(
    "--work-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Variation images and per-origin parts.",
)
@click.option(
    "--out",
    "out_manifest",
    required=True,
    type=click.Path(dir_okay=False),
    help="Variation manifest to write.",
)
@click.option(
    "--sheets", required=True, type=click.Path(file_okay=False), help="Folder for contact-sheet PNGs."
)
@click.option("--metrics", required=True, type=click.Path(dir_okay=False), help="Counts as JSON.")
@click.option(
    "--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False)
)
@click.option(
    "--tiny", is_flag=True, help="Force enabled, backend=tiny, device=cpu: a seconds-long smoke run."
)
@click.option(
    "--no-merge", is_flag=True, help="Only mine this rank's share (under a multi-process launcher)."
)
@click.option(
    "--merge-only", is_flag=True, help="Only merge finished parts, write manifest, sheets and metrics."
)
def main(
    manifest, image_root, work_dir, out_manifest, sheets, metrics, params_path, tiny, no_merge, merge_only
):
    import dataclasses

    import torch

    from genemi.mining import pipeline as P
    from genemi.mining.contact_sheet import write_sheets

    params = load_params(params_path)
    check_writable(out_manifest, metrics, dirs=(work_dir, sheets))
    p = params.mine_real
    if tiny:
        p = dataclasses.replace(p, enabled=True, backend="tiny", device="cpu")
    if not p.enabled:
        write_manifest(out_manifest, [])
        for d in (work_dir, sheets):  # DVC expects every declared output to exist
            Path(d).mkdir(parents=True, exist_ok=True)
        write_json(metrics, {"enabled": False})
        click.echo("mine_real: disabled (mine_real.enabled: false); wrote an empty manifest")
        return
    if params.threads:
        torch.set_num_threads(params.threads)
    rank, world = P.dist_env()
    records = sorted(read_manifest(manifest), key=lambda r: r.id)
    if p.max_images:
        records = records[: p.max_images]

    if not merge_only:
        P.check_work_dir(work_dir, P.fingerprint(p, params.seed, Path(manifest).read_bytes()))
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if p.device == "cuda" else "cpu"
        with tempfile.TemporaryDirectory(prefix="genemi_tiny_") as tiny_dir:
            chain = P.build_chain(p, device, tiny_dir=tiny_dir if p.backend == "tiny" else None)
            stats = P.run_shard(records, image_root, work_dir, chain, p, params.seed, rank, world)
        click.echo(
            f"mine_real: rank {rank}/{world}: mined {stats['mined']}, resumed past {stats['resumed']} "
            f"of {stats['assigned']} origins"
        )
        if no_merge or world > 1:
            if world > 1 and not no_merge:
                click.echo("mine_real: several ranks; merge with --merge-only once all have finished")
            return

    totals = P.merge(work_dir, out_manifest)
    write_sheets(
        P.origins_for_sheets(work_dir, p.contact_sheets), image_root, Path(work_dir) / P.IMAGES, sheets
    )
    write_json(metrics, {"enabled": True, "backend": p.backend, **totals})
    click.echo(f"mine_real: {totals['kept']} of {totals['variations']} variations kept -> {out_manifest}")


if __name__ == "__main__":
    main()
