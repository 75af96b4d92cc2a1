"""Interventions after training, without retraining: truncate each layer's SVD or magnitude-prune
its weights, for all layers at once or one at a time, and measure what the model loses.

Every intervention is a pure function ``model → intervened copy`` (the input is never modified;
keep = 1 returns an exact copy). :func:`intervention_table` measures clean and robust accuracy,
ρ_adv and structure after each one. This package may use structure, attacks, robustness,
regularizers, models and checkpoint; never training, experiments, report or cli.
"""

from rankrobust.interventions.base import check_keep, check_keeps, share_count
from rankrobust.interventions.prune import SCOPES, magnitude_mask, prune_magnitude, prune_matrix
from rankrobust.interventions.registry import INTERVENTIONS, Intervention, get_intervention
from rankrobust.interventions.table import (
    COLUMNS,
    MEASURES,
    intervention_table,
    measure,
    structure_summary,
)
from rankrobust.interventions.truncate import MODES, energy_rank, truncate_matrix, truncate_svd

__all__ = [
    "COLUMNS",
    "INTERVENTIONS",
    "MEASURES",
    "MODES",
    "SCOPES",
    "Intervention",
    "check_keep",
    "check_keeps",
    "energy_rank",
    "get_intervention",
    "intervention_table",
    "magnitude_mask",
    "measure",
    "prune_magnitude",
    "prune_matrix",
    "share_count",
    "structure_summary",
    "truncate_matrix",
    "truncate_svd",
]
