"""Every default stage through its click command, on a tiny synthetic world, end to end."""

import json

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import pytest
import yaml
from click.testing import CliRunner


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    raw = frozen_params.raw()
    raw["synth"].update(n_train=96, n_test=24, n_gen=24)
    raw["base"].update(steps=4, batch_size=32, warmup_steps=1)
    raw["finetune"].update(steps=3, batch_size=16, warmup_steps=1)
    raw["eval"]["bootstrap"] = 20
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    return root, params


def _ok(result):
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


@pytest.mark.slow
def test_default_pipeline_runs_stage_by_stage(tiny):
    from genemi.images import image_exists
    from stages import base, evaluate, finetune, mine, synth_data

    root, params = tiny
    data, models, metrics = root / "data", root / "models", root / "metrics"
    r = CliRunner()
    _ok(r.invoke(synth_data.main, ["--params", str(params), "--out", str(data)]))
    assert (data / "synth" / "train.jsonl").is_file()
    _ok(r.invoke(mine.main, ["--params", str(params), "--root", str(data), "--sheet", str(root / "sheet.png")]))
    first = json.loads((data / "negatives" / "test.jsonl").read_text().splitlines()[0])
    assert first["negatives"] and all(image_exists(data / n["image"]) for n in first["negatives"])
    # the images are in one shard per split, not loose files
    assert sorted(f.name for f in (data / "negatives").iterdir()) == [
        "digest.json", "gen.jsonl", "gen.zip", "test.jsonl", "test.zip", "train.jsonl", "train.zip"]
    _ok(r.invoke(base.main, ["--params", str(params), "--train", str(data / "synth" / "pretrain.jsonl"),
                             "--image-root", str(data), "--out", str(models / "base.safetensors"),
                             "--metrics", str(metrics / "base.json")]))
    _ok(r.invoke(finetune.main, ["--params", str(params), "--train", str(data / "negatives" / "train.jsonl"),
                                 "--image-root", str(data), "--base", str(models / "base.safetensors"),
                                 "--out", str(models / "ft.safetensors"), "--metrics", str(metrics / "ft.json"),
                                 "--live-dir", str(root / "dvclive"), "--data", str(data)]))
    ft = json.loads((metrics / "ft.json").read_text())
    assert ft["train_hn_text"] > 0 and ft["train_hn_image"] > 0  # negative rows reach both terms
    curves = root / "dvclive" / "plots" / "metrics"
    assert (curves / "train" / "loss.tsv").is_file()
    # eval.monitor (synth_test) is scored at the first and the last of the 3 steps
    val = (curves / "val" / "relation_flip" / "text.tsv").read_text().splitlines()
    assert val[0].split("\t") == ["step", "text"] and [row.split("\t")[0] for row in val[1:]] == ["0", "2"]
    assert (curves / "val" / "retrieval" / "i2t_r@1.tsv").is_file()
    assert json.loads((data / "negatives" / "digest.json").read_text())["images"] > 96
    # caption-only negatives (HNC-like) cannot be rows: they are encoded as extra inputs instead
    rows = [json.loads(x) for x in (data / "negatives" / "train.jsonl").read_text().splitlines()]
    for row in rows:
        row["negatives"] = [{"type": n["type"], "caption": n["caption"]} for n in row["negatives"]]
    captions_only = root / "captions_only.jsonl"
    captions_only.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = _ok(r.invoke(finetune.main, ["--params", str(params), "--train", str(captions_only),
                                       "--image-root", str(data), "--base", str(models / "base.safetensors"),
                                       "--out", str(root / "ft2.safetensors"), "--metrics", str(root / "ft2.json"),
                                       "--live-dir", str(root / "dvclive2"), "--data", str(data)]))
    assert "encoded as extra inputs" in out.output
    ft2 = json.loads((root / "ft2.json").read_text())
    assert ft2["train_hn_text"] > 0 and ft2["train_hn_image"] == 0
    out = _ok(r.invoke(evaluate.main, ["--params", str(params), "--benchmark", "synth_test", "--data", str(data),
                                       "--base", str(models / "base.safetensors"),
                                       "--finetuned", str(models / "ft.safetensors"),
                                       "--metrics", str(metrics / "eval.json"), "--plot-dir", str(root / "plots")]))
    m = json.loads((metrics / "eval.json").read_text())
    for key in ("base/relation_flip/text", "finetuned/attribute_swap/text", "delta/relation_flip/text",
                "finetuned/retrieval/i2t_r@1"):
        assert key in m, key
    assert all(not isinstance(v, dict) for v in m.values()), "metrics must be flat"
    assert (root / "plots" / "synth_test.png").is_file()
    assert "delta/" in out.output


def test_finetune_on_hnc_without_its_data_says_what_to_do(tiny, tmp_path):
    from stages import finetune

    root, params = tiny
    raw = yaml.safe_load(params.read_text())
    raw["data"]["source"] = "hnc"
    raw["eval"]["monitor"] = ""  # a real run may not monitor the synthetic world (config check)
    p2 = tmp_path / "params.yaml"
    empty = tmp_path / "train.jsonl"
    empty.write_text("")
    args = ["--params", str(p2), "--train", str(empty), "--image-root", str(tmp_path),
            "--hnc-train", str(empty), "--hnc-image-root", str(tmp_path),
            "--base", str(tmp_path / "b.safetensors"), "--out", str(tmp_path / "o"), "--metrics", str(tmp_path / "m")]
    p2.write_text(yaml.safe_dump(raw))  # real HNC with the synthetic base: refused before any data is read
    r = CliRunner().invoke(finetune.main, args)
    assert r.exit_code == 1 and "needs a pretrained model and its tokenizer" in r.output
    raw["data"]["stand_in"] = "synthetic"  # the stand-in speaks the synthetic world's words: the base may train on it
    p2.write_text(yaml.safe_dump(raw))
    r = CliRunner().invoke(finetune.main, args)
    assert r.exit_code == 1
    assert "Error: " in r.output and "HNC training manifest is missing or empty" in r.output
    assert "data.source=hnc" in r.output
