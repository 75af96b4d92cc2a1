"""``rankrobust attacks``: every registered evaluation attack, its norms, options and defaults."""

from __future__ import annotations

import argparse
from typing import Any

from rankrobust.cli.help import add_listing, print_listing


def register(subparsers: Any) -> None:
    add_listing(
        subparsers, "attacks", "list the evaluation attacks and their options",
        "List every registered evaluation attack: name, label, norms, strength (the "
        "report's primary attack is the strongest one stored), a one-line description and its "
        "options with their defaults (use them in study YAML as `evaluation: {attacks: "
        "[{attack: NAME, options: {key: value}}]}`, or `evaluate --attack NAME --steps ...`).",
        run,
    )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def catalogue() -> list[dict[str, Any]]:
    """One entry per attack: name, label, norms, strength, description, options {key: default}."""
    from rankrobust.attacks import ATTACKS  # heavy: imports torch

    return [{"name": a.name, "label": a.label, "norms": list(a.norms), "strength": a.strength,
             "description": a.description,
             "options": {k: _plain(v) for k, v in a.options.items()}} for a in ATTACKS.values()]


def _lines(e: dict[str, Any]) -> list[str]:
    strength = "" if e["strength"] is None else f", strength {e['strength']}"
    return ([f"{e['name']}  [{e['label']}; ℓ {' | '.join(e['norms'])}{strength}]  {e['description']}"]
            + [f"    {key} = {default!r}" for key, default in e["options"].items()])


def run(args: argparse.Namespace) -> int:
    return print_listing(catalogue(), args.format, _lines)
