"""Memory and speed of the training bank at HNC scale: 100 k, 1 M and 8 M records.

For each size, writes a generated manifest in the shape :mod:`genemi.data.hnc` writes (one record per
positive caption with one caption negative of an HNC type, ~120 records per image: 67 k images at 8 M)
into a temporary folder, streaming, then measures in fresh processes:

* **build**: :func:`genemi.bank_cache.cached_tables` with open_clip's ViT-B-32 tokenizer (the first run's
  cost; later runs map the cache): seconds (wall and CPU) and the builder's peak RSS. Every caption of
  the generated manifest is distinct (the build's worst case: each distinct caption is tokenised once);
* **2 ranks**: two processes each map the bank (:meth:`genemi.bank.PairBank.from_manifest`), build the
  sampler and assemble their micro-batches of a 2-rank run (:func:`genemi.train.micro_batches`, global batch
  256, one caption negative per record as extra inputs: the HNC recipes' batches) for ``--seconds``; then,
  while both are alive, ``/proc/<pid>/smaps_rollup`` of each: RSS of one rank, PSS of both together (pages
  shared through the page cache counted once), and each rank's anonymous (private) memory beyond what the
  same process held before it built the bank, per record;
* **first batch**: seconds from the start of the bank load (cache hit) to the first micro-batch;
* **steady**: micro-batches per second and records per second of one rank.

Images are left out of the batch timing (ids only; decoding is ``benchmarks/input_pipeline.py``'s
subject and does not depend on the number of records); ``--decode`` adds one figure with a few real JPEGs
reused by path through open_clip's 224 px preprocessing. Samplers: ``shuffle`` (``batching.mode: records``,
a uniform shuffle)
and, with ``--dedupe``, the HNC recipes' ``dedupe_images`` (one image at most once per batch). The
manifests and caches are deleted after each size. The machine's 1-minute load average is sampled around
each phase: other jobs slow the wall-clock figures, not the CPU-second ones.

    PYTHONPATH=. python benchmarks/train_bank_scale.py [--sizes 100000,1000000,8000000] [--seconds 20]
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
TYPES = [
    "attribute",
    "object",
    "relation_subj",
    "relation_pred",
    "relation_obj",
    "obj_count",
    "obj_comp_count",
    "and_logic_attr",
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
    "right of",
    "on top of",
    "behind",
    "small",
    "large",
    "white",
    "black",
    "tree",
    "car",
    "shirt",
    "woman",
    "dog",
    "cat",
    "window",
    "building",
    "sky",
    "grass",
    "water",
    "green",
]
PER_IMAGE = 120  # HNC train: ~242 caption entries per image, about half of them positives


def write_manifest(path: Path, n: int, seed: int = 0) -> int:
    """``n`` HNC-shaped records, streamed to ``path``; returns the bytes written."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            words = rng.choices(WORDS, k=6)
            caption = f"the {words[0]} is {words[1]} {words[2]} the {words[3]} {i % 97}"
            # its number is never the positive's: a negative identical to its positive is refused
            negative = f"the {words[4]} is {words[1]} {words[2]} the {words[5]} {97 + i % 89}"
            image = f"{i // PER_IMAGE}.jpg"
            f.write(
                json.dumps(
                    {
                        "caption": caption,
                        "group": image,
                        "id": f"hnc-train-{i // PER_IMAGE}-{i}",
                        "image": image,
                        "meta": {"type": rng.choice(TYPES)},
                        "negatives": [{"caption": negative, "type": rng.choice(TYPES)}],
                        "source": "hnc",
                        "split": "train",
                    },
                    sort_keys=True,
                )
                + "\n"
            )
        return f.tell()


def smaps(pid: int | str = "self") -> dict[str, int]:
    """``/proc/<pid>/smaps_rollup`` in bytes (Rss, Pss, Pss_Anon, Pss_File, Private_Clean, ...)."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        out[name] = int(value.split()[0]) * 1024
    return out


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class WordIds:
    """A stand-in for open_clip's tokenizer where its cost would dominate: the same ``[n, 77]`` rows (start,
    word ids below 49,406, end; uint16 in the bank), one dict lookup per word instead of BPE and ftfy."""

    context_length = 77

    def __init__(self):
        self.words: dict[str, int] = {}

    def __call__(self, texts):
        import torch

        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        rows = []
        for t in texts:
            ids = (
                [49406]
                + [self.words.setdefault(w, 3 + len(self.words) % 49000) for w in t.split()][:75]
                + [49407]
            )
            rows.append(ids + [0] * (self.context_length - len(ids)))
        out[:] = torch.tensor(rows)
        return out


def tokenizer(name: str = "open_clip"):
    """open_clip's ViT-B-32 tokenizer (``model.tokenizer: open_clip``; its BPE vocabulary ships with it),
    or ``words``: :class:`WordIds`."""
    if name == "words":
        return WordIds()
    import open_clip

    return open_clip.get_tokenizer("ViT-B-32")


def build(manifest: str, tok_name: str) -> None:
    """Child: build the cache; print seconds (wall and CPU) and peak RSS."""
    from genemi.bank_cache import cached_tables

    tok = tokenizer(tok_name)
    t0, c0 = time.perf_counter(), time.process_time()
    t = cached_tables(manifest, tok, progress=False)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        json.dumps(
            {
                "build_s": secs,
                "build_cpu_s": cpu,
                "build_peak_rss": peak_rss(),
                "captions": int(t.tokens.shape[0]),
                "images": len(t.paths),
                "token_bytes": int(t.tokens.nbytes),
            }
        )
    )


def rank(
    manifest: str, images: str, r: int, seconds: float, dedupe: bool, decode: bool, ready: str, tok_name: str
) -> None:
    """Child: map the bank, assemble rank ``r``'s micro-batches (2 ranks); report; wait to be measured."""
    from types import SimpleNamespace

    import torch

    from genemi.bank import ImageFiles, PairBank
    from genemi.config import BatchingParams
    from genemi.samplers import make_sampler
    from genemi.train import micro_batches

    torch.set_num_threads(1)
    tok = tokenizer(tok_name)
    before = smaps()
    t0 = time.perf_counter()
    bank = PairBank.from_manifest(manifest, images, tok, types=None, transform=lambda im: im, progress=False)
    if decode:  # a few real JPEGs reused by path, through open_clip's preprocessing
        import open_clip

        jpegs = sorted(Path(images).glob("*.jpg"))
        _, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32")

        class FewFiles(ImageFiles):
            def pixels(self, ids):
                from PIL import Image

                return torch.stack(
                    [preprocess(Image.open(jpegs[i % len(jpegs)]).convert("RGB")) for i in ids.tolist()]
                )
    else:

        class FewFiles(ImageFiles):
            def pixels(self, ids):  # ids only: the bank's work without decoding
                return torch.zeros(len(ids), 3, 1, 1)

    bank.images = FewFiles(Path(images), bank.images.paths, None)
    batching = BatchingParams(
        mode="records",
        variations_per_group=2,
        regular_per_group=8,
        regular_sources=(),
        score_eps=0.5,
        dedupe_images=dedupe,
        negative_rows=False,
    )
    batch = 256
    run = SimpleNamespace(
        bank=bank,
        sampler=make_sampler(batching, batch, 0, bank.pos_image, bank.keys),
        negatives=1,
        accum=1,
        seed=0,
        loss=SimpleNamespace(image_negatives=False),
        negative_rows=False,
        records_per_step=batch,
    )
    micro_batches(run, 0, r, 2)
    first = time.perf_counter() - t0
    steps, t1, c1 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t1 < seconds:
        steps += 1
        micro_batches(run, steps, r, 2)
    steady, cpu = steps / (time.perf_counter() - t1), (time.process_time() - c1) / steps
    after = smaps()
    print(
        json.dumps(
            {
                "rank": r,
                "first_batch_s": first,
                "batches_per_s": steady,
                "records_per_s": steady * batch / 2,
                "records_per_cpu_s": batch / 2 / cpu,
                "steps": steps,
                "before": before,
                "after": after,
            }
        ),
        flush=True,
    )
    Path(f"{ready}.{r}").touch()
    while not Path(f"{ready}.done").exists():
        time.sleep(0.05)


def measure(n: int, folder: Path, seconds: float, dedupe: bool, decode: bool, tok_name: str) -> dict:
    manifest = folder / "train.jsonl"
    t0 = time.perf_counter()
    size = write_manifest(manifest, n)
    out = {
        "records": n,
        "manifest_bytes": size,
        "generate_s": round(time.perf_counter() - t0, 1),
        "tokenizer": tok_name,
        "seconds": seconds,
    }
    load = [os.getloadavg()[0]]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    me = [sys.executable, __file__]
    b = json.loads(
        subprocess.run(
            [*me, "child-build", str(manifest), tok_name], env=env, check=True, capture_output=True, text=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    load.append(os.getloadavg()[0])
    out.update(
        build_s=round(b["build_s"], 1),
        build_cpu_s=round(b["build_cpu_s"], 1),
        build_peak_rss_mb=round(b["build_peak_rss"] / 2**20),
        captions=b["captions"],
        images=b["images"],
        token_array_mb=round(b["token_bytes"] / 2**20),
    )
    if decode:
        import numpy as np
        from PIL import Image

        g = np.random.default_rng(0)
        for i in range(8):
            Image.fromarray(g.integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(folder / f"real{i}.jpg")
    for mode in ["shuffle", "dedupe"] if dedupe else ["shuffle"]:
        ready = str(folder / f"ready-{mode}")
        procs = [
            subprocess.Popen(
                [
                    *me,
                    "child-rank",
                    str(manifest),
                    str(folder),
                    str(r),
                    str(seconds),
                    str(int(mode == "dedupe")),
                    str(int(decode)),
                    ready,
                    tok_name,
                ],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for r in range(2)
        ]
        while not all(Path(f"{ready}.{r}").exists() for r in range(2)):
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a rank exited early ({mode}, {n} records)")
            time.sleep(0.05)
        both = [smaps(p.pid) for p in procs]
        load.append(os.getloadavg()[0])
        Path(f"{ready}.done").touch()
        ranks = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        r0 = ranks[0]
        anon = [x["after"]["Pss_Anon"] - x["before"]["Pss_Anon"] for x in ranks]
        out.setdefault("samplers", {})[mode] = {
            "first_batch_s": round(max(x["first_batch_s"] for x in ranks), 2),
            "batches_per_s": round(min(x["batches_per_s"] for x in ranks), 1),
            "records_per_s_per_rank": round(min(x["records_per_s"] for x in ranks)),
            "records_per_cpu_s_per_rank": round(min(x["records_per_cpu_s"] for x in ranks)),
            "steps_timed": min(x["steps"] for x in ranks),
            "rss_one_rank_mb": round(both[0]["Rss"] / 2**20),
            "pss_two_ranks_mb": round(sum(s["Pss"] for s in both) / 2**20),
            "pss_file_two_ranks_mb": round(sum(s["Pss_File"] for s in both) / 2**20),
            "baseline_pss_one_rank_mb": round(r0["before"]["Pss"] / 2**20),
            "private_bytes_per_record": round(max(anon) / n, 1),
        }
    out["load_avg_1min"] = [round(x, 1) for x in load]  # at the start, after the build, after each sampler
    return out


def table(rows: list[dict]) -> str:
    lines = [
        "| records | manifest | tokenizer | build wall / CPU (s) | build peak RSS | token array | sampler | "
        "first batch (s) | batches/s (rank) | records/s (rank) | records per CPU-s (rank) | RSS 1 rank | "
        "PSS 2 ranks | private B/record | load avg |",
        "|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        for mode, m in r["samplers"].items():
            lines.append(
                f"| {r['records']:,} | {r['manifest_bytes'] / 2**30:.2f} GB | {r['tokenizer']} | "
                f"{r['build_s']} / {r['build_cpu_s']} | {r['build_peak_rss_mb']:,} MB | "
                f"{r['token_array_mb']:,} MB | {mode} | {m['first_batch_s']} | {m['batches_per_s']} | "
                f"{m['records_per_s_per_rank']:,} | {m['records_per_cpu_s_per_rank']:,} | "
                f"{m['rss_one_rank_mb']:,} MB | {m['pss_two_ranks_mb']:,} MB | "
                f"{m['private_bytes_per_record']} | "
                f"{min(r.get('load_avg_1min', [0])):g}-{max(r.get('load_avg_1min', [0])):g} |"
            )
    return "\n".join(lines)


@click.command(help=__doc__)
@click.option("--sizes", default="100000,1000000,8000000", show_default=True, help="Records per manifest.")
@click.option("--seconds", default=20.0, show_default=True, help="Steady-state timing per rank and mode.")
@click.option("--dedupe/--no-dedupe", default=True, show_default=True, help="Also time dedupe_images.")
@click.option(
    "--decode", is_flag=True, help="Decode a few real JPEGs per batch (open_clip 224 px) instead of ids only."
)
@click.option(
    "--stand-in-from",
    default=0,
    show_default=True,
    help="Sizes from this many records tokenise with WordIds instead of open_clip (0: none do).",
)
@click.option(
    "--merge", is_flag=True, help="Keep the sizes already in OUT.json that this run does not measure."
)
@click.option("--tmp", default=None, help="Folder for the generated manifests (deleted after each size).")
@click.option(
    "--out",
    default="benchmarks/results/train_bank_scale",
    show_default=True,
    help="Writes OUT.json and OUT.md.",
)
def main(sizes, seconds, dedupe, decode, stand_in_from, merge, tmp, out) -> None:
    wanted = [int(s) for s in sizes.split(",")]
    rows = []
    if merge and Path(f"{out}.json").exists():
        rows = [r for r in json.loads(Path(f"{out}.json").read_text())["sizes"] if r["records"] not in wanted]
    for n in wanted:
        folder = Path(tempfile.mkdtemp(prefix="bank_scale_", dir=tmp))
        try:
            rows.append(
                measure(
                    n, folder, seconds, dedupe, decode, "words" if 0 < stand_in_from <= n else "open_clip"
                )
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(json.dumps(rows[-1], indent=1), flush=True)
    rows.sort(key=lambda r: r["records"])
    result = {
        "command": "python benchmarks/train_bank_scale.py " + " ".join(sys.argv[1:]),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "batch": 256,
        "ranks": 2,
        "decode": decode,
        "sizes": rows,
    }
    Path(f"{out}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    timed = ", ".join(f"{r['records']:,}: {r.get('seconds', seconds):g} s" for r in rows)
    Path(f"{out}.md").write_text(
        "# Training bank at scale (`benchmarks/train_bank_scale.py`)\n\n"
        f"{os.cpu_count()} CPU(s) shared with other jobs (load avg: the machine's 1-minute load average "
        "sampled around each phase; the wall-clock figures are slowed by the other jobs, the CPU-second "
        "figures are not), global batch 256 over 2 ranks, one caption negative per record, every caption "
        "distinct, "
        f"{'images decoded' if decode else 'image ids only (no decoding)'}; steady batches timed per rank "
        f"for {timed}. "
        "Sampler `shuffle`: `batching.mode: records`, a uniform shuffle; `dedupe`: plus "
        "`batching.dedupe_images`. Tokenizer `open_clip`: ViT-B-32's; `words`: "
        "the stand-in `WordIds` (same uint16 rows as open_clip's).\n\n" + table(rows) + "\n"
    )
    print(table(rows))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child-build":
        build(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "child-rank":
        a = sys.argv[2:]
        rank(a[0], a[1], int(a[2]), float(a[3]), bool(int(a[4])), bool(int(a[5])), a[6], a[7])
    else:
        main()
