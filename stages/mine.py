"""Stage `mine`: hard negatives (caption + edited image) for every synthetic record.

Each record's scene graph proposes negatives of the types in `mine.types`; the edited images
go through the segment -> edit interfaces (the classic pixel backend here, Grounding DINO /
SAM / SD inpainting for real images, see stages/mine_real.py). Writes one manifest per split
and a contact sheet of originals beside their negatives.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click
from PIL import Image
from tqdm import tqdm

# this checkout's genemi first: `dvc exp` runs stages in temporary copies of the repo, and an editable
# install or PYTHONPATH would otherwise import the workspace's code, not the experiment's
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genemi.config import load_params  # noqa: E402
from genemi.io import atomic_path, write_json  # noqa: E402
from genemi.manifest import DIGEST, image_digest, iter_manifest, write_manifest  # noqa: E402
from genemi.plots import contact_sheet  # noqa: E402
from genemi.synth.dataset import SPLITS, mine_record  # noqa: E402


@click.command(help=__doc__)
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--root", "root_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Image root holding synth/<split>.jsonl and the scene images.")
@click.option("--out", "out_name", default="negatives", show_default=True,
              help="Folder under the root for the mined manifests and edited images.")
@click.option("--sheet", "sheet_path", required=True, type=click.Path(dir_okay=False),
              help="Contact sheet PNG (originals beside their negatives).")
def main(params_path: str, root_dir: str, out_name: str, sheet_path: str) -> None:
    p = load_params(params_path)
    root = Path(root_dir)
    sheet_rows = []
    for split in SPLITS:
        mined = []
        for rec in tqdm(iter_manifest(root / "synth" / f"{split}.jsonl"), desc=f"mine {split}", mininterval=2):
            with Image.open(root / rec.image) as im:
                image = im.convert("RGB")
            rec = dataclasses.replace(rec, image=rec.image.replace("synth/", f"{out_name}/", 1))
            out, files = mine_record(rec, image, p.synth, p.mine, p.seed)
            rec_path = root / out.image
            rec_path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(rec_path, suffix=".png") as tmp:
                image.save(tmp, format="PNG", compress_level=1)
            for rel, img in files:
                with atomic_path(root / rel, suffix=".png") as tmp:
                    img.save(tmp, format="PNG", compress_level=1)
            mined.append(out)
            if split == "test" and len(sheet_rows) < 10:
                sheet_rows.append((image, out.caption, [(img, f"{n.type}: {n.caption}") for (_, img), n
                                                         in zip(files, out.negatives)]))
        n_neg = sum(len(r.negatives) for r in mined)
        write_manifest(root / out_name / f"{split}.jsonl", mined)
        click.echo(f"{split}: {len(mined)} records, {n_neg} negatives")
    manifests = [root / out_name / f"{s}.jsonl" for s in SPLITS]
    write_json(root / out_name / DIGEST, image_digest(root, manifests))
    sheet = contact_sheet(sheet_rows)
    with atomic_path(sheet_path, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")


if __name__ == "__main__":
    main()
