"""Help texts that name a registry's entries, read when the help is printed; the commands
that list a registry (``rankrobust methods``, ``models``, ``datasets``).

The registries (datasets, models) import torch, and building the parser must not
(``rankrobust --help`` answers in a blink). So a flag's help is a :class:`LazyHelp`, made only when
the help is printed: :func:`registry_help` fills ``{names}`` with ``a | b | c`` from the
registry ``module:ATTRIBUTE``. Whatever is registered then,
a built-in or an entry from a module imported in-process, is listed.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable, Iterable
from typing import Any


class LazyHelp(str):
    """A help text made by ``make()`` when the help is printed (argparse reads it only then)."""

    make: Callable[[], str]

    def __new__(cls, make: Callable[[], str]) -> LazyHelp:
        text = super().__new__(cls, "(registry)")
        text.make = make
        return text

    def strip(self, chars: str | None = None) -> str:
        return self.make().strip(chars)

    def __mod__(self, params: Any) -> str:  # a formatter other than ours %-formats the text
        return self.make().replace("%", "%%") % params


def _expand(registry: str, text: str) -> str:
    module, _, attribute = registry.partition(":")
    names = " | ".join(getattr(importlib.import_module(module), attribute))
    return text.replace("{names}", names.replace("%", "%%"))  # argparse %-formats help


def registry_help(registry: str, text: str = "{names}") -> str:
    """The help ``text`` naming every entry of ``registry`` (``module:ATTRIBUTE``, e.g.
    ``rankrobust.data:DATASETS``) in place of ``{names}``, when the help is printed."""
    return LazyHelp(lambda: _expand(registry, text))


DATASET_NAMES = "rankrobust.data:DATASETS"
MODEL_NAMES = "rankrobust.models:MODELS"


class RegistryHelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, making :class:`LazyHelp` texts as it prints them."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        return text.make() if isinstance(text, LazyHelp) else text


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
