"""rankrobust: low-rank and sparse weight structure vs adversarial robustness.

Packages, bottom to top (imports flow one way):

- ``rankrobust.errors``, ``rankrobust.data``, ``rankrobust.models``: errors, datasets, networks;
- ``rankrobust.structure``, ``rankrobust.attacks``, ``rankrobust.regularizers``: pure measurements,
  attacks and penalties on tensors and modules (they know nothing of training or experiments);
- ``rankrobust.training``: the one place that composes models, data, penalties and attacks;
- ``rankrobust.checkpoint``: safe save/load of trained models;
- ``rankrobust.robustness``: fooling-ratio curves built from attacks;
- ``rankrobust.experiments``: grids, runs, the results database and executors;
- ``rankrobust.report``: reads results, writes figures and reports;
- ``rankrobust.cli``: the thin command-line layer.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
