"""The click command the download stage scripts share (not a stage): --params, --downloads, --lock, --out,
and one fetcher of :mod:`genemi.data.sources` behind the gate of :mod:`genemi.roads` (docs/real-data.md)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import _checkout  # noqa: F401  (this checkout's genemi first; see _checkout.py)
import click

from genemi.config import load_params
from genemi.data.sources import gated_fetch
from genemi.errors import Output, Stage
from genemi.lockfile import DownloadError, Lock

_OPTIONS = (
    click.option("--params", "params_path", default="params.yaml", show_default=True,
                 type=click.Path(dir_okay=False), help="params.yaml to read (data.source, real.*)."),
    click.option("--downloads", default="data/downloads", show_default=True, type=Output(folder=True, state=True),
                 help="Persistent download folder: partial files resume here; put hand-fetched files here."),
    click.option("--lock", "lock_path", default="downloads.lock.json", show_default=True,
                 type=Output(state=True), help="sha256/size of every download (commit it)."),
    click.option("--out", required=True, type=Output(folder=True),
                 help="Output folder (a DVC output; replaced whole)."),
    click.option("--relock", is_flag=True,
                 help="Re-pin the lock entries of the files this stage checks to the files now in place (after "
                      "replacing a wrong hand-placed file; works offline). Env GENEMI_RELOCK=1 (or =<key>,<key>) "
                      "does the same through `dvc repro -f -s <stage>`."),
)  # fmt: skip
quiet_option = click.option("--quiet", is_flag=True, help="No progress bars.")


def run_gate(p, stage: str, out: str, fetch: Callable[[], object], stand_in: Callable | None = None) -> None:
    """:func:`genemi.data.sources.gated_fetch`, a download failure as one error line naming the stage."""
    try:
        gated_fetch(p, stage, out, fetch, stand_in)
    except DownloadError as e:  # its message names the URL and where a hand-fetched file goes
        raise click.ClickException(f"{stage}: {e}") from None


def download_options(fn: Callable) -> Callable:
    """--params, --downloads, --lock, --out: what every download stage takes."""
    return functools.reduce(lambda f, opt: opt(f), reversed(_OPTIONS), fn)


def download_command(stage: str, fetch: Callable, doc: str, progress: bool = True,
                     stand_in: Callable | None = None) -> click.Command:
    """The command of download stage ``stage``: ``fetch(real, out, downloads, lock[, progress=])``, the
    ``stand_in`` writer or nothing, as :func:`~genemi.data.sources.gated_fetch` decides. ``progress``: the
    fetcher shows progress bars, and the command takes --quiet to turn them off."""

    def main(params_path: str, downloads: str, lock_path: str, out: str, relock: bool, quiet: bool = False) -> None:
        p = load_params(params_path)
        bars = {"progress": not quiet} if progress else {}
        lock = Lock(lock_path, relock=Lock.relock_setting(relock))
        run_gate(p, stage, out, lambda: fetch(p.real, out, downloads, lock, **bars), stand_in)

    main = download_options(quiet_option(main) if progress else main)
    return click.command(cls=Stage, help=doc)(main)
