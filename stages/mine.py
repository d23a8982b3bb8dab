"""Stage `mine`: hard negatives (caption + edited image) for every synthetic record.

Each record's scene graph proposes negatives of the types in `mine.types`; the edited images
go through the segment -> edit interfaces (the classic pixel backend here, Grounding DINO /
SAM / SD inpainting for real images, see stages/mine_real.py). Writes one manifest per split
and a contact sheet of originals beside their negatives.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
from tqdm import tqdm

from genemi.config import load_params
from genemi.errors import Stage
from genemi.images import read_image
from genemi.io import atomic_path, check_writable, write_json
from genemi.manifest import DIGEST, image_digest, iter_manifest, write_manifest
from genemi.plots import contact_sheet
from genemi.synth.dataset import SPLITS, mine_record


@click.command(cls=Stage, help=__doc__)
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
    check_writable(sheet_path, dirs=(root / out_name,))
    sheet_rows = []
    for split in SPLITS:
        mined = []
        for rec in tqdm(iter_manifest(root / "synth" / f"{split}.jsonl"), desc=f"mine {split}", mininterval=2):
            image = read_image(root / rec.image, what=f"record {rec.id!r}")
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
