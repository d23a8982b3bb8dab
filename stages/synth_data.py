"""Stage `synth_data`: generate the synthetic world's train/test/gen splits (images + manifests)."""

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
from genemi.manifest import DIGEST, image_digest, write_manifest  # noqa: E402
from genemi.synth.dataset import SPLITS, generate_split  # noqa: E402


@click.command(help=__doc__)
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Image root: images go to <out>/synth/<split>/, manifests to <out>/synth/<split>.jsonl.")
def main(params_path: str, out_dir: str) -> None:
    p = load_params(params_path)
    root = Path(out_dir)
    for split in SPLITS:
        records = []
        for rec, img in tqdm(generate_split(p.synth, split, p.seed), desc=f"synth {split}", mininterval=2):
            rec = dataclasses.replace(rec, image=f"synth/{rec.image}")
            path = root / rec.image
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path, suffix=".png") as tmp:
                Image.fromarray(img).save(tmp, format="PNG", compress_level=1)
            records.append(rec)
        n = write_manifest(root / "synth" / f"{split}.jsonl", records)
        click.echo(f"{split}: {n} scenes")
    manifests = [root / "synth" / f"{s}.jsonl" for s in SPLITS]
    write_json(root / "synth" / DIGEST, image_digest(root, manifests))


if __name__ == "__main__":
    main()
