"""The training loop in one process: determinism, which terms run, and that they train."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import pytest
import torch

from genemi.losses import uses_negatives
from genemi.train import encode, forward_loss

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def params():
    return frozen_params.load()


def _run(params, loss=None, trainable="full", steps=3):
    from train_worker import tiny_bank

    from genemi.models import build_model
    from genemi.run import make_run
    from genemi.train import train

    torch.set_num_threads(1)
    opt = dataclasses.replace(
        params.finetune, steps=steps, batch_size=8, warmup_steps=1, lr=1e-3, trainable=trainable
    )
    p = dataclasses.replace(params, seed=3, finetune=opt, loss=dataclasses.replace(
        loss or params.loss, negatives_per_sample=2), batching=dataclasses.replace(params.batching, negative_rows=False))
    torch.manual_seed(0)
    run = make_run(p, "finetune", build_model(p.model), tiny_bank(), fingerprint="")
    init = {k: v.detach().clone() for k, v in run.engine.module.state_dict().items()}
    logged = []
    tail = train(run, log=lambda s, v: logged.append(v), log_every=1, progress=False)
    return tail, logged, init, {k: v.detach().clone() for k, v in run.engine.module.state_dict().items()}


@pytest.mark.slow
def test_same_seed_same_bytes(params):
    a, _, _, wa = _run(params)
    b, _, _, wb = _run(params)
    assert a == b and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_thesis_terms_fire_and_frozen_parts_stay(params):
    loss = dataclasses.replace(
        params.loss, form="in_softmax", l2_weight=0.1, kl_weight=1.0, dpo_weight=1.0, temperature=0.07
    )
    tail, logged, init, final = _run(params, loss, trainable="vision", steps=4)
    assert (
        logged[-1]["train/l2"] > 0 and logged[-1]["train/kl"] > 0
        and logged[-1]["train/dpo"] != pytest.approx(0.6931, abs=1e-6)
    )
    assert torch.equal(final["token_embedding.weight"], init["token_embedding.weight"])
    assert torch.equal(final["logit_scale"], init["logit_scale"])  # fixed temperature
    assert not torch.equal(final["visual.conv1.weight"], init["visual.conv1.weight"])


def test_uses_negatives(params):
    lp = params.loss
    assert uses_negatives(lp)
    control = dataclasses.replace(lp, hn_weight=0.0)
    assert not uses_negatives(control)  # the plain-CLIP control does not encode negatives
    assert uses_negatives(dataclasses.replace(control, dpo_weight=1.0))
    assert uses_negatives(dataclasses.replace(control, form="in_softmax"))


def test_forward_loss_encodes_negatives_in_one_pass(params):
    from train_worker import tiny_bank

    from genemi.losses import hard_negative_loss
    from genemi.models import build_model

    torch.manual_seed(0)
    model = build_model(params.model)
    bank = tiny_bank()
    batch = bank.batch(torch.arange(4), 2, torch.Generator().manual_seed(0), True)
    feats = encode(model, batch)
    assert feats["neg_text_features"].shape == (4, 2, 128) and feats["neg_image_features"].shape == (
        4,
        2,
        128,
    )
    with torch.no_grad():
        one = model.encode_image(batch.neg_images[2, 1][None])
    assert torch.allclose(
        feats["neg_image_features"][2, 1], torch.nn.functional.normalize(one, dim=-1)[0], atol=1e-5
    )
    terms = forward_loss(model, batch, params.loss)
    ref = hard_negative_loss(**feats, logit_scale=model.logit_scale, hn_weight=params.loss.hn_weight)
    assert torch.allclose(terms["loss"], ref["loss"])


@pytest.mark.slow
def test_worker_processes_change_no_bit_of_the_weights(params, tmp_path):
    """Real-format images (JPEGs of different sizes, decoded per batch through the model transform):
    0 vs 2 worker processes give bit-identical weights, since a step's batch depends on (seed, step) only.
    The same JPEGs read out of a zip shard (each worker process opens the archive itself) give the same
    weights again."""
    import io

    import numpy as np
    from PIL import Image

    from genemi.bank import PairBank
    from genemi.clip import Clip
    from genemi.images import ShardWriter
    from genemi.manifest import Negative, Record
    from genemi.run import make_run
    from genemi.train import train

    rng = np.random.default_rng(0)
    words = ["red", "blue", "green", "white"]
    recs = []
    (tmp_path / "loose").mkdir()
    with ShardWriter(tmp_path / "shard" / "imgs") as shard:
        for i in range(12):
            for name in (f"{i}.jpg", f"{i}n.jpg"):
                h, w = rng.integers(30, 90, size=2)
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG")
                (tmp_path / "loose" / name).write_bytes(buf.getvalue())
                shard.write(tmp_path / "shard" / "imgs" / name, buf.getvalue())
            a, b = words[i % 4], words[(i + 1) % 4]
            recs.append(Record(id=str(i), image=f"{i}.jpg", caption=f"one {a} circle",
                               negatives=(Negative("attribute_replace", caption=f"one {b} circle",
                                                   image=f"{i}n.jpg"),)))
    assert not (tmp_path / "shard" / "imgs").exists()  # only imgs.zip: every read goes into the archive
    weights = []
    for root, workers in ((tmp_path / "loose", 0), (tmp_path / "loose", 2), (tmp_path / "shard" / "imgs", 2)):
        opt = dataclasses.replace(params.finetune, steps=3, batch_size=8, warmup_steps=1, lr=1e-3)
        p = dataclasses.replace(params, finetune=opt, data=dataclasses.replace(params.data, workers=workers))
        torch.manual_seed(0)
        clip = Clip.from_params(dataclasses.replace(p.model, tokenizer="word"))
        # file-backed, as for every real source: decoded per batch through a real model's preprocessing
        tf = Clip.from_params(dataclasses.replace(p.model, tokenizer="open_clip")).transform
        bank = PairBank.from_records(recs, root, clip.tokenizer, transform=tf)
        run = make_run(p, "finetune", clip.module, bank, recs, fingerprint="")
        assert bank.reads_files and run.workers == workers and run.negative_rows
        train(run, progress=False)
        weights.append({k: v.detach().clone() for k, v in run.engine.module.state_dict().items()})
    for other in weights[1:]:
        assert all(torch.equal(weights[0][k], other[k]) for k in weights[0])


def test_a_training_step_keeps_every_tensor_on_the_models_device(params):
    """The model, its teacher and L2 reference on PyTorch's ``meta`` device: any tensor of the step left on
    the CPU (a batch, a mask, a negative) raises "... is not on the expected device"."""
    from train_worker import tiny_bank

    from genemi.engine import frozen_copy, reference_weights
    from genemi.models import build_model
    from genemi.run import Replay, TrainingRun
    from genemi.samplers import EpochSampler
    from genemi.train import micro_batches, optimizer_step

    model = build_model(params.model).to("meta")

    class Engine:  # what optimizer_step needs of a DeepSpeed engine
        module = model

        def backward(self, loss):
            assert loss.device.type == "meta"

        def step(self):
            pass

    loss = dataclasses.replace(params.loss, form="additive", hn_weight=1.0, image_negatives=True,
                               negatives_per_sample=2, l2_weight=0.1, kl_weight=1.0, dpo_weight=1.0,
                               dpo_reference=True, replay_weight=1.0)
    run = TrainingRun(engine=Engine(), bank=tiny_bank(), sampler=EpochSampler(48, 8, 0), opt=params.finetune,
                      loss=loss, seed=0, negatives=2, negative_rows=False, records_per_step=8, accum=2,
                      teacher=frozen_copy(model), reference=reference_weights(model),
                      replay=Replay(tiny_bank(seed=7), EpochSampler(48, 4, 0, "replay"), 4))
    micro = micro_batches(run, 0, 0, 1)
    assert micro[0].neg_images is not None and micro[0].images.device.type == "cpu"
    assert micro[0].replay.images.device.type == "cpu"
    terms = optimizer_step(run, micro, torch.device("meta"), 1)
    assert {"loss", "l2", "kl", "dpo", "replay"} <= set(terms)
    assert all(t.device.type == "meta" for t in terms.values())
    # the same step with the batch left on the CPU is what the test exists to catch
    with pytest.raises((RuntimeError, NotImplementedError, ValueError), match="device|meta"):
        forward_loss(model, micro[0], loss, 1, run.teacher, run.reference)



def test_the_clip_follows_its_module_to_another_device(params):
    """The monitor encodes with the same Clip the engine trains: after the engine moves the module (here to
    ``meta``), encoding sends its inputs there too instead of to the device the Clip was built on."""
    from genemi.clip import Clip

    clip = Clip.from_params(params.model)
    assert clip.device.type == "cpu"
    clip.module.to("meta")
    assert clip.device.type == "meta"
    # the forward pass runs on meta (a CPU input would fail "... is not on the expected device"); only the
    # copy of the result back to the CPU can fail, since meta tensors hold no data
    with pytest.raises(RuntimeError, match="not on the expected device"):
        clip.module.encode_image(torch.zeros(2, 3, 48, 48))  # the mistake this guards against
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta"):
        clip.encode_pixels(torch.zeros(2, 3, 48, 48))
