"""The params schema: one frozen dataclass per ``params.yaml`` section, and :class:`Params` holding them.

Every key in ``params.yaml`` maps to a field here, with its type; the values themselves (defaults included)
live in ``params.yaml``, so ``dvc params diff`` shows everything that shaped a result. This module holds
only the shapes: :mod:`genemi.config_values` converts and range-checks each value, :mod:`genemi.config_rules`
checks the rules that join several keys, and :mod:`genemi.config` (``load_params``) ties them together.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal


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
    stand_in_palette: Literal["narrow", "broad"]  # the colours and shapes stand-in scenes are drawn from
    stand_in_coco_colors: float  # share of colour words the COCO stand-in's captions keep (1.0: every one)
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
    color_layout: Literal["fill", "swatch"]  # fill: shapes painted in their colour; swatch: colour apart, below
    # the broad pretraining world: colors + broad_colors, shapes + broad_shapes, captions in broad_styles
    n_pretrain: int  # scenes the base model pretrains on
    n_broad: int  # retention scenes (synth_broad): every object has a broad-only colour or shape
    broad_colors: tuple[str, ...]  # colours only the pretraining world shows
    broad_shapes: tuple[str, ...]  # shapes only the pretraining world shows
    broad_styles: tuple[str, ...]  # caption wordings of the pretraining world (genemi.synth.world.STYLES)


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
    replay_weight: float = term(0.0)  # weight of plain CLIP on a batch of the base's training pairs (0 = off)
    replay_batch: int = term()  # replayed pairs per optimizer step, all ranks together
    replay_pairs: int = term()  # the fixed sample of those pairs that is replayed (0 = all of them)

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
        "winoground", "genemi_val", "karpathy_retrieval", "image_folder", "valse", "vl_checklist", "whatsup",
        "whatsup_qa", "sugarcrepe_pp", "eqben",
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
    corrupt_fraction: float  # share of variations whose image is not what their caption names (failed edits)
    corrupt_as: Literal["unchanged", "portrayal", "misplaced"]  # what it shows (genemi/mining/corrupt.py)
    corrupt_by: Literal["variation", "prompt", "color"]  # which fail: per variation, prompt, or colour
    rule_types: tuple[str, ...]  # rule-based text negatives added to each variation caption
    rule_max_per_type: int
    max_images: int  # 0 = every image of the input manifest
    contact_sheets: int  # how many origin images get a contact sheet


@dataclass(frozen=True)
class WiseParams:
    """WiSE-FT: the base and fine-tuned weights mixed (genemi/wise.py), each mix scored on eval.benchmarks."""

    alphas: tuple[float, ...]  # a of (1 - a) * base + a * fine-tuned; 0 = base, 1 = fine-tuned ([] = none)


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
    wise: WiseParams
    real: RealDataParams
    mine_real: MineRealParams


def to_dict(obj: Any) -> Any:
    """Dataclass (possibly nested) -> plain JSON-able dict; tuples become lists."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
