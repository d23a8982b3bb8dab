"""Contact sheets of mining: each origin image beside its variations, one row per edited object.

A quick visual audit of mining: does the edit sit on the object, does the caption match,
which variations the ITM/IVA filter dropped (red frame) or kept (green frame), and which were corrupted
on purpose to test it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from genemi.images import read_image
from genemi.plots import DROPPED, KEPT, Tile, contact_sheet


def variation_label(record: dict) -> str:
    """A variation tile's caption: its caption, mean ITM and IVA, and, for one corrupted on purpose
    (``mine_real.corrupt_fraction``), what its image shows instead."""
    m = record["meta"]
    itm = sum(m["itm_score"]) / len(m["itm_score"])
    label = f"{record['caption']} (itm {itm:.2f}, iva {m['iva_score']:.0f})"
    return label + (f" CORRUPTED: shows {m['corrupted']}" if "corrupted" in m else "")


def origin_sheet(
    part: dict, image_root: str | Path, variation_root: str | Path, thumb: int = 160
) -> Image.Image:
    """Sheet for one mined origin (a part dict from :mod:`genemi.mining.pipeline`)."""
    original = read_image(Path(image_root) / part["image"], what=f"origin {part.get('origin')!r}")
    by_item: dict[str, list[dict]] = {}
    for r in part["records"]:
        by_item.setdefault(r["meta"]["item"], []).append(r)
    rows = []
    for item in sorted(by_item):
        box = tuple(by_item[item][0]["meta"].get("box", ())) or None
        row = [Tile(original, f"[{item}] {part['caption']}", box=box)]
        for r in sorted(by_item[item], key=lambda r: r["id"]):
            var = read_image(Path(variation_root) / r["image"], what=f"variation {r.get('id')!r}")
            row.append(Tile(var, variation_label(r), KEPT if r["meta"]["passed"] else DROPPED))
        rows.append(row)
    if not rows:  # nothing was mined for this origin: show it alone
        rows = [[Tile(original, f"(no variation) {part['caption']}")]]
    return contact_sheet(rows, thumb)


def write_sheets(
    parts: Sequence[dict],
    image_root: str | Path,
    variation_root: str | Path,
    sheets_dir: str | Path,
    thumb: int = 160,
) -> list[Path]:
    """One PNG per mined origin, ``<sheets_dir>/<origin>.png``, written atomically."""
    from genemi.io import safe_name, write_png

    out = []
    for part in parts:
        path = Path(sheets_dir) / f"{safe_name(part['origin'])}.png"
        write_png(path, origin_sheet(part, image_root, variation_root, thumb))
        out.append(path)
    return out
