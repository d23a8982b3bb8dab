"""Stage download_hnc: HNC hnc_clean_strict_{train,val,test}.json from the Hugging Face dataset
real.hnc_repo (at real.hnc_revision).

Gated by data.source: with the default ``synthetic`` it only writes OUT/SKIPPED.txt (no network),
so the default ``dvc repro`` never downloads; ``dvc exp run -S data.source=hnc`` fetches for real.
"""

from __future__ import annotations

import click
from download_options import download_options, one_line_errors, quiet_option

from genemi.config import load_params
from genemi.data.sources import fetch_hnc, fetch_or_skip
from genemi.download import Lock


@click.command(help=__doc__)
@download_options
@quiet_option
def main(params_path: str, downloads: str, lock_path: str, out: str, quiet: bool) -> None:
    p = load_params(params_path)
    with one_line_errors("download_hnc"):
        fetch_or_skip(
            p.data.source, out, lambda: fetch_hnc(p.real, out, downloads, Lock(lock_path), progress=not quiet)
        )


if __name__ == "__main__":
    main()
