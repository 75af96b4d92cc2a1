"""Record every layer's structure (effective rank, sparsity, norms) at init and after each epoch."""

from __future__ import annotations

from typing import Any

import torch

from rankrobust.attacks.base import eval_mode
from rankrobust.structure import analyze
from rankrobust.structure.matrices import ConvMode
from rankrobust.training.callbacks import Callback, TrainState

RECORD = "structure"


class StructureTracker(Callback):
    """Append :func:`rankrobust.structure.analyze` rows to ``state.records["structure"]``.

    One row per weight matrix and epoch, with the analyze() columns plus ``epoch`` (1-based; 0 =
    the weights at initialization, recorded in ``on_train_begin``). Values are plain Python
    scalars, so the records serialize with the run's history. Reads weights only: no RNG use, no
    change of mode or parameters, so tracking never changes the trained numbers.
    """

    def __init__(self, conv: ConvMode | str = "reshape", order: float = 1.0, name: str = RECORD) -> None:
        self.conv = conv
        self.order = order
        self.name = name

    def _record(self, state: TrainState, epoch: int) -> None:
        with torch.no_grad(), eval_mode(state.model):  # eval: a parametrization (spectral
            frame = analyze(state.model, self.conv, order=self.order)  # norm) stays as it is
        rows: list[dict[str, Any]] = [
            {"epoch": epoch, **{str(k): (v.item() if hasattr(v, "item") else v) for k, v in row.items()}}
            for row in frame.to_dict(orient="records")
        ]
        state.records.setdefault(self.name, []).extend(rows)

    def on_train_begin(self, state: TrainState) -> None:
        self._record(state, 0)

    def on_epoch_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        self._record(state, state.epoch + 1)
