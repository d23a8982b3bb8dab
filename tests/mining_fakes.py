"""Fake mining backends (plain pixel rules) and a tiny dataset, for the pipeline tests.

Run as a script it mines a dataset slowly, so a test can kill it part-way:
``python tests/mining_fakes.py <manifest> <image_root> <out_dir> <seconds per edit>``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # when run as a script
    sys.path.insert(0, str(ROOT))

import frozen_params  # noqa: E402  (tests/fixtures/params.yaml, not the live params.yaml)

from genemi.config import MineRealParams, _build  # noqa: E402
from genemi.manifest import Record, read_manifest, write_manifest  # noqa: E402
from genemi.mining.interfaces import Detection  # noqa: E402
from genemi.mining.parse import plain_nouns  # noqa: E402
from genemi.mining.pipeline import Chain, run_shard  # noqa: E402

CAPTIONS = [
    "a dog sits on a bench",
    "two cats near a car",
    "an empty plate",
    "a man holding an umbrella",
    "a bird on a boat",
    "a cup beside a laptop",
]


class FakeTagger:
    def tag(self, image, caption=None):
        return plain_nouns(caption or "")


class FakeGrounder:
    """One fixed box; "cup" is never found (exercises the no-box skip)."""

    def ground(self, image, phrase):
        return [] if phrase == "cup" else [Detection((8.0, 8.0, 24.0, 24.0), 0.9, phrase)]


class FakeSegmenter:
    def segment(self, image, box):
        m = np.zeros((image.height, image.width), bool)
        x0, y0, x1, y1 = (int(v) for v in box)
        m[y0:y1, x0:x1] = True
        return m


class FakeEditor:
    """Fills the mask with a colour drawn from ``seed``; optionally slow."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay

    def edit(self, image, mask, prompt, seed):
        time.sleep(self.delay)
        arr = np.array(image)
        arr[mask] = np.random.default_rng(seed).integers(0, 256, 3)
        return Image.fromarray(arr)


class FakeScorer:
    """Deterministic "match" logit: positive for even-length captions."""

    def score(self, image, caption):
        return 1.0 if len(caption) % 2 == 0 else -1.0


def fake_chain(delay: float = 0.0, **kw) -> Chain:
    return Chain(FakeTagger(), FakeGrounder(), FakeSegmenter(), FakeEditor(delay), FakeScorer(), **kw)


def params(**over) -> MineRealParams:
    """The ``mine_real`` section of the frozen test params with overrides (checked like the loader)."""
    raw = frozen_params.raw()["mine_real"]
    raw.update(over)
    return _build(MineRealParams, raw, "mine_real")


def make_dataset(root: Path, n: int = 6) -> list[Record]:
    """``n`` 32x32 noise images with captions from CAPTIONS; writes ``root/train.jsonl``."""
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        name = f"img_{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / name)
        recs.append(Record(id=f"img_{i:03d}", image=name, caption=CAPTIONS[i % len(CAPTIONS)], source="test"))
    write_manifest(root / "train.jsonl", recs)
    return recs


if __name__ == "__main__":
    manifest, image_root, out_dir, delay = sys.argv[1:5]
    run_shard(
        read_manifest(manifest),
        image_root,
        out_dir,
        fake_chain(float(delay)),
        params(variations_per_item=2),
        seed=0,
    )
