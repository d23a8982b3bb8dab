"""``params.yaml`` -> frozen dataclasses, checked before any work starts.

Every key in ``params.yaml`` maps to a field here. An unknown key, a missing key or a
value of the wrong type raises :class:`ConfigError` naming the dotted key, so a typo in
``dvc exp run -S loss.hn_wieght=0.3`` fails in a second instead of after training.
Defaults live in ``params.yaml`` (not here) so ``dvc params diff`` shows everything.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A params file does not match the schema; the message names the key."""


# ----------------------------------------------------------------------------------------- stanza models
# The one list of stanza models: the download_stanza stage fetches their union, and every stanza.Pipeline
# asks for its own user's share. Code, not a knob: the processors are fixed by the code that reads their
# output, the language by the English lexicon and ARO Order's PTB tags. real.stanza_lang and
# real.stanza_processors in params.yaml only record them for dvc.lock, and must equal them (checked on load).

STANZA_LANG = "en"
# What each user's stanza.Pipeline loads, in stanza's dependency order.
STANZA_USERS: dict[str, tuple[str, ...]] = {
    "parser": ("tokenize", "pos", "lemma", "depparse", "constituency"),  # mining: rewrites, rule negatives
    "aro_order": ("tokenize", "pos"),  # ARO Order: PTB xpos of the nouns/adjectives it shuffles
}
# The union, in first-use order: what download_stanza fetches.
STANZA_PROCESSORS: tuple[str, ...] = tuple(dict.fromkeys(p for ps in STANZA_USERS.values() for p in ps))


def stanza_processors(user: str | None = None) -> str:
    """The ``processors=`` string of ``user``'s ``stanza.Pipeline`` (``"tokenize,pos"``); with no user,
    the union that ``stanza.download`` fetches."""
    if user is None:
        return ",".join(STANZA_PROCESSORS)
    if user not in STANZA_USERS:
        raise KeyError(f"no stanza user {user!r}; known: {sorted(STANZA_USERS)}")
    return ",".join(STANZA_USERS[user])


@dataclass(frozen=True)
class DataParams:
    source: Literal["synthetic", "hnc", "genemi"]  # which training data feeds the pipeline
    hnc_subset: float  # fraction of HNC train used when source == hnc (1.0 = all)
    stand_in: Literal["none", "synthetic"]  # synthetic: download stages write the synthetic world in the
    # published formats instead of downloading (genemi/data/standin.py); none: the real files
    stand_in_size: int  # stand-in scenes of each road's largest split; its val and test get a fifth each
    workers: int  # processes decoding images for training and evaluation (-1 = auto, 0 = in the main process)


@dataclass(frozen=True)
class SynthParams:
    image_size: int
    n_train: int
    n_test: int
    n_gen: int
    colors: tuple[str, ...]
    shapes: tuple[str, ...]
    max_objects: int
    heldout_combos: tuple[str, ...]  # "colour shape" pairs kept out of train (generalisation split)
    jitter: int  # max pixel jitter of an object's centre inside its grid cell
    mention_order: Literal["left_first", "random"]  # which object of a pair its caption names first


@dataclass(frozen=True)
class MineParams:
    types: tuple[str, ...]  # negative types to mine, in order
    max_per_type: int  # at most this many negatives of each type per record


@dataclass(frozen=True)
class ModelParams:
    arch: str  # open_clip architecture name (ours live in genemi/model_configs/)
    pretrained: str  # open_clip pretrained tag, or a checkpoint file under PRETRAINED_DIR; "" = random init
    tokenizer: Literal["word", "open_clip"]  # "word": the synthetic world's small vocabulary


@dataclass(frozen=True)
class OptimParams:
    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    grad_clip: float
    trainable: Literal["full", "vision", "text", "last_blocks"]  # what trains (thesis finetune_mode)
    last_blocks: int  # with trainable=last_blocks: this many final blocks of each tower
    checkpoint_every: int  # optimizer steps between resumable checkpoints (0 = none)


_KEEP = object()


def term(plain: Any = _KEEP) -> Any:
    """A loss field; ``plain`` is its value in the plain CLIP loss of the base run (:meth:`LossParams.plain`).

    Every loss field declares one (``_KEEP``: the field does not matter once the terms are off), so a new
    term is off in the base run by construction.
    """
    return dataclasses.field(metadata={"plain": plain})


@dataclass(frozen=True)
class LossParams:
    hn_weight: float = term(0.0)  # weight of the hard-negative term (0 = plain CLIP control)
    form: Literal["additive", "in_softmax"] = term("additive")
    image_negatives: bool = term(False)  # also use edited images as negatives for text->image
    negatives_per_sample: int = term(0)  # hard negatives drawn per training pair
    negative_types: tuple[str, ...] = term()  # mined types that train (empty = all); evaluation scores all
    contrastive_weight: float = term(1.0)  # weight of the CLIP / hard-negative term (0 = pure DPO)
    temperature: float = term(0.0)  # fixed softmax temperature tau (thesis Jan: 0.07); 0 = learnable
    l2_weight: float = term(0.0)  # lambda of sum ||theta - theta_0||^2 over trainable params (0 = off)
    kl_weight: float = term(0.0)  # weight of KL(teacher || student) over [positives | negatives] (0 = off)
    kl_temperature: float = term()
    dpo_weight: float = term(0.0)  # weight of the DPO term on own negatives (0 = off)
    dpo_beta: float = term()
    dpo_reference: bool = term()  # DPO against the frozen teacher (true) or the thesis's "noref" form

    def plain(self) -> LossParams:
        """The plain CLIP loss with a learnable temperature (the base run): every term at its off value."""
        off = {f.name: f.metadata["plain"] for f in dataclasses.fields(self) if f.metadata["plain"] is not _KEEP}
        return dataclasses.replace(self, **off)


@dataclass(frozen=True)
class BatchingParams:
    """How fine-tuning batches are drawn from the training records (GeNeMi modes)."""

    mode: Literal["records", "allinone", "item_based", "image_based"]  # records = uniform shuffle of pairs
    variations_per_group: int  # GeNeMi var_per_item: variations taken from each group per step
    regular_per_group: int  # GeNeMi coco_per_item: regular pairs mixed in per group
    regular_sources: tuple[str, ...]  # record sources that are regular pairs, not variations
    score_eps: float  # GeNeMi prob_eps in p ~ itm - min(itm) + eps
    dedupe_images: bool  # thesis deduplicate_and_refill: one image at most once per global batch
    negative_rows: bool  # negatives with an edited image enter the batch as rows (no extra encoding)


@dataclass(frozen=True)
class DeepSpeedParams:
    zero_stage: int
    precision: Literal["fp32", "bf16", "fp16"]
    grad_accum: int


@dataclass(frozen=True)
class EvalSource:
    """Where one benchmark's files live (paths relative to the stage's ``--data`` folder, or absolute)."""

    loader: Literal[
        "manifest", "byo", "hnc", "coco_neg", "sugarcrepe", "aro_relation", "aro_attribution", "aro_order",
        "winoground", "genemi_val", "karpathy_retrieval", "image_folder",
    ]  # the format reader (docs/benchmarks.md)
    file: str  # annotation file (or folder: sugarcrepe, image_folder); a DVC dependency of evaluate@<name>
    images: str  # folder holding its images; the other DVC dependency of evaluate@<name>
    subset: float  # fraction of items kept, drawn by a hash of the item id (1.0 = all)
    root: str = ""  # folder the annotation's image paths start from, when not `images` (genemi manifests: ".")
    # Folder of the models its reader runs besides CLIP (ARO Order: stanza POS models); the third DVC
    # dependency of evaluate@<name>. In params.yaml every entry has it, because dvc.yaml's templated stage
    # names data/${item.models} for each: a reader that runs no model repeats its `file` there.
    models: str = ""

    @property
    def image_root(self) -> str:
        return self.root or self.images


@dataclass(frozen=True)
class EvalParams:
    benchmarks: dict[str, EvalSource]  # evaluated benchmarks (one evaluate@<name> stage each) -> their files
    batch_size: int
    seed: int  # eval-side randomness (subsets, ARO Order shuffles, derangement, bootstrap)
    bootstrap: int  # cluster-bootstrap resamples for 95% intervals (0 = none)
    acc_taus: tuple[float, ...]  # thresholds of the thesis's Acc@tau (cos+/cos- >= tau)
    retrieval_ks: tuple[int, ...]  # K of the retrieval R@K
    hard_types: tuple[str, ...]  # negative types averaged into the headline's hard_text (genemi/headline.py)
    zeroshot_templates: tuple[str, ...]  # prompts of zero-shot classification, "{}" = class name
    monitor: str  # benchmark scored during fine-tuning for the val/* curves ("" = none)
    monitor_every: int  # fine-tuning steps between those scorings
    monitor_records: int  # its first records scored (a fixed subset keeps it cheap)


@dataclass(frozen=True)
class ModelSource:
    """Where one pretrained checkpoint comes from: exactly one of ``url`` (one file) or ``repo`` (HF snapshot)."""

    url: str  # direct URL of a single checkpoint file; "" when `repo` is used
    repo: str  # Hugging Face model repo id, fetched as a snapshot; "" when `url` is used
    revision: str  # branch, tag or commit of `repo`; a commit pins the exact files
    patterns: tuple[str, ...]  # glob patterns of repo files to fetch; [] = every file


@dataclass(frozen=True)
class RealDataParams:
    """Real-data sources (used only when ``data.source == hnc``) and download behaviour."""

    hnc_repo: str  # Hugging Face dataset with hnc_clean_strict_{train,val,test}.json
    hnc_revision: str  # branch/tag/commit of hnc_repo
    hnc_val_subset: float  # fraction of HNC val images kept (by image-id hash); the thesis used 1%
    subset_seed: int  # seed of the HNC subsets; separate from `seed` so a training seed sweep keeps the data
    gqa_images_url: str
    coco_images_url: str  # COCO 2014 val images
    coco_annotations_url: str  # COCO 2014 train/val annotations (captions_val2014.json)
    karpathy_url: str  # Karpathy splits (dataset_coco.json)
    coco_splits: tuple[str, ...]  # Karpathy splits written to the COCO manifest
    stanza_lang: str  # a record, not a knob: must equal STANZA_LANG (checked on load)
    stanza_processors: str  # a record, not a knob: must equal stanza_processors() (checked on load)
    models: dict[str, ModelSource]  # generative-mining checkpoints, one download stage each
    timeout_s: float  # connect/read timeout; without network a download fails after at most this
    retries: int  # resumptions after a cut connection within one run
    reserve_gb: float  # free disk that must remain after extracting an archive


@dataclass(frozen=True)
class MineRealParams:
    """Generative negative mining with the real models (GeNeMi): tag -> ground -> segment ->
    inpaint -> filter. Mines on the genemi road only (``data.source: genemi``; ``genemi.roads``). Model
    fields take a local folder/file (the download stages' outputs, so DVC tracks them) or a Hugging Face id
    (resolved offline from its cache, untracked)."""

    backend: Literal["pretrained", "tiny", "synthetic"]  # tiny = random-init models, a plumbing smoke test;
    # synthetic = the world's exact models for the synthetic stand-in's images (genemi/mining/synthetic.py)
    device: Literal["cpu", "cuda"]  # cuda picks the rank's GPU from LOCAL_RANK
    stanza_dir: str  # stanza models folder; "" = rewrite captions without a parser
    tagger: Literal["caption", "grounding"]  # tags from the caption's nouns, or GD over the COCO vocabulary
    grounding_dino: str
    sam_checkpoint: str
    sam_model_type: str
    sd_inpaint: str
    sd_dtype: Literal["float32", "float16", "bfloat16"]
    blip_itm: str
    portrayer: str  # local causal LM proposing portrayals; "" = lexicon portrayals (offline, rule-based)
    box_threshold: float
    text_threshold: float
    nms_iou: float
    sd_steps: int
    sd_guidance: float
    sd_window: int  # crop side around the mask, multiple of 8
    items_per_image: int  # object tags edited per image
    variations_per_item: int
    itm_min: float  # keep if mean BLIP ITM "match" logit > this
    iva_min: float  # keep if image-variation area (%) > this
    iva_pixel_std: float  # a pixel "varies" if its std across variations exceeds this
    filter: bool  # false: the merge also keeps what itm_min/iva_min reject (their scores still recorded)
    corrupt_fraction: float  # share of variations inpainted with another portrayal than their caption names
    rule_types: tuple[str, ...]  # rule-based text negatives added to each variation caption
    rule_max_per_type: int
    max_images: int  # 0 = every image of the input manifest
    contact_sheets: int  # how many origin images get a contact sheet


@dataclass(frozen=True)
class Params:
    seed: int
    threads: int  # torch intra-op threads (0 = leave torch's default)
    data: DataParams
    synth: SynthParams
    mine: MineParams
    model: ModelParams
    base: OptimParams
    finetune: OptimParams
    loss: LossParams
    batching: BatchingParams
    deepspeed: DeepSpeedParams
    eval: EvalParams
    real: RealDataParams
    mine_real: MineRealParams


# A number in exponent form without a dot ("5e-06"): a float in YAML 1.2 (DVC), a string in YAML 1.1 (PyYAML)
_EXP_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
# ------------------------------------------------------------------------------------------ value ranges


@dataclass(frozen=True)
class Range:
    """The valid values of one numeric knob: ``lo``/``hi`` bounds (None = unbounded), each inclusive
    unless ``*_open``; ``multiple_of`` for sizes that must tile. Tuples are checked element by element."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    multiple_of: int = 0

    def ok(self, v: float) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return not (self.multiple_of and v % self.multiple_of)

    def __str__(self) -> str:
        lo = None if self.lo is None else f"{self.lo:g}"
        hi = None if self.hi is None else f"{self.hi:g}"
        if lo is not None and hi is not None:
            text = f"must be in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
        elif lo is not None:
            text = f"must be {'>' if self.lo_open else '>='} {lo}"
        elif hi is not None:
            text = f"must be {'<' if self.hi_open else '<='} {hi}"
        else:
            text = "any number"
        return text + (f" and a multiple of {self.multiple_of}" if self.multiple_of else "")


def _at_least(lo: float) -> Range:
    return Range(lo=lo)


_POSITIVE = Range(lo=0, lo_open=True)  # > 0
_FRACTION = Range(lo=0, hi=1, lo_open=True)  # (0, 1]: a subset must keep something
_UNIT = Range(lo=0, hi=1)  # [0, 1]: probabilities, thresholds, IoU
_ANY = Range()  # declared unbounded on purpose (e.g. a raw logit threshold)

# Every int/float field of every params dataclass has an entry here (tests/test_config.py checks that
# none is missing), checked at load so `-S finetune.steps=-5` fails before any work, naming the key.
RANGES: dict[type, dict[str, Range]] = {
    Params: {"seed": _at_least(0), "threads": _at_least(0)},
    DataParams: {
        "hnc_subset": _FRACTION, "workers": _at_least(-1),
        "stand_in_size": Range(lo=1, hi=1_000_000),  # stand-in GQA/COCO ids are unique up to 10**6 scenes
    },
    SynthParams: {
        "image_size": _at_least(16), "n_train": _at_least(1), "n_test": _at_least(1), "n_gen": _at_least(1),
        "max_objects": Range(lo=1, hi=3), "jitter": _at_least(0),  # 3 slots per scene (genemi/synth/world.py)
    },
    MineParams: {"max_per_type": _at_least(1)},
    OptimParams: {
        "steps": _at_least(1), "batch_size": _at_least(1), "lr": _POSITIVE, "weight_decay": _at_least(0),
        "warmup_steps": _at_least(0), "grad_clip": _at_least(0), "last_blocks": _at_least(1),
        "checkpoint_every": _at_least(0),
    },
    LossParams: {
        "hn_weight": _at_least(0), "negatives_per_sample": _at_least(0), "contrastive_weight": _at_least(0),
        "temperature": _at_least(0), "l2_weight": _at_least(0), "kl_weight": _at_least(0),
        "kl_temperature": _POSITIVE, "dpo_weight": _at_least(0), "dpo_beta": _POSITIVE,
    },
    BatchingParams: {
        "variations_per_group": _at_least(1), "regular_per_group": _at_least(0), "score_eps": _POSITIVE,
    },
    DeepSpeedParams: {"zero_stage": Range(lo=0, hi=3), "grad_accum": _at_least(1)},
    EvalSource: {"subset": _FRACTION},
    EvalParams: {
        "batch_size": _at_least(1), "seed": _at_least(0), "bootstrap": _at_least(0), "acc_taus": _POSITIVE,
        "retrieval_ks": _at_least(1), "monitor_every": _at_least(0), "monitor_records": _at_least(1),
    },
    ModelSource: {},
    RealDataParams: {
        "hnc_val_subset": _FRACTION, "subset_seed": _at_least(0), "timeout_s": _POSITIVE,
        "retries": _at_least(0), "reserve_gb": _at_least(0),
    },
    MineRealParams: {
        "box_threshold": _UNIT, "text_threshold": _UNIT, "nms_iou": _UNIT, "sd_steps": _at_least(1),
        "sd_guidance": _at_least(0), "sd_window": Range(lo=64, multiple_of=8),
        "items_per_image": _at_least(1),
        "variations_per_item": _at_least(2),  # the image-variation area needs >= 2 variations
        "itm_min": _ANY, "iva_min": Range(lo=0, hi=100), "iva_pixel_std": _at_least(0),
        "corrupt_fraction": _UNIT,
        "rule_max_per_type": _at_least(0), "max_images": _at_least(0), "contact_sheets": _at_least(0),
    },
}


def _check_range(value: Any, rng: Range, key: str) -> None:
    for i, v in enumerate(value) if isinstance(value, tuple) else [(None, value)]:
        where = key if i is None else f"{key}[{i}]"
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{where} = {v!r}: must be a finite number ({rng})")
        if not rng.ok(v):
            raise ConfigError(f"{where} = {v!r}: {rng}")


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping (section), got {value!r}")
        return _build(tp, value, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {list(args)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for a in args:
            if a is type(None) and value is None:
                return None
            try:
                return _convert(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: {value!r} matches none of {args}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = args[0]
        return tuple(_convert(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = args
        return {_convert(k, kt, key): _convert(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _EXP_FLOAT.fullmatch(value.strip()):
            value = float(value)  # `dvc exp run -S lr=5e-6` writes 5e-06, which YAML 1.1 reads as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")


def _build(cls: type, raw: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    where = f"{prefix}." if prefix else ""
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s): {', '.join(where + k for k in unknown)}")
    optional = {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    missing = [n for n in names if n not in raw and n not in optional]
    if missing:
        raise ConfigError(f"missing key(s): {', '.join(where + k for k in missing)}")
    values = {n: _convert(raw[n], hints[n], where + n) for n in names if n in raw}
    for n, rng in RANGES.get(cls, {}).items():
        _check_range(values[n], rng, where + n)
    return cls(**values)


def params_from_dict(raw: dict) -> Params:
    """Validate a parsed params mapping; raises :class:`ConfigError` naming the key."""
    if not isinstance(raw, dict):
        raise ConfigError("params: top level must be a mapping")
    p = _build(Params, raw, "")
    for name in p.eval.benchmarks:  # a DVC stage name (evaluate@<name>) and a file name (metrics/eval/<name>.json)
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ConfigError(f"eval.benchmarks.{name}: a benchmark name may hold only letters, digits and _")
    if p.eval.monitor and p.eval.monitor not in p.eval.benchmarks:
        raise ConfigError(
            f"eval.monitor = {p.eval.monitor!r}: must be \"\" (off) or one of eval.benchmarks "
            f"({', '.join(sorted(p.eval.benchmarks))}); add it there (docs/benchmarks.md has every entry)"
        )
    if p.batching.negative_rows and p.loss.form == "in_softmax":
        raise ConfigError(
            "batching.negative_rows: the in_softmax form adds every negative as an extra column, but "
            "negative rows already are columns of the batch; use loss.form=additive or negative_rows=false"
        )
    _check_real_run(p)
    _check_stanza(p.real)
    _check_benchmark_models(raw["eval"]["benchmarks"], p.eval.benchmarks)
    _check_pretrained(p.model.pretrained)
    return p


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
    src = p.eval.benchmarks.get(p.eval.monitor)
    real = p.data.source != "synthetic" and p.data.stand_in == "none"  # the stand-in is the synthetic world
    if real and src is not None and src.file.startswith("negatives/"):
        raise ConfigError(
            f"eval.monitor={p.eval.monitor!r} scores the synthetic world during a data.source="
            f"{p.data.source} run; set eval.monitor=hnc_val (HNC val, as the thesis) or \"\" to turn it off"
        )


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load and validate ``params.yaml``; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (run from the project root or pass --params)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    try:
        return params_from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def to_dict(obj: Any) -> Any:
    """Dataclass (possibly nested) -> plain JSON-able dict; tuples become lists."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
