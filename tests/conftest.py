"""Shared fixtures: tiny models and data, single-threaded torch for stable CPU timing."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

os.environ.setdefault("MPLBACKEND", "Agg")
# One thread: on a loaded 2-core machine, spin-waiting torch threads slow tiny tests 10-50x.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def synthetic_data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    from rankrobust.data import load_dataset

    return load_dataset("synthetic", "train"), load_dataset("synthetic", "test")


# Hypothesis: a fixed, derandomized profile by default (CI sees the same examples every run) and
# a wide one on demand, with fresh random examples and ten times as many of them:
#     HYPOTHESIS_PROFILE=wide pytest tests/test_structure_metrics.py
# Tests size their example counts with examples(n), which the wide profile multiplies.
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
WIDE_FACTOR = 10
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("wide", derandomize=False, deadline=None, print_blob=True,
                          max_examples=100 * WIDE_FACTOR)
settings.load_profile(HYPOTHESIS_PROFILE)


def examples(n: int) -> int:
    """``n`` hypothesis examples under the ci profile, ``WIDE_FACTOR`` × n under the wide one."""
    return n * WIDE_FACTOR if HYPOTHESIS_PROFILE == "wide" else n
