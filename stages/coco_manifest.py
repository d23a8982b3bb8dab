"""Stage coco_manifest: Karpathy-split COCO captions (splits real.coco_splits, val2014 images only)
-> one manifest, counts -> --stats. Only the genemi road reads it (mine_real, regular pairs); with any
other data.source it writes an empty manifest.
"""

from __future__ import annotations

import _checkout  # noqa: F401  (this checkout's genemi first; see _checkout.py)
import click

from genemi.config import load_params
from genemi.data.coco import write_karpathy_manifest
from genemi.errors import Output, Stage
from genemi.io import write_json


@click.command(cls=Stage, help=__doc__)
@click.option(
    "--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False)
)
@click.option(
    "--coco", "coco_dir", required=True, type=click.Path(file_okay=False), help="download_coco output."
)
@click.option("--out", "out_path", required=True, type=Output(), help="Manifest (JSONL).")
@click.option("--stats", "stats_path", required=True, type=Output(), help="JSON counts.")
def main(params_path: str, coco_dir: str, out_path: str, stats_path: str) -> None:
    p = load_params(params_path)
    try:
        stats = write_karpathy_manifest(p.data.source, p.real.coco_splits, coco_dir, out_path)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    write_json(stats_path, stats)


if __name__ == "__main__":
    main()
