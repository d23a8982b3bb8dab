"""Where failed prompts cost: genemi_val elements that name a failing prompt against the others.

For a finished run of `benchmarks/standin_genemi_effect.py` with `-S mine_real.corrupt_by=prompt` (every
variation asking for a failing inpainting prompt failed) or `color` (every variation whose portrayal names a
failing colour failed: each prompt naming one failed), and the genemi, corrupt_off and corrupt_on arms
trained in its `--work` folder, this script scores the filter rule's two pairs again with per-element
outcomes (`stages/evaluate.py --items`): filter off against the clean arm (what the failed edits cost) and
filter on against filter off (what the filter buys). It then splits genemi_val's elements (one caption and
its image; GeNeMi's Text/Image/Group-1) in two: those whose caption names a prompt that failed in that
seed's mining, and the others.

The failing prompts are read from the run's own filter-off mining (`data/s<seed>/corrupt_off/
variations.jsonl`, where every corrupted variation is kept and marked): a prompt failed when its variations
were corrupted. An element names one when the prompt's short form ("blue ring") is in its caption as whole
words, wherever it stands.

Per word every prompt of which failed (by colour: each failing colour), the page also gives Group-1 on the
elements naming it for the synthetic base and the same-steps control (the regular pairs alone, scored with
`--items` too) beside the three arms: filter on, such a word keeps no variation but edits to an object's
own look (which change no pixel, so cannot fail), so the control shows what is left to teach it.

\b
    python benchmarks/standin_genemi_effect.py --seeds 0 --work /tmp/p -S mine_real.corrupt_by=prompt \\
        --arms genemi --arms corrupt_off --arms corrupt_on --out /tmp/p
    python benchmarks/standin_genemi_prompt_cost.py --work /tmp/p   # every trained seed of the folder

Writes benchmarks/results/standin_genemi_prompt_cost.{json,md} (--out).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import standin_genemi_effect as effect  # noqa: E402  (its stage runner and the rule's pairs)

METRICS = ("text_1", "image_1", "group_1")
ARMS = ("genemi", "corrupt_off", "corrupt_on")
BY_WORD = ("base", "control", "clean", "filter_off", "filter_on")


def failing(variations: Path) -> tuple[set[str], set[str]]:
    """``(failed, right)``: the short forms of the prompts some of whose variations were corrupted, and of
    the others. (By prompt, a failing prompt's variations that cannot fail the asked way stay right: an
    edit to the object's own look changes no pixel.)"""
    seen: dict[str, bool] = {}
    for line in variations.read_text(encoding="utf-8").splitlines():
        meta = json.loads(line)["meta"]
        seen[meta["short"]] = seen.get(meta["short"], False) or "corrupted" in meta
    return {s for s, f in seen.items() if f}, {s for s, f in seen.items() if not f}


def whole_words(failed: set[str], right: set[str]) -> list[str]:
    """The words every prompt of which failed (by colour: the failing colours; a word in one prompt only
    does not count), sorted."""
    words = {w for s in failed for w in s.split()}
    kept = {w for s in right for w in s.split()}
    return sorted(w for w in words - kept if sum(w in s.split() for s in failed) > 1)


def names(caption: str, shorts: set[str]) -> bool:
    """Whether ``caption`` names one of ``shorts`` as whole words."""
    return any(re.search(rf"\b{re.escape(s)}\b", caption.lower()) for s in shorts)


def elements(test_jsonl: Path) -> tuple[list[str], np.ndarray]:
    """genemi_val's captions in element order (row by row, as the evaluation flattens them) and each one's
    row."""
    rows = [json.loads(line) for line in test_jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]
    caps = [r[f"caption_{k}"] for r in rows for k in range(r["num_sample"])]
    return caps, np.repeat(np.arange(len(rows)), [r["num_sample"] for r in rows])


def split(items: dict, mask: np.ndarray) -> dict:
    """{metric: [before, after, n]} in % over the elements ``mask`` picks."""
    out = {}
    for m in METRICS:
        a, b = (np.asarray(items[f"{who}/all/{m}"], dtype=float) for who in ("base", "finetuned"))
        out[m] = [round(100 * a[mask].mean(), 1), round(100 * b[mask].mean(), 1), int(mask.sum())]
    return out


def regular_captions(manifest: Path) -> list[str]:
    """The captions of the regular pairs every arm trains on (the run's COCO manifest)."""
    return [json.loads(line)["caption"] for line in manifest.read_text(encoding="utf-8").splitlines()
            if line.strip()]  # fmt: skip


def scored(work: Path, times: dict, seed: int, name: str, ref: str, arm: str, rows: np.ndarray) -> dict:
    """``arm`` against ``ref`` on genemi_val with per-element outcomes (``evaluate --items``), checked to be
    its elements in row order (``rows``: each element's row)."""
    s, prm = f"data/s{seed}", work / "params" / f"s{seed}.yaml"
    items = work / s / f"items_{name}.npz"
    effect.stage(work, times, f"items_{name}", "evaluate", "--params", str(prm), "--benchmark",
                 "genemi_val", "--data", "data", "--base", ref, "--finetuned", f"{s}/{arm}.safetensors",
                 "--metrics", f"{s}/items_{name}.json", "--plot-dir", f"{s}/plots_items_{name}",
                 "--items", str(items.relative_to(work)))  # fmt: skip
    with np.load(items, allow_pickle=False) as z:
        got = {k: z[k] for k in z.files}
    if not np.array_equal(got["clusters/all/group_1"], rows):
        raise click.ClickException(f"{items}: its elements are not genemi_val's {len(rows)} in row "
                                   f"order; rerun the effect script in {work}")  # fmt: skip
    return got


def seed_cost(work: Path, seed: int, times: dict) -> dict:
    """The rule's two pairs of one seed, split by whether an element names a failing prompt; and, per word
    every prompt of which failed, the base, the control and the three arms on the elements naming it."""
    s = f"data/s{seed}"
    on = yaml.safe_load((work / "params" / f"s{seed}_corrupt_on.yaml").read_text(encoding="utf-8"))
    if (by := on["mine_real"].get("corrupt_by", "variation")) == "variation":
        why = "this script reads runs with -S mine_real.corrupt_by=prompt or color"
        raise click.ClickException(f"{work}: seed {seed} was mined with mine_real.corrupt_by {by!r}; {why}")
    failed, right = failing(work / s / "corrupt_off" / "variations.jsonl")
    caps, row_of = elements(work / "data" / "raw" / "eval" / "genemi_val" / "test.jsonl")
    mask = np.array([names(c, failed) for c in caps])
    out = {"failed_prompts": sorted(failed), "right_prompts": len(right), "elements": len(caps)}
    got = {}
    for name, (ref, arm) in effect.RULE.items():
        got[name] = scored(work, times, seed, name, f"{s}/{ref}.safetensors", arm, row_of)
        out[name] = {"naming_failed": split(got[name], mask), "other": split(got[name], ~mask)}
    # the control against the base on the same elements: what the regular pairs alone teach each word
    ctl = scored(work, times, seed, "control", "data/base.safetensors", "control", row_of)
    outcome = {"base": ctl["base/all/group_1"], "control": ctl["finetuned/all/group_1"],
               "clean": got["off_vs_clean"]["base/all/group_1"],
               "filter_off": got["off_vs_clean"]["finetuned/all/group_1"],
               "filter_on": got["on_vs_off"]["finetuned/all/group_1"]}  # fmt: skip
    regular = regular_captions(work / "data" / "coco" / "karpathy.jsonl")
    out["by_word"] = {}
    for w in whole_words(failed, right):
        m = np.array([names(c, {w}) for c in caps])
        pct = {a: round(100 * float(np.mean(v[m])), 1) for a, v in outcome.items()}
        said = sum(names(c, {w}) for c in regular)
        out["by_word"][w] = {"n": int(m.sum()), "regular": [said, len(regular)], **pct}
    return out


def markdown(data: dict) -> str:
    lines = [
        "# GeNeMi stand-in: where prompts that failed cost",
        "",
        "`python benchmarks/standin_genemi_prompt_cost.py` on runs of `standin_genemi_effect.py` with "
        "`-S mine_real.corrupt_by="
        + ", ".join(sorted(set(data["corrupt_by"].values())))
        + "` (corrupt_as: "
        + ", ".join(sorted(set(data["corrupt_as"].values())))
        + "). GeNeMi's Group-1 (micro: an element is right when its caption ranks its image first and its "
        "image its caption), in %, on the genemi_val elements whose caption names a prompt that failed in "
        "that seed's mining, and on the others.",
        "",
        "| seed | failed prompts | elements naming one | clean | filter off | filter on | other elements "
        "| clean | filter off | filter on |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for seed, r in data["seeds"].items():
        cells = []
        for part in ("naming_failed", "other"):
            clean, off, n = r["off_vs_clean"][part]["group_1"]
            on = r["on_vs_off"][part]["group_1"][1]
            cells += [
                str(n),
                f"{clean:.1f}",
                f"{off:.1f} ({off - clean:+.1f})",
                f"{on:.1f} ({on - off:+.1f})",
            ]
        n_failed = len(r["failed_prompts"])
        lines.append(
            f"| {seed} | {n_failed} of {n_failed + r['right_prompts']} | " + " | ".join(cells) + " |"
        )
    lines += ["", "Filter off in brackets: minus clean; filter on: minus filter off. Text-1 and Image-1 "
              "are in the JSON. Failed prompts per seed:", ""]  # fmt: skip
    lines += [f"- seed {s}: {', '.join(r['failed_prompts'])}" for s, r in data["seeds"].items()]
    words = [(s, w, v) for s, r in data["seeds"].items() for w, v in r.get("by_word", {}).items()]
    if words:
        lines += ["", "Each word every prompt of which failed (by colour: each failing colour), Group-1 in % "
                  "on the elements that name it, with the synthetic base and the same-steps control (the "
                  "regular pairs alone) beside the arms. Filter on, a word keeps no variation but edits to "
                  "an object's own look (they change no pixel, so cannot fail): the regular pairs are "
                  "nearly all that teach it:", "",
                  "| seed | word | regular captions naming it | elements | base | control | clean "
                  "| filter off | filter on |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {s} | {w} | {v['regular'][0]} of {v['regular'][1]} | {v['n']} | "
                  + " | ".join(f"{v[a]:.1f}" for a in BY_WORD) + " |" for s, w, v in words]  # fmt: skip
    return "\n".join(lines) + "\n"


@click.command(help=__doc__)
@click.option("--work", "works", multiple=True, required=True, type=click.Path(file_okay=False, exists=True,
              path_type=Path), help="Work folder of a finished run (repeatable).")  # fmt: skip
@click.option("--out", default=str(effect.REPO / "benchmarks" / "results" / "standin_genemi_prompt_cost"),
              show_default=True, help="Results path without suffix (.json and .md are written).")  # fmt: skip
def main(works, out):
    from genemi.io import write_json

    data: dict = {"seeds": {}, "corrupt_as": {}, "corrupt_by": {}, "times_s": {}}
    for work in works:
        seeds = sorted(int(p.parent.name[1:]) for p in work.glob("data/s*/corrupt_on.safetensors")
                       if all((p.parent / f"{a}.safetensors").is_file() for a in ARMS))  # fmt: skip
        if not seeds:
            why = "run standin_genemi_effect.py there with --arms genemi --arms corrupt_off --arms corrupt_on"
            raise click.ClickException(f"{work}: no seed with the three arms trained; {why}")
        for seed in seeds:
            if str(seed) in data["seeds"]:
                raise click.ClickException(f"{work}: seed {seed} is in another --work too; give it once")
            click.echo(f"seed {seed} ({work})")
            times = data["times_s"].setdefault(str(seed), {})
            data["seeds"][str(seed)] = seed_cost(work, seed, times)
            on = yaml.safe_load((work / "params" / f"s{seed}_corrupt_on.yaml").read_text(encoding="utf-8"))
            data["corrupt_as"][str(seed)] = on["mine_real"]["corrupt_as"]
            data["corrupt_by"][str(seed)] = on["mine_real"]["corrupt_by"]
    data["seeds"] = dict(sorted(data["seeds"].items(), key=lambda kv: int(kv[0])))
    write_json(f"{out}.json", data)
    Path(f"{out}.md").write_text(markdown(data), encoding="utf-8")
    click.echo(Path(f"{out}.md").read_text())


if __name__ == "__main__":
    main()
