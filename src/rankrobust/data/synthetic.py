"""A seeded, tiny, learnable dataset for tests and smoke runs (no files needed).

Each of ``num_classes`` classes has a smooth random prototype image; a sample is its prototype
plus Gaussian noise, clipped to [0, 1]. Train and test come from disjoint streams of one seed.
"""

from __future__ import annotations

import numpy as np

from rankrobust.data.registry import DataDir, DatasetInfo, register_dataset

SHAPE = (1, 16, 16)
NUM_CLASSES = 4
SIZES = {"train": 512, "test": 256}


def make_synthetic(split: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 x (N, 1, 16, 16) in [0, 1] and int64 y (N,); deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    c, h, w = SHAPE
    coarse = rng.uniform(0.0, 1.0, size=(NUM_CLASSES, c, h // 4, w // 4))
    protos = coarse.repeat(4, axis=2).repeat(4, axis=3)  # smooth 4x4-block prototypes
    stream = np.random.default_rng([seed, 0 if split == "train" else 1])
    n = SIZES[split]
    y = np.arange(n) % NUM_CLASSES
    y = y[stream.permutation(n)]
    x = protos[y] + stream.normal(0.0, 0.25, size=(n, c, h, w))
    return np.clip(x, 0.0, 1.0).astype(np.float32), y.astype(np.int64)


def load(split: str, data_dir: DataDir = None) -> tuple[np.ndarray, np.ndarray]:
    """The split of seed 0 (no files: ``data_dir`` is not read)."""
    return make_synthetic(split)


register_dataset(DatasetInfo(
    name="synthetic", in_shape=SHAPE, num_classes=NUM_CLASSES, mean=(0.5,), std=(0.3,),
    how_to_get="it is generated, no files needed", load=load,
    train_size=SIZES["train"], test_size=SIZES["test"],
))
