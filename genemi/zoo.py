"""Models from outside the pipeline, as a :class:`genemi.clip.Clip`: what `genemi eval` and
`genemi compare` score.

A model is named by a spec (:func:`parse_spec`):

* ``ARCH:TAG`` -- an open_clip architecture and pretrained tag (``ViT-B-32:laion2b_s34b_b79k``), read
  from the open_clip / Hugging Face cache (:func:`genemi.pretrained.load_pretrained`: offline, a tag
  whose weights are not cached is an error saying where to put them);
* ``ARCH:FILE`` -- an architecture and a checkpoint file: an open_clip or OpenAI-layout state dict as
  safetensors, or ``.pt`` / ``.bin`` / ``.pth`` read with ``torch.load(weights_only=True)`` (a plain
  state dict, or ``{"state_dict": ...}`` as open_clip's training saves it). Python objects in a pickle
  and TorchScript archives are refused, never unpickled. ``ARCH`` may also be an open_clip model
  config ``.json`` file (a custom architecture);
* ``FILE`` -- weights genemi wrote (``data/models/*.safetensors``): the architecture and tokenizer are
  read from the file's metadata;
* ``FOLDER`` -- a transformers ``CLIPModel`` folder (``config.json``, weights, tokenizer files and
  ``preprocessor_config.json``), with its own tokenizer and image processor;

each optionally prefixed with ``NAME=`` (the model's name in the metrics: ``base=...``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from genemi.config import ModelParams

PRECISIONS = ("fp32", "fp16", "bf16", "amp")
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
# keys of OpenAI's TorchScript state dicts that are not weights (open_clip drops them too)
_OPENAI_EXTRA = {"input_resolution", "context_length", "vocab_size"}


@dataclass(frozen=True)
class ModelSpec:
    """One model to score: ``kind`` is ``tag``, ``file``, ``genemi`` (weights with genemi metadata) or
    ``hf`` (a transformers folder); ``source`` the tag, file or folder."""

    name: str
    kind: str
    arch: str
    source: str
    tokenizer: str  # "word" (the synthetic world), "open_clip" or "hf"

    def describe(self) -> str:
        return self.source if self.kind in ("genemi", "hf") else f"{self.arch}:{self.source}"


def genemi_meta(path: Path) -> dict:
    """The ``genemi`` metadata of a safetensors file (``{}`` for other files or none)."""
    if path.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("genemi", "{}"))
    except Exception as e:  # a damaged header: say which file
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from e


def _arch(arch: str) -> str:
    """An architecture name open_clip knows; a ``.json`` file is registered as one (its stem)."""
    import open_clip

    from genemi.models import register_configs

    register_configs()
    if arch.endswith(".json"):
        path = Path(arch)
        if not path.is_file():
            raise FileNotFoundError(f"{arch}: model config file not found")
        open_clip.add_model_config(path)
        arch = path.stem
    if arch not in open_clip.list_models():
        near = [m for m in open_clip.list_models() if arch.lower().split("-")[0] in m.lower()][:8]
        raise ValueError(
            f'unknown architecture {arch!r}; `python -c "import open_clip; print(open_clip.list_models())"` '
            f"lists them{f' (e.g. {near})' if near else ''}, or give an open_clip model config .json file"
        )
    return arch


def default_tokenizer(arch: str) -> str:
    """``word`` for genemi's own (synthetic-world) architectures, else open_clip's tokenizer."""
    from genemi.models import CONFIG_DIR

    return "word" if (CONFIG_DIR / f"{arch}.json").is_file() else "open_clip"


def parse_spec(text: str, name: str | None = None, tokenizer: str | None = None) -> ModelSpec:
    """A :class:`ModelSpec` from ``[NAME=]ARCH:TAG|ARCH:FILE|FILE|FOLDER`` (module docstring).

    ``name`` is the default name (else derived from the spec); ``tokenizer`` overrides the choice of
    tokenizer (``word`` / ``open_clip``) for open_clip models.
    """
    head, eq, rest = text.partition("=")
    if eq and _NAME.match(head) and not Path(text).exists():
        name, text = head, rest
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path}: a folder is read as a transformers CLIPModel folder, but it has no config.json; "
                "give ARCH:FILE for an open_clip checkpoint"
            )
        return ModelSpec(name or path.name, "hf", "", str(path), "hf")
    if path.is_file():
        meta = genemi_meta(path)
        if not meta.get("arch"):
            raise ValueError(
                f"{path}: the file does not say its architecture (no genemi metadata); give it as "
                f"ARCH:{text} (e.g. ViT-B-32:{text}, or --model ARCH with --checkpoint)"
            )
        arch = _arch(meta["arch"])
        tok = tokenizer or meta.get("tokenizer") or default_tokenizer(arch)
        return ModelSpec(name or path.stem, "genemi", arch, str(path), tok)
    arch, colon, source = text.partition(":")
    if not colon or not source:
        raise ValueError(
            f"model {text!r}: give ARCH:TAG (e.g. ViT-B-32-quickgelu:openai), ARCH:CHECKPOINT_FILE, a genemi "
            "weights file or a transformers CLIPModel folder (no file or folder of that name exists)"
        )
    arch = _arch(arch)
    from genemi.config import pretrained_is_file

    tok = tokenizer or default_tokenizer(arch)
    if pretrained_is_file(source) or Path(source).expanduser().exists():
        if not Path(source).expanduser().is_file():
            raise FileNotFoundError(f"{source}: checkpoint file of model {text!r} not found")
        return ModelSpec(name or Path(source).stem, "file", arch, str(Path(source).expanduser()), tok)
    return ModelSpec(name or f"{arch}-{source}", "tag", arch, source, tok)


def unique_names(specs: list[ModelSpec]) -> list[ModelSpec]:
    """Check the names: usable in metric keys (no ``/``), and distinct (a repeated default gets ``-2``...)."""
    import dataclasses

    out, seen = [], set()
    for s in specs:
        if not _NAME.match(s.name):
            raise ValueError(f"model name {s.name!r}: use letters, digits and . _ + - only (NAME=SPEC)")
        name, i = s.name, 2
        while name in seen:
            name, i = f"{s.name}-{i}", i + 1
        seen.add(name)
        out.append(dataclasses.replace(s, name=name))
    return out


def load_state_dict(model: torch.nn.Module, path: Path) -> None:
    """Weights of ``path`` into the open_clip ``model``, safely (module docstring); a file that does not
    fit the architecture is an error listing the first missing and unexpected keys."""
    import open_clip

    if path.suffix not in (".safetensors",) and _is_torchscript(path):
        raise ValueError(
            f"{path}: a TorchScript archive (OpenAI's released .pt files are), which genemi does not load "
            "(loading it runs code from the file). Use the open_clip tag instead (e.g. "
            "ViT-B-32-quickgelu:openai "
            'from the cache), or, if you trust the file, save its state dict once: python -c "import torch; '
            f"torch.save(torch.jit.load('{path}', map_location='cpu').state_dict(), 'state_dict.pt')\""
        )
    try:
        result = open_clip.load_checkpoint(model, str(path), strict=False, weights_only=True)
    except Exception as e:
        if "weights_only" in str(e) or "Unsupported global" in str(e) or "WeightsUnpickler" in str(e):
            raise ValueError(
                f"{path}: holds Python objects besides tensors, which a safe load refuses "
                f"({str(e).splitlines()[0]}). "
                "Save the weights alone (torch.save(model.state_dict(), ...) or safetensors)"
            ) from e
        if isinstance(e, RuntimeError) and "size mismatch" in str(e):
            raise ValueError(
                f"{path}: weights do not fit the architecture: {str(e).splitlines()[-1].strip()}"
            ) from e
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    missing = list(result.missing_keys) if result else []
    unexpected = [k for k in (result.unexpected_keys if result else []) if k not in _OPENAI_EXTRA]
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not match the architecture ({len(missing)} missing, e.g. {missing[:3]}; "
            f"{len(unexpected)} unexpected, e.g. {unexpected[:3]}); give the architecture the checkpoint "
            "was trained with (ARCH:FILE)"
        )


def _is_torchscript(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


class _Autocast(torch.nn.Module):
    """An open_clip-like module run under ``torch.autocast`` (``--precision amp``): fp16 on CUDA, bf16
    on the CPU; the weights stay fp32."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def _ctx(self):
        dev = next(self.inner.parameters()).device.type
        return torch.autocast(dev, dtype=torch.float16 if dev == "cuda" else torch.bfloat16)

    def encode_image(self, x):
        with self._ctx():
            return self.inner.encode_image(x)

    def encode_text(self, x):
        with self._ctx():
            return self.inner.encode_text(x)


class _HFModule(torch.nn.Module):
    """A transformers ``CLIPModel`` with open_clip's ``encode_image`` / ``encode_text``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @staticmethod
    def _pooled(out):  # transformers 5 returns an output object with the projected features pooled
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def encode_image(self, pixels):
        return self._pooled(self.model.get_image_features(pixel_values=pixels))

    def encode_text(self, ids):
        return self._pooled(self.model.get_text_features(input_ids=ids))


class _HFTokens:
    """Captions -> ``[N, context]`` int64 ids, padded to the model's context (CLIP pools at the end token)."""

    def __init__(self, tokenizer, context: int):
        self.tokenizer, self.context = tokenizer, context

    def __call__(self, texts):
        return self.tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=self.context, return_tensors="pt"
        ).input_ids


class _HFPixels:
    """PIL RGB -> ``[3, H, W]`` through the folder's own image processor (resize, crop, normalise)."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, image):
        return self.processor(images=image.convert("RGB"), return_tensors="pt").pixel_values[0]


def _hf_parts(folder: Path):
    try:
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel
    except ImportError as e:
        raise ValueError(
            f"{folder}: reading a transformers CLIPModel folder needs transformers (pip install transformers)"
        ) from e
    try:
        model = CLIPModel.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"{folder}: not a loadable transformers CLIPModel folder ({str(e).splitlines()[0]})"
        ) from e
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(
            f"{folder}: no tokenizer files (vocab.json + merges.txt or tokenizer.json) beside the model; "
            f"copy them from the model's repository ({str(e).splitlines()[0]})"
        ) from e
    if not (folder / "preprocessor_config.json").is_file():
        raise FileNotFoundError(
            f"{folder}: preprocessor_config.json missing (the image size, crop and normalisation); "
            "copy it from the model's repository"
        )
    processor = CLIPImageProcessor.from_pretrained(str(folder), local_files_only=True)
    context = model.config.text_config.max_position_embeddings
    return _HFModule(model.eval()), _HFTokens(tok, context), _HFPixels(processor)


def _quietly(fn, *args):
    """``fn(*args)`` without open_clip's "No pretrained weights loaded" warning (weights follow)."""
    import logging

    class _Drop(logging.Filter):
        def filter(self, record):
            return "No pretrained weights loaded" not in record.getMessage()

    root = logging.getLogger()
    f = _Drop()
    root.addFilter(f)
    try:
        return fn(*args)
    finally:
        root.removeFilter(f)


def load(spec: ModelSpec, device: str = "cpu", batch_size: int = 256, precision: str = "fp32"):
    """The :class:`genemi.clip.Clip` of ``spec`` on ``device``, in ``precision`` (``PRECISIONS``)."""
    from genemi.clip import Clip, image_transform
    from genemi.models import build_model

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
    tokenizer = transform = None
    params = ModelParams(
        arch=spec.arch or "hf", pretrained="", tokenizer="word" if spec.tokenizer == "word" else "open_clip"
    )
    if spec.kind == "hf":
        module, tokenizer, transform = _hf_parts(Path(spec.source))
    elif spec.kind == "tag":
        from genemi.pretrained import load_pretrained

        module = load_pretrained(ModelParams(spec.arch, spec.source, params.tokenizer))
    else:
        module = _quietly(build_model, params)  # open_clip warns of the random init the file replaces
        load_state_dict(module, Path(spec.source))
    module.eval()
    if precision in ("fp16", "bf16"):
        module = module.to(torch.float16 if precision == "fp16" else torch.bfloat16)
    if precision == "amp":
        if transform is None:
            transform = image_transform(module, params)
        module = _Autocast(module)
    return Clip(module, params, device, batch_size, {"spec": spec.describe()}, tokenizer, transform)
