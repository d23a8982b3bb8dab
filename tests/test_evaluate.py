"""Evaluation end to end: encode-once caching, a real-format benchmark with a fake encoder, and the
`evaluate` stage on a tiny synthetic world (same CLI and metric keys the acceptance figures read)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

from genemi.benchmarks.choice import winoground_choices
from genemi.bootstrap import compare
from genemi.evalsets import EvalSet, ImageStore, distinct_inputs, records_retrieval
from genemi.evaluate import encode_set
from genemi.manifest import Negative, Record
from genemi.metrics import evaluate_set, summarize

ROOT = Path(__file__).parents[1]
EV = Path(__file__).parent / "fixtures" / "eval"


def _mean_colour(im) -> torch.Tensor:
    """A fake model's image transform: the image's mean RGB, [3] float64."""
    return torch.tensor(np.asarray(im, dtype=np.float64).reshape(-1, 3).mean(0))


class CountingEncoder:
    """Deterministic fake encoder (a :class:`genemi.clip.Clip`'s contract) recording every input it encodes."""

    batch_size = 2
    transform = staticmethod(_mean_colour)

    def __init__(self):
        self.images: list[bytes] = []
        self.texts: list[str] = []

    def encode_pixels(self, pixels):
        self.images += [p.numpy().tobytes() for p in pixels]
        feats = torch.cat([pixels, torch.ones(len(pixels), 1, dtype=pixels.dtype)], 1)
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    def encode_texts(self, texts):
        self.texts += list(texts)
        rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=4) for t in texts]
        return torch.nn.functional.normalize(torch.tensor(np.stack(rows), dtype=torch.float32), dim=-1)


def _png(path: Path, color) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), color).save(path)


def test_each_image_and_caption_encoded_once(tmp_path):
    for i, c in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        _png(tmp_path / f"{i}.png", c)
    recs = [
        Record(
            id="a",
            image="0.png",
            caption="x",
            negatives=(Negative("t", caption="y"), Negative("t", image="1.png")),
        ),
        Record(id="b", image="0.png", caption="y", negatives=(Negative("t", caption="x", image="2.png"),)),
        Record(id="c", image="1.png", caption="x", negatives=(Negative("u", caption="z"),)),
    ]
    enc, other = CountingEncoder(), CountingEncoder()
    es = EvalSet("s", ImageStore(tmp_path), recs)
    loads = []
    real_load = es.store.load
    es.store.load = lambda ref: loads.append(ref) or real_load(ref)
    feats = encode_set({"base": enc, "finetuned": other}, es)
    # two models, but every image decoded once; each model encodes each image and caption once
    assert sorted(loads) == ["0.png", "1.png", "2.png"]
    assert sorted(enc.texts) == ["x", "y", "z"] and len(enc.images) == 3 and len(other.images) == 3
    f = feats["base"]
    assert set(f.image_index) == {"0.png", "1.png", "2.png"}
    es_retrieval = EvalSet("s", ImageStore(tmp_path), recs, retrieval=records_retrieval(recs))
    keys = summarize(evaluate_set(es_retrieval, f, ks=(1, 5)))
    assert {
        "t/text",
        "t/image",
        "t/group",
        "t/n",
        "all/text",
        "retrieval/i2t_r@1",
        "retrieval/t2i_r@5",
    } <= set(keys)


def test_winoground_fixture_end_to_end_with_fake_encoder(tmp_path):
    choices = winoground_choices(EV / "winoground_examples.jsonl")
    for k, c in enumerate(choices):
        for j, ref in enumerate(c.images):
            _png(tmp_path / ref, (40 * k, 100 * j, 7))
    es = EvalSet("winoground", ImageStore(tmp_path), [], choices)
    imgs, texts = distinct_inputs(es)
    assert len(imgs) == 6 and len(texts) == 6
    out = {m: evaluate_set(es, f) for m, f in encode_set({"base": CountingEncoder(), "finetuned": CountingEncoder()}, es).items()}
    flat = compare(out, n_boot=20, seed=0)
    for k in ("all/text", "all/image", "all/group", "all/text_1", "Object/text", "Relation/group"):
        assert f"base/{k}" in flat and f"delta/{k}" in flat
    assert flat["delta/all/text"] == 0.0 and flat["base/Object/n"] == 2.0


def _tiny_world(tmp_path: Path) -> tuple[Path, Path]:
    raw = frozen_params.raw()
    raw["synth"].update(n_train=8, n_test=24, n_gen=16, n_pretrain=8, n_broad=60)
    raw["eval"]["bootstrap"] = 50
    raw["threads"] = 1
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    from stages import mine, synth_data

    data = tmp_path / "data"
    r = CliRunner()
    assert r.invoke(synth_data.main, ["--params", str(params), "--out", str(data)]).exit_code == 0
    res = r.invoke(
        mine.main, ["--params", str(params), "--root", str(data), "--sheet", str(tmp_path / "sheet.png")]
    )
    assert res.exit_code == 0, res.output
    from genemi.config import load_params
    from genemi.models import build_model, save_weights

    for seed, name in ((0, "base"), (1, "finetuned")):
        torch.manual_seed(seed)
        save_weights(build_model(load_params(params).model), tmp_path / f"{name}.safetensors", {})
    return params, data


def stage_args(tmp_path: Path, params: Path, data: Path) -> list[str]:
    """The evaluate stage's argv on :func:`_tiny_world`'s files (synth_test), less --metrics."""
    return ["--params", str(params), "--benchmark", "synth_test", "--data", str(data),
            "--base", str(tmp_path / "base.safetensors"), "--finetuned", str(tmp_path / "finetuned.safetensors"),
            "--plot-dir", str(tmp_path / "plots")]


def test_stage_on_tiny_synthetic_world_keeps_keys_and_is_deterministic(tmp_path):
    from stages import evaluate as stage

    params, data = _tiny_world(tmp_path)
    args = stage_args(tmp_path, params, data)
    runs = []
    for i in range(2):
        res = CliRunner().invoke(stage.main, args + ["--metrics", str(tmp_path / f"m{i}.json")])
        assert res.exit_code == 0, res.output
        runs.append((tmp_path / f"m{i}.json").read_bytes())
    assert runs[0] == runs[1]  # same params + seed -> byte-identical metrics
    flat = json.loads(runs[0])
    types = {k.split("/")[1] for k in flat if k.startswith("base/") and k.endswith("/text")} - {
        "all",
        "macro",
    }
    assert types
    for t in types:
        for m in ("text", "image", "group"):
            for model in ("base", "finetuned"):
                assert f"{model}/{t}/{m}" in flat
            assert flat[f"delta/{t}/{m}"] == pytest.approx(
                flat[f"finetuned/{t}/{m}"] - flat[f"base/{t}/{m}"], abs=1e-3
            )
        assert f"base/{t}/n" in flat and f"delta/{t}/text_lo" in flat and f"base/{t}/margin" in flat
    for k in ("i2t_r@1", "i2t_r@5", "t2i_r@1", "t2i_r@10"):
        assert f"finetuned/retrieval/{k}" in flat and f"delta/retrieval/{k}" in flat
    csv = (tmp_path / "plots" / "synth_test.csv").read_text().splitlines()
    assert (
        csv[0].startswith("type,base_text,base_image,base_group,finetuned_text")
        and len(csv) == len(types) + 1
    )
    assert (tmp_path / "plots" / "synth_test.png").read_bytes()[:4] == b"\x89PNG"
    bars = (tmp_path / "plots" / "synth_test_bars.csv").read_text().splitlines()
    assert bars[0] == "label,type,model,text,text_lo,text_hi" and len(bars) == 2 * len(types) + 1
    t0 = sorted(types)[0]
    row = next(r.split(",") for r in bars if r.startswith(f"{t0} | finetuned,"))
    assert float(row[3]) == pytest.approx(flat[f"finetuned/{t0}/text"], abs=1e-3)
    assert float(row[4]) == pytest.approx(flat[f"finetuned/{t0}/text_lo"], abs=1e-3)


def test_retention_headline_by_hand():
    """retention/zeroshot_top1 = 100 * fine-tuned / base top-1, from the unrounded means; absent without
    zero-shot parts or with a base at 0."""
    from genemi.headline import headline

    parts = {"zeroshot_top1": ["zeroshot/top1"], "r@1": ["retrieval/i2t_r@1", "retrieval/t2i_r@1"]}
    points = {"base": {"zeroshot/top1": 62.5, "retrieval/i2t_r@1": 40.0, "retrieval/t2i_r@1": 30.0},
              "finetuned": {"zeroshot/top1": 50.0, "retrieval/i2t_r@1": 35.0, "retrieval/t2i_r@1": 31.0}}
    h = headline(points, parts)
    assert h["retention/zeroshot_top1"] == 80.0  # 100 * 50 / 62.5
    assert h["delta/zeroshot_top1"] == -12.5 and h["base/r@1"] == 35.0 and h["delta/r@1"] == -2.0
    points["base"]["zeroshot/top1"] = 3.0
    points["finetuned"]["zeroshot/top1"] = 1.0
    assert headline(points, parts)["retention/zeroshot_top1"] == 33.3333  # 100 / 3, rounded once
    points["base"]["zeroshot/top1"] = 0.0
    assert "retention/zeroshot_top1" not in headline(points, parts)
    assert "retention/zeroshot_top1" not in headline(points, {"r@1": parts["r@1"]})


def test_stage_scores_synth_broad_zero_shot_and_retrieval_with_its_retention(tmp_path):
    """evaluate@synth_broad on the tiny world: the headline holds the seven names the report reads, and
    each equals a hand computation from the per-item outcomes (top-1 hits over the lone-object images)."""
    from stages import evaluate as stage

    from genemi.items import load_items

    params, data = _tiny_world(tmp_path)
    args = stage_args(tmp_path, params, data)
    args[args.index("synth_test")] = "synth_broad"
    out = [tmp_path / "m.json", tmp_path / "h.json", tmp_path / "i.npz"]
    res = CliRunner().invoke(stage.main, [*args, "--metrics", str(out[0]), "--headline", str(out[1]),
                                          "--items", str(out[2])])
    assert res.exit_code == 0, res.output
    head = json.loads(out[1].read_text())
    assert set(head) == {f"{m}/{n}" for m in ("base", "finetuned", "delta") for n in ("zeroshot_top1", "r@1")} | {
        "retention/zeroshot_top1"}
    it = load_items(out[2])
    lone = [json.loads(x) for x in (data / "synth" / "broad.jsonl").read_text().splitlines()]
    lone = [r for r in lone if "class" in r["meta"]]
    top1 = {m: 100 * it.outcomes[m]["zeroshot/top1"].mean() for m in ("base", "finetuned")}
    assert len(it.outcomes["base"]["zeroshot/top1"]) == len(lone) >= 30
    assert head["base/zeroshot_top1"] == pytest.approx(top1["base"], abs=1e-4)
    assert head["retention/zeroshot_top1"] == pytest.approx(100 * top1["finetuned"] / top1["base"], abs=1e-3)
    r1 = {m: 50 * (it.outcomes[m]["retrieval/i2t_r@1"].mean() + it.outcomes[m]["retrieval/t2i_r@1"].mean())
          for m in ("base", "finetuned")}
    assert head["delta/r@1"] == pytest.approx(r1["finetuned"] - r1["base"], abs=2e-4)
    flat = json.loads(out[0].read_text())
    assert flat["base/zeroshot/n_classes"] == len({r["meta"]["class"] for r in lone})
    assert not any("/text" in k for k in flat)  # no negatives in the retention split: no pairwise metrics


def test_stage_fails_fast_on_enabled_benchmark_without_files(tmp_path):
    from stages import evaluate as stage

    from genemi.benchmarks import catalogue

    params = tmp_path / "params.yaml"
    raw = frozen_params.raw()
    raw["eval"]["benchmarks"]["aro_vg_relation"] = catalogue()["aro_vg_relation"]  # listed, files absent
    params.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(
        stage.main,
        [
            "--params",
            str(params),
            "--benchmark",
            "aro_vg_relation",
            "--data",
            str(tmp_path / "data"),
            "--base",
            "nope.safetensors",
            "--finetuned",
            "nope.safetensors",
            "--metrics",
            str(tmp_path / "m.json"),
            "--plot-dir",
            str(tmp_path / "plots"),
        ],
    )
    assert res.exit_code != 0
    assert "visual_genome_relation.json" in res.output and "docs/benchmarks.md" in res.output
    assert not (tmp_path / "m.json").exists()


def test_clip_encoders_match_the_plain_model_whatever_the_batch_size():
    """Clip.encode_* against the open_clip model called on one whole batch by hand."""
    from genemi.clip import Clip
    from genemi.config import ModelParams

    mp = ModelParams(arch="genemi-synth-vit", pretrained="", tokenizer="word")
    torch.manual_seed(0)
    clip = Clip.from_params(mp, batch_size=3)
    images = [Image.new("RGB", (48, 48), (255 * (i % 2), 60 * i, 9)) for i in range(5)]
    texts = ["red circle", "blue square", "green cross"]
    m = clip.module.eval()
    with torch.no_grad():
        pix = torch.stack([torch.tensor(np.asarray(im), dtype=torch.float32).permute(2, 0, 1) / 127.5 - 1
                           for im in images])
        ref_i = torch.nn.functional.normalize(m.encode_image(pix), dim=-1)
        ref_t = torch.nn.functional.normalize(m.encode_text(clip.tokenizer(texts)), dim=-1)
    assert torch.allclose(clip.encode_images(images), ref_i, atol=1e-6)
    assert torch.allclose(clip.encode_pixels(pix), ref_i, atol=1e-6)
    assert torch.allclose(clip.encode_texts(texts), ref_t, atol=1e-6)


def test_monitor_scores_a_fixed_subset_and_hands_the_model_back_in_train_mode(tmp_path):
    """The val/* curves of fine-tuning: same numbers as a full evaluation of that subset, no side effects."""
    from genemi.clip import Clip
    from genemi.config import ModelParams
    from genemi.evalsets import monitor_set
    from genemi.evaluate import monitor_scores

    colors = {"red": (220, 40, 40), "blue": (50, 90, 240), "green": (40, 190, 60)}
    for name, c in colors.items():
        Image.new("RGB", (48, 48), c).save(tmp_path / f"{name}.png")
    recs = [
        Record(id=f"r{i}", image=f"{a}.png", caption=f"one {a} circle on the left",
               negatives=(Negative("attribute_replace", caption=f"one {b} circle on the left", image=f"{b}.png"),))
        for i, (a, b) in enumerate([("red", "blue"), ("blue", "green"), ("green", "red"), ("red", "green")])
    ]
    es = EvalSet("tiny", ImageStore(tmp_path), recs, retrieval=records_retrieval(recs))
    head = monitor_set(es, 3)
    assert [r.id for r in head.records] == ["r0", "r1", "r2"] and len(head.retrieval.image_keys) == 3

    mp = ModelParams(arch="genemi-synth-vit", pretrained="", tokenizer="word")
    torch.manual_seed(0)
    clip = Clip.from_params(mp, batch_size=2)
    model = clip.module.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = monitor_scores(clip, head)
    assert model.training  # back in the mode it came in
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    full = summarize(evaluate_set(head, encode_set({"m": Clip(model, mp, batch_size=4)}, head)["m"], ks=(1,)))
    assert set(got) == {"attribute_replace/text", "all/text", "retrieval/i2t_r@1", "retrieval/t2i_r@1"}
    assert all(got[k] == full[k] for k in got)

    with pytest.raises(ValueError, match="eval.monitor: benchmark 'tiny' has no caption/negative records"):
        monitor_set(EvalSet("tiny", ImageStore(tmp_path)), 3)
