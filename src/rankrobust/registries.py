"""What every registry of named things shares: finding its entries and looking one up.

A registry (datasets in :mod:`rankrobust.data`, models in :mod:`rankrobust.models`) is a dict
``name → entry`` filled by the modules that define the entries, each registering itself when it
is imported. :func:`import_submodules` imports every module of a package, so a new entry is one
new file and no list elsewhere names it; :func:`lookup` is the one did-you-mean error for an
unknown name.

Modules of your own: ``RANKROBUST_PLUGINS=mod_a,mod_b`` (importable names) makes the registries
import them as they load (:func:`import_plugins`), in every process: the command line, and the
worker processes of a sweep, which start fresh and inherit the environment.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Iterable, Mapping
from typing import TypeVar

from rankrobust.configuration import brief, closest
from rankrobust.errors import ConfigError, RankRobustError

T = TypeVar("T")


def import_submodules(package: str, path: Iterable[str]) -> None:
    """Import every module of ``package`` (its ``__path__``), in name order: importing a module
    registers what it defines. Subpackages and private modules (``_name``) are skipped."""
    for found in sorted(pkgutil.iter_modules(list(path)), key=lambda m: m.name):
        if not found.ispkg and not found.name.startswith("_"):
            importlib.import_module(f"{package}.{found.name}")


PLUGINS_VARIABLE = "RANKROBUST_PLUGINS"


def import_plugins() -> None:
    """Import the modules named in ``$RANKROBUST_PLUGINS`` (comma-separated); ConfigError, one
    line, for a module that cannot be imported."""
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_VARIABLE, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"{PLUGINS_VARIABLE}: cannot import {name!r} ({exc})") from None


def lookup(
    table: Mapping[str, T], name: object, what: str, error: type[RankRobustError] = ConfigError
) -> T:
    """``table[name]``; else ``error``: ``unknown WHAT 'nmae' (did you mean 'name'?); choose from
    a, b, c``, one line."""
    if isinstance(name, str) and name in table:
        return table[name]
    names = list(table)
    raise error(f"unknown {what} {brief(name)}{closest(str(name), names)}; choose from {', '.join(names)}")


def check_new(table: Mapping[str, object], name: str, entry: object, what: str) -> None:
    """ValueError (a programming error, raised at import) if ``name`` is not a usable registry
    name or is registered already by another entry."""
    if not isinstance(name, str) or not name or name != name.strip() or "," in name:
        raise ValueError(f"a {what} name must be a non-empty string without commas or padding, "
                         f"got {name!r}")
    if name in table and table[name] != entry:
        raise ValueError(f"{what} {name!r} is already registered")
