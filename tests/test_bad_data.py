"""Bad data, by class (classes 3-6 of docs/reliability.md), table-driven like tests/test_bad_inputs.py:

3. params that YAML accepts but that mean nothing (keys given twice, resource knobs past any machine,
   misspelt type names, hard-negative runs without negatives, malformed recipes);
4. text that is not UTF-8 in any file the project reads, captions past the tokenizer's context;
5. images PIL reads differently than people see them (16-bit, float, alpha, palette, CMYK, EXIF
   orientation), images of another size than the synthetic model's, a 1x1 image;
6. degenerate data that makes a result meaningless (a negative equal to its positive, a one-item or
   all-identical benchmark, training on a held-out split, image paths that leave their root, two runs
   with the same params and seed in the report).

Each refusal asserts the exit status, one ``Error: ...`` paragraph without a traceback naming the
file / line / key / record, and that the outputs (pre-written with old bytes) are unchanged. Cases
that the code handles (a 16-bit PNG, a 1x1 image, another image size) are checked against a reference
computed here by hand. docs/reliability.md lists the cases with before/after.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from test_bad_inputs import (  # the shared harness: a tiny valid world and the stage invocations
    _invoke,
    _png,
    _rows,
    _with,
    _world_copy,
    _write_rows,
    as_stage,
    assert_failed,
    run_base,
    run_evaluate,
    run_finetune,
)
from test_bad_inputs import world as world  # noqa: F401, PLC0414  (the fixture, by its name)

ROOT = Path(__file__).resolve().parents[1]
OLD = b"old output\n"


# ------------------------------------------------------------------------------------------ helpers


def _params_text(tmp: Path, raw: dict, text_edit=None, **dotted) -> Path:
    """``raw`` with dotted overrides dumped to ``tmp/params.yaml``; ``text_edit(str) -> str|bytes``
    edits the YAML text itself (a key given twice, a byte that is not UTF-8)."""
    text = yaml.safe_dump(_with(raw, **dotted), sort_keys=False)
    out = tmp / "params.yaml"
    data = text_edit(text) if text_edit else text
    out.write_bytes(data if isinstance(data, bytes) else data.encode())
    return out


def _outputs(tmp: Path, names: list[str]) -> list[Path]:
    """Output paths pre-written with OLD bytes: a refused run must leave them as they were."""
    paths = []
    for n in names:
        p = tmp / "out" / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(OLD)
        paths.append(p)
    return paths


def assert_unchanged(*paths: Path) -> None:
    for p in paths:
        assert p.read_bytes() == OLD, f"{p} changed"
        left = [x.name for x in p.parent.iterdir() if x.name.startswith(f".{p.name}.")]
        assert not left, f"temp files beside {p}: {left}"


def assert_one_line(text: str) -> None:
    """The error paragraph stays readable: no 10,000-character caption pasted into it."""
    error = f"\n{text}".split("\nError: ", 1)[1]
    assert len(error) < 1200, f"error of {len(error)} characters"


def _base(tmp, params, train, root):
    outs = _outputs(tmp, ["base.safetensors", "base.json"])
    code, text, _ = run_base(tmp, params, train, root)
    return code, text, outs


def _finetune(tmp, params, train, root, base):
    outs = _outputs(tmp, ["ft.safetensors", "ft.json"])
    code, text, _ = run_finetune(tmp, params, train, root, base)
    return code, text, outs


def _evaluate(tmp, params, data, bench, world):
    outs = _outputs(tmp, [f"{bench}.json"])
    code, text, _ = run_evaluate(tmp, params, data, bench, world)
    return code, text, outs


def _byo(data: Path, rows: list, name: str = "byo.jsonl") -> dict:
    """A bring-your-own benchmark file under ``data`` and its eval.benchmarks entry."""
    _write_rows(data / name, rows)
    return {"loader": "byo", "file": name, "images": ".", "models": name, "subset": 1.0}


def _byo_rows(n: int = 4) -> list[dict]:
    return [{"image": f"img/{i}.png", "positive": f"a {c} circle", "negatives": [f"a {c} square"]}
            for i, c in enumerate(("red", "green", "blue", "yellow")[:n])]


# ==================================================================== 3. params that mean nothing

MOVED = {f"eval.benchmarks.synth_test.{k}": "train.jsonl" for k in ("file", "models")}  # the world's records

PARAMS_CASES = [  # (id, dotted overrides or text edit, stage, what the message must name)
    ("key_twice", lambda t: t.replace("  hn_weight: 1.0\n", "  hn_weight: 1.0\n  hn_weight: 0.0\n"),
     "finetune", ["key 'loss.hn_weight' is given twice"]),
    ("section_twice", lambda t: t + "loss:\n  hn_weight: 0.0\n", "base", ["key 'loss' is given twice"]),
    ("top_key_twice", lambda t: "seed: 3\n" + t, "evaluate", ["key 'seed' is given twice"]),
    ("not_utf8", lambda t: t.encode().replace(b"arch: genemi-synth-vit", b"arch: genemi-synth-vit #\xe9"),
     "base", [":", "not UTF-8 (byte 0xe9"]),
    ("threads", {"threads": 100000}, "base", ["threads = 100000: must be <= 1024"]),
    ("seed_huge", {"seed": 10**20}, "base", ["seed = 100000000000000000000: must be <= 4294967295"]),
    ("seed_exponent", {"seed": "1e20"}, "base", ["seed: expected an integer, got '1e20'"]),
    ("workers", {"data.workers": 5000}, "evaluate", ["data.workers = 5000: must be <= 64"]),
    ("batch", {"base.batch_size": 10**9}, "base", ["base.batch_size = 1000000000: must be <="]),
    ("bootstrap", {"eval.bootstrap": 10**9}, "evaluate", ["eval.bootstrap = 1000000000: must be <="]),
    ("n_train", {"synth.n_train": 10**9}, "evaluate", ["synth.n_train = 1000000000: must be <="]),
    ("eval_seed", {"eval.seed": 2**40}, "evaluate", ["eval.seed = 1099511627776: must be <="]),
    ("mine_types_empty", {"mine.types": []}, "finetune", ["mine.types = []", "plain CLIP"]),
    ("mine_type_typo", {"mine.types": ["atribute_swap"]}, "finetune",
     ["mine.types[0] = 'atribute_swap'", "did you mean 'attribute_swap'"]),
    ("negative_type_not_mined", {"loss.negative_types": ["relaton_flip"]}, "finetune",
     ["loss.negative_types[0] = 'relaton_flip'", "not a type in mine.types"]),
    ("no_negatives_per_sample", {"loss.negatives_per_sample": 0}, "finetune",
     ["loss.negatives_per_sample = 0", "plain CLIP"]),
    ("dpo_without_negatives", {"loss.dpo_weight": 1.0, "loss.hn_weight": 0.0, "mine.types": []}, "finetune",
     ["loss.dpo_weight = 1 with mine.types = []"]),
    ("hard_type_twice", {"eval.hard_types": ["attribute_swap", "attribute_swap"]}, "evaluate",
     ["eval.hard_types[1] = 'attribute_swap': listed twice"]),
    ("image_size", {"synth.image_size": 64}, "base", ["synth.image_size = 64", "reads 48-pixel images"]),
]


@pytest.mark.parametrize("case", PARAMS_CASES, ids=[c[0] for c in PARAMS_CASES])
def test_params_that_mean_nothing_are_refused_at_load(tmp_path, world, case):
    _, change, stage, names = case
    edit = change if callable(change) else None
    moved = MOVED if stage == "evaluate" else {}  # the world's records as synth_test: only params are wrong
    params = _params_text(tmp_path, world["raw"], edit, **({} if edit else change), **moved)
    data, train = world["data"], world["data"] / "train.jsonl"
    code, text, outs = {
        "base": lambda: _base(tmp_path, params, train, data),
        "finetune": lambda: _finetune(tmp_path, params, train, data, world["base"]),
        "evaluate": lambda: _evaluate(tmp_path, params, data, "synth_test", world),
    }[stage]()
    assert_failed(code, text, str(params), *names)
    assert_unchanged(*outs)


def test_duplicate_key_names_both_lines(tmp_path):
    from genemi.config import ConfigError, load_params

    p = tmp_path / "params.yaml"
    text = (ROOT / "tests" / "fixtures" / "params.yaml").read_text()
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("  hn_weight:")) + 1
    p.write_text(text.replace(lines[first - 1], lines[first - 1] + "\n  hn_weight: 0.0", 1))
    with pytest.raises(ConfigError, match=rf"params.yaml:{first + 1}: key 'loss.hn_weight' is given twice "
                                          rf"\(first on line {first}\)"):
        load_params(p)


def test_every_integer_knob_has_an_upper_bound():
    """The class: no integer knob can be set to a value that starves the machine or overflows."""
    import dataclasses
    import typing

    from genemi import config

    missing = []
    for cls, ranges in config.RANGES.items():
        for f in dataclasses.fields(cls):
            tp = typing.get_type_hints(cls)[f.name]
            is_int = tp is int or (typing.get_origin(tp) is tuple and typing.get_args(tp)[0] is int)
            rng = ranges.get(f.name)
            if is_int and (rng is None or (rng.hi is None and rng.cap is None)):
                missing.append(f"{cls.__name__}.{f.name}")
    assert not missing, f"integer knobs without an upper bound: {missing}"


def test_hard_types_typo_is_refused_before_any_model(tmp_path, world):
    params = _params_text(tmp_path, world["raw"], **{"eval.hard_types": ["atribute_swap", "relation_flip"]},
                          **MOVED)
    code, text, outs = _evaluate(tmp_path, params, world["data"], "synth_test", world)
    assert_failed(code, text, str(params), "eval.hard_types[0] = 'atribute_swap'",
                  "did you mean 'attribute_swap'")
    assert_unchanged(*outs)


def test_hard_type_of_a_byo_benchmark_is_known_to_it(tmp_path, world):
    """A type the code does not name is fine where the benchmark has it (a bring-your-own type)."""
    from genemi.benchmarks import load_benchmark
    from genemi.config import params_from_dict
    from genemi.evaluate import check_hard_types

    data = _world_copy(tmp_path, world)
    rows = [{**r, "type": "my_own_type"} for r in _byo_rows()]
    raw = json.loads(json.dumps(world["raw"]))
    raw["eval"]["benchmarks"]["mine"] = _byo(data, rows)
    raw["eval"]["hard_types"] = ["my_own_type"]
    raw["eval"]["benchmarks"]["synth_test"].update(file="train.jsonl", models="train.jsonl")
    p = params_from_dict(raw)
    check_hard_types(p.eval, load_benchmark(p.eval, "mine", data))  # no error
    with pytest.raises(ValueError, match=r"eval.hard_types\[0\] = 'my_own_type'"):
        check_hard_types(p.eval, load_benchmark(p.eval, "synth_test", data))


def test_hard_negative_run_on_records_without_negatives_is_refused(tmp_path, world):
    data = _world_copy(tmp_path, world)
    rows = [{k: v for k, v in r.items() if k != "negatives"} for r in _rows()]
    train = _write_rows(data / "plain.jsonl", rows)
    params = _params_text(tmp_path, world["raw"])
    code, text, outs = _finetune(tmp_path, params, train, data, world["base"])
    assert_failed(code, text, "loss.hn_weight = 1", "no training record has a hard negative")
    assert_unchanged(*outs)


# -- recipes: `python -m genemi.recipe` (exit 2, one `error:` line, params.yaml untouched)


def _recipe(tmp: Path, text: str | bytes) -> Path:
    d = tmp / "recipes"
    d.mkdir(exist_ok=True)
    p = d / "bad.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


RECIPE_CASES = [  # (id, recipe text, what the message must name)
    ("key_twice", "description: x\nparams:\n  finetune.lr: 1.0e-5\n  finetune.lr: 2.0e-5\n",
     ["bad.yaml:4: key 'params.finetune.lr' is given twice (first on line 3)"]),
    ("section_twice", "description: x\nparams:\n  finetune.lr: 1.0e-5\nparams:\n  loss.hn_weight: 0.0\n",
     ["bad.yaml:4: key 'params' is given twice"]),
    ("params_a_list", "description: x\nparams:\n  - finetune.lr: 1.0e-5\n",
     ["bad.yaml: a recipe needs a non-empty 'params' mapping", "found list"]),
    ("targets_a_list", "description: x\ntargets: [56.2]\nparams:\n  finetune.lr: 1.0e-5\n",
     ["bad.yaml: 'targets' must be a mapping"]),
    ("description_a_mapping", "description: {a: 1}\nparams:\n  finetune.lr: 1.0e-5\n",
     ["bad.yaml: 'description' must be text"]),
    ("not_utf8", b"description: caf\xe9\nparams:\n  finetune.lr: 1.0e-5\n", ["bad.yaml:1: not UTF-8"]),
    ("unknown_field", "description: x\nparms: {}\nparams:\n  finetune.lr: 1.0e-5\n",
     ["bad.yaml: unknown recipe field(s) ['parms']"]),
    ("empty_key", "description: x\nparams:\n  finetune..lr: 1.0e-5\n", ["params key 'finetune..lr'"]),
]


def _recipe_cli(*args, cwd) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "genemi.recipe", *args], cwd=cwd, capture_output=True,
                          text=True, env=env)


@pytest.mark.parametrize("case", RECIPE_CASES, ids=[c[0] for c in RECIPE_CASES])
def test_malformed_recipe_is_refused_naming_file_and_line(tmp_path, case):
    _, text, names = case
    recipe = _recipe(tmp_path, text)
    params = tmp_path / "params.yaml"
    params.write_bytes((ROOT / "tests" / "fixtures" / "params.yaml").read_bytes())
    before = params.read_bytes()
    r = _recipe_cli("apply", str(recipe), "--params", str(params), cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith("Error: "), r.stderr
    for n in names:
        assert n in r.stderr, f"{n!r} not in {r.stderr}"
    assert params.read_bytes() == before


def test_recipe_list_in_a_folder_without_recipes_is_an_error(tmp_path):
    """From another folder `list` shows the shipped recipes; a --dir without recipes is an error, not an
    empty list with exit 0."""
    r = _recipe_cli("list", cwd=tmp_path)
    assert r.returncode == 0 and "hnc_l2:" in r.stdout, r.stdout + r.stderr
    (tmp_path / "none").mkdir()
    r = _recipe_cli("list", "--dir", str(tmp_path / "none"), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert str(tmp_path / "none") in r.stderr and "--dir" in r.stderr
    assert r.stdout == ""


# ============================================================ 4. text encodings and long captions

LATIN1 = "a red circle caf\xe9".encode("latin-1")


def _latin1_line(path: Path, lineno: int) -> None:
    """Replace the caption of line ``lineno`` of a JSONL file with Latin-1 bytes (JSON stays valid)."""
    lines = path.read_bytes().splitlines(keepends=True)
    row = json.loads(lines[lineno - 1])
    key = "caption" if "caption" in row else "positive"
    lines[lineno - 1] = json.dumps({**row, key: "@@"}).encode().replace(b"@@", LATIN1) + b"\n"
    path.write_bytes(b"".join(lines))


def test_latin1_training_manifest_names_file_and_line(tmp_path, world):
    data = _world_copy(tmp_path, world)
    _latin1_line(data / "train.jsonl", 3)
    code, text, outs = _base(tmp_path, _params_text(tmp_path, world["raw"]), data / "train.jsonl", data)
    assert_failed(code, text, f"{data / 'train.jsonl'}:3: not UTF-8 (byte 0xe9", "re-save the file as UTF-8")
    assert_unchanged(*outs)


def test_latin1_byo_benchmark_names_file_and_line(tmp_path, world):
    data = _world_copy(tmp_path, world)
    entry = _byo(data, _byo_rows())
    _latin1_line(data / "byo.jsonl", 2)
    params = _params_text(tmp_path, world["raw"], **{"eval.benchmarks.byo": entry})
    code, text, outs = _evaluate(tmp_path, params, data, "byo", world)
    assert_failed(code, text, f"{data / 'byo.jsonl'}:2: not UTF-8")
    assert_unchanged(*outs)


def test_latin1_json_benchmark_names_file_and_line(tmp_path, world):
    """COCO-neg: one JSON list (read whole): the line is counted in the file."""
    data = _world_copy(tmp_path, world)
    items = [{"image": f"img/{i}.png", "text": f"a {c} circle", "neg_text": f"a {c} square"}
             for i, c in enumerate(("red", "green", "blue"))]
    raw = json.dumps(items, indent=1).encode().replace(b"a green circle", b"a gr\xe9en circle")
    (data / "coco_neg.json").write_bytes(raw)
    line = raw[: raw.index(b"\xe9")].count(b"\n") + 1
    entry = {"loader": "coco_neg", "file": "coco_neg.json", "images": ".", "models": "coco_neg.json",
             "subset": 1.0}
    params = _params_text(tmp_path, world["raw"], **{"eval.benchmarks.cn": entry})
    code, text, outs = _evaluate(tmp_path, params, data, "cn", world)
    assert_failed(code, text, f"{data / 'coco_neg.json'}:{line}: not UTF-8")
    assert_unchanged(*outs)


def test_latin1_hnc_file_names_file_and_line(tmp_path, world):
    """HNC files are streamed (ijson), whose own error gives a byte offset; the line is found."""
    hnc = tmp_path / "hnc"
    hnc.mkdir()
    entry = {"captions": {"0": {"caption": "a red circle", "label": 1, "type": "attr", "cpt_p_id": "0"}}}
    for name in ("hnc_clean_strict_train.json", "hnc_clean_strict_val.json", "hnc_clean_strict_test.json"):
        (hnc / name).write_text(json.dumps({"1": entry}, indent=1))
    bad = hnc / "hnc_clean_strict_train.json"
    bad.write_bytes(bad.read_bytes().replace(b"a red circle", b"a r\xe9d circle"))
    params = _params_text(tmp_path, world["raw"], **{"data.source": "hnc"})
    stats = _outputs(tmp_path, ["hnc_data.json"])
    from stages import hnc_manifest

    code, text = _invoke(hnc_manifest.main, ["--params", params, "--hnc", hnc, "--images", tmp_path / "gqa",
                                             "--out", tmp_path / "hnc_out", "--stats", stats[0]])
    assert_failed(code, text, f"{bad}:5: not UTF-8")
    assert_unchanged(*stats)
    assert not (tmp_path / "hnc_out").exists()


def test_latin1_negclip_csv_names_file_and_line(tmp_path):
    from genemi.data.negclip import negclip_records

    f = tmp_path / "negclip.tsv"
    f.write_bytes(b"title\tfilepath\tneg_caption\tneg_image\n"
                  b"a cat\tx.jpg\t['a dog']\t[]\n"
                  b"a caf\xe9\tx.jpg\t['a dog']\t[]\n")
    code, text = as_stage(lambda: negclip_records(f))
    assert_failed(code, text, f"{f}:3: not UTF-8")


def test_latin1_download_lock_names_file_and_line(tmp_path):
    from genemi.download import Lock

    f = tmp_path / "downloads.lock.json"
    f.write_bytes(b'{\n  "models/x": {"sha256": "ab", "note": "caf\xe9"}\n}\n')
    code, text = as_stage(lambda: Lock(f).read())
    assert_failed(code, text, f"{f}:2: not UTF-8")


def test_byte_order_mark_is_read_as_utf8(tmp_path, world):
    """A Windows editor's BOM is not an error (json.loads alone refuses it)."""
    from genemi.manifest import read_records

    data = _world_copy(tmp_path, world)
    f = data / "train.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    assert [r.id for r in read_records(f)] == ["r0", "r1", "r2", "r3"]


LONG = " ".join(["a red circle left of a blue square"] * 300)  # ~10,500 characters, all in the vocabulary


def test_long_evaluation_caption_is_refused_naming_file_and_record(tmp_path, world):
    """The synthetic tokenizer reads 10 words; training refuses longer captions naming the record, and
    evaluation does the same (with the benchmark file), in one short line."""
    data = _world_copy(tmp_path, world)
    rows = _byo_rows()
    rows[2] = {**rows[2], "id": "long-one", "positive": LONG}
    entry = _byo(data, rows)
    params = _params_text(tmp_path, world["raw"], **{"eval.benchmarks.byo": entry})
    code, text, outs = _evaluate(tmp_path, params, data, "byo", world)
    assert_failed(code, text, f"{data / 'byo.jsonl'}: benchmark 'byo', record 'long-one'",
                  "more than the 10 the synthetic text tower reads")
    assert_one_line(text)
    assert_unchanged(*outs)


def test_long_training_caption_is_refused_naming_the_record(tmp_path, world):
    data = _world_copy(tmp_path, world)
    rows = _rows()
    rows[1]["caption"] = LONG
    train = _write_rows(data / "long.jsonl", rows)
    code, text, outs = _base(tmp_path, _params_text(tmp_path, world["raw"]), train, data)
    assert_failed(code, text, "record 'r1'", "more than the 10")
    assert_one_line(text)
    assert_unchanged(*outs)


def test_long_caption_is_cut_to_the_mining_scorers_context(tmp_path):
    """Mining scores variations with BLIP ITM (positions: 64 in the tiny model, 512 in the real one): a
    13,000-character caption is cut to the text tower's positions, as open_clip's tokenizer cuts to its
    context, and scores like its first tokens alone."""
    from genemi.mining import tiny
    from genemi.mining.models import BlipItmScorer

    scorer = BlipItmScorer.from_pretrained(str(tiny.save_blip_itm(tmp_path / "blip")))
    limit = scorer.model.config.text_config.max_position_embeddings
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    long = ("a dog sits on a bench next to a red car " * 400)[:13000]
    ids = scorer.processor.tokenizer(long, add_special_tokens=False)["input_ids"]
    assert len(ids) > limit
    head = scorer.processor.tokenizer.decode(ids[: limit - 2])  # what fits between [CLS] and [SEP]
    assert scorer.score(image, long) == pytest.approx(scorer.score(image, head), abs=1e-5)


# ================================================================== 5. images as people see them


def _encoded(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _read(data: bytes) -> np.ndarray:
    from genemi.images import read_image_bytes

    return np.asarray(read_image_bytes(data, label="x.png"))


GREY16 = np.array([[0, 257, 32768], [65535, 1000, 51400]], np.uint16)  # viewer: round(v / 257)


def test_16bit_greyscale_png_reads_as_a_viewer_shows_it():
    got = _read(_encoded(Image.fromarray(GREY16)))
    want = np.rint(GREY16 / 257.0).astype(np.uint8)
    assert got.shape == (2, 3, 3) and (got == want[..., None]).all(), got[..., 0]


def test_16bit_greyscale_in_a_stage_is_not_white(tmp_path, world):
    """End to end: a mid-grey 16-bit PNG goes to the model as mid-grey (not 255, PIL's plain convert)."""
    from genemi.evalsets import ImageStore

    Image.fromarray(np.full((48, 48), 32896, np.uint16)).save(tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").mode.startswith("I")
    assert np.asarray(Image.open(tmp_path / "g.png").convert("RGB")).max() == 255  # what PIL alone gives
    assert (np.asarray(ImageStore(tmp_path).load("g.png")) == 128).all()


MODE_CASES = [  # (id, image, format, expected RGB of pixel (0, 0)) -- references by hand
    ("I_32bit_tiff", lambda: Image.fromarray(np.full((4, 4), 65535 // 2, np.int32)), "TIFF", (127, 127, 127)),
    ("I_small_values", lambda: Image.fromarray(np.full((4, 4), 200, np.int32)), "TIFF", (200, 200, 200)),
    ("F_unit_range", lambda: Image.fromarray(np.full((4, 4), 0.5, np.float32)), "TIFF", (128, 128, 128)),
    ("LA_transparent", lambda: Image.new("LA", (4, 4), (0, 0)), "PNG", (255, 255, 255)),
    ("RGBA_half", lambda: Image.new("RGBA", (4, 4), (0, 0, 0, 128)), "PNG", (127, 127, 127)),
    ("P_transparent", lambda: _palette_transparent(), "PNG", (255, 255, 255)),
    ("CMYK_jpeg", lambda: Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", (255, 0, 0)),
]


def _palette_transparent() -> Image.Image:
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 0] + [255, 0, 0] * 255)  # index 0: black, marked transparent
    im.info["transparency"] = 0
    return im


@pytest.mark.parametrize("case", MODE_CASES, ids=[c[0] for c in MODE_CASES])
def test_image_modes_read_as_a_viewer_shows_them(case):
    _, make, fmt, want = case
    im = make()
    kw = {"transparency": 0} if im.mode == "P" else {}
    got = _read(_encoded(im, fmt, **kw))
    assert np.abs(got[0, 0].astype(int) - np.array(want)).max() <= 2, got[0, 0]


def test_exif_orientation_is_applied():
    """A phone photo stored sideways with EXIF orientation 6 (rotate 90 clockwise to view)."""
    a = np.zeros((4, 8, 3), np.uint8)
    a[:, :4] = 255  # left half white as stored
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6
    got = _read(_encoded(im, "PNG", exif=exif.tobytes()))
    assert got.shape == (8, 4, 3)
    assert (got[:4] == 255).all() and (got[4:] == 0).all()  # the stored left half is the viewer's top


def test_plain_rgb_is_untouched():
    """The pipeline's own images (RGB, no EXIF): the same pixels as before (byte-identical results)."""
    a = np.random.default_rng(1).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    assert (_read(_encoded(Image.fromarray(a))) == a).all()


def _eval_images(tmp, world, size: tuple[int, int], workers: int):
    data = _world_copy(tmp, world)
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(data / "img" / "2.png")
    entry = _byo(data, _byo_rows())
    raw = json.loads(json.dumps(world["raw"]))
    raw["data"]["workers"] = workers
    params = _params_text(tmp, raw, **{"eval.benchmarks.byo": entry})
    code, text, _ = run_evaluate(tmp, params, data, "byo", world)
    return code, text, tmp / "out" / "byo.json"


@pytest.mark.parametrize("size", [(1, 1), (64, 40), (30, 90)], ids=["1x1", "64x40", "30x90"])
def test_evaluation_image_of_another_size_is_resized_in_a_worker(tmp_path, world, size):
    """A 1x1 image and images not of the synthetic model's 48 pixels are resized as open_clip resizes
    (shortest side, bicubic, centre crop), in a DataLoader worker, and scored: exit 0."""
    code, text, metrics = _eval_images(tmp_path, world, size, workers=1)
    assert code == 0, text
    assert "Traceback" not in text and json.loads(metrics.read_text())


@pytest.mark.parametrize("size", [(1, 1), (64, 40), (48, 100)])
def test_array_transform_resizes_like_open_clip(size):
    """The synthetic model's transform against torchvision's Resize(48, bicubic) + CenterCrop(48) on the
    same PIL image (open_clip's eval preprocessing), then scaled to [-1, 1]."""
    import torch
    from torchvision import transforms as T

    from genemi.clip import ArrayTransform

    im = Image.fromarray(np.random.default_rng(2).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    ref = T.Compose([T.Resize(48, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(48)])(im)
    want = torch.from_numpy(np.asarray(ref, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1
    got = ArrayTransform(48)(im)
    assert got.shape == (3, 48, 48)
    assert (got - want).abs().max() <= 2 / 127.5  # one grey level: rounding of the two resizers


@pytest.mark.parametrize("size", [(1, 1), (64, 40)], ids=["1x1", "64x40"])
def test_training_image_of_another_size_names_the_file(tmp_path, world, size):
    """The synthetic training bank holds one size in memory: an odd image is refused, naming it."""
    data = _world_copy(tmp_path, world)
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(data / "img" / "2.png")
    code, text, outs = _base(tmp_path, _params_text(tmp_path, world["raw"]), data / "train.jsonl", data)
    assert_failed(code, text, f"{data / 'img' / '2.png'}: training images differ in size: this one is "
                              f"{size[0]}x{size[1]}")
    assert_unchanged(*outs)


def test_untransformable_image_names_the_file(tmp_path, world):
    """An image the model's transform refuses (here: a crop box of zero width, e.g. a damaged ARO box)
    is named, not raised from inside the worker."""
    from genemi.evalsets import EvalSet, ImageStore
    from genemi.evaluate import _Decoded

    data = _world_copy(tmp_path, world)
    store = ImageStore(data, crops={"c": ("img/1.png", (5.0, 5.0, 0.0, 10.0))})
    from genemi.clip import ArrayTransform

    item = _Decoded(EvalSet("x", store), ["c"], [ArrayTransform(48)])[0]
    assert str(data / "img" / "1.png") in str(item.error) and "crop" in str(item.error)


# ======================================================================= 6. degenerate data


def test_negative_equal_to_its_positive_in_training_names_line_and_record(tmp_path, world):
    data = _world_copy(tmp_path, world)
    rows = _rows()
    rows[2]["negatives"][0]["caption"] = "A  Blue circle"  # the positive up to case and spaces
    train = _write_rows(data / "same.jsonl", rows)
    code, text, outs = _base(tmp_path, _params_text(tmp_path, world["raw"]), train, data)
    assert_failed(code, text, f"{train}:3 (record id='r2')", "negatives[0]' is identical to the positive")
    assert_unchanged(*outs)


def test_negative_image_equal_to_its_positive_in_training(tmp_path, world):
    data = _world_copy(tmp_path, world)
    rows = _rows()
    rows[1]["negatives"][0]["image"] = rows[1]["image"]
    train = _write_rows(data / "same.jsonl", rows)
    code, text, outs = _finetune(tmp_path, _params_text(tmp_path, world["raw"]), train, data, world["base"])
    assert_failed(code, text, f"{train}:2 (record id='r1')", "identical to the positive")
    assert_unchanged(*outs)


def test_negative_equal_to_its_positive_in_a_benchmark(tmp_path, world):
    data = _world_copy(tmp_path, world)
    rows = _byo_rows()
    rows[1] = {**rows[1], "id": "tie", "negatives": [rows[1]["positive"]]}
    entry = _byo(data, rows)
    params = _params_text(tmp_path, world["raw"], **{"eval.benchmarks.byo": entry})
    code, text, outs = _evaluate(tmp_path, params, data, "byo", world)
    assert_failed(code, text, f"{data / 'byo.jsonl'}: benchmark 'byo': record 'tie'",
                  "identical to the positive")
    assert_unchanged(*outs)


def test_negative_equal_to_its_positive_in_a_manifest_benchmark(tmp_path, world):
    data = _world_copy(tmp_path, world)
    rows = _rows()
    rows[3]["negatives"][0]["caption"] = rows[3]["caption"]
    _write_rows(data / "train.jsonl", rows)
    moved = {f"eval.benchmarks.synth_test.{k}": "train.jsonl" for k in ("file", "models")}
    params = _params_text(tmp_path, world["raw"], **moved)
    code, text, outs = _evaluate(tmp_path, params, data, "synth_test", world)
    assert_failed(code, text, f"{data / 'train.jsonl'}:4 (record id='r3')", "identical to the positive")
    assert_unchanged(*outs)


def test_choice_item_with_the_same_image_twice_is_refused(tmp_path, world):
    data = _world_copy(tmp_path, world)
    rows = [{"id": i, "caption_0": f"a {c} circle", "caption_1": f"a {c} square", "image_0": f"{i}",
             "image_1": f"{i + 1 if i != 2 else i}", "tag": "x", "collapsed_tag": "Object"}
            for i, c in enumerate(("red", "green", "blue"))]
    _write_rows(data / "wino" / "examples.jsonl", rows)
    for i in range(4):
        _png(data / "wino" / "images" / f"{i}.png", seed=i)
    entry = {"loader": "winoground", "file": "wino/examples.jsonl", "images": "wino/images",
             "models": "wino/examples.jsonl", "subset": 1.0}
    params = _params_text(tmp_path, world["raw"], **{"eval.benchmarks.wino": entry})
    code, text, outs = _evaluate(tmp_path, params, data, "wino", world)
    assert_failed(code, text, "benchmark 'wino': item 'winoground-2'", "same image")
    assert_unchanged(*outs)


@pytest.mark.parametrize("copies", [1, 6], ids=["one_item", "all_identical"])
def test_one_item_or_all_identical_benchmark_with_intervals_is_refused(tmp_path, world, copies):
    data = _world_copy(tmp_path, world)
    entry = _byo(data, _byo_rows(1) * copies)
    raw = json.loads(json.dumps(world["raw"]))
    raw["eval"]["bootstrap"] = 50
    params = _params_text(tmp_path, raw, **{"eval.benchmarks.byo": entry})
    code, text, outs = _evaluate(tmp_path, params, data, "byo", world)
    assert_failed(code, text, f"{data / 'byo.jsonl'}: benchmark 'byo': 1 distinct item(s) ({copies} in all)",
                  "zero width", "eval.bootstrap=0")
    assert_unchanged(*outs)


def test_one_image_retrieval_or_one_class_zero_shot_with_intervals_is_refused():
    """The same for the other tasks: one retrieval image (five captions), one zero-shot class."""
    from genemi.evalsets import Classification, EvalSet, ImageStore, Retrieval
    from genemi.evaluate import check_intervals

    ret = EvalSet("k", ImageStore(Path(".")), retrieval=Retrieval(("a",), ("1",), ("t",) * 5, ("1",) * 5))
    with pytest.raises(ValueError, match=r"1 distinct retrieval image\(s\) \(1 in all\)"):
        check_intervals(ret, 100)
    check_intervals(ret, 0)  # no interval claimed: scored
    one_class = Classification(("a", "b"), (0, 0), ("cat",), ("{}",))
    zs = EvalSet("z", ImageStore(Path(".")), classification=one_class)
    with pytest.raises(ValueError, match=r"1 distinct zero-shot class\(es\)"):
        check_intervals(zs, 100)


def test_one_item_benchmark_without_intervals_is_scored(tmp_path, world):
    """With eval.bootstrap=0 no interval is claimed: one item gives its point values, exit 0."""
    data = _world_copy(tmp_path, world)
    entry = _byo(data, _byo_rows(1))
    params = _params_text(tmp_path, world["raw"], **{"eval.benchmarks.byo": entry})
    code, text, _ = run_evaluate(tmp_path, params, data, "byo", world)
    assert code == 0, text
    assert not any(k.endswith("_lo") for k in json.loads((tmp_path / "out" / "byo.json").read_text()))


@pytest.mark.parametrize("split", ["test", "gen", "val"])
def test_training_on_a_held_out_split_is_refused(tmp_path, world, split):
    data = _world_copy(tmp_path, world)
    rows = [{**r, "split": split if i == 1 else "train"} for i, r in enumerate(_rows())]
    train = _write_rows(data / f"{split}.jsonl", rows)
    runner = _base if split != "gen" else (lambda *a: _finetune(*a, world["base"]))
    code, text, outs = runner(tmp_path, _params_text(tmp_path, world["raw"]), train, data)
    assert_failed(code, text, f"{train}:2 (record id='r1')", f"split '{split}'", "held-out split")
    assert_unchanged(*outs)


ESCAPES = [("../outside.png", "climbs out"), ("/etc/x.png", "is absolute"),
           ("img/../../outside.png", "climbs out"), ("C:\\data\\x.png", "is absolute"),
           ("img\\..\\..\\x.png", "climbs out")]


@pytest.mark.parametrize("path,why", ESCAPES, ids=[e[0] for e in ESCAPES])
def test_training_image_path_leaving_the_root_is_refused(tmp_path, world, path, why):
    data = _world_copy(tmp_path, world)
    _png(tmp_path / "outside.png")  # it exists: it must not be read
    rows = _rows()
    rows[2]["image"] = path
    train = _write_rows(data / "esc.jsonl", rows)
    code, text, outs = _base(tmp_path, _params_text(tmp_path, world["raw"]), train, data)
    assert_failed(code, text, f"{train}:3 (record id='r2')", "field 'image'", why)
    assert_unchanged(*outs)


@pytest.mark.parametrize("path,why", ESCAPES[:2], ids=[e[0] for e in ESCAPES[:2]])
def test_benchmark_image_path_leaving_the_data_folder_is_refused(tmp_path, world, path, why):
    data = _world_copy(tmp_path, world)
    _png(tmp_path / "outside.png")
    rows = _byo_rows()
    rows[0] = {**rows[0], "negatives": [{"caption": "a red square", "image": path}]}
    entry = _byo(data, rows)
    params = _params_text(tmp_path, world["raw"], **{"eval.benchmarks.byo": entry})
    code, text, outs = _evaluate(tmp_path, params, data, "byo", world)
    assert_failed(code, text, f"{data / 'byo.jsonl'}: benchmark 'byo': image {path!r}", why)
    assert_unchanged(*outs)


def test_report_names_runs_with_the_same_params_and_seed(tmp_path):
    """Two run folders with the same params and seed: one counts, and the other is named (not hidden)."""
    from click.testing import CliRunner
    from test_report import _write_run

    from stages import report

    ok = {"swap": 5, "flip": 5, "color": 9}
    _write_run(tmp_path / "a", 0, 1.0, ok, ok)
    _write_run(tmp_path / "b", 0, 1.0, ok, {"swap": 9, "flip": 9, "color": 9})
    _write_run(tmp_path / "c", 0, 0.0, ok, ok)
    out = tmp_path / "rep"
    r = CliRunner().invoke(report.main, ["--run-dir", tmp_path / "a", "--run-dir", tmp_path / "b",
                                         "--run-dir", tmp_path / "c", "--out", out, "--bootstrap", "100"])
    assert r.exit_code == 0, r.output
    assert "1 repeated run(s) not counted" in r.output
    md = (out / "results.md").read_text()
    assert f"`{tmp_path / 'b'}` repeats `{tmp_path / 'a'}` (seed 0)" in md
    assert f"| loss.hn_weight=1 | 0 | `{tmp_path / 'b'}`: same params and seed as `{tmp_path / 'a'}`" in md


def test_the_type_lists_in_config_are_the_miners_own():
    """config.py keeps copies (loading params imports no miner): they must equal the miners' lists."""
    from genemi.config import RULE_TYPES, SYNTH_TYPES
    from genemi.mining.rules import NEGATIVE_TYPES as RULES
    from genemi.synth.negatives import NEGATIVE_TYPES as SYNTH

    assert (SYNTH_TYPES, RULE_TYPES) == (SYNTH, RULES)


class _KeepCaption:
    """A caption rewriter that leaves every caption as it was (an item the caption does not name)."""

    def rewrite(self, text, item, short):
        return text


def test_mining_writes_no_negative_equal_to_its_positive(tmp_path):
    """A variation whose caption rewrite changed nothing keeps the original caption as its positive, so
    the original caption is no object negative of it: the miner drops such negatives (the readers would
    refuse the record)."""
    import mining_fakes as F

    from genemi.manifest import read_manifest
    from genemi.mining import pipeline as P

    root = tmp_path / "data"
    root.mkdir()
    recs = F.make_dataset(root)
    chain = F.fake_chain(rewriter=_KeepCaption())
    P.run_shard(recs, root, tmp_path / "o", chain, F.params(variations_per_item=2), seed=0)
    P.merge(tmp_path / "o", tmp_path / "m.jsonl", keep_failed=True)
    out = read_manifest(tmp_path / "m.jsonl")  # the readers' own check passes
    objects = [r for r in out if r.meta["type"] == "object"]
    assert objects, "the fixture must mine object edits, or this test checks nothing"
    assert all(r.caption in [x.caption for x in recs] for r in objects)  # the rewrite kept the caption
    assert not any(n.caption == r.caption for r in out for n in r.negatives)
