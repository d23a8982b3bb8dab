"""NegCLIP's tab-separated training file (title, filepath, neg_caption, neg_image) -> a manifest for
`finetune --train` (the negclip recipe). A conversion, not a DVC stage of the default graph: NegCLIP's
file is fetched by hand (docs/real-data.md).
"""

from __future__ import annotations

import _checkout  # noqa: F401  (this checkout's genemi first; see _checkout.py)
import click

from genemi.errors import Output, Stage
from genemi.manifest import write_manifest


@click.command(cls=Stage, help=__doc__)
@click.option("--csv", "csv_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="NegCLIP's training file (TSV).")
@click.option("--out", "out_path", required=True, type=Output(), help="Manifest (JSONL).")
def main(csv_path: str, out_path: str) -> None:
    from genemi.data.negclip import negclip_records

    recs = negclip_records(csv_path)
    write_manifest(out_path, recs)
    click.echo(f"negclip: {len(recs)} records -> {out_path}", err=True)


if __name__ == "__main__":
    main()
