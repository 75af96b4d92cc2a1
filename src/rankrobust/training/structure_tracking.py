"""Record every layer's structure (effective rank, sparsity, norms) at init and after each epoch,
of the weights W and of their change since initialization W − W₀ (``delta_*`` columns)."""

from __future__ import annotations

from typing import Any

import torch

from rankrobust.attacks.base import eval_mode
from rankrobust.structure import analyze, analyze_delta, snapshot
from rankrobust.structure.matrices import ConvMode
from rankrobust.training.callbacks import Callback, TrainState

RECORD = "structure"


class StructureTracker(Callback):
    """Append :func:`rankrobust.structure.analyze` rows to ``state.records["structure"]``.

    One row per weight matrix and epoch, with the analyze() columns plus ``epoch`` (1-based; 0 =
    the weights at initialization, recorded in ``on_train_begin``) plus the same metrics of
    W − W₀ named ``delta_<metric>`` (:func:`~rankrobust.structure.analyze_delta`, W₀ = the
    weights at ``on_train_begin``; all 0 at epoch 0). Values are plain Python scalars, so the
    records serialize with the run's history. Reads weights only: no RNG use, no change of mode
    or parameters, so tracking never changes the trained numbers.
    """

    def __init__(self, conv: ConvMode | str = "reshape", order: float = 1.0, name: str = RECORD) -> None:
        self.conv = conv
        self.order = order
        self.name = name
        self.init: dict[str, torch.Tensor] = {}

    def _record(self, state: TrainState, epoch: int) -> None:
        with torch.no_grad(), eval_mode(state.model):  # eval: a parametrization (spectral
            frame = analyze(state.model, self.conv, order=self.order)  # norm) stays as it is
            delta = analyze_delta(state.model, self.init, self.conv, order=self.order)
        state.records.setdefault(self.name, []).extend(structure_rows(frame, delta, epoch))

    def on_train_begin(self, state: TrainState) -> None:
        self.init = snapshot(state.model, self.conv)
        self._record(state, 0)

    def on_epoch_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        self._record(state, state.epoch + 1)


def structure_rows(frame: Any, delta: Any, epoch: int) -> list[dict[str, Any]]:
    """Rows of ``analyze`` (``frame``) joined with ``analyze_delta`` (``delta``, same layers in
    the same order) as plain Python scalars, each with ``epoch``."""
    rows = []
    for row, more in zip(frame.to_dict(orient="records"), delta.to_dict(orient="records"),
                         strict=True):
        assert row["layer"] == more.pop("layer")
        values = {**row, **more}
        rows.append({"epoch": epoch,
                     **{str(k): (v.item() if hasattr(v, "item") else v) for k, v in values.items()}})
    return rows
