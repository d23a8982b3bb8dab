"""Stage download_gqa: GQA images.zip (~20 GB) from real.gqa_images_url, extracted to OUT/images/<id>.jpg.

Gated by data.source: with the default ``synthetic`` it only writes OUT/SKIPPED.txt (no network),
so the default ``dvc repro`` never downloads; ``dvc exp run -S data.source=hnc`` fetches for real.
"""

from __future__ import annotations

import click
from download_options import download_options, one_line_errors, quiet_option

from genemi.config import load_params
from genemi.data.sources import fetch_gqa, fetch_or_skip
from genemi.download import Lock


@click.command(help=__doc__)
@download_options
@quiet_option
def main(params_path: str, downloads: str, lock_path: str, out: str, quiet: bool) -> None:
    p = load_params(params_path)
    with one_line_errors("download_gqa"):
        fetch_or_skip(
            p.data.source, out, lambda: fetch_gqa(p.real, out, downloads, Lock(lock_path), progress=not quiet)
        )


if __name__ == "__main__":
    main()
