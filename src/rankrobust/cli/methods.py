"""``rankrobust methods``: every registered training method, its parameters and defaults."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from rankrobust.cli.common import emit_catalogue


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "methods", help="list the training methods and their parameters",
        description="List every registered training method: name, kind, a one-line description, "
        "and its parameters with their types and defaults (use them with `train --method NAME "
        "--set key=value` or in study YAML as `train: {method: {name: NAME, key: value}}`).",
    )
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(run=run)


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


def _lines(e: dict[str, Any]) -> list[str]:
    return [f"{e['name']}  [{e['kind']}]  {e['description']}"] + [
        f"    {p['name']} = {p['default']!r}  : {p['type']}"
        + ("  (swept)" if p["name"] in e["swept"] else "") for p in e["params"]]


def run(args: argparse.Namespace) -> int:
    return emit_catalogue(catalogue(), args.format, _lines)
