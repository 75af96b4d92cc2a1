"""Help texts that name a registry's entries, read when the help is printed.

The registries (datasets, models) import torch, and building the parser must not
(``rankrobust --help`` answers in a blink). So a flag's help is a :class:`RegistryHelp`: a
text with ``{names}`` and the registry's ``module:ATTRIBUTE``; the parser's formatter fills
in ``a | b | c`` from the registry only when it prints the help. Whatever is registered then,
a built-in or an entry from a module imported in-process, is listed.
"""

from __future__ import annotations

import argparse
import importlib


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
