"""Replay of the base's pretraining pairs during fine-tuning (``loss.replay_weight``): the rows each step
replays, the term it adds, and that it changes nothing when off."""

from __future__ import annotations

import dataclasses

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import pytest
import torch
import torch.nn.functional as F

from genemi.config import ConfigError


@pytest.fixture(scope="module")
def params():
    return frozen_params.load()


def _params(params, replay_weight=0.0, replay_batch=4, accum=1, replay_pairs=0):
    opt = dataclasses.replace(params.finetune, steps=3, batch_size=8, warmup_steps=1, lr=1e-3)
    loss = dataclasses.replace(params.loss, negatives_per_sample=2, replay_weight=replay_weight,
                               replay_batch=replay_batch, replay_pairs=replay_pairs)
    return dataclasses.replace(params, seed=3, finetune=opt, loss=loss,
                               batching=dataclasses.replace(params.batching, negative_rows=False),
                               deepspeed=dataclasses.replace(params.deepspeed, grad_accum=accum))


def _make(p, replay=True):
    from train_worker import tiny_bank

    from genemi.models import build_model
    from genemi.run import make_run

    torch.set_num_threads(1)
    torch.manual_seed(0)
    feed = (tiny_bank(seed=7), "pretrain.jsonl") if replay else None
    return make_run(p, "finetune", build_model(p.model), tiny_bank(), fingerprint="", replay=feed)


def _train(run):
    from genemi.train import train

    logged = []
    train(run, log=lambda s, v: logged.append(v), log_every=1, progress=False)
    return logged, {k: v.detach().clone() for k, v in run.engine.module.state_dict().items()}


def test_each_step_replays_its_own_shuffle_of_the_replay_pairs_split_over_ranks(params):
    from genemi.train import micro_batches

    run = _make(_params(params, replay_weight=1.0, replay_batch=8, accum=2))
    bank = run.replay.bank
    per_epoch = len(bank) // 8
    seen = []
    for step in range(per_epoch):
        whole = torch.cat([b.replay.texts for b in micro_batches(run, step, 0, 1)])
        ranks = [micro_batches(run, step, r, 2) for r in (0, 1)]
        # micro-batch a of the step: rank 0's rows then rank 1's, the same rows as one process takes
        split = torch.cat([ranks[r][a].replay.texts for a in (0, 1) for r in (0, 1)])
        assert torch.equal(whole, split) and whole.shape[0] == 8
        seen.append(whole)
    seen = torch.cat(seen)
    rows = [next(i for i in range(len(bank)) if torch.equal(bank.tokens[bank.pos_text[i]], t)) for t in seen]
    assert len(set(rows)) == per_epoch * 8  # an epoch draws each pair at most once
    train_rows = run.sampler.indices(0)[:8].tolist()
    assert rows[:8] != train_rows  # its own random stream, not the training pairs' order


def _replayed_rows(run, steps):
    """The bank rows of the pairs replayed in ``steps``, read back from the batches' caption tokens."""
    from genemi.train import micro_batches

    bank = run.replay.bank
    texts = torch.cat([b.replay.texts for s in steps for b in micro_batches(run, s, 0, 1)])
    return [next(i for i in range(len(bank)) if torch.equal(bank.tokens[bank.pos_text[i]], t)) for t in texts]


def test_replay_pairs_replays_one_fixed_sample_every_epoch(params):
    run = _make(_params(params, replay_weight=1.0, replay_batch=4, replay_pairs=12))
    assert len(run.replay.bank) > 12
    epochs = [_replayed_rows(run, range(e * 3, e * 3 + 3)) for e in range(3)]  # 12 pairs = 3 steps of 4
    assert all(sorted(rows) == sorted(set(rows)) and len(rows) == 12 for rows in epochs)  # each once an epoch
    assert set(epochs[0]) == set(epochs[1]) == set(epochs[2])  # the same 12 pairs, in new orders
    assert epochs[0] != epochs[1]
    same = _make(_params(params, replay_weight=1.0, replay_batch=4, replay_pairs=12))
    assert _replayed_rows(same, range(3)) == epochs[0]  # fixed by the seed
    sample = _params(params, replay_weight=1.0, replay_batch=4, replay_pairs=12)
    other = _make(dataclasses.replace(sample, seed=4))
    assert set(_replayed_rows(other, range(3))) != set(epochs[0])
    whole = _make(_params(params, replay_weight=1.0, replay_batch=4))  # 0 = every pair
    per_epoch = len(whole.replay.bank) // 4
    assert len(set(_replayed_rows(whole, range(per_epoch)))) == per_epoch * 4


def test_the_term_is_plain_clip_on_the_replayed_pairs_times_its_weight(params):
    from genemi.losses import training_loss

    g = torch.Generator().manual_seed(0)
    keys = ("image_features", "text_features")
    feats = {k: F.normalize(torch.randn(4, 8, generator=g), dim=-1) for k in keys}
    rep = {k: F.normalize(torch.randn(6, 8, generator=g), dim=-1) for k in keys}
    scale = torch.tensor(2.0)
    lp = dataclasses.replace(params.loss, hn_weight=0.0, replay_weight=0.5)
    off = training_loss(feats, scale, dataclasses.replace(lp, replay_weight=0.0))
    on = training_loss(feats, scale, lp, replay_features=rep)
    logits = scale.exp() * rep["image_features"] @ rep["text_features"].T
    want = sum(-logits.log_softmax(d).diagonal().mean() for d in (0, 1)) / 2
    assert on["replay"].item() == pytest.approx(want.item(), rel=1e-6)
    assert on["loss"].item() == pytest.approx(off["loss"].item() + 0.5 * want.item(), rel=1e-6)
    with pytest.raises(ValueError, match="replay_weight"):
        training_loss(feats, scale, lp)


@pytest.mark.slow
def test_off_changes_no_bit_and_on_trains_the_term(params):
    _, w_none = _train(_make(_params(params), replay=False))
    _, w_off = _train(_make(_params(params)))  # weight 0: the pairs given are never read
    assert all(torch.equal(w_none[k], w_off[k]) for k in w_none)
    logged, w_on = _train(_make(_params(params, replay_weight=1.0)))
    _, w_again = _train(_make(_params(params, replay_weight=1.0)))
    assert all(torch.equal(w_on[k], w_again[k]) for k in w_on)  # deterministic
    assert all(v["train/replay"] > 0 for v in logged)
    assert any(not torch.equal(w_none[k], w_on[k]) for k in w_none)


def test_bad_set_ups_are_refused_naming_the_key(params):
    from genemi.config import params_from_dict
    from genemi.run import replay_data

    with pytest.raises(ValueError, match="loss.replay_batch = 6 must be divisible by ranks x deepspeed"):
        _make(_params(params, replay_weight=1.0, replay_batch=6, accum=4))
    with pytest.raises(ValueError, match=r"loss.replay_batch = 4096 exceeds the \d+ pairs of pretrain.jsonl"):
        _make(_params(params, replay_weight=1.0, replay_batch=4096))
    with pytest.raises(ValueError, match=r"loss.replay_pairs = 4096 exceeds the \d+ pairs of pretrain.jsonl"):
        _make(_params(params, replay_weight=1.0, replay_pairs=4096))
    with pytest.raises(ValueError, match=r"loss.replay_batch = 8 exceeds loss.replay_pairs = 4; lower it"):
        _make(_params(params, replay_weight=1.0, replay_batch=8, replay_pairs=4))
    with pytest.raises(ValueError, match="loss.replay_weight = 1 in phase finetune, but no replay pairs"):
        _make(_params(params, replay_weight=1.0), replay=False)
    with pytest.raises(ValueError, match="needs the pairs to replay: pass --replay"):
        replay_data(_params(params, replay_weight=1.0), None, None)
    assert replay_data(_params(params), None, None) is None  # off: nothing is read
    raw = frozen_params.raw()
    raw["model"].update(arch="ViT-B-32-quickgelu", pretrained="openai", tokenizer="open_clip")
    raw["finetune"]["lr"] = 1e-5
    raw["loss"]["replay_weight"] = 1.0
    with pytest.raises(ConfigError, match=r"^loss.replay_weight=1 with model.pretrained='openai': replay"):
        params_from_dict(raw)
    raw["loss"]["replay_weight"] = 0.0
    params_from_dict(raw)  # the same run without replay is accepted
