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
])
def test_bad_values_are_named_by_dotted_key(raw, path, value, message):
    bad = copy.deepcopy(raw)
    section, key = path
    bad[section][key] = value
    with pytest.raises(ConfigError, match=message):
        params_from_dict(bad)


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
