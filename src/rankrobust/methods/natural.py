"""``natural``: plain empirical risk minimization, mean cross-entropy on clean inputs."""

from __future__ import annotations

from dataclasses import dataclass

from rankrobust.methods.base import TrainingMethod, register


@register
@dataclass(frozen=True)
class Natural(TrainingMethod):
    """min_θ E[CE(f_θ(x), y)]: the baseline every claim compares against."""

    name = "natural"
    label = "natural"
    color = "#4d4d4d"
    kind = "natural"
    description = "natural training: cross-entropy on clean inputs"
