"""Can the synthetic text tower represent "left of" when captions name either object first, from text alone?

The random-mention-order world (``synth.mention_order: random``) words one scene two ways ("a red circle
left of a blue square" = "a blue square right of a red circle"), and its relation-flip negative
(:func:`genemi.synth.negatives.propose`) describes the mirrored scene with the same words. A bag of words
cannot tell the two apart; the text tower must combine word order with the relation word (an XOR). This script
trains the text tower alone (the open_clip text transformer of ``model.arch``, random init, or the text
tower of a base model file) and measures held-out relation-flip accuracy:

* ``paraphrase``: text-only contrastive loss. A caption's positive is its other-order paraphrase (same scene,
  :func:`genemi.synth.world.caption` with the order reversed); the other rows' paraphrases and the caption's
  own flip negative are its negatives. Accuracy: ``cos(T(c), T(paraphrase)) > cos(T(c), T(flip))``.
* ``oracle_hn`` / ``oracle_clip``: the project's loss (:func:`genemi.losses.hard_negative_loss`, the committed
  ``loss.form`` and ``loss.hn_weight``; ``oracle_clip`` sets ``hn_weight=0``) between the text tower and an
  *oracle image tower*, a small MLP over one-hot (left colour, left shape, right colour, right shape) of the
  scene, which knows the layout exactly. The flip caption is the text negative, the mirrored scene the
  image negative. Accuracy: ``cos(I(scene), T(c)) > cos(I(scene), T(flip))`` (and the text-text one above).

Captions are every pair of the narrow world's colour-shape combinations (slots 0 and 2; the slot pair does not
change a caption), both layouts, both mention orders. Splits: ``train`` (80% of the unordered pairs of
non-held-out combinations, seeded), ``unseen_pairs`` (the other 20%: every word and combination seen, the
pair never), ``gen`` (pairs with a ``synth.heldout_combos`` combination, never seen in training).

``--base FILE`` adds a frozen probe of that model's text tower (zero-shot text-text flip accuracy, and a
linear readout of the left and right combination from its features) and a ``paraphrase`` run started from it.
Set-up: the committed params.yaml with ``synth.mention_order=random``; optimiser AdamW with ``finetune.lr``,
``finetune.weight_decay``, linear warm-up over ``finetune.warmup_steps`` then constant,
``finetune.grad_clip``.

    python benchmarks/text_tower_probe.py --steps 0 --steps 100 --steps 300 --seeds 0 --seeds 1
    python benchmarks/text_tower_probe.py --base models/base.safetensors --sizes 3x128
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import _setup  # this checkout's genemi; the committed params.yaml
import click

ROOT = _setup.ROOT
OUT = ROOT / "benchmarks" / "results" / "text_tower_probe.json"
OBJECTIVES = ("paraphrase", "oracle_hn", "oracle_clip")
SIZE = 48  # image size given to negatives.propose (boxes only; no image is drawn)


def pair_items(colors, shapes, heldout, split_seed: int = 0) -> dict[str, list[dict]]:
    """``{split: [item]}``; an item is a scene with its caption, paraphrase and relation-flip negative."""
    import numpy as np

    from genemi.synth import negatives, world

    combos = [(c, s) for c in colors for s in shapes]
    held = set(heldout)
    pairs = [(a, b) for i, a in enumerate(combos) for b in combos[i + 1:]]
    seen = [pr for pr in pairs if not any(f"{c} {s}" in held for c, s in pr)]
    seen_set = set(seen)
    rng = np.random.default_rng(split_seed)
    test = set(rng.permutation(len(seen))[: len(seen) // 5].tolist())
    groups = {"train": [pr for i, pr in enumerate(seen) if i not in test],
              "unseen_pairs": [pr for i, pr in enumerate(seen) if i in test],
              "gen": [pr for pr in pairs if pr not in seen_set]}
    out: dict[str, list[dict]] = {}
    for split, prs in groups.items():
        out[split] = []
        for a, b in prs:
            for left, right in ((a, b), (b, a)):
                for order in ([0, 1], [1, 0]):
                    objs = [{"color": left[0], "shape": left[1], "slot": 0, "dx": 0, "dy": 0},
                            {"color": right[0], "shape": right[1], "slot": 2, "dx": 0, "dy": 0}]
                    scene = {"kind": "pair", "objects": objs, "order": order}
                    flip = negatives.propose(scene, "relation_flip", rng, colors, shapes, SIZE)
                    out[split].append({"scene": scene, "caption": world.caption(scene),
                                       "paraphrase": world.caption(dict(scene, order=order[::-1])),
                                       "flip": flip.caption, "flip_scene": flip.scene})
    return out


def _onehot(scene: dict, colors, shapes):
    import torch

    objs = sorted(scene["objects"], key=lambda o: o["slot"])
    v = torch.zeros(2 * (len(colors) + len(shapes)))
    for k, o in enumerate(objs):
        base = k * (len(colors) + len(shapes))
        v[base + colors.index(o["color"])] = 1
        v[base + len(colors) + shapes.index(o["shape"])] = 1
    return v


class Tower:
    """The text encoder of a set-up: ``encode(tokens)`` -> L2-normalised features, ``params`` to train."""

    def __init__(self, p, size: str, seed: int, base: str | None = None):
        import open_clip
        import torch

        from genemi import models

        torch.manual_seed(seed)
        models.register_configs()
        cfg = open_clip.get_model_config(p.model.arch)
        layers, width = (int(x) for x in size.split("x"))
        if base or (layers, width) == (cfg["text_cfg"]["layers"], cfg["text_cfg"]["width"]):
            model = models.build_model(p.model)  # the project's model, its text half trains
            if base:
                models.load_weights(model, base, "--base", expect={"arch": p.model.arch,
                                                                    "tokenizer": p.model.tokenizer})
            self.fn = model.encode_text
            self.params = [prm for n, prm in model.named_parameters()
                           if not n.startswith("visual") and n != "logit_scale"]
        else:
            from open_clip.model import _build_text_tower

            text_cfg = dict(cfg["text_cfg"], layers=layers, width=width)
            tower = _build_text_tower(cfg["embed_dim"], text_cfg)
            self.fn, self.params = tower, list(tower.parameters())
        self.dim = cfg["embed_dim"]

    def encode(self, tokens):
        import torch.nn.functional as F

        return F.normalize(self.fn(tokens), dim=-1)


def _tables(items, tok, colors, shapes):
    import torch

    return {"c": tok([it["caption"] for it in items]), "p": tok([it["paraphrase"] for it in items]),
            "f": tok([it["flip"] for it in items]),
            "img": torch.stack([_onehot(it["scene"], colors, shapes) for it in items]),
            "img_f": torch.stack([_onehot(it["flip_scene"], colors, shapes) for it in items])}


def _accuracy(tower, oracle, t) -> dict:
    import torch

    with torch.no_grad():
        c, p, f = (tower.encode(t[k]) for k in ("c", "p", "f"))
        out = {"text_flip": ((c * p).sum(-1) > (c * f).sum(-1)).float().mean().item()}
        if oracle is not None:
            i = torch.nn.functional.normalize(oracle(t["img"]), dim=-1)
            out["image_flip"] = ((i * c).sum(-1) > (i * f).sum(-1)).float().mean().item()
    return {k: round(v, 4) for k, v in out.items()}


def train(p, objective: str, size: str, seed: int, steps: list[int], data: dict, tok, base=None, log=print):
    """Accuracies per split at each of ``steps`` (0 = before training)."""
    import math

    import torch

    from genemi.losses import hard_negative_loss

    tower = Tower(p, size, seed, base)
    colors, shapes = list(p.synth.colors), list(p.synth.shapes)
    tabs = {k: _tables(v, tok, colors, shapes) for k, v in data.items()}
    oracle = None
    params = list(tower.params)
    scale = torch.nn.Parameter(torch.tensor([math.log(1 / 0.07)]))
    if objective != "paraphrase":
        oracle = torch.nn.Sequential(torch.nn.Linear(tabs["train"]["img"].shape[1], 256), torch.nn.GELU(),
                                     torch.nn.Linear(256, tower.dim))
        params += list(oracle.parameters())
    ft = p.finetune
    opt = torch.optim.AdamW([*params, scale], lr=ft.lr, weight_decay=ft.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, ft.warmup_steps)))
    gen = torch.Generator().manual_seed(seed)
    tr, n = tabs["train"], len(data["train"])
    hn_weight = 0.0 if objective == "oracle_clip" else p.loss.hn_weight
    results, t0 = {}, time.perf_counter()
    for step in range(max(steps) + 1):
        if step in steps:
            results[step] = {split: _accuracy(tower, oracle, t) for split, t in tabs.items()}
            log(f"  {objective} {size} seed {seed} step {step}: "
                + ", ".join(f"{s} {v['text_flip']:.3f}" for s, v in results[step].items())
                + f" ({time.perf_counter() - t0:.0f} s)")
        if step == max(steps):
            break
        idx = torch.randperm(n, generator=gen)[: ft.batch_size]
        c, f = tower.encode(tr["c"][idx]), tower.encode(tr["f"][idx])
        if objective == "paraphrase":
            pp = tower.encode(tr["p"][idx])
            own = (c * f).sum(-1, keepdim=True)
            logits = scale.exp() * torch.cat([c @ pp.T, own], dim=1)
            logits_p = scale.exp() * torch.cat([pp @ c.T, (pp * f).sum(-1, keepdim=True)], dim=1)
            labels = torch.arange(len(idx))
            loss = (torch.nn.functional.cross_entropy(logits, labels)
                    + torch.nn.functional.cross_entropy(logits_p, labels)) / 2
        else:
            img = torch.nn.functional.normalize(oracle(tr["img"][idx]), dim=-1)
            img_f = torch.nn.functional.normalize(oracle(tr["img_f"][idx]), dim=-1)
            loss = hard_negative_loss(img, c, scale, neg_text_features=f[:, None], hn_weight=hn_weight,
                                      neg_image_features=img_f[:, None] if p.loss.image_negatives else None,
                                      form=p.loss.form)["loss"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, ft.grad_clip)
        opt.step()
        sched.step()
    return results, round(time.perf_counter() - t0, 1)


def frozen_probe(p, base: str, data: dict, tok, seed: int = 0, steps: int = 1000) -> dict:
    """Zero-shot text-text flip accuracy of ``base``'s text tower, and a linear readout (softmax over the
    combinations, for the left and for the right object) from its frozen, standardised features:
    ``linear_layout`` = both objects right in their places, ``linear_objects`` = both objects right in either
    place (what a bag of words could give); their ratio is how often the order is read when the objects
    are."""
    import torch

    tower = Tower(p, "0x0", seed, base)
    colors, shapes = list(p.synth.colors), list(p.synth.shapes)
    combos = [f"{c} {s}" for c in colors for s in shapes]
    feats, labels, out = {}, {}, {}
    for split, items in data.items():
        t = _tables(items, tok, colors, shapes)
        out[split] = _accuracy(tower, None, t)
        with torch.no_grad():
            feats[split] = tower.fn(t["c"])
        labels[split] = torch.tensor([[combos.index(" ".join((o["color"], o["shape"])))
                                       for o in sorted(it["scene"]["objects"], key=lambda o: o["slot"])]
                                      for it in items])
    mu, sd = feats["train"].mean(0), feats["train"].std(0) + 1e-6
    torch.manual_seed(seed)
    head = torch.nn.Linear(feats["train"].shape[1], 2 * len(combos))
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(steps):
        logit = head((feats["train"] - mu) / sd).reshape(-1, len(combos))
        loss = torch.nn.functional.cross_entropy(logit, labels["train"].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        for split in data:
            pred = head((feats[split] - mu) / sd).reshape(-1, 2, len(combos)).argmax(-1)
            truth = labels[split]
            out[split]["linear_layout"] = round((pred == truth).all(-1).float().mean().item(), 4)
            same = (pred.sort(-1).values == truth.sort(-1).values).all(-1)
            out[split]["linear_objects"] = round(same.float().mean().item(), 4)
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--steps", "steps", type=int, multiple=True, default=(0, 100, 300, 1000), show_default=True,
              help="Training steps at which accuracy is measured (repeat the option).")
@click.option("--seeds", type=int, multiple=True, default=(0,), show_default=True, help="Seeds (repeat).")
@click.option("--sizes", multiple=True, default=("3x128", "1x128", "3x64"), show_default=True,
              help="Text tower layers x width (repeat); the committed arch's own size builds its full model.")
@click.option("--objectives", multiple=True, default=OBJECTIVES, show_default=True,
              type=click.Choice(OBJECTIVES), help="Training objectives (repeat).")
@click.option("--base", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A base model file (safetensors): adds a frozen probe and a paraphrase run from its "
              "text tower.")
@click.option("--frozen-only", is_flag=True, help="With --base: only the frozen probe, no training runs.")
@click.option("--threads", type=int, default=1, show_default=True, help="torch threads.")
@click.option("--label", default="default", show_default=True,
              help="Key of this invocation's record in --out (other labels there are kept).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=OUT, show_default=True)
def main(steps, seeds, sizes, objectives, base, frozen_only, threads, label, out):
    """Train the synthetic text tower alone on random-mention-order captions; held-out relation-flip
    accuracy."""
    import torch

    from genemi import models

    torch.set_num_threads(threads)
    for s in sizes:
        if len(s.split("x")) != 2 or not all(x.isdigit() and int(x) > 0 for x in s.split("x")):
            raise click.BadParameter(f"{s!r}: use LAYERSxWIDTH, e.g. 3x128", param_hint="--sizes")
    p = _setup.shipped_params({"synth.mention_order": "random"})
    tok = models.make_tokenizer(p.model)
    data = pair_items(list(p.synth.colors), list(p.synth.shapes), list(p.synth.heldout_combos))
    steps = sorted(set(steps))
    record = {"params": _setup.params_source(), "set_up": "synth.mention_order=random",
              "captions": {k: len(v) for k, v in data.items()}, "threads": threads,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                         f"load {os.getloadavg()[0]:.2f} at start",
              "runs": []}
    if frozen_only and not base:
        raise click.UsageError("--frozen-only needs --base FILE")
    runs = [] if frozen_only else [(o, s, seed, None) for seed in seeds for s in sizes for o in objectives]
    if base:
        record["frozen_base"] = frozen_probe(p, base, data, tok)
        click.echo(f"frozen base: {record['frozen_base']}")
        _save(out, label, record)
        runs += [] if frozen_only else [("paraphrase", "base", seed, base) for seed in seeds]
    for objective, size, seed, b in runs:
        res, secs = train(p, objective, "0x0" if b else size, seed, steps, data, tok, base=b, log=click.echo)
        record["runs"].append({"objective": objective, "size": size, "seed": seed, "seconds": secs,
                               "accuracy": res})
        _save(out, label, record)  # after every run: partial results survive a stop
    click.echo(f"wrote {label!r} to {out}")


def _save(out: Path, label: str, record: dict) -> None:
    """Set ``out[label] = record`` under a lock (invocations may run side by side), written atomically."""
    import fcntl
    import hashlib
    import tempfile

    from genemi.io import write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"text_tower_probe.{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            doc = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
        except json.JSONDecodeError as e:
            raise SystemExit(f"Error: {out} is not JSON ({e}); move it away and rerun") from None
        doc[label] = record
        write_text(out, json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
