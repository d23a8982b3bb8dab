"""Throughput of the real-model mining chain at real model sizes, random weights (no downloads).

Builds Grounding DINO (Swin-T + BERT-base, the seed's SwinT-OGC size), SAM ViT-H, SD-2-inpainting
(UNet 320-640-1280-1280, OpenCLIP-H text tower) and BLIP ITM large with random weights, runs the
chain (`genemi.mining.pipeline.mine_origin`) on synthetic 640x480 images, and reports origin
images / minute, variations / minute and per-stage seconds. Random weights change nothing about
the cost of a forward pass, so the numbers hold for the pretrained models at the same settings.
Box threshold is 0 so every item reaches the inpainter (a random detector scores low).

    python benchmarks/mine_real_throughput.py --device cuda --images 8 --out benchmarks/results/mine_real.json
    python benchmarks/mine_real_throughput.py --size tiny --device cpu --images 2   # plumbing check

Recorded results: none yet (needs a GPU).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import _setup  # this checkout's genemi; the committed params.yaml
import click
import numpy as np
from PIL import Image


def _real_models(device: str, dtype: str):
    """Real-size random-init models wrapped in the mining classes."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from segment_anything import SamPredictor, sam_model_registry
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForImageTextRetrieval,
        BlipImageProcessor,
        BlipProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    from genemi.mining import models as M
    from genemi.mining import tiny

    tmp = Path(tempfile.mkdtemp(prefix="genemi_bench_"))
    bert = BertTokenizer.from_pretrained(str(tiny._bert_vocab(tmp / "bert")))
    clip_tok = CLIPTokenizer.from_pretrained(str(tiny._clip_vocab(tmp / "clip")), model_max_length=77)

    # GroundingDinoConfig's defaults are the Swin-T / BERT-base model (grounding-dino-tiny)
    gd = GroundingDinoForObjectDetection(GroundingDinoConfig())
    gd_proc = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=bert)
    grounder = M.GroundingDinoGrounder(gd, gd_proc, box_threshold=0.0, text_threshold=0.0, device=device)

    sam = sam_model_registry["vit_h"](checkpoint=None).to(device).eval()
    segmenter = M.SamSegmenter(SamPredictor(sam))

    # stabilityai/stable-diffusion-2-inpainting's architecture
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=9,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        attention_head_dim=(5, 10, 20, 20),
        cross_attention_dim=1024,
        use_linear_projection=True,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=23,
            num_attention_heads=16,
            projection_dim=512,
            hidden_act="gelu",
        )
    )
    pipe = StableDiffusionInpaintPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=clip_tok,
        unet=unet,
        scheduler=DDIMScheduler(
            beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    ).to(dtype=getattr(torch, dtype))
    editor_cls = M.SDInpaintEditor

    # BLIP ITM large: ViT-L/16 at 384 px + BERT-base with cross-attention
    blip = BlipForImageTextRetrieval(
        BlipConfig(
            vision_config=dict(
                hidden_size=1024,
                num_hidden_layers=24,
                num_attention_heads=16,
                intermediate_size=4096,
                image_size=384,
            ),
            text_config=dict(
                vocab_size=len(bert), encoder_hidden_size=1024, bos_token_id=101, sep_token_id=102
            ),
        )
    )
    blip_proc = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": 384, "width": 384}), tokenizer=bert
    )
    scorer = M.BlipItmScorer(blip, blip_proc, device=device)
    return grounder, segmenter, lambda **kw: editor_cls(pipe, device=device, **kw), scorer


def _tiny_models(device: str):
    from genemi.mining import models as M
    from genemi.mining import tiny

    paths = tiny.save_all(tempfile.mkdtemp(prefix="genemi_bench_tiny_"))
    grounder = M.GroundingDinoGrounder.from_pretrained(paths["grounding_dino"], device, box_threshold=0.0)
    segmenter = M.SamSegmenter.from_pretrained(paths["sam_checkpoint"], "tiny", device)
    sd = M.SDInpaintEditor.from_pretrained(paths["sd_inpaint"], device)
    scorer = M.BlipItmScorer.from_pretrained(paths["blip_itm"], device)
    return grounder, segmenter, lambda **kw: M.SDInpaintEditor(sd.pipe, device=device, **kw), scorer


class _Timed:
    """Wraps a model object and adds the seconds spent in ``method`` to ``clock[name]``."""

    def __init__(self, obj, method: str, name: str, clock: dict, sync):
        self.obj, self.method, self.name, self.clock, self.sync = obj, method, name, clock, sync

    def __getattr__(self, attr):
        fn = getattr(self.obj, attr)
        if attr != self.method:
            return fn

        def timed(*a, **kw):
            t = time.perf_counter()
            out = fn(*a, **kw)
            self.sync()  # CUDA is asynchronous: wait so the time lands on the right stage
            self.clock[self.name] = self.clock.get(self.name, 0.0) + time.perf_counter() - t
            return out

        return timed


@click.command(help=__doc__)
@click.option("--size", type=click.Choice(["real", "tiny"]), default="real", show_default=True)
@click.option("--device", default="cuda", show_default=True)
@click.option(
    "--dtype", type=click.Choice(["float16", "bfloat16", "float32"]), default="float16", show_default=True
)
@click.option("--images", default=8, show_default=True, help="Origin images to mine (after one warm-up).")
@click.option("--steps", default=100, show_default=True, help="SD denoising steps (the seed used 100).")
@click.option("--variations", default=4, show_default=True, help="Variations per item.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the results JSON here.")
def main(size, device, dtype, images, steps, variations, out):
    import dataclasses

    import torch

    from genemi.manifest import Record
    from genemi.mining import pipeline as P
    from genemi.mining.models import CaptionNounTagger

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    t0 = time.perf_counter()
    if size == "real":
        grounder, segmenter, make_editor, scorer = _real_models(device, dtype)
        side, window = (640, 480), 512
    else:
        grounder, segmenter, make_editor, scorer = _tiny_models(device)
        side, window, steps = (80, 64), 64, min(steps, 2)
    build_s = time.perf_counter() - t0
    p = dataclasses.replace(
        _setup.shipped_params().mine_real,
        items_per_image=1,
        variations_per_item=variations,
        sd_steps=steps,
    )
    clock: dict[str, float] = {}
    chain = P.Chain(
        tagger=CaptionNounTagger(),
        grounder=_Timed(grounder, "ground", "ground", clock, sync),
        segmenter=_Timed(segmenter, "segment", "segment", clock, sync),
        editor=_Timed(make_editor(steps=steps, window=window), "edit", "inpaint", clock, sync),
        scorer=_Timed(scorer, "score", "itm", clock, sync),
    )
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as work:
        n_var = 0
        for i in range(images + 1):  # image 0 warms up kernels and allocators; not timed
            if i == 1:
                clock.clear()
                t1 = time.perf_counter()
            img = Image.fromarray(rng.integers(0, 256, (side[1], side[0], 3), dtype=np.uint8))
            rec = Record(id=f"bench_{i:04d}", image="x.png", caption="a dog sits on a bench")
            rows, _ = P.mine_origin(rec, img, chain, p, 0, Path(work))
            n_var += len(rows) if i else 0
        sync()
        total = time.perf_counter() - t1
    res = {
        "size": size,
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "dtype": dtype if size == "real" else "float32",
        "sd_steps": steps,
        "window": window,
        "variations_per_item": variations,
        "images": images,
        "variations": n_var,
        "build_s": round(build_s, 1),
        "images_per_minute": round(60 * images / total, 3),
        "variations_per_minute": round(60 * n_var / total, 3),
        "stage_seconds_per_image": {k: round(v / images, 3) for k, v in sorted(clock.items())},
    }
    click.echo(json.dumps(res, indent=2))
    if out:
        from genemi.io import write_json

        write_json(out, res)


if __name__ == "__main__":
    main()
