"""``rankrobust models``: every registered model, its family and its options with defaults."""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "models", help="list the models and their options",
        description="List every registered model: name, family (FC or CNN), a one-line "
        "description and its options with their defaults (use them with `train --model NAME` "
        "or in study YAML as `model_options: {key: value}`). `*` marks each family's default.",
    )
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(run=run)


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


def run(args: argparse.Namespace) -> int:
    entries = catalogue()
    if args.format == "json":
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    for e in entries:
        print(f"{e['name']}{' *' if e['default'] else ''}  [{e['family']}]  {e['description']}")
        for o in e["options"]:
            print(f"    {o['name']} = {o['default']!r}")
    return 0
