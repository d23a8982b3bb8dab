"""Contact sheets: each origin image beside its variations, one row per edited object.

A quick visual audit of mining: does the edit sit on the object, does the caption match,
which variations the ITM/IVA filter dropped (red frame) or kept (green frame).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from genemi.images import read_image

KEPT, DROPPED, ORIGINAL = (40, 160, 60), (200, 40, 40), (90, 90, 90)


@dataclass(frozen=True)
class Tile:
    image: Image.Image
    caption: str
    frame: tuple[int, int, int] = ORIGINAL
    box: tuple[float, float, float, float] | None = None  # the grounded box, in image pixels


def _tile(t: Tile, thumb: int, text_h: int, font: ImageFont.ImageFont) -> Image.Image:
    """One ``thumb``-wide cell: the image letterboxed in a coloured frame, caption below."""
    cell = Image.new("RGB", (thumb, thumb + text_h), "white")
    # contain() scales up as well as down, so small images stay legible
    im = ImageOps.contain(t.image.convert("RGB"), (thumb - 6, thumb - 6), Image.NEAREST)
    if t.box is not None:
        f = im.width / t.image.width
        ImageDraw.Draw(im).rectangle([v * f for v in t.box], outline=(255, 215, 0), width=2)
    draw = ImageDraw.Draw(cell)
    draw.rectangle([0, 0, thumb - 1, thumb - 1], outline=t.frame, width=3)
    cell.paste(im, ((thumb - im.width) // 2, (thumb - im.height) // 2))
    chars = max(8, thumb // 6)  # ~6 px per character at size 11
    lines = textwrap.wrap(t.caption, chars)[: max(1, text_h // 11)]
    draw.multiline_text((3, thumb + 2), "\n".join(lines), fill="black", font=font, spacing=1)
    return cell


def contact_sheet(rows: Sequence[Sequence[Tile]], thumb: int = 160, text_h: int = 48) -> Image.Image:
    """RGB sheet with ``rows`` of tiles (first tile of a row = the original)."""
    if not rows:
        raise ValueError("contact_sheet: no rows to draw")
    font = ImageFont.load_default(size=11)  # Pillow's bundled TrueType font: same on every machine
    cols = max(len(r) for r in rows)
    sheet = Image.new("RGB", (cols * thumb, len(rows) * (thumb + text_h)), "white")
    for i, row in enumerate(rows):
        for j, t in enumerate(row):
            sheet.paste(_tile(t, thumb, text_h, font), (j * thumb, i * (thumb + text_h)))
    return sheet


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
            m = r["meta"]
            itm = sum(m["itm_score"]) / len(m["itm_score"])
            label = f"{r['caption']} (itm {itm:.2f}, iva {m['iva_score']:.0f})"
            row.append(Tile(var, label, KEPT if m["passed"] else DROPPED))
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
    from genemi.io import atomic_path
    from genemi.mining.pipeline import safe_name

    out = []
    for part in parts:
        path = Path(sheets_dir) / f"{safe_name(part['origin'])}.png"
        with atomic_path(path, suffix=".png") as tmp:
            origin_sheet(part, image_root, variation_root, thumb).save(tmp, format="PNG")
        out.append(path)
    return out
