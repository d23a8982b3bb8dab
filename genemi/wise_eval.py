"""Scoring the WiSE-FT models (:mod:`genemi.wise`) on one benchmark, the way the evaluate stage scores the
fine-tuned model: each image is decoded once and encoded by the base and every interpolated model, and each
mix gets the evaluate stage's files with the mix in the fine-tuned model's place (``base/``, ``finetuned/``,
``delta/`` keys), one entry per ``a`` (named by :func:`genemi.wise.alpha_name`):

* the headline (``{a: {base/hard_text, finetuned/hard_text, delta/hard_text, ...}}``, the DVC metric), with
  :func:`genemi.headline.headline`'s ``retention/zeroshot_top1`` where the benchmark has zero-shot classes;
* the detail (``{a: flat metrics with bootstrap intervals}``, :func:`genemi.bootstrap.compare`);
* the per-item outcomes (:func:`genemi.items.save_items`, models ``base`` and each ``a``), so the report can
  pair a mix with any run scored on the same items.
"""

from __future__ import annotations

from pathlib import Path


def wise_models(wise_dir, alphas) -> dict[str, Path]:
    """``{a name: <wise_dir>/<a>.safetensors}`` for ``alphas``; a missing file is named with what to run."""
    from genemi.wise import alpha_name

    out = {}
    for a in alphas:
        path = Path(wise_dir) / f"{alpha_name(a)}.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no interpolated model for wise.alphas entry {a} (--wise "
                                    f"{wise_dir}); run `dvc repro wise` first")
        out[alpha_name(a)] = path
    return out


def score_wise(p, benchmark: str, data_dir, base_path, wise_dir, device: str = "cpu", where: str = ""):
    """``(headline, detail, outcomes, es)`` of every ``p.wise.alphas`` mix against the base on ``benchmark``
    (``outcomes``: ``base`` and each ``a`` -> :class:`genemi.metrics.Outcomes`)."""
    from genemi import runtime
    from genemi.bootstrap import compare
    from genemi.clip import Clip
    from genemi.evaluate import evaluate_models, load_complete
    from genemi.headline import headline, headline_parts
    from genemi.metrics import summarize

    es = load_complete(p.eval, benchmark, data_dir, where=where)
    paths = {"base": Path(base_path), **wise_models(wise_dir, p.wise.alphas)}
    clips = {n: Clip.from_params(p.model, w, device, p.eval.batch_size) for n, w in paths.items()}
    outcomes, _ = evaluate_models(clips, es, p.eval.acc_taus, p.eval.retrieval_ks, p.eval.seed,
                                  runtime.loader_workers(p.data.workers, in_memory=False), progress=True)
    heads, detail = {}, {}
    base_points = summarize(outcomes["base"])
    for name in paths:
        if name == "base":
            continue
        pair = {"base": outcomes["base"], "finetuned": outcomes[name]}
        parts = headline_parts(outcomes[name].samples, outcomes[name].macro, p.eval.hard_types)
        heads[name] = headline({"base": base_points, "finetuned": summarize(outcomes[name])}, parts)
        detail[name] = compare(pair, p.eval.bootstrap, p.eval.seed)
    return heads, detail, outcomes, es


def write_wise(heads, detail, outcomes, es, hard_types, metrics_path, headline_path, items_path) -> None:
    """The three files of :func:`score_wise`'s results (see the module docstring)."""
    from genemi.evalsets import distinct_inputs
    from genemi.headline import headline_parts
    from genemi.io import write_json
    from genemi.items import items_digest, save_items

    write_json(metrics_path, detail)
    write_json(headline_path, heads)
    first = next((n for n in outcomes if n != "base"), "base")
    parts = headline_parts(outcomes[first].samples, outcomes[first].macro, hard_types)
    save_items(items_path, outcomes, items_digest(*distinct_inputs(es)), parts)
