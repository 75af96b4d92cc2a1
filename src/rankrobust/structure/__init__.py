"""Structure analysis: effective rank, effective sparsity, norms and spectra of weight matrices.

Pure functions on one tensor live in :mod:`.metrics`; :func:`layer_matrices` reads a model's
Linear/Conv weights as matrices; :func:`analyze` gives one row per layer; :func:`spectra` the
singular values. This package knows nothing of training, data or experiments.
"""

from rankrobust.structure.analyze import (
    COLUMNS,
    DELTA_COLUMNS,
    analyze,
    analyze_delta,
    snapshot,
    spectra,
    structure_table,
)
from rankrobust.structure.matrices import CONV_MODES, layer_matrices, weight_modules
from rankrobust.structure.metrics import (
    effective_rank,
    effective_sparsity,
    frobenius_norm,
    hill_numbers,
    l1_norm,
    normalized_effective_rank,
    normalized_effective_sparsity,
    nuclear_norm,
    numerical_rank,
    singular_values,
    spectral_norm,
    stable_rank,
)
from rankrobust.structure.spectrum import METHODS, singular_values_many

__all__ = [
    "COLUMNS",
    "CONV_MODES",
    "DELTA_COLUMNS",
    "METHODS",
    "analyze",
    "analyze_delta",
    "effective_rank",
    "effective_sparsity",
    "frobenius_norm",
    "hill_numbers",
    "l1_norm",
    "layer_matrices",
    "normalized_effective_rank",
    "normalized_effective_sparsity",
    "nuclear_norm",
    "numerical_rank",
    "singular_values",
    "singular_values_many",
    "snapshot",
    "spectra",
    "spectral_norm",
    "stable_rank",
    "structure_table",
    "weight_modules",
]
