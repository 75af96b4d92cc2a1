"""Where an accuracy counts as chance, for C classes: one definition for training's collapse
detection (``training.selection``) and the report's run flags (``report.runs``).

A constant predictor scores 1/C on balanced classes. "At chance": accuracy ≤ ``AT_CHANCE``/C.
"Clearly above chance": accuracy ≥ ``ABOVE_CHANCE``/C.
"""

from __future__ import annotations

ABOVE_CHANCE = 2.0
AT_CHANCE = 1.25
