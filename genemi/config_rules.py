"""Rules of ``params.yaml`` that join several keys, checked after every value passed its own range.

Each ``_check_*`` refuses a combination that would run but spoil the result silently: a hard-negative run
without negatives, a from-scratch learning rate on pretrained weights, a real run monitored on the synthetic
world, a benchmark whose models are not where its loader looks, a checkpoint outside the hand-placed
folder. Messages name the keys and what to set instead.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from genemi.schema import STANZA_LANG, ConfigError, EvalSource, Params, RealDataParams, stanza_processors

# The negative types the code names (the rest come from data files: HNC, ARO, bring-your-own). Copies of
# genemi.synth.negatives.NEGATIVE_TYPES and genemi.mining.rules.NEGATIVE_TYPES, kept here so that loading
# params imports neither (tests/test_bad_data.py checks that they are equal).
SYNTH_TYPES = ("attribute_swap", "attribute_replace", "object_replace", "relation_flip", "count_change")
RULE_TYPES = ("attribute", "object", "relation_pred", "obj_count")


def _names(values: tuple[str, ...], key: str, known: tuple[str, ...] | None = None, what: str = "") -> None:
    """A list of type names: no empty or repeated entry, and each one of ``known`` when given."""
    for i, v in enumerate(values):
        if not v.strip():
            raise ConfigError(f"{key}[{i}] = {v!r}: an empty name; remove it")
        if v in values[:i]:
            raise ConfigError(f"{key}[{i}] = {v!r}: listed twice; remove one")
        if known is not None and v not in known:
            import difflib

            close = difflib.get_close_matches(v, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{key}[{i}] = {v!r}: not {what} ({', '.join(known)}); {hint}fix the name")


def _check_negatives(p: Params) -> None:
    """Type names must name something, and a hard-negative run must get hard negatives: with none,
    ``hn_weight > 0`` trains plain CLIP and reports it as the hard-negative run (exit 0)."""
    _names(p.mine.types, "mine.types", SYNTH_TYPES, "a negative type the synthetic miner makes")
    _names(p.loss.negative_types, "loss.negative_types")
    _names(p.eval.hard_types, "eval.hard_types")
    _names(p.mine_real.rule_types, "mine_real.rule_types")
    wants = [k for k in ("hn_weight", "dpo_weight") if getattr(p.loss, k) > 0]
    if not wants:
        return
    key = f"loss.{wants[0]} = {getattr(p.loss, wants[0]):g}"
    if p.loss.negatives_per_sample == 0:
        raise ConfigError(
            f"{key} with loss.negatives_per_sample = 0: no hard negative reaches the loss, so the run is "
            f"plain CLIP; set loss.negatives_per_sample >= 1, or loss.{wants[0]}=0 for the control"
        )
    if p.data.source == "synthetic":  # the synthetic road trains on the negatives `mine` writes
        if not p.mine.types:
            raise ConfigError(
                f"{key} with mine.types = []: the synthetic road mines no negatives, so the run is plain "
                f"CLIP; list types in mine.types, or set loss.{wants[0]}=0 for the control"
            )
        _names(p.loss.negative_types, "loss.negative_types", p.mine.types, "a type in mine.types")


def _check_synthetic_model(p: Params) -> None:
    """The synthetic world's model reads its images as they are: their size must be its input size."""
    import json

    cfg = Path(__file__).parent / "model_configs" / f"{p.model.arch}.json"
    if p.model.tokenizer != "word" or not cfg.is_file():
        return
    size = json.loads(cfg.read_text(encoding="utf-8")).get("vision_cfg", {}).get("image_size")
    if isinstance(size, int) and p.synth.image_size != size:
        raise ConfigError(
            f"synth.image_size = {p.synth.image_size}: model.arch {p.model.arch} reads {size}-pixel images "
            f"(genemi/model_configs/{cfg.name}); set synth.image_size={size} or use an architecture of that "
            "size"
        )


GENEMI_VAL_DIR = ("raw", "eval", "genemi_val")  # where download_genemi_val writes (genemi/roads.py)


def _check_layout(p: Params) -> None:
    """The GeNeMi stand-in's exact miner and the genemi_val stand-in read each object's colour off its
    shape's pixels (genemi/mining/synthetic.py), which only the ``fill`` layout paints."""
    if p.synth.color_layout == "fill" or p.data.stand_in != "synthetic":
        return
    val = [name for name, src in p.eval.benchmarks.items()
           if any(PurePosixPath(x).parts[:3] == GENEMI_VAL_DIR for x in (src.file, src.images, src.root)
                  if x)]
    if p.data.source == "genemi" or val:
        what = "the genemi road's stand-in" if p.data.source == "genemi" else f"the {val[0]} stand-in"
        raise ConfigError(
            f"synth.color_layout = {p.synth.color_layout}: {what} (its exact miner and genemi_val) reads "
            "colours off the shapes, which only 'fill' paints; set synth.color_layout=fill"
        )


# Loaders whose reader runs a model of its own besides CLIP: what eval.benchmarks.<name>.models holds.
MODEL_LOADERS = {"aro_order": "its stanza POS models (models/stanza, the download_stanza stage's output)"}


def _check_benchmark_models(raw: dict, sources: dict[str, EvalSource]) -> None:
    """``models`` is evaluate@<name>'s third dependency in dvc.yaml: present in every entry (DVC's template
    fails without it), a model folder where the reader runs one, else the entry's own ``file`` (no new
    dependency)."""
    for name, src in sources.items():
        key = f"eval.benchmarks.{name}.models"
        if "models" not in raw[name]:
            raise ConfigError(
                f"{key}: missing; dvc.yaml's evaluate stage depends on data/<models> of every entry: "
                + (f"set it to {MODEL_LOADERS[src.loader]}" if src.loader in MODEL_LOADERS
                   else f"loader {src.loader} runs no model, so repeat its file ({src.file!r})")
            )
        if src.loader in MODEL_LOADERS and src.models in ("", src.file):
            raise ConfigError(
                f"{key} = {src.models!r}: loader {src.loader} needs {MODEL_LOADERS[src.loader]}"
            )
        if src.loader not in MODEL_LOADERS and src.models != src.file:
            raise ConfigError(
                f"{key} = {src.models!r}: loader {src.loader} runs no model; set it to its file "
                f"{src.file!r} so evaluate@{name} gains no dependency it does not read"
            )


# Where hand-placed model.pretrained checkpoints go: `base` depends on this folder in dvc.yaml, so
# replacing the file there reruns it (DVC cannot track a file named only by a params string).
PRETRAINED_DIR = "data/models/pretrained"


def pretrained_is_file(pretrained: str) -> bool:
    """Whether ``model.pretrained`` names a checkpoint file rather than an open_clip tag (tags hold no
    ``/`` and no weights-file suffix)."""
    return "/" in pretrained or "\\" in pretrained or pretrained.endswith(
        (".pt", ".pth", ".bin", ".safetensors")
    )


def _check_pretrained(pretrained: str) -> None:
    """A checkpoint file must lie in PRETRAINED_DIR (given relative to the project root), where base
    depends on it; anywhere else DVC would track only its name."""
    if not pretrained_is_file(pretrained):
        return
    path = PurePosixPath(pretrained.replace("\\", "/"))
    top = PurePosixPath(PRETRAINED_DIR)
    inside = path.parts[: len(top.parts)] == top.parts and len(path.parts) > len(top.parts)
    if path.is_absolute() or ".." in path.parts or not inside:
        raise ConfigError(
            f"model.pretrained = {pretrained!r}: put the checkpoint file in {PRETRAINED_DIR}/ (the folder "
            f"the base stage depends on) and set model.pretrained={PRETRAINED_DIR}/{path.name}"
        )


def _check_stanza(real: RealDataParams) -> None:
    """``real.stanza_*`` record the list above for dvc.lock; another value would download models that
    the caption parser or ARO Order's tagger cannot load."""
    for key, want in (("stanza_lang", STANZA_LANG), ("stanza_processors", stanza_processors())):
        if getattr(real, key) != want:
            raise ConfigError(
                f"real.{key} = {getattr(real, key)!r}: fixed by the stanza model list in genemi/config.py "
                f"(what the caption parser and ARO Order's tagger load); set it back to {want!r}"
            )


# Above every published fine-tuning rate of a pretrained CLIP (thesis 5e-6..2e-4, NegCLIP 1e-6..1e-5,
# GeNeMi 1e-6); the synthetic world's from-scratch rate (2e-3) wrecks pretrained weights within steps.
MAX_PRETRAINED_LR = 2e-4


def _check_real_run(p: Params) -> None:
    """Refuse the synthetic world's settings where they would silently spoil a real run."""
    if p.model.pretrained and p.finetune.lr > MAX_PRETRAINED_LR:
        raise ConfigError(
            f"finetune.lr={p.finetune.lr:g} with model.pretrained={p.model.pretrained!r}: a from-scratch "
            f"learning rate destroys pretrained weights (published fine-tuning used 1e-6..2e-4); "
            f"use a recipe (python -m genemi.recipe list) or set finetune.lr <= {MAX_PRETRAINED_LR:g}"
        )
    if p.model.pretrained and p.loss.replay_weight > 0:
        raise ConfigError(
            f"loss.replay_weight={p.loss.replay_weight:g} with model.pretrained={p.model.pretrained!r}: "
            "replay reads the synthetic base's pretraining pairs (data/synth/pretrain.jsonl), which a "
            "pretrained model never saw; set loss.replay_weight=0"
        )
    src = p.eval.benchmarks.get(p.eval.monitor)
    real = p.data.source != "synthetic" and p.data.stand_in == "none"  # the stand-in is the synthetic world
    if real and src is not None and src.file.startswith("negatives/"):
        raise ConfigError(
            f"eval.monitor={p.eval.monitor!r} scores the synthetic world during a data.source="
            f"{p.data.source} run; set eval.monitor=hnc_val (HNC val, as the thesis) or \"\" to turn it off"
        )
