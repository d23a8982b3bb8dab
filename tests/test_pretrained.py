"""Pretrained weights for real runs: local files, QuickGELU check, offline errors that say what to do."""

from __future__ import annotations

import pytest
import torch

from genemi.config import ModelParams
from genemi.pretrained import check_quickgelu, load_pretrained


def test_openai_weights_need_the_quickgelu_architecture():
    with pytest.raises(ValueError, match="ViT-B-32-quickgelu"):
        check_quickgelu("ViT-B-32", "openai")
    check_quickgelu("ViT-B-32-quickgelu", "openai")  # matching: no error
    check_quickgelu("ViT-B-32", "laion2b_s34b_b79k")


def test_missing_local_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "negclip.pt"
    with pytest.raises(FileNotFoundError, match="negclip.pt"):
        load_pretrained(ModelParams("ViT-B-32", str(path), "open_clip"))


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(ValueError, match="openai"):
        load_pretrained(ModelParams("ViT-B-32", "no_such_tag", "open_clip"))


def test_local_checkpoint_loads_its_weights(tmp_path):
    """A plain ``torch.save``d state dict (NegCLIP style) through open_clip's weights_only loader."""
    import open_clip

    from genemi.models import register_configs

    register_configs()
    torch.manual_seed(1)
    src = open_clip.create_model("genemi-synth-vit")
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    model = load_pretrained(ModelParams("genemi-synth-vit", str(path), "word"))
    assert model.logit_scale.shape == (1,)  # reshaped for DeepSpeed, like build_model
    assert torch.equal(model.visual.conv1.weight, src.visual.conv1.weight)
