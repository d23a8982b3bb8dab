"""How often captions name a colour: real COCO captions against the COCO stand-in at each
``data.stand_in_coco_colors``.

GeNeMi's variations are captioned with the miner's portrayal of the varied object ("a white cat" for "a
dog"), so they name what they change; the regular COCO pairs beside them are people's captions, which
name an object's colour only now and then. The stand-in's captions name every object's colour unless
``data.stand_in_coco_colors`` < 1 drops each colour word with probability 1 - share. This script measures,
for a file of real captions (one per line) and for the stand-in's training split (Karpathy ``restval``) at
each share:

* ``with_color``: % of captions naming at least one colour;
* ``per_caption``: colour words per caption.

A colour word is one of the stand-in palette's colours or another basic colour term (:data:`COLORS`).

    python benchmarks/caption_colors.py --captions coco_captions.txt

Writes ``benchmarks/results/caption_colors.{json,md}``; the stand-in is the committed params.yaml plus the
``standin_genemi`` recipe (``benchmarks/_setup.py``), the share overridden.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
from _setup import ROOT, params_source, shipped_params

RESULTS = ROOT / "benchmarks" / "results"
SHARES = (1.0, 0.5, 0.25, 0.15, 0.1, 0.0)
COLORS = frozenset(
    "red green blue yellow purple white black brown orange pink gray grey silver gold golden tan beige cyan "
    "violet maroon lime".split()
)


def color_stats(captions: list[str]) -> dict:
    """``with_color`` and ``per_caption`` (module docstring) of ``captions``."""
    counts = [sum(w in COLORS for w in re.findall(r"[a-z]+", c.lower())) for c in captions]
    n = len(counts)
    if not n:
        raise click.ClickException("no captions to count: the --captions file needs one caption per line")
    return {"captions": n, "with_color": round(100 * sum(k > 0 for k in counts) / n, 1),
            "per_caption": round(sum(counts) / n, 3)}  # fmt: skip


def stand_in(shares) -> dict[str, dict]:
    """:func:`color_stats` of the stand-in's training captions at each share (the scenes drawn once)."""
    from genemi import recipe
    from genemi.data import standin

    r = recipe.load_recipe("standin_genemi", ROOT / "recipes")
    p = shipped_params({k: v for k, v in r.params.items() if not k.startswith("eval.")})
    world, seed = standin.stand_in_world(p.synth, p.data.stand_in_palette), p.real.subset_seed
    scenes = standin._indexed(world, seed, p.data.stand_in_size, "coco")
    train = [(split, i, rec) for split, i, rec, _ in scenes if split == "train"]
    return {str(share): color_stats([c for split, i, rec in train
                                     for c in standin.image_captions(rec, split, i, seed, share)])
            for share in shares}  # fmt: skip


def markdown(res: dict) -> str:
    lines = [
        "# How often captions name a colour",
        "",
        f"`python benchmarks/caption_colors.py` ({res['params']} + `recipes/standin_genemi.yaml`, stand-in "
        "training split, `data.stand_in_coco_colors` varied). A colour word is a basic colour term "
        "(`COLORS` in the script).",
        "",
        "| source | share kept | captions | naming a colour | colour words per caption |",
        "|---|---|---|---|---|",
    ]
    if res.get("real"):
        r = res["real"]
        lines.append(f"| {res['real_name']} | | {r['captions']} | {r['with_color']:.1f}% "
                     f"| {r['per_caption']:.2f} |")
    for share, r in res["stand_in"].items():
        lines.append(f"| stand-in | {share} | {r['captions']} | {r['with_color']:.1f}% "
                     f"| {r['per_caption']:.2f} |")
    if res.get("real_source"):
        lines += ["", f"The real captions: {res['real_source']}"]
    return "\n".join(lines) + "\n"


@click.command(help=__doc__)
@click.option("--captions", type=click.Path(exists=True, dir_okay=False),
              help="Real captions, one per line (UTF-8).")
@click.option("--name", default="real", show_default=True,
              help="What the --captions file holds (for the table).")
@click.option("--source", default="", help="Where the --captions file came from (printed under the table).")
def main(captions: str | None, name: str, source: str) -> None:
    from genemi.io import write_json, write_text

    res: dict = {"params": params_source(), "stand_in": stand_in(SHARES)}
    if captions:
        lines = [ln.strip() for ln in Path(captions).read_text(encoding="utf-8").splitlines() if ln.strip()]
        res["real"], res["real_name"], res["real_source"] = color_stats(lines), name, source
    write_json(RESULTS / "caption_colors.json", res)
    write_text(RESULTS / "caption_colors.md", markdown(res))
    click.echo(markdown(res))


if __name__ == "__main__":
    main()
