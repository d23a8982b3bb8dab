"""Stage hnc_manifest: HNC -> OUT/{train,val,test}.jsonl manifests, counts -> --stats.

--hnc holds hnc_clean_strict_{train,val,test}.json (download_hnc's output); --images is the GQA
image root (download_gqa's output + /images: the images.zip beside it is read in place, or a folder). Counts: records, skipped missing images, orphans.

Train keeps data.hnc_subset of its images, val real.hnc_val_subset, test all (drawn with
real.subset_seed). With data.source synthetic it writes empty manifests.
"""

from __future__ import annotations

import _checkout  # noqa: F401  (this checkout's genemi first; see _checkout.py)
import click

from genemi.config import load_params
from genemi.data.hnc import write_hnc_manifests
from genemi.errors import Output, Stage
from genemi.io import write_json


@click.command(cls=Stage, help=__doc__)
@click.option(
    "--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False)
)
@click.option(
    "--hnc", "hnc_dir", required=True, type=click.Path(file_okay=False), help="download_hnc output."
)
@click.option("--images", required=True, type=click.Path(file_okay=False), help="GQA image root.")
@click.option("--out", required=True, type=Output(folder=True), help="Output folder (replaced whole).")
@click.option("--stats", "stats_path", required=True, type=Output(), help="JSON counts per split.")
def main(params_path: str, hnc_dir: str, images: str, out: str, stats_path: str) -> None:
    p = load_params(params_path)
    try:
        stats = write_hnc_manifests(
            p.data, p.real, hnc_dir, images, out, log=lambda m: click.echo(m, err=True)
        )
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    write_json(stats_path, stats)


if __name__ == "__main__":
    main()
