"""Tiny random-init copies of the mining models, saved in their real on-disk layouts.

They make the whole real-model chain (Grounding DINO -> SAM -> SD inpainting -> BLIP ITM) run in
seconds on a CPU: for CI and for ``stages/mine_real.py --tiny`` smoke runs. Outputs are noise;
only shapes, plumbing and determinism are real. Every model goes through its wrapper's
``from_pretrained`` door, so the loading code is exercised too.

Sizes: hidden 16-32, 1-2 layers, 64 px images, SD latents 8x8. Tokenizers are built with
``from_pretrained(dir)`` over generated vocab files (transformers 5.x). Grounding DINO's
post-processing needs BERT ids 101/102 for [CLS]/[SEP], hence the 100 reserved rows.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from genemi.mining.lexicon import default_lexicon

SIZE = 64  # tiny image side / SD window


def _bert_vocab(directory: Path) -> Path:
    """BERT WordPiece vocab with [CLS]=101, [SEP]=102 and the lexicon's words."""
    lex = default_lexicon()
    words = {w for ph in lex.object_phrases() for w in ph} | set(lex.colors())
    words |= {w for r in lex.relations for w in r.split()}
    words |= set("a an the on in of and is are two with there .".split())
    vocab = (
        ["[PAD]"]
        + [f"[unused{i}]" for i in range(1, 100)]
        + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        + sorted(words)
    )
    assert vocab.index("[CLS]") == 101 and vocab.index("[SEP]") == 102
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return directory


def _clip_vocab(directory: Path) -> Path:
    """Character-level CLIP BPE (no merges): every lower-case text tokenizes."""
    chars = list(string.ascii_lowercase + string.digits + ".,'-")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return directory


# the one-layer BERT text tower shared by the tiny Grounding DINO and BLIP (vocab size from the tokenizer)
TINY_BERT = dict(
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=16,
    max_position_embeddings=64,
)


def save_grounding_dino(directory: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    tok = BertTokenizer.from_pretrained(str(_bert_vocab(directory / "_vocab")))
    backbone = SwinConfig(
        image_size=SIZE,
        patch_size=4,
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=4,
        out_features=["stage2", "stage3", "stage4"],
    )
    text = BertConfig(vocab_size=len(tok), **TINY_BERT)
    # d_model 32: the input projections use GroupNorm(32, d_model); decoder_layers 2: the
    # shared box heads are tied across layers and need more than one; 3 feature levels keep the
    # coarsest map >1 px at 64 px input
    cfg = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=32,
        num_queries=10,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_feature_levels=3,
        encoder_n_points=1,
        decoder_n_points=1,
        max_text_len=32,
    )
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(cfg).save_pretrained(directory)
    ip = GroundingDinoImageProcessor(size={"shortest_edge": SIZE, "longest_edge": SIZE})
    GroundingDinoProcessor(image_processor=ip, tokenizer=tok).save_pretrained(directory)
    return directory


def save_blip_itm(directory: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForImageTextRetrieval,
        BlipImageProcessor,
        BlipProcessor,
    )

    tok = BertTokenizer.from_pretrained(str(_bert_vocab(directory / "_vocab")))
    cfg = BlipConfig(
        text_config=dict(
            vocab_size=len(tok),
            **TINY_BERT,
            encoder_hidden_size=16,
            bos_token_id=101,
            sep_token_id=102,
            pad_token_id=0,
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
        image_text_hidden_size=16,
    )
    torch.manual_seed(seed)
    BlipForImageTextRetrieval(cfg).save_pretrained(directory)
    BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok
    ).save_pretrained(directory)
    return directory


def save_sd_inpaint(directory: Path, seed: int = 0) -> Path:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(_clip_vocab(directory / "_vocab")), model_max_length=77)
    torch.manual_seed(seed)
    te = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=16,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=77,
            projection_dim=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    # in_channels 9 = 4 noisy latents + 4 masked-image latents + 1 mask (the inpainting UNet)
    unet = UNet2DConditionModel(
        sample_size=SIZE // 8,
        in_channels=9,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=8,
    )
    # four blocks -> VAE scale factor 8, like SD
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=SIZE,
    )
    sched = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionInpaintPipeline(
        vae=vae,
        text_encoder=te,
        tokenizer=tok,
        unet=unet,
        scheduler=sched,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(directory, safe_serialization=True)
    return directory


def save_causal_lm(directory: Path, seed: int = 0) -> Path:
    """Tiny GPT-2 with a byte-level character vocabulary (for the optional portrayal LM)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    chars = [c for c in string.printable if c not in " \n\t\r\x0b\x0c"] + [
        "\u0120",
        "\u010a",
    ]  # Ġ = space, Ċ = newline
    vocab = {c: i for i, c in enumerate(["<|endoftext|>", *chars])}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tok = GPT2Tokenizer.from_pretrained(str(directory))
    torch.manual_seed(seed)
    GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(vocab),
            n_positions=512,
            n_embd=16,
            n_layer=1,
            n_head=2,
            bos_token_id=0,
            eos_token_id=0,
        )
    ).save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def save_sam(path: Path, seed: int = 0) -> Path:
    """A tiny SAM state dict as .safetensors; load with ``SamSegmenter.from_pretrained(path, "tiny")``."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in build_tiny_sam().state_dict().items()}, str(path))
    return path


def build_tiny_sam(checkpoint: None = None):
    """Tiny SAM (64 px input, width 32, one block); registered as model type "tiny"."""
    from functools import partial

    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    enc = ImageEncoderViT(
        img_size=SIZE,
        patch_size=16,
        embed_dim=32,
        depth=1,
        num_heads=2,
        mlp_ratio=2.0,
        out_chans=32,
        qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=0,
        global_attn_indexes=(),
    )
    grid = SIZE // 16
    prompt = PromptEncoder(
        embed_dim=32, image_embedding_size=(grid, grid), input_image_size=(SIZE, SIZE), mask_in_chans=4
    )
    dec = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=1, embedding_dim=32, mlp_dim=32, num_heads=2),
        transformer_dim=32,
        iou_head_depth=1,
        iou_head_hidden_dim=16,
    )
    return Sam(image_encoder=enc, prompt_encoder=prompt, mask_decoder=dec).eval()


def register_tiny_sam() -> None:
    """Make ``sam_model_registry["tiny"]`` build :func:`build_tiny_sam`."""
    from segment_anything import sam_model_registry

    sam_model_registry.setdefault("tiny", build_tiny_sam)


def save_all(directory: str | Path, seed: int = 0) -> dict[str, str]:
    """Write all four tiny models under ``directory``; return the paths the wrappers load."""
    d = Path(directory)
    register_tiny_sam()
    return {
        "grounding_dino": str(save_grounding_dino(d / "grounding_dino", seed)),
        "sam_checkpoint": str(save_sam(d / "sam_tiny.safetensors", seed)),
        "sam_model_type": "tiny",
        "sd_inpaint": str(save_sd_inpaint(d / "sd_inpaint", seed)),
        "blip_itm": str(save_blip_itm(d / "blip_itm", seed)),
    }
