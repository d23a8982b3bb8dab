"""How often one training batch of the HNC stand-in, or of the synthetic road, holds a caption's relation
flip or attribute swap, or a caption twice.

Plain CLIP (the same-steps ``loss.hn_weight: 0`` control) sees no mined negative; the only negatives it learns
from are the batch's other captions. When a batch holds both "a red circle left of a blue square" and "a blue
square left of a red circle" (two images), the control meets a relation flip as an in-batch negative, a hard
negative the method was supposed to add. Batches of real captions (COCO, HNC: hundreds of thousands of
distinct captions) almost never hold a caption's exact flip or the caption twice; a small world does.

For each ``data.stand_in_palette`` (:func:`genemi.data.standin.stand_in_world`) this script writes the HNC
stand-in's train pairs as the download stage does (:func:`genemi.data.standin.hnc_pairs` over the train
scenes of the ``standin_hnc`` recipe's size, the data seed ``real.subset_seed``) and draws batches the way
``batching.dedupe_images: true`` fills them: ``finetune.batch_size`` different images, one of each image's
(positive, negative) pairs. Per batch it counts:

* ``flip_in_batch``: pairs whose positive's relation flip is another pair's positive in the same batch (the
  control's relation-flip negatives);
* ``swap_in_batch``: the same for the positive's attribute swap (its two colours exchanged: HNC's
  attribute_relation type);
* ``flip_mined``: pairs whose own negative is the relation flip (what the thesis loss adds at weight 1);
* ``repeated``: pairs whose positive is another pair's positive too (a false in-batch negative).

The same counts for the synthetic road (:func:`synthetic_images`): the train split of the committed world
and its mined negatives (``mine`` stage), batches of ``finetune.batch_size`` records drawn as the training
sampler draws them (each record once, no image twice). Its ``flip_mined`` counts the records whose mined
negatives include the flip (the hard-negative loss draws ``loss.negatives_per_sample`` of them a step).

    python benchmarks/standin_batch_overlap.py [--batches 400]

Writes ``benchmarks/results/standin_batch_overlap.{json,md}``; the set-up is the committed params.yaml plus
the recipe's values (``benchmarks/_setup.py``).
"""

from __future__ import annotations

import click
from _setup import ROOT, params_source, shipped_params

RESULTS = ROOT / "benchmarks" / "results"
PALETTES = ("narrow", "broad")


def image_pairs(p, palette: str) -> list[list[tuple[str, str, str | None, str | None]]]:
    """Per train image of the HNC stand-in: ``[(positive, negative, flip, swap)]``, flip and swap the
    positive's relation flip and attribute swap (None where the scene has none)."""
    from genemi.data import standin

    world = standin.stand_in_world(p.synth, palette)
    out = []
    for split, rec, _ in standin.scenes(world, p.real.subset_seed, p.data.stand_in_size, "hnc"):
        if split != "train":
            continue
        pairs = []
        for pos, negs in standin.hnc_pairs(rec, world, p.real.subset_seed):
            flip = next((cap for cap, ty, _ in negs if ty == "relation_flip"), None)
            swap = next((cap for cap, ty, _ in negs if ty == "attribute_swap"), None)
            pairs += [(pos, cap, flip, swap) for cap, _, _ in negs]
        if pairs:
            out.append(pairs)
    return out


def synthetic_images(p) -> list[list[tuple[str, str | None, str | None, str | None]]]:
    """Per train record of the synthetic road: ``[(positive, flip, flip, swap)]`` from the world's scene and
    the negatives the ``mine`` stage mines for it (None where it mines none of that type)."""
    from genemi.synth.dataset import generate_split, scene_negatives

    out = []
    for rec, _ in generate_split(p.synth, "train", p.seed):
        found = {n.type: n.caption for n in scene_negatives(rec, p.synth, p.mine, p.seed)}
        flip, swap = found.get("relation_flip"), found.get("attribute_swap")
        out.append([(rec.caption, flip, flip, swap)])
    return out


def batch_counts(images: list[list[tuple]], batch: int, batches: int, rng) -> dict:
    """Mean per batch of ``flip_in_batch``, ``swap_in_batch``, ``flip_mined`` and ``repeated`` (module
    docstring)."""
    totals = {"flip_in_batch": 0, "swap_in_batch": 0, "flip_mined": 0, "repeated": 0}
    for _ in range(batches):
        picked = rng.choice(len(images), batch, replace=False)
        drawn = [images[i][rng.integers(len(images[i]))] for i in picked]
        seen: dict[str, int] = {}
        for pos, *_ in drawn:
            seen[pos] = seen.get(pos, 0) + 1
        for pos, neg, flip, swap in drawn:
            totals["flip_in_batch"] += flip is not None and flip in seen
            totals["swap_in_batch"] += swap is not None and swap in seen
            totals["flip_mined"] += flip is not None and neg == flip
            totals["repeated"] += seen[pos] > 1
    return {k: round(v / batches, 2) for k, v in totals.items()}


def measure(batches: int) -> dict:
    from genemi import recipe, seeding

    r = recipe.load_recipe("standin_hnc", ROOT / "recipes")
    p = shipped_params({k: v for k, v in r.params.items() if not k.startswith("eval.")})
    out = {"params": params_source(), "stand_in_size": p.data.stand_in_size,
           "batch_size": p.finetune.batch_size, "batches": batches, "palettes": {}}
    for palette in PALETTES:
        images = image_pairs(p, palette)
        positives = {pair[0] for pairs in images for pair in pairs}
        rng = seeding.rng(0, "batch_overlap", palette)
        counts = batch_counts(images, p.finetune.batch_size, batches, rng)
        out["palettes"][palette] = {"images": len(images), "distinct_positives": len(positives), **counts}
    base = shipped_params()
    images = synthetic_images(base)
    rng = seeding.rng(0, "batch_overlap", "synthetic")
    counts = batch_counts(images, base.finetune.batch_size, batches, rng)
    out["synthetic"] = {"images": len(images), "distinct_positives": len({i[0][0] for i in images}),
                        "batch_size": base.finetune.batch_size, **counts}
    return out


def markdown(res: dict) -> str:
    lines = [
        "# HNC stand-in: relation flips and repeated captions inside one training batch",
        "",
        f"Measured with `python benchmarks/standin_batch_overlap.py --batches {res['batches']}` "
        f"({res['params']} + `recipes/standin_hnc.yaml`): {res['stand_in_size']} train scenes, "
        f"batches of {res['batch_size']} different images with one (positive, negative) pair each, as "
        "`batching.dedupe_images` draws them. Means per batch over the drawn batches.",
        "",
        "| data.stand_in_palette | images | distinct positives | flip of a pair's positive in the batch "
        "(control's flip negatives) | its attribute swap in the batch | mined flip negatives (thesis loss) | "
        "pairs whose positive repeats |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in res["palettes"].items():
        lines.append(f"| {name} | {r['images']} | {r['distinct_positives']} | {r['flip_in_batch']:.2f} | "
                     f"{r['swap_in_batch']:.2f} | {r['flip_mined']:.2f} | {r['repeated']:.2f} |")
    if "synthetic" in res:
        r = res["synthetic"]
        lines += [
            "",
            "## The synthetic road",
            "",
            f"The default pipeline's train split ({res['params']}, no recipe): {r['images']} scenes, batches "
            f"of {r['batch_size']} different records, as the training sampler draws them. Mined flips: "
            "records whose mined negatives include the relation flip.",
            "",
            "| records | distinct positives | flip of a record's caption in the batch | its attribute swap "
            "in the batch | records with a mined flip | records whose caption repeats |",
            "|---|---|---|---|---|---|",
            f"| {r['images']} | {r['distinct_positives']} | {r['flip_in_batch']:.2f} | "
            f"{r['swap_in_batch']:.2f} | {r['flip_mined']:.2f} | {r['repeated']:.2f} |",
        ]
    return "\n".join(lines) + "\n"


@click.command(help=__doc__)
@click.option("--batches", type=click.IntRange(1), default=400, show_default=True,
              help="Batches drawn per palette.")
def main(batches: int) -> None:
    from genemi.io import write_json, write_text

    res = measure(batches)
    write_json(RESULTS / "standin_batch_overlap.json", res)
    write_text(RESULTS / "standin_batch_overlap.md", markdown(res))
    click.echo(markdown(res))


if __name__ == "__main__":
    main()
