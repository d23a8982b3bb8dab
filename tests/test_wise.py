"""WiSE-FT (genemi/wise.py, stages/wise.py, stages/wise_eval.py) on two tiny random models and a tiny world:
a = 0 is the base bit for bit and scores as the base, a = 1 as the fine-tuned model; mixes between are the
formula; two models of different architectures are refused in one line naming both files."""

import json

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner


def _ok(result):
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def _two_models(root, p):
    """Two random-init models of ``p.model`` (different seeds), saved as genemi saves models."""
    from genemi.clip import Clip

    paths = []
    for seed, name in ((1, "base"), (2, "ft")):
        torch.manual_seed(seed)
        path = root / "models" / f"{name}.safetensors"
        Clip.from_params(p.model).save(path, {"arch": p.model.arch, "pretrained": "", "tokenizer": "word"})
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from stages import mine, synth_data

    root = tmp_path_factory.mktemp("wise")
    raw = frozen_params.raw()
    raw["synth"].update(n_train=8, n_test=24, n_gen=24)
    raw["eval"]["bootstrap"] = 20
    raw["wise"]["alphas"] = [0.0, 0.5, 1.0]
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    r = CliRunner()
    _ok(r.invoke(synth_data.main, ["--params", str(params), "--out", str(root / "data")]))
    _ok(r.invoke(mine.main, ["--params", str(params), "--root", str(root / "data"), "--sheet",
                             str(root / "sheet.png")]))
    base, ft = _two_models(root, frozen_params.load())
    return root, params, base, ft


def test_interpolate_is_the_formula_per_tensor_and_the_end_points_are_the_inputs():
    from genemi.wise import interpolate

    g = torch.Generator().manual_seed(0)
    b = {"w": torch.randn(5, 3, generator=g), "z": torch.tensor([-0.0, 1.0]), "n": torch.tensor([3, 4])}
    f = {"w": torch.randn(5, 3, generator=g), "z": torch.tensor([0.0, 2.0]), "n": torch.tensor([3, 4])}
    for a in (0.25, 0.7):
        mix = interpolate(b, f, a)
        for k in ("w", "z"):  # the reference: element by element in float32, as numpy computes it
            want = (np.float32(1.0 - a) * b[k].numpy() + np.float32(a) * f[k].numpy()).astype(np.float32)
            assert mix[k].numpy().tobytes() == want.tobytes(), (a, k)
        assert torch.equal(mix["n"], b["n"])
    assert interpolate(b, f, 0.0)["z"].numpy().tobytes() == b["z"].numpy().tobytes()  # -0.0 stays -0.0
    assert interpolate(b, f, 1.0)["w"].numpy().tobytes() == f["w"].numpy().tobytes()
    with pytest.raises(ValueError, match="outside"):
        interpolate(b, f, 1.5)
    with pytest.raises(ValueError, match="tensor n .*not floating point"):
        interpolate(b, {**f, "n": torch.tensor([3, 5])}, 0.5)


@pytest.mark.slow
def test_end_points_give_the_base_and_finetuned_weights_and_metrics(world):
    from genemi.items import load_items
    from genemi.weights import read_safetensors
    from stages import evaluate, wise, wise_eval

    root, params, base, ft = world
    r = CliRunner()
    out = root / "models" / "wise"
    _ok(r.invoke(wise.main, ["--params", str(params), "--base", str(base), "--finetuned", str(ft),
                             "--out", str(out)]))
    assert sorted(x.name for x in out.iterdir()) == ["0.5.safetensors", "0.safetensors", "1.safetensors"]
    (b, _), (f, _) = read_safetensors(base), read_safetensors(ft)
    mixes = {a: read_safetensors(out / f"{a}.safetensors") for a in ("0", "0.5", "1")}
    for k in b:
        assert mixes["0"][0][k].numpy().tobytes() == b[k].numpy().tobytes(), k
        assert mixes["1"][0][k].numpy().tobytes() == f[k].numpy().tobytes(), k
        assert torch.equal(mixes["0.5"][0][k], 0.5 * b[k] + 0.5 * f[k]), k
    assert mixes["0.5"][1]["wise_alpha"] == 0.5 and mixes["0.5"][1]["arch"] == frozen_params.load().model.arch

    m = root / "metrics"
    for bench in ("synth_test", "synth_gen"):
        common = ["--params", str(params), "--benchmark", bench, "--data", str(root / "data"),
                  "--base", str(base)]
        _ok(r.invoke(evaluate.main, [*common, "--finetuned", str(ft), "--metrics", str(m / "e.json"),
                                     "--plot-dir", str(root / "plots"), "--headline", str(m / "h.json"),
                                     "--items", str(m / "i.npz")]))
        _ok(r.invoke(wise_eval.main, [*common, "--wise", str(out), "--metrics", str(m / "we.json"),
                                      "--headline", str(m / "wh.json"), "--items", str(m / "wi.npz")]))
        head, whead = json.loads((m / "h.json").read_text()), json.loads((m / "wh.json").read_text())
        detail, wdetail = json.loads((m / "e.json").read_text()), json.loads((m / "we.json").read_text())
        assert sorted(whead) == ["0", "0.5", "1"]
        assert whead["1"] == head  # a = 1 scores exactly as the fine-tuned model, intervals and all
        assert wdetail["1"] == detail
        for k, v in head.items():  # a = 0 scores as the base
            if k.startswith("base/"):
                assert whead["0"]["finetuned/" + k[5:]] == v and whead["0"][k] == v, k
                assert whead["0"]["delta/" + k[5:]] == 0, k
        for k, v in detail.items():
            if k.startswith("base/") and not k.endswith(("_lo", "_hi")):
                assert wdetail["0"]["finetuned/" + k[5:]] == v, k
        items, witems = load_items(m / "i.npz"), load_items(m / "wi.npz")
        assert witems.digest == items.digest and set(witems.outcomes) == {"base", "0", "0.5", "1"}
        for k, v in items.outcomes["finetuned"].items():
            assert np.array_equal(witems.outcomes["1"][k], v), k
            assert np.array_equal(witems.outcomes["0"][k], items.outcomes["base"][k]), k


def test_models_of_two_architectures_are_refused_naming_both_files(world, tmp_path):
    from genemi.weights import read_safetensors, write_safetensors
    from stages import wise

    root, params, base, ft = world
    state, meta = read_safetensors(ft)
    k = sorted(state)[0]
    cases = {
        "missing": ({x: v for x, v in state.items() if x != k}, meta, "in one file only"),
        "shape": ({**state, k: torch.zeros(*state[k].shape, 2)}, meta, "differ in shape"),
        "arch": (state, {**meta, "arch": "ViT-B-32"}, "model.arch="),
    }
    for name, (st, mt, why) in cases.items():
        bad = tmp_path / f"{name}.safetensors"
        write_safetensors(st, bad, mt)
        out = tmp_path / f"out_{name}"
        res = CliRunner().invoke(wise.main, ["--params", str(params), "--base", str(base), "--finetuned",
                                             str(bad), "--out", str(out)])
        assert res.exit_code != 0, name
        line = res.output.strip().splitlines()[0]  # the one line (a hint to get the traceback follows)
        assert line.startswith("Error: "), line
        assert str(base) in line and str(bad) in line and why in line and "not one architecture" in line, line
        assert not out.exists(), f"{name}: nothing is written"


def test_wise_eval_names_a_missing_mix_and_what_to_run(world, tmp_path):
    from stages import wise_eval

    root, params, base, ft = world
    res = CliRunner().invoke(wise_eval.main, [
        "--params", str(params), "--benchmark", "synth_test", "--data", str(root / "data"),
        "--base", str(base), "--wise", str(tmp_path), "--metrics", str(tmp_path / "m.json"),
        "--headline", str(tmp_path / "h.json"), "--items", str(tmp_path / "i.npz")])
    assert res.exit_code != 0 and "dvc repro wise" in res.output and "0.safetensors" in res.output, res.output
    assert not (tmp_path / "h.json").exists()


def test_wise_alphas_are_checked_on_load():
    from genemi.config import ConfigError, params_from_dict

    raw = frozen_params.raw()
    raw["wise"]["alphas"] = [0.5, 1.2]
    with pytest.raises(ConfigError, match=r"wise\.alphas\[1\]"):
        params_from_dict(raw)


def test_a_rerun_replaces_the_folder_whole(world, tmp_path):
    """A value dropped from wise.alphas leaves no file behind (the folder is one output)."""
    from stages import wise

    root, params, base, ft = world
    out = tmp_path / "wise"
    cases = (([0.25, 0.5], ["0.25.safetensors", "0.5.safetensors"]), ([0.5], ["0.5.safetensors"]))
    for alphas, want in cases:
        raw = yaml.safe_load(params.read_text())
        raw["wise"]["alphas"] = alphas
        p = tmp_path / "params.yaml"
        p.write_text(yaml.safe_dump(raw))
        _ok(CliRunner().invoke(wise.main, ["--params", str(p), "--base", str(base), "--finetuned", str(ft),
                                           "--out", str(out)]))
        assert sorted(x.name for x in out.iterdir()) == want
    raw["wise"]["alphas"] = [0.5, 0.50]
    p.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(wise.main, ["--params", str(p), "--base", str(base), "--finetuned", str(ft),
                                         "--out", str(out)])
    assert res.exit_code != 0 and "given twice" in res.output
    assert sorted(x.name for x in out.iterdir()) == ["0.5.safetensors"]
