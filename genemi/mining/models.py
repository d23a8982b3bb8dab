"""The real mining models behind the small interfaces of :mod:`genemi.mining.interfaces`.

===================  =====================================================  =====================
class                wraps                                                  interface
===================  =====================================================  =====================
CaptionNounTagger    the caption's nouns known to the lexicon (stanza/plain)  Tagger
GroundingDinoGrounder transformers ``GroundingDinoForObjectDetection``       Grounder
SamSegmenter         ``segment_anything.SamPredictor`` (box prompt)         Segmenter
SDInpaintEditor      diffusers ``StableDiffusionInpaintPipeline``            Editor
BlipItmScorer        transformers ``BlipForImageTextRetrieval`` (ITM head)  Scorer
===================  =====================================================  =====================

``from_pretrained(...)`` is the only code that touches weights. It never downloads
(``local_files_only``) and loads only safetensors or ``torch.load(weights_only=True)``; missing
weights raise :class:`FileNotFoundError` naming the model id/path and where to put it.
Constructors take already-built model objects, so tests pass tiny random-init models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from genemi.mining.interfaces import Detection
from genemi.mining.lexicon import Lexicon, default_lexicon


def _missing(what: str, name: str, key: str, err: Exception | None = None) -> FileNotFoundError:
    why = f" ({type(err).__name__}: {str(err).splitlines()[0][:200]})" if err else ""
    return FileNotFoundError(
        f"{what} weights {name!r} not found offline{why}. Either put a saved copy in a local folder "
        f"(the save_pretrained layout: config + *.safetensors + tokenizer/processor files) and set "
        f"mine_real.{key} in params.yaml to that folder, or fill the Hugging Face cache (HF_HOME) "
        f"on a machine with internet with `huggingface-cli download {name}` and copy it here."
    )


def _hf_load(loader: Callable[..., Any], name: str, what: str, key: str, **kw: Any) -> Any:
    """``loader(name, local_files_only=True, **kw)``; any 'not there' error becomes a clear one. A local
    folder that is there but does not load (a cut-short or foreign weights file, another model's config),
    or that loads with NaN/infinite weights, is one error naming the folder and ``mine_real.<key>``."""
    import torch

    from genemi.weights import WeightsError

    local = Path(name).is_dir()
    try:
        obj = loader(name, local_files_only=True, **kw)
    except Exception as e:
        if not local:
            raise _missing(what, name, key, e) from e
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise WeightsError(
            f"{name} (mine_real.{key}): the {what} in this folder does not load ({type(e).__name__}: {first}); "
            f"re-download it (dvc repro -f the download stage that writes it) or point mine_real.{key} at a "
            "complete save_pretrained folder of that model"
        ) from None
    if isinstance(obj, torch.nn.Module):
        floats = [(n, t) for n, t in obj.state_dict().items() if t.is_floating_point()]
        bad = next((n for n, t in floats if not bool(torch.isfinite(t).all())), None)
        if bad is not None:
            raise WeightsError(f"{name} (mine_real.{key}): tensor {bad} of the {what} holds NaN or infinite "
                               f"values; re-download it or point mine_real.{key} at other weights")
    return obj


def _text_limit(model, key: str) -> int | None:
    """The most text tokens ``model`` takes (``config.<key>`` or ``config.text_config.<key>``), or None."""
    cfg = getattr(model, "config", None)
    for c in (cfg, getattr(cfg, "text_config", None)):
        value = getattr(c, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


# ---------------------------------------------------------------------------------------------
# Tagging
# ---------------------------------------------------------------------------------------------
class CaptionNounTagger:
    """Tags = the caption's object nouns that the lexicon knows (the seed used Tag2Text).

    With a parser (``text -> stanza Document``) nouns come from its POS tags; without one, from
    whole-word lexicon matches."""

    def __init__(self, parse: Callable[[str], Any] | None = None, lexicon: Lexicon | None = None):
        self.parse = parse
        self.lexicon = lexicon or default_lexicon()

    def tag(self, image: Image.Image, caption: str | None = None) -> list[str]:
        from genemi.mining.parse import caption_nouns, plain_nouns

        if caption is None:
            raise ValueError(
                "CaptionNounTagger tags from the caption; got caption=None (use a tagging model)"
            )
        if self.parse is None:
            return plain_nouns(caption, self.lexicon)
        return caption_nouns(self.parse(caption), self.lexicon)


class GroundingTagger:
    """Tags without a caption: an open-vocabulary detector prompted with the lexicon's object
    words (a stand-in for the seed's Tag2Text, which has no transformers port).

    The vocabulary is sent in prompts of ``per_prompt`` phrases ("cat . dog . ...") because
    Grounding DINO's text length is bounded; a tag is kept when a detection's label is exactly
    one vocabulary phrase. Tags come back best score first."""

    def __init__(self, grounder: Any, vocabulary: Sequence[str] | None = None, per_prompt: int = 16):
        self.grounder = grounder
        lex = default_lexicon()
        self.vocabulary = (
            list(vocabulary)
            if vocabulary is not None
            else sorted(c for v in lex.supercategories.values() for c in v)
        )
        self.per_prompt = per_prompt

    def tag(self, image: Image.Image, caption: str | None = None) -> list[str]:
        best: dict[str, float] = {}
        vocab = set(self.vocabulary)
        for i in range(0, len(self.vocabulary), self.per_prompt):
            prompt = " . ".join(self.vocabulary[i : i + self.per_prompt])
            for d in self.grounder.ground(image, prompt):
                label = d.label.replace("[SEP]", "").strip(" .").lower()
                if label in vocab:
                    best[label] = max(best.get(label, float("-inf")), d.score)
        return sorted(best, key=lambda t: (-best[t], t))


# ---------------------------------------------------------------------------------------------
# Grounding DINO
# ---------------------------------------------------------------------------------------------
class GroundingDinoGrounder:
    """Open-vocabulary boxes for a phrase; the seed's thresholds (box 0.35, text 0.25, NMS 0.25)."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
        nms_iou: float = 0.25,
        device: str = "cpu",
    ):
        self.model = model.eval().to(device)
        self.processor = processor
        self.box_threshold, self.text_threshold, self.nms_iou = box_threshold, text_threshold, nms_iou
        self.device = device

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cpu", **kw: Any) -> GroundingDinoGrounder:
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        model = _hf_load(
            GroundingDinoForObjectDetection.from_pretrained,
            name_or_path,
            "Grounding DINO",
            "grounding_dino",
            use_safetensors=True,
        )
        processor = _hf_load(
            AutoProcessor.from_pretrained, name_or_path, "Grounding DINO processor", "grounding_dino"
        )
        return cls(model, processor, device=device, **kw)

    def ground(self, image: Image.Image, phrase: str) -> list[Detection]:
        """Boxes ``(x0, y0, x1, y1)`` in pixels of ``image``, best first, after NMS."""
        import torch
        from torchvision.ops import nms

        image = _rgb(image)
        text = phrase.lower().strip()
        text = text if text.endswith(".") else text + "."  # GD separates phrases with " ."
        inputs = self.processor(images=image, text=text, return_tensors="pt", truncation=True,
                                max_length=_text_limit(self.model, "max_text_len")).to(self.device)
        with torch.no_grad():
            out = self.model(**inputs)
        # target size is (height, width): the seed swapped them (H, W = image.size)
        res = self.processor.post_process_grounded_object_detection(
            out,
            inputs["input_ids"],
            threshold=self.box_threshold,
            text_threshold=self.text_threshold,
            target_sizes=[(image.height, image.width)],
        )[0]
        boxes, scores = res["boxes"].float().cpu(), res["scores"].float().cpu()
        # "text_labels" holds strings; "labels" turns into ids in newer transformers
        labels = res["text_labels"] if "text_labels" in res else res["labels"]
        if len(boxes) == 0:
            return []
        keep = nms(boxes, scores, self.nms_iou)  # sorted by decreasing score
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, image.width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, image.height)
        return [
            Detection(tuple(float(v) for v in boxes[i]), float(scores[i]), str(labels[i]).strip())
            for i in keep.tolist()
        ]


# ---------------------------------------------------------------------------------------------
# SAM
# ---------------------------------------------------------------------------------------------
class SamSegmenter:
    """SAM with a box prompt, single-mask output (the seed used ``masks[0][0]``)."""

    def __init__(self, predictor: Any):
        self.predictor = predictor
        self._key: tuple | None = None  # fingerprint of the image whose embedding is cached

    @classmethod
    def from_pretrained(
        cls, checkpoint: str | Path, model_type: str = "vit_h", device: str = "cpu"
    ) -> SamSegmenter:
        """Build ``model_type`` and load ``checkpoint`` (.pth via weights_only, or .safetensors)."""
        import torch
        from segment_anything import SamPredictor, sam_model_registry

        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(
                f"SAM checkpoint {str(path)!r} not found. Download sam_{model_type}_*.pth from the "
                f"segment-anything model zoo on a machine with internet, put it there, or set "
                f"mine_real.sam_checkpoint in params.yaml to where it is."
            )
        if model_type not in sam_model_registry:
            raise ValueError(
                f"mine_real.sam_model_type: {model_type!r} is not one of {sorted(sam_model_registry)}"
            )
        from genemi.weights import WeightsError, check_state, read_safetensors, torch_load_problem

        sam = sam_model_registry[model_type](checkpoint=None)  # builds only; we load safely below
        key, redo = "mine_real.sam_checkpoint", f"place the sam_{model_type} checkpoint there (re-download it)"
        if path.suffix == ".safetensors":
            state, _ = read_safetensors(path, key, redo)
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:
                raise WeightsError(f"{path} ({key}): {torch_load_problem(e)}; {redo}") from None
        if not isinstance(state, dict):
            raise WeightsError(f"{path} ({key}): holds a {type(state).__name__}, not a state dict; {redo}")
        check_state(sam, state, path, key, remedy=f"set mine_real.sam_model_type to the checkpoint's, or {redo}")
        sam.load_state_dict(state)
        return cls(SamPredictor(sam.to(device).eval()))

    def segment(self, image: Image.Image, box: tuple[float, float, float, float]) -> np.ndarray:
        """``[H, W]`` bool mask of the object in ``box`` (pixels, x0 y0 x1 y1)."""
        arr = np.asarray(_rgb(image))
        key = (arr.shape, hash(arr.tobytes()))
        if key != self._key:  # the image embedding is the expensive part; reuse it across boxes
            self.predictor.set_image(arr)
            self._key = key
        masks, _, _ = self.predictor.predict(box=np.asarray(box, dtype=np.float32), multimask_output=False)
        return masks[0].astype(bool)


# ---------------------------------------------------------------------------------------------
# Stable Diffusion inpainting
# ---------------------------------------------------------------------------------------------
def find_square(mask: np.ndarray, window: int = 512) -> tuple[int, int, int, int]:
    """Crop ``(x0, x1, y0, y1)`` (end-exclusive) around a ``[H, W]`` bool mask.

    Like the seed's ``find_square``, a side shorter than ``window`` grows to ``window`` centred
    on the object and shifted to stay inside the image. Departure: both sides take the larger
    of (window, object width, object height) so the crop stays square when the image allows,
    instead of being squashed to a square by the resize.
    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("find_square: empty mask, nothing to inpaint")
    h, w = mask.shape
    side = max(window, int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))

    def span(lo: int, hi: int, dim: int) -> tuple[int, int]:
        size = min(side, dim)
        start = int(round((lo + hi + 1) / 2 - size / 2))
        start = min(max(start, 0), dim - size)
        return start, start + size

    x0, x1 = span(int(xs.min()), int(xs.max()), w)
    y0, y1 = span(int(ys.min()), int(ys.max()), h)
    return x0, x1, y0, y1


class SDInpaintEditor:
    """Inpaint ``mask`` with ``prompt``: crop a window around it, resize to ``window``², run the
    pipeline, resize back and paste. Only masked pixels change (the seed pasted the whole crop,
    so the VAE round trip also altered the surroundings)."""

    def __init__(
        self, pipe: Any, steps: int = 100, guidance: float = 7.5, window: int = 512, device: str = "cpu"
    ):
        if window % 8:
            raise ValueError(f"mine_real.sd_window must be a multiple of 8 (latent grid), got {window}")
        self.pipe = pipe.to(device)
        if hasattr(self.pipe, "set_progress_bar_config"):
            self.pipe.set_progress_bar_config(disable=True)
        self.steps, self.guidance, self.window, self.device = steps, guidance, window, device

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, device: str = "cpu", dtype: str = "float32", **kw: Any
    ) -> SDInpaintEditor:
        import importlib.util

        import torch
        from diffusers import StableDiffusionInpaintPipeline

        pipe = _hf_load(
            StableDiffusionInpaintPipeline.from_pretrained,
            name_or_path,
            "Stable Diffusion inpainting",
            "sd_inpaint",
            use_safetensors=True,
            safety_checker=None,
            requires_safety_checker=False,
            dtype=getattr(torch, dtype),
            # diffusers falls back to False itself without `accelerate`, after a hint to install it
            low_cpu_mem_usage=importlib.util.find_spec("accelerate") is not None,
        )
        return cls(pipe, device=device, **kw)

    def edit(self, image: Image.Image, mask: np.ndarray, prompt: str, seed: int) -> Image.Image:
        """RGB image like ``image`` whose ``[H, W]`` bool ``mask`` region shows ``prompt``."""
        import torch

        image = _rgb(image)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (image.height, image.width):
            raise ValueError(
                f"mask shape {mask.shape} does not match image (H, W) {(image.height, image.width)}"
            )
        x0, x1, y0, y1 = find_square(mask, self.window)
        win = (self.window, self.window)
        crop = image.crop((x0, y0, x1, y1)).resize(win, Image.BICUBIC)
        mcrop = Image.fromarray(mask[y0:y1, x0:x1].astype(np.uint8) * 255).resize(win, Image.NEAREST)
        # the generator lives on the pipeline's device so a seed means the same noise every run
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        out = self.pipe(
            prompt=prompt,
            image=crop,
            mask_image=mcrop,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            generator=gen,
            height=self.window,
            width=self.window,
        ).images[0]
        out = np.asarray(out.convert("RGB").resize((x1 - x0, y1 - y0), Image.BICUBIC))
        arr = np.array(image)
        region, m = arr[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        region[m] = out[m]
        return Image.fromarray(arr)


# ---------------------------------------------------------------------------------------------
# Quality filter
# ---------------------------------------------------------------------------------------------
class BlipItmScorer:
    """BLIP image-text matching: the raw logit of the "match" class, as the seed's filter used
    (``itm_score > 0`` keeps a variation); not a probability."""

    def __init__(self, model: Any, processor: Any, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.processor = processor
        self.device = device

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cpu") -> BlipItmScorer:
        from transformers import BlipForImageTextRetrieval, BlipProcessor

        model = _hf_load(
            BlipForImageTextRetrieval.from_pretrained,
            name_or_path,
            "BLIP ITM",
            "blip_itm",
            use_safetensors=True,
        )
        processor = _hf_load(BlipProcessor.from_pretrained, name_or_path, "BLIP processor", "blip_itm")
        return cls(model, processor, device=device)

    def score(self, image: Image.Image, caption: str) -> float:
        import torch

        # a caption past the text tower's positions is cut to them, as open_clip's tokenizer cuts to its
        # context: the score of a very long caption reads its beginning instead of crashing
        inputs = self.processor(images=_rgb(image), text=caption, return_tensors="pt", truncation=True,
                                max_length=_text_limit(self.model, "max_position_embeddings")).to(self.device)
        with torch.no_grad():
            out = self.model(**inputs, use_itm_head=True)
        return float(out.itm_score[0, 1])  # [1, 2] logits (no-match, match)


def iva_score(images: Sequence[Image.Image | np.ndarray], threshold: float = 10.0) -> float:
    """Image variation area (%, docs/method.md §3.3): share of pixels whose std across the variations of one
    (origin, item), averaged over channels, exceeds ``threshold``. Inputs HWC uint8 RGB of one
    size; fewer than two variations give 0 (nothing varies)."""
    if len(images) < 2:
        return 0.0
    stack = np.stack(
        [np.asarray(_rgb(im) if isinstance(im, Image.Image) else im, dtype=np.float32) for im in images]
    )
    if stack.ndim != 4:
        raise ValueError(f"iva_score: expected HWC images, got stacked shape {stack.shape}")
    return float(100.0 * (stack.std(axis=0).mean(axis=-1) > threshold).mean())


# ---------------------------------------------------------------------------------------------
# Portrayals from a local text-generation model (optional; the seed used HuggingChat)
# ---------------------------------------------------------------------------------------------
PORTRAY_PROMPT = (
    "Write {n} portrayals of the object '{item}' in the sentence below, one per line, numbered. "
    "Each line is a "
    "long visual description followed by a 2-3 word short form in parentheses; include a colour in both. "
    "Replace an animal by another animal; in one line swap the object for a similar one.\n"
    "Sentence: {caption}\n{item}:\n"
)


class TextGenPortrayer:
    """Portrayals proposed by a local causal LM, parsed like the seed's LLM replies; when the reply
    does not parse, the ``fallback`` portrayer (the lexicon) answers, so an item is never lost to
    a chatty model."""

    def __init__(self, generate: Callable[[str, int], str], fallback: Any = None):
        from genemi.mining.portrayals import LexiconPortrayer

        self.generate = generate  # (prompt, seed) -> reply text
        self.fallback = fallback if fallback is not None else LexiconPortrayer()

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, device: str = "cpu", max_new_tokens: int = 160
    ) -> TextGenPortrayer:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = _hf_load(AutoTokenizer.from_pretrained, name_or_path, "portrayal LM tokenizer", "portrayer")
        model = (
            _hf_load(
                AutoModelForCausalLM.from_pretrained,
                name_or_path,
                "portrayal LM",
                "portrayer",
                use_safetensors=True,
            )
            .eval()
            .to(device)
        )

        def generate(prompt: str, seed: int) -> str:
            if getattr(tok, "chat_template", None):
                prompt = tok.apply_chat_template(
                    [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
                )
            ids = tok(prompt, return_tensors="pt").to(device)
            torch.manual_seed(seed)  # generate() samples from the global generator
            with torch.no_grad():
                out = model.generate(
                    **ids,
                    do_sample=True,
                    top_p=0.9,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                )
            return tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)

        return cls(generate)

    def portray(self, item: str, caption: str, n: int, rng: np.random.Generator) -> list:
        from genemi.mining.portrayals import parse_portrayals

        reply = self.generate(
            PORTRAY_PROMPT.format(n=n, item=item, caption=caption), int(rng.integers(2**31))
        )
        got = parse_portrayals(f"{item}:\n{reply}", [item], n).get(item, [])
        return got or self.fallback.portray(item, caption, n, rng)
