"""Checks that need a CUDA GPU: bf16 fine-tuning of a real-size architecture on real-format images,
evaluation on the device, and the tiny mining chain on ``cuda``. Skipped (with the reason) without one;
on the GPU machine: ``python -m pytest -m gpu -q``. Throughput is measured by benchmarks/gpu_check.py."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import numpy as np
import pytest
import torch
from PIL import Image

from genemi.manifest import Negative, Record

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (python -m pytest -m gpu)"),
]


def _jpegs(folder: Path, n: int) -> list[Record]:
    rng = np.random.default_rng(0)
    for i in range(2 * n):
        h, w = rng.integers(200, 480, size=2)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.jpg", quality=90)
    return [Record(id=str(i), image=f"{i}.jpg", caption=f"a red dog number {i} left of a bench",
                   negatives=(Negative("relation_flip", caption=f"a bench left of a red dog number {i}",
                                       image=f"{n + i}.jpg"),))
            for i in range(n)]


def test_bf16_finetuning_of_vit_b32_on_jpegs(tmp_path):
    from genemi.clip import Clip
    from genemi.run import make_run, training_bank
    from genemi.train import train

    p = frozen_params.load()
    p = dataclasses.replace(
        p,
        data=dataclasses.replace(p.data, workers=2),
        model=dataclasses.replace(p.model, arch="ViT-B-32", pretrained="", tokenizer="open_clip"),
        finetune=dataclasses.replace(p.finetune, steps=4, batch_size=16, lr=1e-5, warmup_steps=1,
                                     checkpoint_every=0),
        loss=dataclasses.replace(p.loss, negatives_per_sample=1, image_negatives=True, hn_weight=1.0,
                                 kl_weight=0.5, l2_weight=0.01),
        deepspeed=dataclasses.replace(p.deepspeed, precision="bf16"),
    )
    recs = _jpegs(tmp_path, 16)
    torch.manual_seed(0)
    clip = Clip.from_params(p.model)
    run = make_run(p, "finetune", clip.module, training_bank(p, "finetune", clip, recs, tmp_path), recs,
                   fingerprint="")
    assert next(run.engine.module.parameters()).device.type == "cuda"
    assert next(run.teacher.parameters()).device.type == "cuda"
    assert all(t.device.type == "cuda" for t in run.reference.values())
    before = {k: v.detach().float().cpu().clone() for k, v in run.engine.module.state_dict().items()}
    logged = []
    tail = train(run, log=lambda s, v: logged.append(v), log_every=1, progress=False)
    assert np.isfinite(tail["loss"]) and tail["hn_text"] > 0 and tail["kl"] >= 0
    assert logged[-1]["perf/peak_mem_gib"] > 0 and 0 <= logged[-1]["perf/data_wait"] <= 1
    after = run.engine.module.state_dict()
    assert not torch.equal(before["visual.conv1.weight"], after["visual.conv1.weight"].float().cpu())


def test_evaluation_on_the_gpu_matches_the_cpu(tmp_path):
    from genemi.clip import Clip
    from genemi.config import ModelParams
    from genemi.evalsets import EvalSet, ImageStore
    from genemi.evaluate import encode_set

    recs = _jpegs(tmp_path, 8)
    mp = ModelParams("ViT-B-32", "", "open_clip")
    torch.manual_seed(0)
    cpu = Clip.from_params(mp, batch_size=4)
    state = {k: v.clone() for k, v in cpu.module.state_dict().items()}
    torch.manual_seed(0)
    gpu = Clip.from_params(mp, device="cuda", batch_size=4)
    gpu.module.load_state_dict(state)
    es = EvalSet("gpu", ImageStore(tmp_path), recs)
    f = encode_set({"cpu": cpu, "gpu": gpu}, es, workers=2, progress=True)
    assert torch.allclose(f["cpu"].images, f["gpu"].images, atol=1e-3)
    assert torch.allclose(f["cpu"].texts, f["gpu"].texts, atol=1e-3)


def test_tiny_mining_chain_on_cuda(tmp_path):
    import mining_fakes as F

    from genemi.manifest import read_manifest
    from genemi.mining import pipeline as P

    root = tmp_path / "data"
    root.mkdir()
    recs = F.make_dataset(root)
    p = F.params(backend="tiny", device="cuda", variations_per_item=2, items_per_image=1)
    chain = P.build_chain(p, "cuda:0", tiny_dir=tmp_path / "tiny")
    stats = P.run_shard(recs[:2], root, tmp_path / "o", chain, p, seed=0)
    assert stats["mined"] == 2
    totals = P.merge(tmp_path / "o", tmp_path / "m.jsonl", keep_failed=True)
    assert totals["variations"] == len(read_manifest(tmp_path / "m.jsonl")) > 0
