"""One seeding scheme for every random draw in genemi.

A draw is named by the run's ``seed`` and a tuple of ``keys`` saying what is drawn and for which item,
e.g. ``(seed, "negatives", step, micro_batch)`` or ``(seed, split_code, scene_index)``. Keys are
integers or strings; a string counts as the CRC-32 of its UTF-8 bytes (stable across processes and
machines, unlike ``hash()``). The integers ``[seed, *keys]`` seed a NumPy ``SeedSequence``, which
mixes them into independent streams: neighbouring keys give unrelated draws, and a draw never depends
on how many other draws came before it, on the number of ranks or on the number of worker processes.

* :func:`rng`: a NumPy generator (``numpy.random.default_rng([seed, *keys])``);
* :func:`torch_generator`: a CPU ``torch.Generator`` seeded with 63 bits of the same sequence;
* :func:`fraction`: one uniform number in [0, 1), for hash-like subset membership.
"""

from __future__ import annotations

import zlib

import numpy as np


def _ints(seed: int, keys: tuple) -> list[int]:
    out = [int(seed)]
    for k in keys:
        if isinstance(k, str):
            out.append(zlib.crc32(k.encode("utf-8")))
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0:
            out.append(int(k))
        else:
            raise TypeError(f"seed key {k!r}: use a non-negative integer or a string")
    return out


def rng(seed: int, *keys: int | str) -> np.random.Generator:
    """The NumPy generator of draw ``(seed, *keys)``."""
    return np.random.default_rng(_ints(seed, keys))


def torch_generator(seed: int, *keys: int | str):
    """A CPU ``torch.Generator`` for draw ``(seed, *keys)`` (63 bits of the same ``SeedSequence``)."""
    import torch

    state = np.random.SeedSequence(_ints(seed, keys)).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) >> 1)


def fraction(seed: int, *keys: int | str) -> float:
    """A uniform number in [0, 1) for draw ``(seed, *keys)``: keep an item when it is below a subset size."""
    return float(rng(seed, *keys).random())
