"""Help texts that name a registry's entries, read when the help is printed; the commands
that list a registry (``rankrobust methods``, ``models``, ``datasets``).

The registries (datasets, models) import torch, and building the parser must not
(``rankrobust --help`` answers in a blink). So a flag's help is a :class:`RegistryHelp`: a
text with ``{names}`` and the registry's ``module:ATTRIBUTE``; the parser's formatter fills
in ``a | b | c`` from the registry only when it prints the help. Whatever is registered then,
a built-in or an entry from a module imported in-process, is listed.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable, Iterable
from typing import Any


class RegistryHelp(str):
    """A help text whose ``{names}`` becomes the names of the registry ``module:ATTRIBUTE``."""

    registry: str

    def __new__(cls, text: str, registry: str) -> RegistryHelp:
        help_text = super().__new__(cls, text)
        help_text.registry = registry
        return help_text

    def expand(self) -> str:
        """The text with ``{names}`` filled in from the registry, as it stands now."""
        module, _, attribute = self.registry.partition(":")
        names = " | ".join(getattr(importlib.import_module(module), attribute))
        return str(self).replace("{names}", names.replace("%", "%%"))  # argparse %-formats help


def registry_help(registry: str, text: str = "{names}") -> str:
    """The help ``text`` naming every entry of ``registry`` (``module:ATTRIBUTE``, e.g.
    ``rankrobust.data:DATASETS``) when the help is printed."""
    return RegistryHelp(text, registry)


DATASET_NAMES = "rankrobust.data:DATASETS"
MODEL_NAMES = "rankrobust.models:MODELS"


class RegistryHelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, filling in :class:`RegistryHelp` texts as it prints them."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        return text.expand() if isinstance(text, RegistryHelp) else text


def add_listing(subparsers: Any, name: str, help_text: str, description: str,
                run: Callable[[argparse.Namespace], int]) -> None:
    """Register ``rankrobust NAME [--format table|json]``: a command that lists a registry."""
    p = subparsers.add_parser(name, help=help_text, description=description)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(run=run)


def print_listing(entries: list[dict[str, Any]], fmt: str,
                  lines: Callable[[dict[str, Any]], Iterable[str]]) -> int:
    """Print a registry's ``entries``: as JSON, or each entry's ``lines`` (the table form)."""
    if fmt == "json":
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    for entry in entries:
        for line in lines(entry):
            print(line)
    return 0
