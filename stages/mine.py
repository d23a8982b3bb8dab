"""Stage `mine`: hard negatives (caption + edited image) for every synthetic record.

Each record's scene graph proposes negatives of the types in `mine.types`; the edited images
go through the segment -> edit interfaces (the classic pixel backend here, Grounding DINO /
SAM / SD inpainting for real images, see stages/mine_real.py). Writes one manifest per split
and a contact sheet of originals beside their negatives.
"""

from __future__ import annotations

from pathlib import Path

import _checkout  # noqa: F401  (this checkout's genemi first; see _checkout.py)
import click

from genemi.config import load_params
from genemi.errors import Output, Stage
from genemi.io import Port, declare, write_png
from genemi.plots import contact_sheet
from genemi.synth.dataset import mine_synth_data


@click.command(cls=Stage, help=__doc__)
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--root", "root_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Image root holding synth/<split>.jsonl and the scene images.")
@click.option("--out", "out_name", default="negatives", show_default=True,
              help="Folder under the root for the mined manifests and edited images.")
@click.option("--sheet", "sheet_path", required=True, type=Output(),
              help="Contact sheet PNG (originals beside their negatives).")
def main(params_path: str, root_dir: str, out_name: str, sheet_path: str) -> None:
    p = load_params(params_path)
    root = Path(root_dir)  # reads <root>/synth, writes <root>/<out>: checked apart like the options
    declare([Port("--out", root / out_name, folder=True)], [Port("--root", root / "synth", folder=True)])
    rows = mine_synth_data(p.synth, p.mine, p.seed, root_dir, out_name, log=click.echo)
    write_png(sheet_path, contact_sheet(rows))


if __name__ == "__main__":
    main()
