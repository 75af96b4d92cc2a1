"""``rankrobust methods``: every registered training method, its parameters and defaults."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Iterator
from typing import Any

from rankrobust.cli.help import add_listing, print_listing


def register(subparsers: Any) -> None:
    add_listing(
        subparsers, "methods", "list the training methods and their parameters",
        "List every registered training method: name, kind, a one-line description, and its "
        "parameters with their types and defaults (use them with `train --method NAME --set "
        "key=value` or in study YAML as `train: {method: {name: NAME, key: value}}`).", run,
    )


def catalogue() -> list[dict[str, Any]]:
    """One entry per method: name, label, kind, description, swept, params [{name, type, default}]."""
    from rankrobust.methods import METHODS  # heavy: imports torch

    out = []
    for cls in METHODS.values():
        hints = typing.get_type_hints(cls)
        params = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else None
            tp = hints.get(f.name, f.type)
            tp_name = getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
            params.append({"name": f.name, "type": tp_name, "default": default})
        out.append({"name": cls.name, "label": cls.label, "kind": cls.kind,
                    "description": cls.description, "swept": list(cls.swept), "params": params})
    return out


def _lines(e: dict[str, Any]) -> Iterator[str]:
    yield f"{e['name']}  [{e['kind']}]  {e['description']}"
    for p in e["params"]:
        swept = "  (swept)" if p["name"] in e["swept"] else ""
        yield f"    {p['name']} = {p['default']!r}  : {p['type']}{swept}"


def run(args: argparse.Namespace) -> int:
    return print_listing(catalogue(), args.format, _lines)
