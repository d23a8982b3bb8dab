"""Real runs follow the published procedures: image-path layouts, ARO's macro accuracy, the
standard 25,000-caption Karpathy 5k test, GeNeMi's one-origin-per-image mining, no empty outputs, and
the named recipes. Every fixture is written here from the original repository's format, cited in the
test's docstring."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import frozen_params  # tests/fixtures/params.yaml, not the live params.yaml
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from genemi import benchmarks
from genemi.benchmarks import catalogue
from genemi.benchmarks.pairwise import ARO_SYMMETRIC_RELATIONS, aro_records
from genemi.benchmarks.retrieval import karpathy_retrieval
from genemi.bootstrap import compare
from genemi.config import ConfigError, EvalSource, load_params, params_from_dict
from genemi.evalsets import EvalSet, ImageStore, Retrieval
from genemi.manifest import Record
from genemi.metrics import Features, evaluate_set, summarize

ROOT = Path(__file__).resolve().parents[1]


def _png(path: Path, color=(200, 30, 30), size=(8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="PNG")


def _eval_params(sources: dict[str, EvalSource]):
    return dataclasses.replace(frozen_params.load().eval, benchmarks=sources)


def _raw_params() -> dict:
    return frozen_params.raw()


# ------------------------------------------------------------------------------ 1. coco_neg paths


def test_coco_neg_accepts_bare_and_val2014_prefixed_image_paths(tmp_path):
    """Structure-CLIP's ``test_coco_aug_withneg.json`` (the thesis's COCO set) is a JSON list of
    ``{"image": "val2014/COCO_val2014_<12 digits>.jpg", "text", "neg_text"}``; the thesis opens
    ``os.path.join(image_folder, item["image"])`` with ``IMAGE_FOLDER="./Coco/val2014"``
    (WenW186079/HNC_CLIP_masterthesis run_evaluation.sh, "===path for coco==="), after
    ``unzip val2014.zip -d ./val2014`` (its README). Other copies store the bare file name. With
    ``images: .../val2014`` both must resolve, and the thesis's doubled layout too."""
    rows = [
        {
            "image": "val2014/COCO_val2014_000000391895.jpg",
            "text": "A man on a moped.",
            "neg_text": "A moped on a man.",
        },
        {
            "image": "COCO_val2014_000000522418.jpg",
            "text": "A woman cuts a cake.",
            "neg_text": "A cake cuts a woman.",
        },
    ]
    ann = tmp_path / "test_coco_aug_withneg.json"
    ann.write_text(json.dumps(rows))
    data = tmp_path / "data"
    for name in ("COCO_val2014_000000391895.jpg", "COCO_val2014_000000522418.jpg"):
        _png(data / "raw/coco/images/val2014" / name)
    p = _eval_params({"c": EvalSource("coco_neg", str(ann), "raw/coco/images/val2014", 1.0)})
    es = benchmarks.load_benchmark(p, "c", data)
    assert benchmarks.missing_images(es)[0] == 0
    for r in es.records:
        assert es.store.load(r.image).size == (8, 8)
    # the thesis's own layout: unzip -d ./val2014 gives val2014/val2014/<file>; the path as given wins
    thesis = tmp_path / "Coco"
    _png(thesis / "val2014/val2014/COCO_val2014_000000391895.jpg", (1, 2, 3))
    _png(thesis / "val2014/COCO_val2014_000000522418.jpg")
    es2 = benchmarks.load_benchmark(
        _eval_params({"c": EvalSource("coco_neg", str(ann), str(thesis / "val2014"), 1.0)}), "c", data
    )
    assert benchmarks.missing_images(es2)[0] == 0
    assert es2.store.load(es2.records[0].image).getpixel((0, 0)) == (1, 2, 3)
    # a file absent in both forms is still reported, under the path as written
    (data / "raw/coco/images/val2014/COCO_val2014_000000391895.jpg").unlink()
    n, first = benchmarks.missing_images(benchmarks.load_benchmark(p, "c", data))
    assert n == 1 and first[0].endswith("val2014/val2014/COCO_val2014_000000391895.jpg")


def test_coco_neg_reads_download_cocos_val2014_zip_in_both_path_forms(tmp_path):
    """download_coco keeps COCO's val2014.zip (members ``val2014/COCO_val2014_*.jpg``) unextracted and the
    catalogue's coco_neg names it as its images; bare and val2014-prefixed paths both read from it."""
    import io
    import zipfile

    rows = [{"image": f"{prefix}COCO_val2014_{i:012d}.jpg", "text": "a cat", "neg_text": "a dog"}
            for i, prefix in ((1, "val2014/"), (2, ""))]  # fmt: skip
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(rows))
    data = tmp_path / "data"
    images = catalogue()["coco_neg"]["images"]
    assert images.endswith(".zip")  # the evaluate stage depends on data/<images>: it must exist
    (data / images).parent.mkdir(parents=True)
    with zipfile.ZipFile(data / images, "w") as z:
        for i in (1, 2):
            buf = io.BytesIO()
            Image.new("RGB", (8, 8), (10 * i, 0, 0)).save(buf, format="PNG")
            z.writestr(f"val2014/COCO_val2014_{i:012d}.jpg", buf.getvalue())
    p = _eval_params({"c": EvalSource("coco_neg", str(ann), images, 1.0)})
    es = benchmarks.load_benchmark(p, "c", data)
    assert benchmarks.missing_images(es)[0] == 0
    assert sorted(es.store.load(r.image).getpixel((0, 0))[0] for r in es.records) == [10, 20]


def test_a_leading_folder_is_stripped_only_when_it_repeats_the_root(tmp_path):
    """The rule is general (any loader), and narrow: only a first component equal to the root's name."""
    _png(tmp_path / "images/a.png")
    store = ImageStore(tmp_path / "images")
    assert store.file("images/a.png") == tmp_path / "images/a.png"
    assert store.file("other/a.png") == tmp_path / "images/other/a.png"  # not rewritten: reported missing


# ---------------------------------------------------------------------------- 2. ARO macro accuracy


def _features(recs: list[Record], correct: dict[str, bool]) -> Features:
    """Image ``[1, 0]``; its caption ``[1, 0]`` and negative ``[0, 1]`` (right) or swapped (wrong)."""
    imgs = sorted({r.image for r in recs})
    texts, rows = {}, []
    for r in recs:
        ok = correct[r.id]
        for t, v in (
            (r.caption, [1.0, 0.0] if ok else [0.0, 1.0]),
            (r.negatives[0].caption, [0.0, 1.0] if ok else [1.0, 0.0]),
        ):
            texts[t] = len(rows)
            rows.append(v)
    return Features(
        {ref: i for i, ref in enumerate(imgs)},
        torch.tensor([[1.0, 0.0]] * len(imgs)),
        texts,
        torch.tensor(rows),
    )


def test_aro_vg_relation_macro_drops_aros_symmetric_relations(tmp_path):
    """ARO's ``visual_genome_relation.json`` is a list of ``{"image_path", "bbox_x", "bbox_y", "bbox_w",
    "bbox_h", "true_caption", "false_caption", "relation_name", ...}``
    (mertyg/vision-language-models-are-bows, dataset_zoo/aro_datasets.py, class VG_Relation). Its macro
    accuracy is the mean per-relation accuracy after
    ``df = df[~df.Relation.isin(symmetric)]`` (notebooks/"Replicate ARO! VG-Relation, VG-Attribution.ipynb",
    cell "Evaluate the macro accuracy")."""
    cases = [  # (relation, correct?)
        ("on", True),
        ("on", False),  # 50
        ("behind", True),  # 100
        ("next to", False),
        ("near", False),  # symmetric in ARO's list: 0 and 0
        ("wearing", False),  # 0
    ]
    rows = [
        {
            "image_path": "2315497.jpg",
            "bbox_x": 0,
            "bbox_y": 0,
            "bbox_w": 8,
            "bbox_h": 8,
            "true_caption": f"the cup is {rel} the table {i}",
            "false_caption": f"the table is {rel} the cup {i}",
            "relation_name": rel,
        }
        for i, (rel, _) in enumerate(cases)
    ]
    ann = tmp_path / "visual_genome_relation.json"
    ann.write_text(json.dumps(rows))
    _png(tmp_path / "images/2315497.jpg")
    p = _eval_params({"r": EvalSource("aro_relation", str(ann), str(tmp_path / "images"), 1.0)})
    es = benchmarks.load_benchmark(p, "r", tmp_path)
    f = _features(es.records, {r.id: ok for r, (_, ok) in zip(es.records, cases, strict=True)})
    s = summarize(evaluate_set(es, f))
    # brute force: per-relation means, then ARO's macro over the non-symmetric ones
    per = {}
    for rel, ok in cases:
        per.setdefault(rel, []).append(100.0 * ok)
    means = {rel: float(np.mean(v)) for rel, v in per.items()}
    assert s["macro/text"] == pytest.approx(
        np.mean([means[r] for r in means if r not in ARO_SYMMETRIC_RELATIONS])
    )
    assert s["macro/text"] == pytest.approx(50.0)  # (50 + 100 + 0) / 3
    assert s["macro_all/text"] == pytest.approx(np.mean(list(means.values())))  # (50+100+0+0+0) / 5
    assert s["all/n"] == 6.0 and s["all/text"] == pytest.approx(100 * 2 / 6)
    flat = compare({"base": evaluate_set(es, f), "finetuned": evaluate_set(es, f)}, n_boot=10, seed=0)
    assert (
        "base/macro/text_lo" in flat and "base/macro_all/text_hi" in flat and flat["delta/macro/text"] == 0.0
    )


def test_aro_symmetric_list_is_aros():
    """ARO's list (same notebook cell) ends with the spatial ones named below; ``on``, ``behind``,
    ``wearing`` and ``holding`` are not in it."""
    assert len(ARO_SYMMETRIC_RELATIONS) == 157
    assert {
        "next to",
        "near",
        "with",
        "beside",
        "by",
        "of",
        "on the side of",
        "around",
        "adjusting",
        "wrapped in",
    } <= ARO_SYMMETRIC_RELATIONS
    assert not {"on", "behind", "wearing", "holding", "in front of"} & ARO_SYMMETRIC_RELATIONS


def test_aro_attribution_has_no_exclusion_and_keeps_its_25_case_rule(tmp_path):
    """VG_Attribution.evaluate_scores skips attribute pairs with ``attr_mask.sum() < 25`` (aro_datasets.py);
    no symmetric list applies there, so no ``macro_all`` appears."""
    rows = [
        {
            "image_path": "a.jpg",
            "bbox_x": 0,
            "bbox_y": 0,
            "bbox_w": 4,
            "bbox_h": 4,
            "true_caption": f"t{i}",
            "false_caption": f"f{i}",
            "attributes": ["white", "black"] if i < 25 else ["red", "green"],
        }
        for i in range(27)
    ]
    ann = tmp_path / "visual_genome_attribution.json"
    ann.write_text(json.dumps(rows))
    _png(tmp_path / "a.jpg")
    es = benchmarks.load_benchmark(
        _eval_params({"a": EvalSource("aro_attribution", str(ann), str(tmp_path), 1.0)}), "a", tmp_path
    )
    recs, _ = aro_records(ann, "attribution")
    f = _features(recs, {r.id: int(r.id.rsplit("-", 1)[1]) % 2 == 0 for r in recs})
    s = summarize(evaluate_set(es, f))
    assert "macro_all/text" not in s and "macro/text" not in s  # one pair has >= 25 cases: no macro of one
    assert s["white_black/n"] == 25 and s["red_green/n"] == 2


# ------------------------------------------------------------------------------ 3. Karpathy 25,000


def test_karpathy_5k_uses_the_first_five_captions_per_image(tmp_path):
    """Karpathy's ``dataset_coco.json``: ``{"images": [{"filepath": "val2014", "filename", "split", "cocoid",
    "sentences": [{"raw", "sentid", ...}]}], "dataset": "coco"}``; a few test images carry 6-7
    sentences (25,010 in all). The standard 5k test has 5 per image (BLIP's ``coco_karpathy_test.json``,
    read by ``coco_karpathy_retrieval_eval`` in salesforce/BLIP data/coco_karpathy_dataset.py and by ARO's
    dataset_zoo/retrieval.py): 25,000."""

    def img(cocoid, split, n):
        return {
            "filepath": "val2014",
            "filename": f"COCO_val2014_{cocoid:012d}.jpg",
            "split": split,
            "cocoid": cocoid,
            "imgid": cocoid,
            "sentences": [
                {"raw": f"caption {j} of {cocoid}.", "sentid": cocoid * 10 + j, "tokens": []}
                for j in range(n)
            ],
        }

    path = tmp_path / "dataset_coco.json"
    path.write_text(
        json.dumps({"images": [img(1, "test", 7), img(2, "test", 5), img(3, "val", 5)], "dataset": "coco"})
    )
    ret = karpathy_retrieval(path, "test")
    assert len(ret.images) == 2 and len(ret.texts) == 10
    assert ret.texts[:5] == tuple(f"caption {j} of 1." for j in range(5))
    assert "caption 5 of 1." not in ret.texts and ret.text_keys.count("1") == 5


# ------------------------------------------------------------------------------ 6. no silent outputs


def test_a_subset_that_selects_nothing_is_an_error(tmp_path):
    """HNC test schema ``{"<name>.jpg": {"<cap id>": {"caption", "label", "type", "replaced"}}}`` (thesis
    dataset/filtered_test_data.json). A subset that keeps no item must fail, never write ``{}`` with
    exit 0."""
    ann = tmp_path / "hnc_clean_strict_val.json"
    ann.write_text(
        json.dumps(
            {
                "n1.jpg": {
                    "0": {
                        "caption": "The cup is on the table.",
                        "label": 1,
                        "type": "relation",
                        "replaced": None,
                    },
                    "1": {
                        "caption": "The table is on the cup.",
                        "label": 0,
                        "type": "relation",
                        "replaced": None,
                    },
                }
            }
        )
    )
    (tmp_path / "gqa").mkdir()
    p = _eval_params({"hnc_val": EvalSource("hnc", str(ann), "gqa", 1e-9)})
    with pytest.raises(ValueError, match=r"hnc_clean_strict_val\.json: 0 records: the subset \(1e-09 .*drew none"):
        benchmarks.load_benchmark(p, "hnc_val", tmp_path)
    p1 = _eval_params({"hnc_val": EvalSource("hnc", str(ann), "gqa", 1.0)})
    assert len(benchmarks.load_benchmark(p1, "hnc_val", tmp_path).records) == 1


def test_retrieval_and_zeroshot_plots_hold_rows(tmp_path):
    """Retrieval and zero-shot have no negative types: the plot tables must still hold their R@K /
    top-k rows with intervals, not only a header."""
    from genemi.evalsets import Classification
    from genemi.plots import plot_rows, type_bars, write_bar_table, write_type_table

    ret = Retrieval(("a", "b"), ("1", "2"), ("ta", "tb"), ("1", "2"))
    f = Features(
        {"a": 0, "b": 1},
        torch.eye(2),
        {"ta": 0, "tb": 1, "a photo of a x.": 0, "a photo of a y.": 1},
        torch.eye(2),
    )
    for es, expect in (
        (EvalSet("coco_retrieval", ImageStore(tmp_path), retrieval=ret), {"i2t_r@1", "t2i_r@5"}),
        (
            EvalSet(
                "zeroshot",
                ImageStore(tmp_path),
                classification=Classification(("a", "b"), (0, 1), ("x", "y"), ("a photo of a {}.",)),
            ),
            {"top1"},
        ),
    ):
        outs = {m: evaluate_set(es, f) for m in ("base", "finetuned")}
        flat = compare(outs, n_boot=10, seed=0)
        rows, rows_flat, label = plot_rows({m: summarize(o) for m, o in outs.items()}, flat)
        write_type_table(tmp_path / f"{es.name}.csv", rows, rows_flat)
        write_bar_table(tmp_path / f"{es.name}_bars.csv", rows, rows_flat)
        type_bars(rows, es.name, tmp_path / f"{es.name}.png", flat=rows_flat, ylabel=label)
        bars = (tmp_path / f"{es.name}_bars.csv").read_text().splitlines()
        wide = (tmp_path / f"{es.name}.csv").read_text().splitlines()
        assert len(bars) > 2 and len(wide) > 1, es.name
        assert expect <= {r.split(",")[1] for r in bars[1:]}
        row = next(r.split(",") for r in bars if r.startswith(f"{sorted(expect)[0]} | base,"))
        assert float(row[3]) == 100.0 and row[4] != ""  # value and its bootstrap interval


def test_pairwise_and_choice_sets_report_all_n(tmp_path):
    """``all/n`` = pairs scored (pairwise) or samples (choice), next to the per-type ``<type>/n``. Rows
    in the bring-your-own format (docs/benchmarks.md) and Winoground's 2x2 samples."""
    from genemi.evalsets import Choice

    ann = tmp_path / "byo.jsonl"
    ann.write_text(
        "\n".join(
            json.dumps(
                {
                    "image": "a.png",
                    "positive": f"p{i}",
                    "negatives": [f"n{i}", f"m{i}"],
                    "type": "t" if i else "u",
                }
            )
            for i in range(3)
        )
    )
    _png(tmp_path / "a.png")
    es = benchmarks.load_benchmark(
        _eval_params({"b": EvalSource("byo", str(ann), str(tmp_path), 1.0)}), "b", tmp_path
    )
    texts = sorted({r.caption for r in es.records} | {n.caption for r in es.records for n in r.negatives})
    g = torch.Generator().manual_seed(0)
    f = Features(
        {"a.png": 0},
        torch.ones(1, 2) / 2**0.5,
        {t: i for i, t in enumerate(texts)},
        torch.nn.functional.normalize(torch.rand(len(texts), 2, generator=g), dim=1),
    )
    s = summarize(evaluate_set(es, f))
    assert s["all/n"] == 6.0 and s["t/n"] + s["u/n"] == s["all/n"]
    choices = [
        Choice(f"w{i}", ("a.png", "a.png"), (f"x{i}", f"y{i}"), "Object" if i else "Relation")
        for i in range(3)
    ]
    cf = Features(
        {"a.png": 0},
        torch.ones(1, 2) / 2**0.5,
        {t: i for i, t in enumerate([t for c in choices for t in c.texts])},
        torch.nn.functional.normalize(torch.rand(6, 2, generator=g), dim=1),
    )
    cs = summarize(evaluate_set(EvalSet("w", ImageStore(tmp_path), [], choices), cf))
    assert cs["all/n"] == 3.0 and cs["Object/n"] == 2.0 and cs["Relation/n"] == 1.0


# ------------------------------------------------------------------------------ 5. mine_real on COCO


def _karpathy_manifest(tmp_path: Path) -> tuple[Path, list[Record]]:
    """Karpathy ``dataset_coco.json`` (format above) through ``genemi.data.coco`` -> one record per caption,
    as the coco_manifest stage writes ``data/coco/karpathy.jsonl``; images 32x32 noise under val2014/."""
    from genemi.data.coco import iter_karpathy_records

    caps = {
        11: [
            "a dog sits on a bench",
            "a brown dog on a wooden bench",
            "a dog resting",
            "a bench in a park",
            "the dog and the bench",
        ],
        12: ["a bird on a boat", "a boat with a bird", "a white bird", "a small boat", "bird and boat"],
    }
    images = [
        {
            "filepath": "val2014",
            "filename": f"COCO_val2014_{c:012d}.jpg",
            "split": "test",
            "cocoid": c,
            "sentences": [{"raw": t, "sentid": c * 10 + j} for j, t in enumerate(ts)],
        }
        for c, ts in caps.items()
    ]
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    rng = np.random.default_rng(0)
    root = tmp_path / "coco"
    for im in images:
        (root / "val2014").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            root / "val2014" / im["filename"], format="PNG"
        )
    return root, list(iter_karpathy_records(path, splits=["test"]))


def test_mine_real_groups_coco_captions_into_one_origin_per_image(tmp_path):
    """GeNeMi mines per image: its records carry ``original_captions`` = every COCO caption of the image
    (ugorsahin/Generative-Negative-Mining generation_pipeline/utils.py ``create_generation_df`` row schema;
    ``--annotation-file`` records ``caption, image, image_id``, grouped by image)."""
    from genemi.mining import pipeline as P

    sys.path.insert(0, str(ROOT / "tests"))
    import mining_fakes as F

    root, recs = _karpathy_manifest(tmp_path)
    assert len(recs) == 10
    origins = P.origins_by_image(recs)
    assert [o.image for o in origins] == [
        "val2014/COCO_val2014_000000000011.jpg",
        "val2014/COCO_val2014_000000000012.jpg",
    ]
    assert origins[0].meta["original_captions"] == [r.caption for r in recs if r.meta["cocoid"] == 11]
    stats = P.run_shard(
        origins, root, tmp_path / "work", F.fake_chain(), F.params(variations_per_item=2), seed=0
    )
    assert stats["mined"] == 2  # each image inpainted once, not once per caption
    P.merge(tmp_path / "work", tmp_path / "variations.jsonl", keep_failed=True)
    from genemi.manifest import read_manifest

    out = read_manifest(tmp_path / "variations.jsonl")
    assert out and len({r.meta["origin_name"] for r in out}) == 2
    v = next(r for r in out if r.meta["source"].endswith("11.jpg"))
    assert v.meta["original_captions"] == origins[0].meta["original_captions"]
    # the rewriting edits every original caption that names the item (variation_captions)
    assert len(v.meta["captions"]) > 1


@pytest.mark.slow
def test_mine_real_stage_max_images_counts_images(tmp_path):
    """The stage on a COCO manifest (tiny models): ``max_images: 1`` mines one image with all its captions."""
    from click.testing import CliRunner

    from genemi.manifest import write_manifest

    sys.path.insert(0, str(ROOT / "stages"))
    import mine_real

    root, recs = _karpathy_manifest(tmp_path)
    manifest = tmp_path / "karpathy.jsonl"
    write_manifest(manifest, recs)
    raw = _raw_params()
    raw["mine_real"].update(max_images=1, items_per_image=1, variations_per_item=2, contact_sheets=1)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(
        mine_real.main,
        [
            "--manifest",
            str(manifest),
            "--image-root",
            str(root),
            "--work-dir",
            str(tmp_path / "w"),
            "--out",
            str(tmp_path / "v.jsonl"),
            "--sheets",
            str(tmp_path / "s"),
            "--metrics",
            str(tmp_path / "m.json"),
            "--params",
            str(params),
            "--tiny",
        ],
    )
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["origins"] == 1


def test_the_genemi_road_is_wired_in_dvc_yaml():
    """COCO -> mine_real -> finetune (variations + regular COCO pairs): every edge is a DVC dependency."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    mine, ft = stages["mine_real"], stages["finetune"]
    assert "--manifest data/coco/karpathy.jsonl --image-root data/raw/coco/images" in mine["cmd"]
    assert "data/coco/karpathy.jsonl" in mine["deps"] and "data/raw/coco" in mine["deps"]
    for name in ("stanza", "grounding_dino", "sam_vit_h", "sd_inpaint", "blip_itm"):
        out = stages[f"download_{name}"]["outs"][0]
        assert f"data/models/{name}" in mine["deps"] and f"data/models/{name}" in (out if isinstance(out, str) else out)
    for flag, path in (("--genemi-train", "data/mine_real/variations.jsonl"), ("--regular", "data/coco/karpathy.jsonl")):
        assert f"{flag} {path}" in ft["cmd"] and path in ft["deps"]
    # the variations' images: one shard packed at merge (the work dir is resume state, not an output)
    assert "--genemi-image-root data/mine_real/images " in ft["cmd"]
    assert "--shard data/mine_real/images.zip" in mine["cmd"]
    assert "data/mine_real/images.zip" in ft["deps"] and "data/mine_real/images.zip" in mine["outs"]
    assert "data/raw/coco" in ft["deps"]


# ------------------------------------------------------------------------------------ 4. recipes

RECIPES = sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml"))


def test_every_named_recipe_exists_and_validates():
    from genemi import recipe

    assert {"hnc_l2", "hnc_kl", "dpo_kl", "genemi", "negclip"} <= set(RECIPES)
    for name in RECIPES:
        r = recipe.load_recipe(name, ROOT / "recipes")
        new = recipe.check(r, base=_raw_params())
        p = params_from_dict(new)
        assert r.description and r.targets, name
        if p.model.pretrained:
            assert p.finetune.lr <= 2e-4 and p.eval.monitor not in ("synth_test", "synth_gen"), name


def test_thesis_recipe_values_are_the_thesis_configs():
    """config/HNC1_L2_full.yaml (WenW186079/HNC_CLIP_masterthesis): learning_rate 5.0e-6, weight_decay 0.0001,
    num_warmup_steps 100, lambda_ref 5.0e-6, hard_neg_weight 1.0, finetune_mode full_encoder,
    train_batch_size 128, gradient_clipping 1.0, zero stage 2, fp16 off; HNC_KL_1_S_full.yaml: lambda_ref
    0.001; DPO_KL_full.yaml: mode dpo_kl, dpo_beta 0.1."""
    from genemi import recipe

    l2 = params_from_dict(recipe.check(recipe.load_recipe("hnc_l2", ROOT / "recipes"), base=_raw_params()))
    assert (l2.finetune.lr, l2.finetune.weight_decay, l2.finetune.warmup_steps, l2.finetune.batch_size) == (
        5e-6,
        1e-4,
        100,
        128,
    )
    assert (l2.loss.l2_weight, l2.loss.hn_weight, l2.loss.form, l2.finetune.trainable) == (
        5e-6,
        1.0,
        "in_softmax",
        "full",
    )
    assert l2.batching.dedupe_images and l2.deepspeed.zero_stage == 2 and l2.eval.monitor == "hnc_val"
    kl = params_from_dict(recipe.check(recipe.load_recipe("hnc_kl", ROOT / "recipes"), base=_raw_params()))
    assert (kl.loss.kl_weight, kl.loss.l2_weight, kl.loss.kl_temperature) == (1e-3, 0.0, 1.0)
    dpo = params_from_dict(recipe.check(recipe.load_recipe("dpo_kl", ROOT / "recipes"), base=_raw_params()))
    assert (dpo.loss.contrastive_weight, dpo.loss.dpo_weight, dpo.loss.dpo_beta, dpo.loss.dpo_reference) == (
        0.0,
        1.0,
        0.1,
        True,
    )
    g = params_from_dict(recipe.check(recipe.load_recipe("genemi", ROOT / "recipes"), base=_raw_params()))
    assert (
        g.batching.mode,
        g.batching.variations_per_group,
        g.batching.regular_per_group,
        g.finetune.lr,
        g.finetune.batch_size,
    ) == ("item_based", 2, 8, 1e-6, 200)
    n = params_from_dict(recipe.check(recipe.load_recipe("negclip", ROOT / "recipes"), base=_raw_params()))
    assert (n.finetune.batch_size, n.finetune.lr, n.loss.image_negatives) == (256, 1e-6, True)


def test_apply_rewrites_params_yaml_keeping_comments_and_only_named_keys(tmp_path):
    from genemi import recipe

    params = tmp_path / "params.yaml"
    params.write_text(frozen_params.PATH.read_text())
    before = _raw_params()
    changed = recipe.apply(recipe.load_recipe("hnc_l2", ROOT / "recipes"), params, base=_raw_params())
    text = params.read_text()
    assert "# Every knob that shapes a result." in text and "(thesis hnc_l2: 5e-6)" in text  # comments kept
    after = yaml.safe_load(text)
    assert after["finetune"]["lr"] == 5e-6 and after["loss"]["l2_weight"] == 5e-6
    assert list(after["eval"]["benchmarks"]) == ["hnc_test", "coco_neg", "hnc_val"] and after["eval"]["monitor"] == "hnc_val"
    assert after["eval"]["benchmarks"]["hnc_test"]["file"] == "raw/hnc/hnc_clean_strict_test.json"  # catalogue entry
    assert after["base"] == before["base"] and after["synth"] == before["synth"]  # untouched sections
    assert ("finetune.lr", 0.002, 5e-6) in changed
    load_params(params)  # still a valid params file
    assert recipe.apply(recipe.load_recipe("hnc_l2", ROOT / "recipes"), params, base=_raw_params()) == []


def test_a_bad_recipe_fails_before_writing(tmp_path):
    from genemi import recipe

    params = tmp_path / "params.yaml"
    params.write_text(frozen_params.PATH.read_text())
    original = params.read_bytes()
    bad = tmp_path / "bad.yaml"
    bad.write_text("description: x\nparams:\n  finetune.lr: 5.0e-6\n  loss.hn_wieght: 1.0\n")
    with pytest.raises(ConfigError, match="loss.hn_wieght"):
        recipe.apply(recipe.load_recipe(str(bad)), params, base=_raw_params())
    bad.write_text("description: x\nparams:\n  model.pretrained: openai\n  model.arch: ViT-B-32-quickgelu\n")
    with pytest.raises(ConfigError, match=r"finetune.lr=0.002 with model.pretrained='openai'"):
        recipe.apply(recipe.load_recipe(str(bad)), params, base=_raw_params())
    assert params.read_bytes() == original


def test_flags_are_dvc_overrides_and_cli_runs(tmp_path):
    from genemi import recipe

    r = recipe.load_recipe("hnc_l2", ROOT / "recipes")
    fl = recipe.flags(r, frozen_params.raw())
    assert set(fl[::2]) == {"-S"}
    assert "finetune.lr=5.0e-06" in fl and "loss.negative_types=[]" in fl
    # a mapping is merged by DVC, not replaced: the recipe's entries are set one by one, the others removed
    assert "~eval.benchmarks.synth_test" in fl and "~eval.benchmarks.synth_gen" in fl
    assert (
        "++eval.benchmarks.hnc_test={loader:hnc,file:raw/hnc/hnc_clean_strict_test.json,"
        "images:raw/gqa/images.zip,models:raw/hnc/hnc_clean_strict_test.json,subset:1.0}" in fl
    )
    out = subprocess.run(
        [sys.executable, "-m", "genemi.recipe", "list", "--dir", str(ROOT / "recipes")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    assert all(f"{n}:" in out for n in RECIPES)


def test_pretrained_model_with_a_from_scratch_lr_or_synthetic_monitor_is_refused():
    raw = _raw_params()
    raw["model"].update(arch="ViT-B-32-quickgelu", pretrained="openai", tokenizer="open_clip")
    with pytest.raises(ConfigError, match="finetune.lr=0.002"):
        params_from_dict(raw)
    raw["finetune"]["lr"] = 1e-5
    params_from_dict(raw)
    raw["data"]["source"] = "hnc"
    with pytest.raises(ConfigError, match="eval.monitor='synth_test'"):
        params_from_dict(raw)
    raw["eval"]["monitor"] = "hnc_val"
    with pytest.raises(ConfigError, match="eval.monitor = 'hnc_val': must be .* one of eval.benchmarks"):
        params_from_dict(raw)  # the monitored benchmark is listed, so its files are a dependency too
    raw["eval"]["benchmarks"]["hnc_val"] = catalogue()["hnc_val"]
    params_from_dict(raw)
    raw["data"]["stand_in"] = "synthetic"  # the stand-in is the synthetic world: monitoring it is fine
    raw["eval"]["monitor"] = "synth_test"
    params_from_dict(raw)


def test_dvc_written_exponent_floats_are_numbers():
    """`dvc exp run -S finetune.lr=5e-6` writes ``lr: 5e-06`` (YAML 1.2); PyYAML (YAML 1.1) reads that as a
    string. The loader takes it as the number DVC meant; a word is still refused."""
    raw = _raw_params()
    raw["finetune"]["lr"] = yaml.safe_load("x: 5e-06")["x"]
    assert raw["finetune"]["lr"] == "5e-06"
    assert params_from_dict(raw).finetune.lr == 5e-6
    raw["finetune"]["lr"] = "fast"
    with pytest.raises(ConfigError, match="finetune.lr: expected a number"):
        params_from_dict(raw)


def test_sugarcrepe_reads_the_early_ent_file_names(tmp_path):
    """SugarCrepe's ``data/<category>.json`` = ``{"<id>": {"filename", "caption", "negative_caption"}}``
    (RAIVNLab/sugar-crepe main_eval.py: ``data_dict`` names add_obj/replace_obj/swap_obj); an early commit of
    the same repository shipped those three as ``data/add_ent.json``, ``replace_ent.json``,
    ``swap_ent.json``."""
    from genemi.benchmarks.pairwise import SUGARCREPE, sugarcrepe_records

    for cat in SUGARCREPE:
        name = cat.replace("_obj", "_ent")
        row = {"filename": "000000391895.jpg", "caption": f"a {cat}", "negative_caption": f"not a {cat}"}
        (tmp_path / f"{name}.json").write_text(json.dumps({"0": row}))
    recs = sugarcrepe_records(tmp_path)
    assert sorted(r.negatives[0].type for r in recs) == sorted(SUGARCREPE)
    p = _eval_params({"sc": EvalSource("sugarcrepe", str(tmp_path), str(tmp_path), 1.0)})
    assert all(path.exists() for path, _ in benchmarks.required_files(p, "sc", tmp_path))


def test_single_type_choice_sets_plot_an_overall_row(tmp_path):
    """GeNeMi's validation rows (``num_sample``, ``caption_<i>``, ``image_<i>``; eval_gnm_validation.py) all
    share one type, ``all``, which the per-type charts leave out: the plots show an ``overall`` row."""
    from genemi.evalsets import Choice
    from genemi.plots import plot_rows, write_bar_table

    choices = [Choice(f"g{i}", ("a", "b"), (f"x{i}", f"y{i}"), "all") for i in range(3)]
    f = Features(
        {"a": 0, "b": 1},
        torch.eye(2),
        {t: i % 2 for i, t in enumerate([t for c in choices for t in c.texts])},
        torch.eye(2),
    )
    es = EvalSet("genemi_val", ImageStore(tmp_path), [], choices)
    outs = {m: evaluate_set(es, f) for m in ("base", "finetuned")}
    flat = compare(outs, n_boot=10, seed=0)
    rows, rows_flat, _ = plot_rows({m: summarize(o) for m, o in outs.items()}, flat)
    write_bar_table(tmp_path / "g_bars.csv", rows, rows_flat)
    bars = (tmp_path / "g_bars.csv").read_text().splitlines()
    assert [b.split(",")[:4] for b in bars[1:]] == [
        ["overall | base", "overall", "base", "100.0000"],
        ["overall | finetuned", "overall", "finetuned", "100.0000"],
    ]


@pytest.mark.slow
def test_documented_byo_command_adds_a_benchmark_params_yaml_lacks(tmp_path):
    """docs/benchmarks.md "Bring your own benchmark": DVC's ``-S`` refuses a key params.yaml lacks unless it
    carries ``+``; the documented command writes an entry that the params loader accepts."""
    import shutil

    if shutil.which("git") is None:
        pytest.skip("git not installed")
    shutil.copy(frozen_params.PATH, tmp_path / "params.yaml")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: echo ok > out.txt\n    params: [eval]\n    outs: [out.txt]\n"
    )

    def run(*args):
        return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True)

    for cmd in (
        ["git", "init", "-q"],
        [sys.executable, "-m", "dvc", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"],
    ):
        assert run(*cmd).returncode == 0, cmd
    entry = ("{loader: byo, file: raw/eval/my_bench.jsonl, images: raw/eval/my_bench_images, "
             "models: raw/eval/my_bench.jsonl, subset: 1.0}")
    without = run(sys.executable, "-m", "dvc", "exp", "run", "-S", f"eval.benchmarks.my_bench={entry}")
    assert "+eval.benchmarks.my_bench" in without.stderr + without.stdout  # DVC names the fix
    ok = run(sys.executable, "-m", "dvc", "exp", "run", "-S", f"+eval.benchmarks.my_bench={entry}")
    assert ok.returncode == 0, ok.stderr
    p = load_params(tmp_path / "params.yaml").eval
    assert list(p.benchmarks)[-1] == "my_bench"
    assert p.benchmarks["my_bench"] == EvalSource(
        "byo", "raw/eval/my_bench.jsonl", "raw/eval/my_bench_images", 1.0, models="raw/eval/my_bench.jsonl"
    )


def test_negclip_training_file_to_manifest(tmp_path):
    """NegCLIP's file, as ARO ships it in mertyg/vision-language-models-are-bows
    ``temp_data/valid_neg_clip.tsv``: tab-separated, header ``<blank> title filepath neg_caption neg_image``,
    list literals in the last two columns, a CSV-quoted cell where a caption holds a double quote (row 48
    there)."""
    from genemi.data.negclip import negclip_records

    tsv = tmp_path / "valid_neg_clip.tsv"
    tsv.write_text(
        "\ttitle\tfilepath\tneg_caption\tneg_image\n"
        "0\tA child holding a flowered umbrella.\tcoco/val2014/COCO_val2014_000000184613.jpg\t"
        "['A umbrella holding a flowered child .']\t[1, 2]\n"
        "1\tA toilet sitting in a bathroom next to a sink.\tcoco/val2014/COCO_val2014_000000360772.jpg\t"
        "['A bathroom sitting in a toilet next to a sink .']\t[0]\n"
        "2\tA white truck filled with motorcycle on it's flatbed.\t"
        "coco/val2014/COCO_val2014_000000551952.jpg\t"
        '"[""A white motorcycle filled with truck on it \'s flatbed ."", ""x""]"\t[0, 1]\n'
    )
    recs = negclip_records(tsv)
    assert [r.image for r in recs][0] == "coco/val2014/COCO_val2014_000000184613.jpg"
    r0 = recs[0]
    assert [(n.type, n.caption, n.image) for n in r0.negatives] == [
        ("neg_caption", "A umbrella holding a flowered child .", None),
        (
            "neg_image",
            "A toilet sitting in a bathroom next to a sink.",
            "coco/val2014/COCO_val2014_000000360772.jpg",
        ),
        ("neg_image", recs[2].caption, recs[2].image),
    ]
    assert recs[2].negatives[0].caption == "A white motorcycle filled with truck on it 's flatbed ."
    bad = tmp_path / "bad.tsv"
    bad.write_text("\ttitle\tfilepath\tneg_caption\tneg_image\n0\ta\tb.jpg\t['x']\t[7]\n")
    with pytest.raises(ValueError, match=r"bad.tsv: line 2: neg_image 7 is not a row"):
        negclip_records(bad)
    bad.write_text("\ttitle\tfilepath\tneg_caption\tneg_image\n0\ta\tb.jpg\t__import__('os')\t[0]\n")
    with pytest.raises(ValueError, match="expected a list literal"):
        negclip_records(bad)
