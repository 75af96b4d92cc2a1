"""Model selection on the validation split, and collapse detection: what ends a run well.

**Epoch selection** (Rice, Wong & Kolter, "Overfitting in adversarially robust deep learning",
ICML 2020). With ``TrainConfig.select_epoch`` = ``"val_acc"`` or ``"val_robust_acc"`` the loop
measures that metric on the *validation* split after every epoch, keeps a copy of the weights of
the epoch where it was highest (the earliest on ties) and restores them at the end:

    e* = argmax_e m_val(θ_e),  the run's model is θ_{e*}.

``val_robust_acc`` is the accuracy under ℓ∞ PGD (``val_attack_steps`` steps, α = 2.5·ε/steps,
one random start from a fixed generator, so every epoch faces the same starts) at the method's
training ε, on the first ``val_attack_n`` validation points. Nothing here ever sees the test
split: :class:`EpochSelector` holds only validation tensors, and :func:`best_epoch` reads only
the selection key of each epoch's metrics.

**Collapse** (:func:`detect_collapse`, a pure function of the per-epoch metrics): a run
collapses when a validation accuracy (clean, or robust where measured) falls to chance,
≤ ``AT_CHANCE``/C for C classes, at some epoch after having been clearly above it,
≥ ``ABOVE_CHANCE``/C, at an earlier epoch: e.g. PGD training knocked out by a too-fast ε ramp
(clean accuracy → 1/C), or FGSM's catastrophic overfitting (robust accuracy → 0).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from rankrobust.attacks.pgd import pgd
from rankrobust.chance import ABOVE_CHANCE, AT_CHANCE
from rankrobust.training.evaluate import evaluate

COLLAPSE_KEYS = ("val_acc", "val_robust_acc")
VAL_ATTACK_SEED = 104729  # the validation attack's random starts: the same at every epoch

Data = tuple[torch.Tensor, torch.Tensor]


def best_epoch(history: Sequence[Mapping[str, Any]], key: str) -> int:
    """The 1-based epoch whose ``key`` is highest (the earliest on ties); reads only ``key``.

    ValueError when no epoch has it (the loop measures it whenever selection asks for it).
    """
    values = [(float(row[key]), i) for i, row in enumerate(history) if key in row]
    if not values:
        raise ValueError(f"no epoch has a {key!r} to select on")
    best = max(v for v, _ in values)
    return min(i for v, i in values if v == best) + 1


def detect_collapse(
    history: Sequence[Mapping[str, Any]], num_classes: int, keys: Sequence[str] = COLLAPSE_KEYS
) -> list[tuple[int, str, float, float]]:
    """Every collapse in ``history``: (1-based epoch, key, accuracy then, best accuracy before).

    A collapse of ``key`` at epoch e: acc_e ≤ AT_CHANCE/C after some earlier epoch with
    acc ≥ ABOVE_CHANCE/C; only the first epoch of each key's collapse is listed. Epochs
    without the key are skipped.
    """
    chance = 1.0 / num_classes
    found: list[tuple[int, str, float, float]] = []
    for key in keys:
        best = -1.0
        for i, row in enumerate(history):
            if key not in row:
                continue
            acc = float(row[key])
            if best >= ABOVE_CHANCE * chance and acc <= AT_CHANCE * chance:
                found.append((i + 1, key, acc, best))
                break
            best = max(best, acc)
    return sorted(found)


def collapse_warning(collapses: Sequence[tuple[int, str, float, float]], num_classes: int,
                     selected: int | None = None) -> str:
    """One line describing ``collapses`` (from :func:`detect_collapse`), for the run's warnings."""
    parts = [f"{key} fell to {acc:.1%} at epoch {epoch} (was {before:.1%}; chance "
             f"{1 / num_classes:.1%})" for epoch, key, acc, before in collapses]
    kept = f"; the selected epoch {selected} is kept" if selected is not None else ""
    return "training collapsed: " + "; ".join(parts) + kept


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
                    batch_size: int) -> float:
    """Accuracy of ``model`` under ℓ∞ PGD (``steps`` steps, one seeded random start) at ``eps``."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(VAL_ATTACK_SEED)
    correct = 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
        result = pgd(model, xb, yb, [eps], "inf", steps=steps, generator=gen, keep_adv=False)
        correct += int((~result.success[0]).sum())  # success: argmax model(x_adv) != y
    return correct / max(len(x), 1)


class EpochSelector:
    """Per-epoch validation metrics and the best epoch's weights; sees only the validation split.

    ``observe(model, epoch)`` returns ``val_loss``, ``val_acc`` and, when ``robust_eps`` is set,
    ``val_robust_acc`` of the model now; with a ``key`` it keeps a copy of the weights whenever
    that metric beats every earlier epoch. ``restore(model)`` loads the kept weights back and
    returns their 1-based epoch (None without a ``key``).
    """

    def __init__(self, val_data: Data, key: str | None = None, robust_eps: float | None = None,
                 attack_steps: int = 10, attack_n: int = 1000, batch_size: int = 1000) -> None:
        if key == "val_robust_acc" and robust_eps is None:
            raise ValueError("selecting on val_robust_acc needs a robust_eps")
        self.x, self.y = val_data
        self.key, self.robust_eps = key, robust_eps
        self.attack_steps, self.attack_n, self.batch_size = attack_steps, attack_n, batch_size
        self.rows: list[dict[str, float]] = []  # what this selector measured, one row per epoch
        self.best_epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def observe(self, model: nn.Module, epoch: int) -> dict[str, float]:
        """Validation metrics of ``model`` after ``epoch`` (1-based); keeps the best weights."""
        device = next(model.parameters()).device
        x, y = self.x.to(device), self.y.to(device)
        metrics: dict[str, float] = {}
        metrics["val_loss"], metrics["val_acc"] = evaluate(model, x, y, self.batch_size)
        if self.robust_eps is not None:
            n = min(self.attack_n, len(x))
            metrics["val_robust_acc"] = robust_accuracy(
                model, x[:n], y[:n], self.robust_eps, self.attack_steps, self.batch_size)
        self.rows.append(metrics)
        if self.key is not None and best_epoch(self.rows, self.key) == len(self.rows):
            self.best_epoch = epoch
            self.state = copy.deepcopy(model.state_dict())
        return metrics

    def restore(self, model: nn.Module) -> int | None:
        """Load the best epoch's weights into ``model``; that epoch (None when nothing was kept)."""
        if self.state is not None:
            model.load_state_dict(self.state)
        return self.best_epoch
