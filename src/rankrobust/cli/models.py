"""``rankrobust models``: every registered model, its family and its options with defaults."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Iterator
from typing import Any

from rankrobust.cli.help import add_listing, print_listing


def register(subparsers: Any) -> None:
    add_listing(
        subparsers, "models", "list the models and their options",
        "List every registered model: name, family (FC or CNN), a one-line description and its "
        "options with their defaults (use them with `train --model NAME` or in study YAML as "
        "`model_options: {key: value}`). `*` marks each family's default.", run,
    )


def catalogue() -> list[dict[str, Any]]:
    """One entry per model: name, family, description, default, options [{name, default}]."""
    from rankrobust.models import MODELS  # heavy: imports torch

    out = []
    for m in MODELS.values():
        params = inspect.signature(m.build).parameters
        options = [{"name": o, "default": None if params[o].default is inspect.Parameter.empty
                    else params[o].default} for o in m.options]
        out.append({"name": m.name, "family": m.family, "description": m.description,
                    "default": m.default, "options": options})
    return out


def _lines(e: dict[str, Any]) -> Iterator[str]:
    yield f"{e['name']}{' *' if e['default'] else ''}  [{e['family']}]  {e['description']}"
    for o in e["options"]:
        yield f"    {o['name']} = {o['default']!r}"


def run(args: argparse.Namespace) -> int:
    return print_listing(catalogue(), args.format, _lines)
