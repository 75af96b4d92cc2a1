"""The command-line flags of the work bounds (:mod:`rankrobust.work`), cheap to import (no torch):
``--max-hours`` and ``--max-runs`` are read from the command line only, never from a study."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rankrobust.errors import ConfigError

DEFAULT_MAX_HOURS = 24.0  # the work bound of rankrobust.work
DEFAULT_MAX_RUNS = 5_000  # the run cap of rankrobust.experiments.grid.run_cap
MAX_LEVELS = 1_000  # the most ε budgets of one curve, or keep shares of one intervention table


def check_levels(values: Sequence[float], where: str) -> None:
    """ConfigError when a list of budgets or keep shares is longer than :data:`MAX_LEVELS`."""
    if len(values) > MAX_LEVELS:
        raise ConfigError(f"{where}: {len(values):,} values, more than the {MAX_LEVELS:,} allowed")


def positive_hours(text: str) -> float:
    """'48' → 48.0: a finite number of hours > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of hours, got {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number of hours > 0, got {text!r}")
    return value


def positive_count(text: str) -> int:
    """'10000' → 10000: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 1, got {text!r}")
    return value


def add_max_hours_argument(parser: argparse.ArgumentParser) -> None:
    """``--max-hours H``: refuse work estimated to take longer (see README, Safety)."""
    parser.add_argument("--max-hours", type=positive_hours, default=None, metavar="H",
                        help=f"refuse work estimated (before it starts) to take longer than H "
                        f"hours at this machine's assumed pass rate (default {DEFAULT_MAX_HOURS:g})")


def add_max_runs_argument(parser: argparse.ArgumentParser) -> None:
    """``--max-runs N``: the most runs a study may expand to; a study file can only lower it."""
    parser.add_argument("--max-runs", type=positive_count, default=None, metavar="N",
                        help=f"refuse a study of more than N runs (default {DEFAULT_MAX_RUNS:,}; "
                        "a study's own max_runs can lower this cap, never raise it)")
