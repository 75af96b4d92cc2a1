"""The hypothesis profiles of tests/conftest.py: CI draws the same examples on every run, and
HYPOTHESIS_PROFILE=wide draws fresh ones, ten times as many."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import examples

ci_only = pytest.mark.skipif(os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci",
                             reason="checks the default (ci) profile")


def _draws() -> list[int]:
    seen: list[int] = []

    @settings(max_examples=examples(20))
    @given(st.integers())
    def probe(value: int) -> None:
        seen.append(value)

    probe()
    return seen


@ci_only
def test_the_ci_profile_draws_the_same_examples_every_run() -> None:
    assert settings().derandomize and examples(7) == 7
    first, second = _draws(), _draws()
    assert first == second and len(set(first)) > 5


def test_the_wide_profile_is_random_and_ten_times_larger() -> None:
    code = ("import conftest; from hypothesis import settings; "
            "print(settings().derandomize, conftest.examples(3), settings().max_examples)")
    tests = Path(__file__).parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=tests, env={**os.environ, "HYPOTHESIS_PROFILE": "wide",
                                         "PYTHONPATH": os.pathsep.join(
                                             [str(tests), os.environ.get("PYTHONPATH", "")])})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "30", "1000"]
