"""Both real roads run end to end offline through `dvc repro`, on the synthetic stand-ins at a tiny size:
the hnc road (HNC JSON + GQA JPEGs -> hnc_manifest -> fine-tune -> evaluate@hnc_test) and the genemi road
(COCO Karpathy -> coco_manifest -> exact mining -> GeNeMi batches with regular COCO pairs ->
evaluate@genemi_val). What runs is the published recipe of each rehearsal (recipes/standin_*.yaml)."""

from __future__ import annotations

import json

import frozen_params
import pytest
import yaml
from test_sweep import BIN, TINY, _copy_worktree, _dvc, commit_params, with_tiny

ROAD_TINY = {**TINY, "data": {"stand_in_size": 40}, "mine_real": {"max_images": 6}}


def _tiny_road(tmp_path, recipe_name: str):
    from genemi import recipe

    if not (BIN / "dvc").is_file():
        pytest.skip("dvc is not installed in this environment")
    repo = tmp_path / "repo"
    _copy_worktree(repo)
    # the committed-params start of `recipe apply`, from the frozen copy: not the live params.yaml
    r = recipe.load_recipe(recipe_name, repo / "recipes")
    recipe.apply(r, repo / "params.yaml", base=frozen_params.raw())
    raw = with_tiny(yaml.safe_load((repo / "params.yaml").read_text()), ROAD_TINY)
    raw["finetune"]["batch_size"] = 20 if raw["batching"]["mode"] == "item_based" else 16
    commit_params(repo, raw, "road")
    _dvc(repo, "repro", timeout=1200)
    return repo, raw


def _downloaded(repo) -> dict[str, list[str]]:
    raw = repo / "data" / "raw"
    return {d.name: sorted(p.name for p in d.iterdir())[:3] for d in sorted(raw.iterdir()) if d.is_dir()}


@pytest.mark.slow
def test_the_hnc_road_runs_offline_on_its_stand_in(tmp_path):
    repo, raw = _tiny_road(tmp_path, "standin_hnc")
    assert list(raw["eval"]["benchmarks"]) == ["hnc_test"]
    stats = json.loads((repo / "metrics" / "hnc_data.json").read_text())
    assert stats["train"]["records"] > 0 and stats["train"]["images_missing"] == 0
    head = json.loads((repo / "metrics" / "headline" / "hnc_test.json").read_text())
    assert head and all(isinstance(v, (int, float)) for v in head.values())
    items = json.loads((repo / "metrics" / "eval" / "hnc_test.json").read_text())
    assert items["finetuned/all/n"] > 0
    got = _downloaded(repo)  # the road's downloads wrote stand-ins; nothing else was needed
    assert "SKIPPED.txt" not in got["hnc"] + got["gqa"] and got["coco"] == ["SKIPPED.txt"], got
    assert not (repo / "downloads.lock.json").exists()


@pytest.mark.slow
def test_the_genemi_road_runs_offline_on_its_stand_in(tmp_path):
    repo, raw = _tiny_road(tmp_path, "standin_genemi")
    mined = json.loads((repo / "metrics" / "mine_real.json").read_text())
    assert mined["enabled"] and mined["backend"] == "synthetic" and mined["origins"] == 6 and mined["kept"] > 0
    assert mined["corrupted"] == 0 and mined["written"] == mined["kept"]  # exact edits, the filter on
    variations = repo / "data" / "mine_real" / "variations.jsonl"
    rows = [json.loads(x) for x in variations.read_text().splitlines()]
    assert rows and all(r["source"] == "genemi" for r in rows)
    head = json.loads((repo / "metrics" / "headline" / "genemi_val.json").read_text())
    assert head and all(isinstance(v, (int, float)) for v in head.values())
    got = _downloaded(repo)
    assert got["hnc"] == got["gqa"] == ["SKIPPED.txt"] and "SKIPPED.txt" not in got["coco"], got
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert "data/mine_real/variations.jsonl" in {d["path"] for d in lock["finetune"]["deps"]}


def test_each_download_is_needed_by_its_road_or_a_listed_benchmark_only():
    import frozen_params

    from genemi import roads
    from genemi.benchmarks import catalogue
    from genemi.config import params_from_dict

    def needed(source="synthetic", backend="pretrained", extra=()):
        raw = frozen_params.raw()
        raw["data"]["source"], raw["mine_real"]["backend"], raw["eval"]["monitor"] = source, backend, ""
        entries = [(n, catalogue()[n]) if isinstance(n, str) else n for n in extra]  # names or (name, entry)
        raw["eval"]["benchmarks"].update(dict(entries))
        p = params_from_dict(raw)
        return {s for s in roads.DOWNLOADS if roads.download_needed(p, s)}

    models = set(roads.MINING_MODELS)
    assert needed() == set()
    assert needed("hnc") == {"download_hnc", "download_gqa"}
    assert needed("genemi") == {"download_coco", "download_stanza"} | models
    assert needed("genemi", "tiny") == needed("genemi", "synthetic") == {"download_coco"}
    assert needed(extra=["hnc_test"]) == {"download_hnc", "download_gqa"}
    assert needed(extra=["coco_neg", "genemi_val"]) == {"download_coco", "download_genemi_val"}
    assert needed(extra=["aro_coco_order"]) == {"download_coco", "download_stanza"}  # images + POS tagger
    assert needed(extra=["aro_flickr_order"]) == {"download_stanza"}  # its `models` only (hand-placed images)
    own = {**catalogue()["aro_flickr_order"], "models": "raw/eval/stanza"}  # stanza models placed by hand
    assert needed(extra=[("aro_own", own)]) == set()
    assert needed(extra=["winoground"]) == set()  # hand-placed (gated): `dvc add` it, no download stage
