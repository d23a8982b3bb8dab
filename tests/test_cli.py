"""The `genemi` command (genemi/cli.py): the subcommands, `genemi eval` on every kind of weights file,
`genemi compare` against the evaluate stage's own output, and `genemi eval` against LAION's
CLIP_benchmark on the same model and files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

from genemi import cli, scorecard

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).parent / "fixtures"

# A tiny open_clip architecture with the standard BPE tokenizer (vocab 49,408, context 77), as an
# open_clip model config file: `--model tiny.json` registers it like open_clip's own configs.
TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


def invoke(args: list[str]):
    return CliRunner().invoke(cli.main, args)


def _noise_png(path: Path, seed: int, size=(40, 36)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def _tiny_arch(tmp_path: Path) -> tuple[Path, dict]:
    """``(config file, random-init state dict)`` of :data:`TINY` (open_clip's layout, 0-dim logit_scale)."""
    import open_clip

    cfg = tmp_path / "tiny-test-clip.json"
    cfg.write_text(json.dumps(TINY))
    open_clip.add_model_config(cfg)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-test-clip")
    return cfg, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _byo(tmp_path: Path, n: int = 6) -> Path:
    """A bring-your-own JSONL (docs/benchmarks.md) of ``n`` noise images with two negative types."""
    rows = []
    for i in range(n):
        _noise_png(tmp_path / "byo" / f"{i}.png", i)
        rows.append(
            {
                "image": f"{i}.png",
                "positive": f"a photo of thing number {i}",
                "negatives": [f"a photo of thing number {i + 1}", f"a drawing of item {i}"],
                "type": "swap" if i % 2 else "replace",
            }
        )
    path = tmp_path / "byo" / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------------------------ the command


def test_help_lists_the_subcommands_and_python_m_genemi_is_the_same_command():
    res = invoke(["--help"])
    assert res.exit_code == 0
    for name in ("eval", "compare", "recipe", "show", "report"):
        assert f"  {name} " in res.output
    for name in ("eval", "compare", "show"):
        sub = invoke([name, "--help"])
        assert sub.exit_code == 0 and "Usage: genemi" in sub.output and "--help" in sub.output
    assert "--precision [fp32|fp16|bf16|amp]" in invoke(["eval", "--help"]).output
    out = subprocess.run([sys.executable, "-m", "genemi", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "compare" in out.stdout
    recipes = subprocess.run(
        [sys.executable, "-m", "genemi", "recipe", "list"], capture_output=True, text=True, cwd=ROOT
    )
    assert recipes.returncode == 0 and len(recipes.stdout.splitlines()) == len(
        list((ROOT / "recipes").glob("*.yaml"))
    )
    report = subprocess.run(
        [sys.executable, "-m", "genemi", "report", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert report.returncode == 0 and "Usage: genemi report" in report.stdout and "--run-dir" in report.stdout


def test_console_script_is_declared():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["genemi"] == "genemi.cli:main"
    # every benchmark reader's dependency is installed: genemi_val's parquet, ARO Order's POS tagger
    assert {"pyarrow", "stanza"} <= {d.split(">")[0].split("=")[0] for d in project["dependencies"]}


def test_import_genemi_stays_light():
    heavy = ("torch", "open_clip", "genemi.cli")
    code = f"import sys, genemi; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_default_eval_settings_are_the_pipelines():
    """Without --params, `genemi eval` scores with the shipped params.yaml's eval settings (bootstrap, seed,
    thresholds, prompts): the numbers of a released model are comparable with the pipeline's. The frozen
    copy stands for the shipped file (tests/test_frozen_params.py), which `dvc exp run -S` may rewrite."""
    import frozen_params

    ev = frozen_params.raw()["eval"]
    for key, value in scorecard.DEFAULT_EVAL.items():
        if not key.startswith("monitor"):
            assert (list(value) if isinstance(value, tuple) else value) == ev[key], key


# ------------------------------------------------------------------------------------ genemi eval


def _brute_force_text_accuracy(model, byo: Path) -> dict[str, float]:
    """Per type: % of (image, positive, negative) where the open_clip model, called by hand, prefers the
    positive caption -- the reference for `genemi eval` on the BYO file."""
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2

    model.eval()
    prep = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
    tok = open_clip.get_tokenizer("tiny-test-clip")
    hits: dict[str, list[bool]] = {}
    with torch.no_grad():
        for line in byo.read_text().splitlines():
            r = json.loads(line)
            img = model.encode_image(prep(Image.open(byo.parent / r["image"]).convert("RGB"))[None])
            txt = model.encode_text(tok([r["positive"], *r["negatives"]]))
            s = torch.nn.functional.normalize(img, dim=-1) @ torch.nn.functional.normalize(txt, dim=-1).T
            hits.setdefault(r["type"], []).extend(bool(s[0, 0] > s[0, j]) for j in range(1, s.shape[1]))
    return {t: 100.0 * np.mean(h) for t, h in hits.items()}


def test_eval_reads_every_checkpoint_layout_and_matches_the_model_called_by_hand(tmp_path):
    """open_clip state dict (.pt, .bin, .safetensors), open_clip training's {"state_dict": {"module.*"}},
    OpenAI's layout with its TorchScript extras: the same weights, the same metrics, which are the
    brute-force accuracies of the model called by hand."""
    import open_clip
    from safetensors.torch import save_file

    cfg, sd = _tiny_arch(tmp_path)
    byo = _byo(tmp_path)
    files = {
        "plain.pt": sd,
        "plain.bin": sd,
        "train.pt": {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}},
        "openai.pt": {
            **sd,
            "input_resolution": torch.tensor(32),
            "context_length": torch.tensor(77),
            "vocab_size": torch.tensor(49408),
        },
    }
    for name, obj in files.items():
        torch.save(obj, tmp_path / name)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "plain.safetensors"))
    model = open_clip.create_model("tiny-test-clip")
    model.load_state_dict(sd)
    want = _brute_force_text_accuracy(model, byo)
    results = []
    for name in [*files, "plain.safetensors"]:
        out = tmp_path / f"out-{name}"
        res = invoke(
            [
                "eval",
                "--model",
                str(cfg),
                "--checkpoint",
                str(tmp_path / name),
                "-b",
                str(byo),
                "--out",
                str(out),
                "--workers",
                "0",
                "-q",
                "--bootstrap",
                "20",
            ]
        )
        assert res.exit_code == 0, res.output
        results.append(json.loads((out / "pairs.json").read_text()))
        assert "| replace | text |" in res.output  # the table on the terminal
    assert all(r == results[0] for r in results)
    for t, v in want.items():
        assert results[0][f"model/{t}/text"] == pytest.approx(v, abs=1e-3)
    assert results[0]["model/all/n"] == 12.0 and "model/all/text_lo" in results[0]


def test_eval_refuses_unsafe_or_mismatched_files_in_one_line_and_writes_nothing(tmp_path, monkeypatch):
    import huggingface_hub.constants

    # no network here either way; offline mode skips the hub's connection retries (~50 s)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cfg, sd = _tiny_arch(tmp_path)
    byo = _byo(tmp_path, 2)

    import argparse

    # training scripts often pickle their argparse namespace beside the weights: a Python object that a
    # safe load refuses (it is never unpickled)
    torch.save({"state_dict": sd, "args": argparse.Namespace(lr=0.1)}, tmp_path / "pickled.pt")
    script = torch.jit.script(torch.nn.Linear(2, 2))
    script.save(str(tmp_path / "scripted.pt"))
    torch.save({k: v for k, v in sd.items() if not k.startswith("visual.")}, tmp_path / "half.pt")
    cases = {
        "pickled.pt": "safe load refuses",
        "scripted.pt": "TorchScript archive",
        "half.pt": "do not match the architecture",
    }
    for name, says in cases.items():
        out = tmp_path / f"out-{name}"
        res = invoke(
            [
                "eval",
                "--model",
                str(cfg),
                "--checkpoint",
                str(tmp_path / name),
                "-b",
                str(byo),
                "--out",
                str(out),
                "--workers",
                "0",
                "-q",
            ]
        )
        assert res.exit_code == 1 and res.output.startswith("Error: ") and says in res.output, res.output
        assert str(tmp_path / name) in res.output
        assert not (out / "pairs.json").exists()
    res = invoke(
        [
            "eval",
            "--model",
            "ViT-B-32",
            "--pretrained",
            "laion2b_s34b_b79k",
            "-b",
            str(byo),
            "--out",
            str(tmp_path / "o"),
            "-q",
        ]
    )
    assert (
        res.exit_code == 1 and "not available offline" in res.output and "huggingface" in res.output.lower()
    )
    res = invoke(["eval", "--model", "ViT-B-99", "--checkpoint", str(tmp_path / "half.pt"), "-b", str(byo)])
    assert res.exit_code == 1 and "unknown architecture 'ViT-B-99'" in res.output
    res = invoke(
        ["eval", "--model", str(cfg), "--checkpoint", str(tmp_path / "half.pt"), "-b", "no_such_bench"]
    )
    assert res.exit_code == 1 and "sugarcrepe" in res.output  # lists the catalogue
    res = invoke(["eval", "--model", "ViT-B-32", "-b", str(byo)])  # no weights: never a random-init score
    assert res.exit_code == 2 and "--pretrained TAG" in res.output


def test_eval_precisions_agree_with_fp32(tmp_path):
    cfg, sd = _tiny_arch(tmp_path)
    torch.save(sd, tmp_path / "w.pt")
    byo = _byo(tmp_path)
    from genemi import zoo

    spec = zoo.parse_spec(f"{cfg}:{tmp_path / 'w.pt'}")
    texts = ["a photo of thing number 1", "a drawing of item 2"]
    ref = zoo.load(spec, "cpu", 4, "fp32").encode_texts(texts)
    for precision, tol in (("bf16", 0.05), ("amp", 0.05), ("fp16", 0.01)):
        got = zoo.load(spec, "cpu", 4, precision).encode_texts(texts)
        assert got.dtype == torch.float32 and torch.allclose(got, ref, atol=tol), precision
    res = invoke(
        [
            "eval",
            "--model",
            f"{cfg}:{tmp_path / 'w.pt'}",
            "-b",
            str(byo),
            "--precision",
            "bf16",
            "--out",
            str(tmp_path / "o"),
            "-q",
            "--workers",
            "0",
        ]
    )
    assert res.exit_code == 0, res.output


def _hf_folder(folder: Path) -> None:
    """A tiny random-init transformers ``CLIPModel`` folder as ``save_pretrained`` writes one, with
    OpenAI CLIP's BPE vocabulary (open_clip's copy, written as vocab.json + merges.txt) and an image
    processor."""
    import gzip

    from open_clip.tokenizer import SimpleTokenizer, default_bpe
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    folder.mkdir(parents=True)
    special = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {special.get(k, k): v for k, v in SimpleTokenizer().encoder.items()}
    merges = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": 49408,
            "max_position_embeddings": 77,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    CLIPModel(cfg).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )


def test_eval_reads_a_transformers_clipmodel_folder_with_its_own_tokenizer_and_processor(tmp_path):
    """A transformers CLIPModel folder is scored with its own tokenizer and image processor: the
    accuracies are those of the model's own forward (``logits_per_image``) on the processor's inputs."""
    pytest.importorskip("transformers")
    from transformers import AutoProcessor, CLIPModel

    folder = tmp_path / "tiny-hf-clip"
    _hf_folder(folder)
    byo = _byo(tmp_path)
    res = invoke(
        [
            "eval",
            "--model",
            str(folder),
            "-b",
            str(byo),
            "--out",
            str(tmp_path / "o"),
            "-q",
            "--workers",
            "0",
            "--bootstrap",
            "0",
        ]
    )
    assert res.exit_code == 0, res.output
    flat = json.loads((tmp_path / "o/pairs.json").read_text())
    model = CLIPModel.from_pretrained(folder).eval()
    proc = AutoProcessor.from_pretrained(folder)
    hits: dict[str, list[bool]] = {}
    with torch.no_grad():
        for line in byo.read_text().splitlines():
            r = json.loads(line)
            inputs = proc(
                text=[r["positive"], *r["negatives"]],
                images=Image.open(byo.parent / r["image"]),
                return_tensors="pt",
                padding=True,
            )
            logits = model(**inputs).logits_per_image[0]
            hits.setdefault(r["type"], []).extend(bool(logits[0] > logits[j]) for j in range(1, len(logits)))
    for t, h in hits.items():
        assert flat[f"model/{t}/text"] == pytest.approx(100.0 * np.mean(h), abs=1e-3), t
    res = invoke(["eval", "--model", str(tmp_path / "byo"), "-b", str(byo)])  # a folder without config.json
    assert res.exit_code == 1 and "config.json" in res.output


@pytest.mark.slow
def test_vit_b_32_checkpoint_on_sugarcrepe_in_its_published_layout(tmp_path):
    """The target: `genemi eval --model ViT-B-32 --checkpoint <file> --benchmark sugarcrepe`
    offline, on a real-size (random-init) ViT-B-32 and SugarCrepe's 7 files placed where the catalogue
    puts them; the accuracies are those of the open_clip model called by hand."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32")
    ckpt = tmp_path / "vit_b_32.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    data = tmp_path / "data"
    sc = data / "raw/eval/sugarcrepe"
    sc.mkdir(parents=True)
    pairs = []
    for f in sorted((FIX / "eval/sugarcrepe").glob("*.json")):
        (sc / f.name).write_text(f.read_text())
        for item in json.loads(f.read_text()).values():
            pairs.append((f.stem, item))
    for _, item in pairs:
        _noise_png(data / "raw/eval/coco2017/val2017" / item["filename"], 7, (320, 240))
    res = invoke(
        [
            "eval",
            "--model",
            "ViT-B-32",
            "--checkpoint",
            str(ckpt),
            "--benchmark",
            "sugarcrepe",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "out"),
            "-q",
            "--workers",
            "0",
        ]
    )
    assert res.exit_code == 0, res.output
    flat = json.loads((tmp_path / "out/sugarcrepe.json").read_text())
    from open_clip.transform import PreprocessCfg, image_transform_v2

    prep = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
    tok = open_clip.get_tokenizer("ViT-B-32")
    model.eval()
    hits: dict[str, list[bool]] = {}
    with torch.no_grad():
        for cat, item in pairs:
            img = model.encode_image(
                prep(Image.open(data / "raw/eval/coco2017/val2017" / item["filename"]))[None]
            )
            txt = model.encode_text(tok([item["caption"], item["negative_caption"]]))
            s = torch.nn.functional.normalize(img, dim=-1) @ torch.nn.functional.normalize(txt, dim=-1).T
            hits.setdefault(cat, []).append(bool(s[0, 0] > s[0, 1]))
    assert len(hits) == 7
    for cat, h in hits.items():
        assert flat[f"model/{cat}/text"] == pytest.approx(100.0 * np.mean(h), abs=1e-3), cat


# ------------------------------------------------------------------------------ genemi compare


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    """The evaluate stage's tiny synthetic world (tests/test_evaluate.py) and the stage's own metrics."""
    from test_evaluate import _tiny_world, stage_args

    from stages import evaluate as stage

    tmp = tmp_path_factory.mktemp("world")
    params, data = _tiny_world(tmp)
    res = CliRunner().invoke(
        stage.main, stage_args(tmp, params, data) + ["--metrics", str(tmp / "stage.json")]
    )
    assert res.exit_code == 0, res.output
    return tmp, params, data, json.loads((tmp / "stage.json").read_text())


def test_compare_reproduces_the_evaluate_stage_to_the_digit(tiny_world):
    """`genemi compare base=... finetuned=...` with the pipeline's eval settings writes every number the
    evaluate stage wrote (points, intervals, deltas), and its paired differences are the stage's deltas."""
    tmp, params, data, stage = tiny_world
    out = tmp / "cmp"
    res = invoke(
        [
            "compare",
            f"base=genemi-synth-vit:{tmp / 'base.safetensors'}",
            f"finetuned=genemi-synth-vit:{tmp / 'finetuned.safetensors'}",
            "-b",
            "synth_test",
            "--params",
            str(params),
            "--data",
            str(data),
            "--out",
            str(out),
            "-q",
            "--workers",
            "0",
        ]
    )
    assert res.exit_code == 0, res.output
    flat = json.loads((out / "synth_test.json").read_text())
    assert {k: flat.get(k) for k in stage} == stage
    deltas = [k for k in stage if k.startswith("delta/")]
    assert any(k.endswith("_lo") for k in deltas)
    for k in deltas:
        assert flat[f"delta/finetuned/{k[len('delta/') :]}"] == stage[k], k
    ps = [v for k, v in flat.items() if k.endswith("_p")]
    n_boot = yaml.safe_load(params.read_text())["eval"]["bootstrap"]
    assert ps and all(1 / (n_boot + 1) - 1e-9 <= p <= 1.0 for p in ps)
    # a zero difference has p = 1; the p-value is two-sided around the observed difference
    for k, v in flat.items():
        if k.startswith("delta/finetuned/") and k.endswith("_p") and flat[k[:-2]] == 0.0:
            assert v == 1.0
    assert (out / "synth_test.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "comparison.md").read_text()
    assert "| type | metric | n | base | finetuned | finetuned − base | p |" in md
    assert "| relation_flip | text |" in md


def test_eval_of_one_model_is_the_stages_numbers_for_it(tiny_world):
    """A model's intervals do not depend on the models scored beside it: `genemi eval --name finetuned`
    gives the stage's finetuned/* values and intervals; the architecture comes from the file's metadata
    when it has some."""
    tmp, params, data, stage = tiny_world
    from genemi.clip import Clip
    from genemi.config import ModelParams
    from genemi.models import load_weights, save_weights
    from genemi.zoo import genemi_meta

    clip = Clip.from_params(ModelParams("genemi-synth-vit", "", "word"), tmp / "finetuned.safetensors")
    tagged = tmp / "tagged.safetensors"
    save_weights(clip.module, tagged, {"arch": "genemi-synth-vit", "pretrained": "", "tokenizer": "word"})
    assert genemi_meta(tagged)["arch"] == "genemi-synth-vit" and load_weights(clip.module, tagged)
    res = invoke(
        [
            "eval",
            "--model",
            str(tagged),
            "--name",
            "finetuned",
            "-b",
            "synth_test",
            "--params",
            str(params),
            "--data",
            str(data),
            "--out",
            str(tmp / "ev"),
            "-q",
            "--workers",
            "0",
        ]
    )
    assert res.exit_code == 0, res.output
    flat = json.loads((tmp / "ev/synth_test.json").read_text())
    mine = {k: v for k, v in stage.items() if k.startswith("finetuned/")}
    assert flat == mine


def test_compare_names_and_reference(tiny_world, tmp_path):
    tmp, params, data, _ = tiny_world
    w = tmp / "base.safetensors"
    res = invoke(
        [
            "compare",
            f"genemi-synth-vit:{w}",
            f"genemi-synth-vit:{w}",
            f"other=genemi-synth-vit:{tmp / 'finetuned.safetensors'}",
            "--reference",
            "other",
            "-b",
            "synth_test",
            "--data",
            str(data),
            "--bootstrap",
            "30",
            "--out",
            str(tmp_path / "c"),
            "-q",
            "--workers",
            "0",
        ]
    )
    assert res.exit_code == 0, res.output
    flat = json.loads((tmp_path / "c/synth_test.json").read_text())
    # the same weights twice: a zero difference between them; both compared with the reference
    assert flat["delta/base-2/all/text"] == flat["delta/base/all/text"]
    assert flat["base/all/text"] == flat["base-2/all/text"]
    assert not any(k.startswith("delta/other/") for k in flat)
    res = invoke(["compare", f"genemi-synth-vit:{w}", "-b", "synth_test", "--data", str(data)])
    assert res.exit_code == 2 and "at least two models" in res.output


# ------------------------------------------------------------------------------ CLIP_benchmark


def _karpathy(tmp_path: Path, n_images: int = 12) -> Path:
    """A Karpathy ``dataset_coco.json`` (the catalogue's coco_retrieval format) of ``n_images`` test
    images with 5 captions each, plus one train image that must stay out."""
    images = []
    for i in range(n_images + 1):
        name = f"COCO_val2014_{i:012d}.jpg"
        _noise_png(tmp_path / "coco/val2014" / name, 100 + i)
        sents = [
            {
                "raw": f"picture {i} caption {j} of a {['cat', 'dog', 'car'][(i + j) % 3]}",
                "tokens": [],
                "imgid": i,
                "sentid": 10 * i + j,
            }
            for j in range(5)
        ]
        images.append(
            {
                "filepath": "val2014",
                "filename": name,
                "imgid": i,
                "cocoid": 1000 + i,
                "split": "test" if i < n_images else "train",
                "sentences": sents,
                "sentids": [s["sentid"] for s in sents],
            }
        )
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    return path


def _coco_captions(karpathy: Path) -> Path:
    """The same test split in the COCO captions format CLIP_benchmark's mscoco_captions reads."""
    d = json.loads(karpathy.read_text())
    test = [im for im in d["images"] if im["split"] == "test"]
    ann = {
        "images": [{"id": im["cocoid"], "file_name": im["filename"]} for im in test],
        "annotations": [
            {"id": s["sentid"], "image_id": im["cocoid"], "caption": s["raw"]}
            for im in test
            for s in im["sentences"]
        ],
    }
    path = karpathy.with_name("coco_test_karpathy.json")
    path.write_text(json.dumps(ann))
    return path


def test_clip_benchmark_and_genemi_eval_agree_on_retrieval_and_zero_shot(tmp_path):
    """LAION's CLIP_benchmark (its model loader, dataset builders and metric code, fp32) and `genemi eval`
    on the same tiny open_clip model and files: equal image/text retrieval R@1/5/10 and zero-shot top-1."""
    pytest.importorskip("clip_benchmark")
    from clip_benchmark.datasets.builder import build_dataset, get_dataset_collate_fn
    from clip_benchmark.metrics import zeroshot_classification, zeroshot_retrieval
    from clip_benchmark.models import load_clip
    from torchvision.datasets import ImageFolder

    cfg, sd = _tiny_arch(tmp_path)
    ckpt = tmp_path / "tiny.pt"
    torch.save(sd, ckpt)
    karpathy = _karpathy(tmp_path)
    folder = tmp_path / "zeroshot"
    for c, cls in enumerate(["cat", "dog", "red_car"]):
        for i in range(4):
            _noise_png(folder / cls / f"{i}.png", 500 + 10 * c + i)

    model, transform, tokenizer = load_clip("open_clip", "tiny-test-clip", str(ckpt), None, device="cpu")
    model.eval()
    ds = build_dataset(
        "mscoco_captions",
        root=str(tmp_path / "coco"),
        transform=transform,
        split="test",
        task="zeroshot_retrieval",
        annotation_file=str(_coco_captions(karpathy)),
    )
    loader = torch.utils.data.DataLoader(
        ds, batch_size=5, collate_fn=get_dataset_collate_fn("mscoco_captions")
    )
    ref_ret = zeroshot_retrieval.evaluate(
        model, loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10]
    )
    zs = ImageFolder(str(folder), transform=transform)
    classnames = [c.replace("_", " ") for c in zs.classes]
    # zeroshot_classification.evaluate's own accuracy() calls float() on a 1-element array, an error
    # under numpy 2.4 (clip_benchmark 1.6.2): its classifier and logits, with top-1 read off them
    classifier = zeroshot_classification.zero_shot_classifier(
        model, tokenizer, classnames, ["a photo of a {c}."], "cpu", amp=False
    )
    logits, target = zeroshot_classification.run_classification(
        model, classifier, torch.utils.data.DataLoader(zs, batch_size=5), "cpu", amp=False
    )
    ref_zs = {"acc1": (logits.argmax(1) == target).float().mean().item()}

    common = [
        "--model",
        str(cfg),
        "--checkpoint",
        str(ckpt),
        "--out",
        str(tmp_path / "g"),
        "-q",
        "--workers",
        "0",
        "--bootstrap",
        "0",
    ]
    res = invoke(
        [
            "eval",
            *common,
            "-b",
            str(karpathy),
            "--loader",
            "karpathy_retrieval",
            "--images",
            str(tmp_path / "coco"),
        ]
    )
    assert res.exit_code == 0, res.output
    ret = json.loads((tmp_path / "g/dataset_coco.json").read_text())
    res = invoke(["eval", *common, "-b", str(folder), "--loader", "image_folder"])
    assert res.exit_code == 0, res.output
    top = json.loads((tmp_path / "g/zeroshot.json").read_text())

    assert ret["model/retrieval/n_images"] == 12 and ret["model/retrieval/n_texts"] == 60
    got, want = {}, {}
    for k in (1, 5, 10):
        got[f"t2i_r@{k}"], want[f"t2i_r@{k}"] = (
            ret[f"model/retrieval/t2i_r@{k}"],
            100 * ref_ret[f"image_retrieval_recall@{k}"],
        )
        got[f"i2t_r@{k}"], want[f"i2t_r@{k}"] = (
            ret[f"model/retrieval/i2t_r@{k}"],
            100 * ref_ret[f"text_retrieval_recall@{k}"],
        )
    got["top1"], want["top1"] = top["model/zeroshot/top1"], 100 * ref_zs["acc1"]
    print("CLIP_benchmark vs genemi eval:", json.dumps({k: (want[k], got[k]) for k in got}))
    for k in got:
        assert got[k] == pytest.approx(want[k], abs=1e-4), k
    # the metrics are not all trivially 0 or 100: the comparison can fail
    assert len({round(v, 3) for v in got.values()}) > 2
