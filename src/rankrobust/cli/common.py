"""Shared CLI pieces: a parser that fails in one line (exit 2), list parsing, output formats."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

import pandas as pd

from rankrobust.errors import ConfigError


class UsageError(ConfigError):
    """Bad command-line arguments."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def float_list(text: str) -> list[float]:
    """'0.1,0.2, 0.3' → [0.1, 0.2, 0.3]."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def int_list(text: str) -> list[int]:
    """'150,100' → [150, 100] (positive integers)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def emit_frame(frame: pd.DataFrame, fmt: str, stream: Any = None) -> None:
    """Print a DataFrame as an aligned table, CSV, or JSON records."""
    out = stream or sys.stdout
    if fmt == "csv":
        frame.to_csv(out, index=False)
    elif fmt == "json":
        out.write(json.dumps(frame.to_dict(orient="records"), indent=2, default=str) + "\n")
    else:
        with pd.option_context("display.max_rows", None, "display.max_columns", None,
                               "display.width", 200, "display.float_format", "{:.4g}".format):
            out.write(frame.to_string(index=False) + "\n")
