"""The interventions by name: each entry says what it does and whether it works layer by layer.

``INTERVENTIONS[name].apply(model, keep, layers)`` returns an intervened copy of ``model``;
``layers=None`` intervenes on every Linear/Conv layer, a list of paths on those only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from torch import nn

from rankrobust.configuration import closest
from rankrobust.errors import ConfigError
from rankrobust.interventions.prune import prune_magnitude
from rankrobust.interventions.truncate import truncate_svd

Apply = Callable[..., nn.Module]


@dataclass(frozen=True)
class Intervention:
    """One intervention: ``apply(model, keep, layers=...)`` → intervened copy."""

    name: str
    label: str
    apply: Apply
    per_layer: bool  # meaningful one layer at a time (a global rule is not)

    def __call__(self, model: nn.Module, keep: float, layers: Sequence[str] | None = None) -> nn.Module:
        return self.apply(model, keep, layers=layers)


INTERVENTIONS: dict[str, Intervention] = {
    i.name: i
    for i in (
        Intervention("svd", "SVD truncation to ⌈keep·min(m, n)⌉ singular values",
                     partial(truncate_svd, mode="rank"), per_layer=True),
        Intervention("svd-energy", "SVD truncation to a share keep of Σσ²",
                     partial(truncate_svd, mode="energy"), per_layer=True),
        Intervention("prune", "magnitude pruning to a share keep of each layer's weights",
                     partial(prune_magnitude, scope="layer"), per_layer=True),
        Intervention("prune-global", "magnitude pruning to a share keep of all weights (one threshold)",
                     partial(prune_magnitude, scope="global"), per_layer=False),
    )
}


def get_intervention(name: str) -> Intervention:
    """The registered intervention ``name``, else ConfigError with a did-you-mean."""
    if name not in INTERVENTIONS:
        raise ConfigError(f"unknown intervention {name!r}{closest(name, list(INTERVENTIONS))}; "
                          f"choose from {', '.join(INTERVENTIONS)}")
    return INTERVENTIONS[name]
