"""Equivalence margins of the claims, declared in the study file before the run.

A study may declare, at its top level::

    margins:
      robustness: {scale: binomial-se, factor: 2}     # C2–C6 rows (robust-accuracy area)
      structure: {scale: natural-share, factor: 0.02} # C1 rows (normalized erank, esparsity)

Each margin m is ``factor`` times a stated scale, evaluated per claims row:

- ``binomial-se``: the binomial standard error of the test points at the reference arm's
  value p (natural's, or the second arm of the comparison), m = factor · √(p(1 − p)/n), n the
  number of test points the metric was measured on (accuracies and areas only);
- ``natural-share``: a share of the reference arm's value, m = factor · |p|.

A row whose whole 95 % CI contains 0 and lies inside ±m is *negligible*; a CI that excludes 0
is never negligible (see :mod:`rankrobust.report.stats`). The sweep writes the declaration
into the database's ``meta`` table at its start (key :data:`META_KEY`), so the report prints
the margins a study committed to before any result existed; a later session of the same study
may not change them. A study that declares none is scored with :data:`DEFAULT_MARGINS`, and the
report says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from rankrobust.configuration import brief, closest, require
from rankrobust.errors import ConfigError

META_KEY = "study/margins"
SCALES = ("binomial-se", "natural-share")
FAMILIES = ("robustness", "structure")


@dataclass(frozen=True)
class Margin:
    """m = ``factor`` × the ``scale`` (see the module docstring)."""

    scale: str
    factor: float

    def value(self, reference: float, n_points: float | None = None) -> float:
        """The margin for a row whose reference arm has value ``reference`` (NaN: unknown)."""
        if not math.isfinite(reference):
            return math.nan
        if self.scale == "natural-share":
            return self.factor * abs(reference)
        if n_points is None or not n_points >= 1:
            return math.nan
        p = min(max(reference, 0.0), 1.0)
        return self.factor * math.sqrt(p * (1.0 - p) / n_points)

    def text(self) -> str:
        if self.scale == "natural-share":
            return f"±{100 * self.factor:g} % of the reference arm's value"
        return f"±{self.factor:g} × the binomial SE √(p(1−p)/n) of the test points at the reference arm's p"


@dataclass(frozen=True)
class Margins:
    """The margins of both metric families; ``source`` is "declared" or "default"."""

    robustness: Margin
    structure: Margin
    source: str = "default"

    def to_json(self) -> str:
        return json.dumps({f: asdict(getattr(self, f)) for f in FAMILIES}, sort_keys=True)


DEFAULT_MARGINS = Margins(Margin("binomial-se", 2.0), Margin("natural-share", 0.02), "default")


def _margin(data: Any, where: str, family: str) -> Margin:
    require(isinstance(data, dict), f"{where}: expected a mapping with scale and factor, got {brief(data)}")
    for key in data:
        require(key in ("scale", "factor"),
                f"unknown key '{where}.{key}'{closest(str(key), ['scale', 'factor'])}")
    scale = data.get("scale")
    require(scale in SCALES, f"{where}.scale: one of {', '.join(SCALES)}, got {brief(scale)}")
    require(family != "structure" or scale == "natural-share",
            f"{where}.scale: structure measures have no test points; use natural-share")
    factor = data.get("factor")
    require(isinstance(factor, (int, float)) and not isinstance(factor, bool)
            and math.isfinite(float(factor)) and float(factor) > 0,
            f"{where}.factor: a finite number > 0, got {brief(factor)}")
    return Margin(str(scale), float(factor))


def parse_margins(data: Any, where: str = "margins") -> Margins:
    """Validated margins of a study file's ``margins:`` mapping (missing families: defaults)."""
    if data is None:
        return DEFAULT_MARGINS
    require(isinstance(data, dict), f"{where}: expected a mapping of robustness/structure, got {brief(data)}")
    for key in data:
        if key not in FAMILIES:
            raise ConfigError(f"unknown key '{where}.{key}'{closest(str(key), list(FAMILIES))}")
    parts = {f: _margin(data[f], f"{where}.{f}", f) if f in data else getattr(DEFAULT_MARGINS, f)
             for f in FAMILIES}
    return Margins(parts["robustness"], parts["structure"], "declared")


def margins_from_json(text: str | None) -> Margins:
    """Margins stored by a sweep (:data:`META_KEY`); the defaults when none were declared."""
    if text is None:
        return DEFAULT_MARGINS
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        raise ConfigError(f"meta {META_KEY}: not JSON") from None
    return parse_margins(data.get("margins") if isinstance(data, dict) and "margins" in data else data)
