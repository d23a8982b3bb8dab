"""params.yaml -> typed config: every key checked before any work starts."""

import copy

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import pytest

from genemi.config import ConfigError, load_params, params_from_dict, to_dict


@pytest.fixture(scope="module")
def raw():
    return frozen_params.raw()


def test_project_params_load_and_round_trip(raw):
    p = params_from_dict(raw)
    assert p.loss.form in ("additive", "in_softmax")
    assert params_from_dict(to_dict(p)) == p


@pytest.mark.parametrize("path,value,message", [
    (("loss", "hn_wieght"), 0.3, "unknown key.*loss.hn_wieght"),
    (("loss", "hn_weight"), "high", "loss.hn_weight: expected a number"),
    (("base", "steps"), 1.5, "base.steps: expected an integer"),
    (("loss", "form"), "sigmoid", "loss.form: must be one of"),
    (("synth", "colors"), "red", "synth.colors: expected a list"),
    (("loss", "image_negatives"), "yes", "loss.image_negatives: expected true/false"),
    (("synth", "color_layout"), "stripes", "synth.color_layout: must be one of"),
])
def test_bad_values_are_named_by_dotted_key(raw, path, value, message):
    bad = copy.deepcopy(raw)
    section, key = path
    bad[section][key] = value
    with pytest.raises(ConfigError, match=message):
        params_from_dict(bad)


def test_the_swatch_layout_is_refused_on_the_genemi_stand_in_only(raw):
    """The GeNeMi stand-in's exact miner reads colours off the shapes' pixels: only the fill layout has
    them."""
    p = copy.deepcopy(raw)
    p["synth"]["color_layout"] = "swatch"
    assert params_from_dict(p).synth.color_layout == "swatch"  # the synthetic road
    p["data"].update(source="hnc", stand_in="synthetic")
    assert params_from_dict(p).data.source == "hnc"
    p["eval"]["benchmarks"]["val"] = {"loader": "genemi_val", "file": "raw/eval/genemi_val/test.jsonl",
                                      "images": "raw/eval/genemi_val", "subset": 1.0}
    with pytest.raises(ConfigError, match="synth.color_layout = swatch: the val stand-in"):
        params_from_dict(p)
    del p["eval"]["benchmarks"]["val"]
    p["data"]["source"] = "genemi"
    with pytest.raises(ConfigError, match="synth.color_layout = swatch: the genemi road"):
        params_from_dict(p)
    p["synth"]["color_layout"] = "fill"
    assert params_from_dict(p).data.source == "genemi"


def test_missing_key_is_named(raw):
    bad = copy.deepcopy(raw)
    del bad["finetune"]["lr"]
    with pytest.raises(ConfigError, match="missing key.*finetune.lr"):
        params_from_dict(bad)


def test_missing_or_broken_file_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_params(tmp_path / "nope.yaml")
    f = tmp_path / "p.yaml"
    f.write_text("seed: [unclosed\n")
    with pytest.raises(ConfigError, match="p.yaml: not valid YAML"):
        load_params(f)


def test_negative_rows_refuse_the_in_softmax_form(raw):
    bad = copy.deepcopy(raw)
    bad["batching"]["negative_rows"] = True
    bad["loss"]["form"] = "in_softmax"
    with pytest.raises(ConfigError, match="batching.negative_rows"):
        params_from_dict(bad)
    bad["loss"]["form"] = "additive"
    assert params_from_dict(bad).batching.negative_rows


def test_the_base_runs_plain_clip_whatever_the_loss_section_says():
    """LossParams.plain() (the base stage's loss) turns every extra term off, including any term added
    later: each loss field declares its off value next to its type (genemi.config.term)."""
    import dataclasses

    from genemi.config import LossParams
    from genemi.losses import needs_teacher, uses_negatives

    p = frozen_params.load().loss
    busy = dataclasses.replace(p, hn_weight=1.0, form="in_softmax", image_negatives=True, l2_weight=1.0,
                               kl_weight=1.0, dpo_weight=1.0, dpo_reference=True, temperature=0.07,
                               contrastive_weight=0.5, negatives_per_sample=3)
    plain = busy.plain()
    for f in dataclasses.fields(LossParams):
        assert "plain" in f.metadata, f"loss.{f.name}: declare its off value with term(...)"
        if f.name.endswith("_weight") and f.name != "contrastive_weight":
            assert getattr(plain, f.name) == 0, f"loss.{f.name} is not off in the base run"
    assert plain.contrastive_weight == 1.0 and plain.temperature == 0.0 and plain.form == "additive"
    assert not uses_negatives(plain) and not needs_teacher(plain)


def test_every_benchmark_entry_names_the_models_its_reader_runs(raw):
    """``models`` is evaluate@<name>'s third dvc.yaml dependency: ARO Order's stanza folder, else the entry's
    own file (no dependency it does not read); an entry without it fails here as DVC's template would."""
    from genemi.benchmarks import catalogue

    ok = copy.deepcopy(raw)
    ok["eval"]["benchmarks"]["aro_coco_order"] = catalogue()["aro_coco_order"]
    assert params_from_dict(ok).eval.benchmarks["aro_coco_order"].models == "models/stanza"
    for name, value, message in [
        ("aro_coco_order", None, "aro_coco_order.models: missing.*models/stanza"),
        ("aro_coco_order", "raw/eval/aro/coco_karpathy_test.json", "aro_order needs its stanza POS models"),
        ("synth_test", None, r"synth_test.models: missing.*repeat its file \('negatives/test.jsonl'\)"),
        ("synth_test", "models/stanza", "manifest runs no model; set it to its file 'negatives/test.jsonl'"),
    ]:
        bad = copy.deepcopy(ok)
        if value is None:
            del bad["eval"]["benchmarks"][name]["models"]
        else:
            bad["eval"]["benchmarks"][name]["models"] = value
        with pytest.raises(ConfigError, match=message):
            params_from_dict(bad)


@pytest.mark.parametrize("pretrained,ok", [
    ("", True),  # the synthetic base
    ("openai", True),  # open_clip tags: the tag is the record, nothing hand-placed
    ("laion2b_s34b_b79k", True),
    ("data/models/pretrained/negclip.pt", True),
    ("./data/models/pretrained/sub/negclip.pt", True),
    ("negclip.pt", False),  # a file, but not where `base` depends on it
    ("/home/me/negclip.pt", False),
    ("data/models/pretrained/../negclip.pt", False),
    ("data/models/negclip.safetensors", False),
    ("data/models/pretrained", False),  # the folder itself is no checkpoint
])
def test_a_pretrained_checkpoint_file_must_sit_where_base_depends_on_it(raw, pretrained, ok):
    cfg = copy.deepcopy(raw)
    cfg["model"]["pretrained"], cfg["finetune"]["lr"] = pretrained, 1e-5
    if ok:
        assert params_from_dict(cfg).model.pretrained == pretrained
    else:
        with pytest.raises(ConfigError, match=r"model.pretrained = .*put the checkpoint file in "
                           r"data/models/pretrained/ .* set model.pretrained=data/models/pretrained/\w+"):
            params_from_dict(cfg)
