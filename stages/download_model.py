"""Stages download_<name>: one generative-mining checkpoint, real.models.<name> in params.yaml.

Either a single file (url) or a Hugging Face snapshot (repo), into OUT for ``from_pretrained``.
Needed only on the genemi road with mine_real.backend=pretrained (genemi/roads.py); otherwise it only
writes OUT/SKIPPED.txt (no network).
"""

from __future__ import annotations

import _checkout  # noqa: F401  (this checkout's genemi first; see _checkout.py)
import click
from download_options import download_options, quiet_option, run_gate

from genemi.config import load_params
from genemi.data.sources import fetch_model
from genemi.errors import Stage
from genemi.lockfile import Lock


@click.command(cls=Stage, help=__doc__)
@click.option("--name", required=True, help="Key of real.models in params.yaml (e.g. sam_vit_h).")
@download_options
@quiet_option
def main(name: str, params_path: str, downloads: str, lock_path: str, out: str, relock: bool, quiet: bool) -> None:
    p = load_params(params_path)
    if name not in p.real.models:
        raise click.BadParameter(
            f"no real.models.{name} in {params_path}; known: {sorted(p.real.models)}", param_hint="--name"
        )
    src = p.real.models[name]
    lock = Lock(lock_path, relock=Lock.relock_setting(relock))
    run_gate(p, f"download_{name}", out, lambda: fetch_model(name, src, p.real, out, downloads, lock, progress=not quiet))

if __name__ == "__main__":
    main()
