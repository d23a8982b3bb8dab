"""The click options and error handling shared by the download stage scripts (not a stage).

Downloads are kept in --downloads (not a DVC output): an interrupted transfer resumes there, and a
file fetched by hand is accepted there. Their sha256 is pinned in --lock (docs/real-data.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import click

from genemi.download import DownloadError

_OPTIONS = (
    click.option(
        "--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False),
        help="params.yaml to read (data.source, real.*).",
    ),
    click.option(
        "--downloads", default="data/downloads", show_default=True, type=click.Path(file_okay=False),
        help="Persistent download folder: partial files resume here; put fetched-by-hand files here.",
    ),
    click.option(
        "--lock", "lock_path", default="downloads.lock.json", show_default=True,
        type=click.Path(dir_okay=False), help="Lock file with the sha256/size of every download (commit it).",
    ),
    click.option(
        "--out", required=True, type=click.Path(file_okay=False),
        help="Output folder (a DVC output; replaced whole).",
    ),
)  # fmt: skip
quiet_option = click.option("--quiet", is_flag=True, help="No progress bars.")


def download_options(fn: Callable) -> Callable:
    """--params, --downloads, --lock, --out: what every download stage takes."""
    for opt in reversed(_OPTIONS):
        fn = opt(fn)
    return fn


@contextlib.contextmanager
def one_line_errors(stage: str) -> Iterator[None]:
    """Turn a download failure into a one-paragraph click error instead of a traceback."""
    try:
        yield
    except DownloadError as e:
        raise click.ClickException(f"{stage}: {e}") from None
