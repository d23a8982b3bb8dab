"""What the GeNeMi validation rows of the stand-in test: telling words apart, or binding them.

A genemi_val row holds 2-4 variations of one object of one image (GeNeMi made its set with its own miner:
the object recoloured or replaced, the caption rewritten), and a row counts as right only when every caption
ranks its own image first and every image its own caption (Text / Image / Group All). If every caption of a
row names a different set of words, a model that only knows which words an image shows (a bag of words,
blind to which colour goes with which shape or to order) can get the row right: the row tests recognition
of the changed word. Rows where two captions share their words (a colour swap, a place swap) need binding or
order, the skills hard negatives are for.

For the rows ``download_genemi_val`` writes (:func:`genemi.data.standin.genemi_val_row`) and, for
comparison, the diagnostic rows of ``benchmarks/standin_genemi_effect.py``
(:func:`genemi.data.standin.compositional_val_row`: the scene and the synthetic miner's colour swap, colour
or shape change, place swap and count change), both under the ``standin_genemi`` recipe, this script counts:

* ``rows`` and the captions per row;
* ``set_separable``: rows whose captions have pairwise different word sets (a bag of words can separate
  them; "a red circle left of a blue square" and "a blue circle left of a red square" cannot be);
* ``multiset_separable``: the same with word counts kept ("two red circles" vs "three red circles").

    python benchmarks/genemi_val_words.py

Writes ``benchmarks/results/genemi_val_words.{json,md}``; the set-up is the committed params.yaml plus the
recipe's values (``benchmarks/_setup.py``).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from pathlib import Path

import click
from _setup import ROOT, params_source, shipped_params

RESULTS = ROOT / "benchmarks" / "results"


def words(caption: str) -> Counter:
    """The caption's words, lower case, punctuation dropped, with their counts."""
    return Counter(re.findall(r"[a-z]+", caption.lower()))


def separable(captions: list[str]) -> tuple[bool, bool]:
    """``(by word set, by word multiset)``: whether every two captions differ."""
    bags = [words(c) for c in captions]
    sets = [frozenset(b) for b in bags]
    multisets = [tuple(sorted(b.items())) for b in bags]
    return len(set(sets)) == len(sets), len(set(multisets)) == len(multisets)


def count_rows(test_jsonl: Path) -> dict:
    """The counts of the module docstring over one ``test.jsonl`` in genemi_val's format."""
    rows = [json.loads(line) for line in test_jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]
    sizes: Counter = Counter()
    by_set = by_multiset = 0
    for r in rows:
        caps = [r[f"caption_{k}"] for k in range(r["num_sample"])]
        sizes[len(caps)] += 1
        s, m = separable(caps)
        by_set += s
        by_multiset += m
    n = len(rows)
    return {"rows": n, "captions_per_row": {str(k): v for k, v in sorted(sizes.items())},
            "set_separable": by_set, "multiset_separable": by_multiset,
            "set_separable_pct": round(100 * by_set / n, 1) if n else 0.0,
            "multiset_separable_pct": round(100 * by_multiset / n, 1) if n else 0.0}


def measure() -> dict:
    from genemi import recipe
    from genemi.data import standin

    r = recipe.load_recipe("standin_genemi", ROOT / "recipes")
    p = shipped_params({k: v for k, v in r.params.items() if not k.startswith("eval.")})
    out = {"params": params_source(), "stand_in_size": p.data.stand_in_size,
           "palette": p.data.stand_in_palette, "seed": p.real.subset_seed, "sets": {}}
    for name, row_of in (("genemi_val", standin.genemi_val_row),
                         ("diagnostic", standin.compositional_val_row)):
        with tempfile.TemporaryDirectory() as tmp:
            standin.write_genemi_val(p.synth, p.real.subset_seed, p.data.stand_in_size, tmp, row_of,
                                     palette=p.data.stand_in_palette)
            out["sets"][name] = count_rows(Path(tmp) / "test.jsonl")
    return out


def markdown(res: dict) -> str:
    lines = [
        "# GeNeMi stand-in: do the validation rows test binding or only words?",
        "",
        f"Measured with `python benchmarks/genemi_val_words.py` ({res['params']} + "
        f"`recipes/standin_genemi.yaml`: stand-in size {res['stand_in_size']}, palette {res['palette']}, "
        f"data seed {res['seed']}). A row is separable when every two of its captions name different words; "
        "a model that recognises the words an image shows, with no binding or order, can then get it right.",
        "",
        "| set | how made | rows | captions per row | separable by word set | by word multiset |",
        "|---|---|---|---|---|---|",
    ]
    how = {"genemi_val": "GeNeMi's: variations of one object (`genemi_val_row`)",
           "diagnostic": "the miner's swaps and changes (`compositional_val_row`)"}
    for name, r in res["sets"].items():
        per = ", ".join(f"{k}: {v}" for k, v in r["captions_per_row"].items())
        lines.append(f"| {name} | {how[name]} | {r['rows']} | {per} | {r['set_separable']} "
                     f"({r['set_separable_pct']:.1f}%) | {r['multiset_separable']} "
                     f"({r['multiset_separable_pct']:.1f}%) |")
    return "\n".join(lines) + "\n"


@click.command(help=__doc__)
def main() -> None:
    from genemi.io import write_json, write_text

    res = measure()
    write_json(RESULTS / "genemi_val_words.json", res)
    write_text(RESULTS / "genemi_val_words.md", markdown(res))
    click.echo(markdown(res))


if __name__ == "__main__":
    main()
