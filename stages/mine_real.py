"""Stage mine_real: GeNeMi generative negative mining with the real models (docs/real-data.md).

One origin per image (all its captions in meta.original_captions, as GeNeMi does); per tagged object:
inpainted variations with rewritten captions, scored by BLIP ITM and IVA. --work-dir gets images/<origin>/
<item>/<short>.png and parts/<origin>.json; --out the variations passing itm_min / iva_min (all: filter
false), --shard their images in one zip; --sheets a contact sheet per origin (green kept, red dropped). Mines
on the genemi road only (data.source=genemi; else an empty manifest). --tiny (or backend tiny): random-init
models on CPU, a plumbing smoke test whose edits are noise; backend synthetic: the world's exact models, for
the synthetic stand-in. Multi-GPU: `torchrun --nproc_per_node 8 stages/mine_real.py ... --no-merge`, then
`--merge-only`; a killed run resumes."""

from __future__ import annotations

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo's genemi under torchrun

from genemi.config import load_params  # noqa: E402
from genemi.errors import Output, Stage  # noqa: E402
from genemi.io import write_json  # noqa: E402
from genemi.mining.pipeline import mine_real, stage_settings  # noqa: E402

Dir, File, State = Output(folder=True), Output(), Output(folder=True, state=True)  # State: resume state
InFile = click.Path(exists=True, dir_okay=False)


@click.command(cls=Stage, help=__doc__)
@click.option("--manifest", required=True, type=InFile, help="Records (JSONL) to mine.")
@click.option("--image-root", required=True, type=click.Path(file_okay=False),
              help="Root of their image paths (read only when mining: off the genemi road it may not exist).")
@click.option("--work-dir", required=True, type=State, help="Variation images and per-origin parts.")
@click.option("--out", "out_manifest", required=True, type=File, help="Variation manifest to write.")
@click.option("--shard", type=File, help="Zip of the kept variations' images, read as <SHARD minus .zip>/"
              "<image> (the DVC output; the work dir's loose PNGs are only resume state). Omitted: no shard.")
@click.option("--sheets", required=True, type=Dir, help="Folder for contact-sheet PNGs.")
@click.option("--metrics", required=True, type=File, help="Counts as JSON.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--tiny", is_flag=True, help="Mine whatever the road, backend=tiny, device=cpu: a smoke run.")
@click.option("--no-merge", is_flag=True, help="Only mine this rank's share (under a launcher).")
@click.option("--merge-only", is_flag=True, help="Only merge parts; write manifest, sheets, metrics.")
def main(manifest, image_root, work_dir, out_manifest, shard, sheets, metrics, params_path, tiny, no_merge,
         merge_only):
    params = load_params(params_path)
    p, enabled, lexicon = stage_settings(params, tiny)
    if params.threads and enabled:
        import torch

        torch.set_num_threads(params.threads)
    totals = mine_real(p, params.seed, manifest, image_root, work_dir, out_manifest, sheets, shard=shard,
                       do_mine=not merge_only, do_merge=not no_merge, enabled=enabled, lexicon=lexicon,
                       log=click.echo)  # fmt: skip
    if totals is not None:
        write_json(metrics, totals)


if __name__ == "__main__":
    main()
