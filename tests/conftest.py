"""Shared fixtures: tiny models and data, single-threaded torch for stable CPU timing."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
# One thread: on a loaded 2-core machine, spin-waiting torch threads slow tiny tests 10-50x.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def synthetic_data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    from rankrobust.data import load_dataset

    return load_dataset("synthetic", "train"), load_dataset("synthetic", "test")
