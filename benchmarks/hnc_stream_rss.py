"""Peak memory and throughput of the streamed HNC conversion on a generated >= 1 GB train-schema file.

The real ``hnc_clean_strict_train.json`` is 8.15 GB (67,807 images, ~242 captions each, ~500 bytes per
caption entry); the requirement is peak RSS <= 2 GB while converting it. This script writes a file of
the same schema and shape (default 1.1 GB) into a temporary folder, converts it with
:func:`genemi.data.hnc.convert_hnc` in a child process, and records that child's peak RSS
(``getrusage(RUSAGE_CHILDREN).ru_maxrss``, which only counts waited-for children, so the generator
running here is not included) and throughput. The temporary folder is deleted afterwards.

    PYTHONPATH=. python benchmarks/hnc_stream_rss.py [--gb 1.1] [--out benchmarks/results/hnc_stream_rss.json]
"""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

TYPES = [
    "attribute",
    "object",
    "attribute_subg",
    "relation_subj",
    "relation_pred",
    "relation_obj",
    "relation_attr_subj",
    "relation_attr_pred",
    "relation_attr_obj",
    "obj_count",
    "obj_comp_count",
    "obj_verify_count",
    "obj_verify_count_attr",
    "and_logic_attr",
    "and_logic_rel",
    "xor_logic_attr",
    "xor_logic_rel",
]
WORDS = [
    "banana",
    "straw",
    "plate",
    "glass",
    "table",
    "man",
    "horse",
    "fence",
    "elephant",
    "yellow",
    "red",
    "wooden",
    "left of",
    "behind",
    "on top of",
    "cat",
    "dog",
    "shirt",
    "tree",
    "window",
]


def _image_entry(rng: random.Random, pairs: int, cap0: int) -> dict:
    """One image in the train schema: ``pairs`` positive/negative pairs with bboxes and ambiguity info."""
    caps = {}
    for j in range(pairs):
        t = rng.choice(TYPES)
        a, b, c = rng.sample(WORDS, 3)
        boxes = {
            str(rng.randrange(10**6)): {
                "bbox": {
                    "x": rng.randrange(500),
                    "y": rng.randrange(500),
                    "w": rng.randrange(1, 200),
                    "h": rng.randrange(1, 200),
                },
                "name": w,
            }
            for w in (a, c)
        }
        pid = cap0 + 2 * j
        caps[str(pid)] = {
            "caption": f"The {a} is to the {b} of the {c}.",
            "label": 1,
            "type": t,
            "textual_label": None,
            "bboxes": boxes,
            "ambiguity": {"subgraph": [a, b, c], "ambiguous": False, "count": 0},
            "noisy": False,
            "replaced": None,
            "cpt_p_id": None,
        }
        caps[str(pid + 1)] = {
            "caption": f"The {c} is to the {b} of the {a}.",
            "label": 0,
            "type": t,
            "textual_label": c,
            "bboxes": boxes,
            "ambiguity": {"subgraph": [c, b, a], "ambiguous": False, "count": 0},
            "noisy": None,
            "replaced": [a, c],
            "cpt_p_id": pid,
        }
    return {"captions": caps}


def generate(path: Path, target_bytes: int, pairs_per_image: int = 121, seed: int = 0) -> dict:
    """Write a train-schema HNC file of at least ``target_bytes``, one image at a time; return its counts."""
    rng = random.Random(seed)
    images = captions = 0
    with path.open("w", encoding="utf-8") as f:
        f.write("{")
        while f.tell() < target_bytes:
            entry = _image_entry(rng, pairs_per_image, captions)
            f.write(("," if images else "") + json.dumps(str(2_300_000 + images)) + ": " + json.dumps(entry))
            images += 1
            captions += 2 * pairs_per_image
        f.write("}")
    return {"images": images, "captions": captions}


CHILD = """
import json, sys, time
from genemi.data.hnc import convert_hnc
t = time.perf_counter()
stats = convert_hnc(sys.argv[1], sys.argv[2], "train")
print(json.dumps({"seconds": time.perf_counter() - t, "stats": stats.as_dict()}))
"""


@click.command()
@click.option("--gb", default=1.1, show_default=True, help="Size of the generated HNC file in GB (>= 1).")
@click.option(
    "--out",
    default="benchmarks/results/hnc_stream_rss.json",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Where to write the recorded figures (JSON).",
)
def main(gb: float, out: str) -> None:
    """Generate a >= 1 GB HNC train-schema file, convert it streamed, record peak RSS and throughput."""
    import ijson

    from genemi.io import write_json

    with tempfile.TemporaryDirectory(prefix="hnc_rss_") as tmp:
        src, dst = Path(tmp) / "hnc_train_generated.json", Path(tmp) / "train.jsonl"
        t = time.perf_counter()
        counts = generate(src, int(gb * 1e9))
        gen_s = time.perf_counter() - t
        size = src.stat().st_size
        click.echo(f"generated {size / 1e9:.2f} GB ({counts['images']} images) in {gen_s:.0f} s", err=True)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(src), str(dst)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        child = json.loads(proc.stdout)
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB
        manifest_bytes = dst.stat().st_size
    result = {
        "input_bytes": size,
        "input_gb": round(size / 1e9, 3),
        "images": counts["images"],
        "captions": counts["captions"],
        "records_written": child["stats"]["records"],
        "negatives_written": child["stats"]["negatives"],
        "manifest_bytes": manifest_bytes,
        "convert_seconds": round(child["seconds"], 1),
        "throughput_mb_per_s": round(size / 1e6 / child["seconds"], 1),
        "records_per_s": round(child["stats"]["records"] / child["seconds"]),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "limit_rss_mb": 2048,
        "extrapolated_8_15gb_minutes": round(child["seconds"] * 8.15e9 / size / 60, 1),
        "ijson": f"{ijson.__version__} ({ijson.backend})",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    write_json(out, result)
    click.echo(json.dumps(result, indent=2))
    if result["peak_rss_mb"] > result["limit_rss_mb"]:
        raise SystemExit(f"peak RSS {result['peak_rss_mb']} MB exceeds the {result['limit_rss_mb']} MB limit")


if __name__ == "__main__":
    main()
