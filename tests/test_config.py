"""params.yaml -> typed config: every key checked before any work starts."""

import copy

import pytest
import yaml

from genemi.config import ConfigError, load_params, params_from_dict, to_dict


@pytest.fixture(scope="module")
def raw():
    with open("params.yaml") as f:
        return yaml.safe_load(f)


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
