"""Stage download_stanza: stanza models (real.stanza_lang, real.stanza_processors) for GeNeMi's
caption editing, into OUT (a stanza model dir).

Gated by data.source: with the default ``synthetic`` it only writes OUT/SKIPPED.txt (no network),
so the default ``dvc repro`` never downloads; ``dvc exp run -S data.source=hnc`` fetches for real.
"""

from __future__ import annotations

import click
from download_options import download_options, one_line_errors

from genemi.config import load_params
from genemi.data.sources import fetch_or_skip, fetch_stanza
from genemi.download import Lock


@click.command(help=__doc__)
@download_options
def main(params_path: str, downloads: str, lock_path: str, out: str) -> None:
    p = load_params(params_path)
    with one_line_errors("download_stanza"):
        fetch_or_skip(p.data.source, out, lambda: fetch_stanza(p.real, out, downloads, Lock(lock_path)))


if __name__ == "__main__":
    main()
