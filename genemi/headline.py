"""A benchmark's headline: the handful of numbers a results table and `dvc exp show` need.

Each headline number is the plain mean of a few per-unit metrics (``<type>/text`` of the hard types,
the ``macro/text`` parts, R@1 both ways, zero-shot top-1), for base, fine-tuned and their difference.
:func:`headline_parts` names those metrics; the evaluate stage writes the point values
(:func:`headline`) and the report recomputes bootstrap replicates from the saved per-item outcomes
with the same parts, so both always average the same things.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

# headline name -> what it averages (docs/sweeps.md)
HEADLINES = ("hard_text", "macro_text", "r@1", "zeroshot_top1")


def headline_parts(
    sample_keys: Iterable[str], macro: Mapping[str, Sequence[str]], hard_types: Sequence[str]
) -> dict[str, list[str]]:
    """Headline name -> the per-unit metric keys it is the mean of, for one benchmark's outcomes.

    ``hard_text``: text accuracy of each of ``hard_types`` present; ``macro_text``: the parts of
    ``macro/text`` (or ``all/text`` when the set has one type); ``r@1``: image->text and text->image R@1;
    ``zeroshot_top1``. A headline whose parts are all absent is left out.
    """
    keys = set(sample_keys)
    parts = {
        "hard_text": [f"{t}/text" for t in hard_types if f"{t}/text" in keys],
        "macro_text": list(macro.get("macro/text", ["all/text"] if "all/text" in keys else [])),
        "r@1": [k for k in ("retrieval/i2t_r@1", "retrieval/t2i_r@1") if k in keys],
        "zeroshot_top1": [k for k in ("zeroshot/top1",) if k in keys],
    }
    return {name: p for name, p in parts.items() if p}


def headline(
    points: Mapping[str, Mapping[str, float]], parts: Mapping[str, Sequence[str]], digits: int = 4
) -> dict[str, float]:
    """Flat ``<model>/<name>`` point values (``points``: model -> :func:`genemi.evaluate.summarize`),
    plus ``delta/<name>`` = finetuned - base when both models are there, and ``retention/zeroshot_top1`` =
    100 * finetuned / base (%: how much of the base's zero-shot recognition fine-tuning keeps; left out
    when the base's is 0). Each is computed from the unrounded values, then rounded to ``digits``."""
    out: dict[str, float] = {}
    for model, vals in points.items():
        for name, keys in parts.items():
            if all(k in vals for k in keys):
                out[f"{model}/{name}"] = sum(vals[k] for k in keys) / len(keys)
    if "base" in points and "finetuned" in points:
        for name in parts:
            if f"base/{name}" in out and f"finetuned/{name}" in out:
                out[f"delta/{name}"] = out[f"finetuned/{name}"] - out[f"base/{name}"]
        base, ft = out.get("base/zeroshot_top1"), out.get("finetuned/zeroshot_top1")
        if base and ft is not None:
            out["retention/zeroshot_top1"] = 100.0 * ft / base
    return {k: round(v, digits) for k, v in sorted(out.items())}
