"""Shared CLI pieces: a parser that fails in one line (exit 2), list parsing, name and folder
checks, output formats. Cheap to import: pandas is imported only when a table is printed."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rankrobust.configuration import closest
from rankrobust.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


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


def check_choice(flag: str, value: str, known: Iterable[str]) -> str:
    """``value`` if it is one of ``known``, else ConfigError with a did-you-mean.

    For names from registries that import torch: the parser takes any string (so that building
    it stays cheap) and ``run()`` checks it here, in argparse's words: ``--attack: invalid choice
    'pdg' (did you mean 'pgd'?); choose from fgsm, pgd, ...``.
    """
    options = list(known)
    if value not in options:
        raise ConfigError(f"{flag}: invalid choice {value!r}{closest(value, options)}; "
                          f"choose from {', '.join(options)}")
    return value


def output_dir(path: str | os.PathLike[str], flag: str) -> Path:
    """The folder ``path``, created with its parents; ConfigError naming ``flag`` and the path
    when it cannot be created or written (the file boundary of every command that writes)."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{flag} {folder}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {folder}: the folder is not writable")
    return folder


def emit_frame(frame: pd.DataFrame, fmt: str, stream: Any = None) -> None:
    """Print a DataFrame as an aligned table, CSV, or JSON records."""
    import pandas as pd  # heavy: imports pandas (~0.5 s), only when a table is printed

    out = stream or sys.stdout
    if fmt == "csv":
        frame.to_csv(out, index=False)
    elif fmt == "json":
        out.write(json.dumps(frame.to_dict(orient="records"), indent=2, default=str) + "\n")
    else:
        with pd.option_context("display.max_rows", None, "display.max_columns", None,
                               "display.width", 200, "display.float_format", "{:.4g}".format):
            out.write(frame.to_string(index=False) + "\n")
