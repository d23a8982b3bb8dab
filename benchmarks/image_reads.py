"""The image reader's hot path, so a change to it can be checked for a slowdown: one process, no DVC.

* ``read_bytes``: time per read of a member of a cached zip shard (the pipeline's own layout,
  ``<folder>.zip`` beside an absent folder): the stats, the member look-up and the read;
* ``open``: time to open an archive of ``--members`` members (a GQA-sized zip: 148k images) and build
  the member index, once per process and archive.

Each is compared with another implementation of :mod:`genemi.images` given as ``--baseline FILE``
(e.g. ``git show 0b73790:genemi/images.py > /tmp/old_images.py``), measured alternately in the same
process so that machine load hits both alike; the best of ``--rounds`` is reported.

    python benchmarks/image_reads.py --baseline /tmp/old_images.py --rounds 5

Writes ``benchmarks/results/image_reads.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", help="another genemi/images.py to compare with")
    ap.add_argument("--reads", type=int, default=20_000)
    ap.add_argument("--members", type=int, default=150_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/image_reads.json")
    args = ap.parse_args()
    impls = {"current": load(str(Path(__file__).parents[1] / "genemi" / "images.py"), "images_current")}
    if args.baseline:
        impls["baseline"] = load(args.baseline, "images_baseline")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        png = impls["current"].encode_png(Image.fromarray(np.full((48, 48, 3), 7, np.uint8)))
        with impls["current"].ShardWriter(tmp / "s") as shard:
            for i in range(args.reads):
                shard.write(tmp / "s" / f"{i}.png", png)
        with zipfile.ZipFile(tmp / "big.zip", "w") as z:
            for i in range(args.members):
                z.writestr(f"images/n{i:07d}.jpg", b"x")
        best = {name: {"read_bytes_us": float("inf"), "open_s": float("inf")} for name in impls}
        for r in range(args.rounds):
            for name, m in list(impls.items())[:: 1 if r % 2 == 0 else -1]:  # alternate who goes first
                m.read_bytes(tmp / "s" / "0.png")  # opened and cached
                t = time.perf_counter()
                for i in range(args.reads):
                    m.read_bytes(tmp / "s" / f"{i}.png")
                us = (time.perf_counter() - t) / args.reads * 1e6
                t = time.perf_counter()
                m._Archive(tmp / "big.zip")
                s = time.perf_counter() - t
                best[name] = {"read_bytes_us": min(best[name]["read_bytes_us"], us),
                              "open_s": min(best[name]["open_s"], s)}  # fmt: skip
    result = {"reads": args.reads, "members": args.members, "rounds": args.rounds, "best": best}
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    for name, b in best.items():
        print(
            f"{name:9s} read_bytes {b['read_bytes_us']:7.1f} us/read   "
            f"open {args.members} members {b['open_s']:.2f} s"
        )


if __name__ == "__main__":
    main()
