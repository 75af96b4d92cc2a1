"""Work estimates: how many forward+backward passes a command asks for, before it starts.

A shared command line or study file must not be able to hang a machine: ``train``,
``evaluate``, ``intervene``, ``sweep`` and ``reproduce`` estimate their work first and refuse,
in one line giving the estimate and the flag that raises the bound (``--max-hours``), what
would take longer than :data:`DEFAULT_MAX_HOURS`. The bound is read from the command line only.

Unit: one *pass* is one example's forward and backward pass through the model; a forward pass
alone (a Square query, an accuracy check) counts :data:`FORWARD` of one. Per example, an attack
at K budgets costs what its registry entry says (``Attack.passes``, options at the attack's
defaults when not given; the built-ins' table is in :mod:`rankrobust.attacks.builtin`).

Training: epochs · N_train · the method's :meth:`~rankrobust.methods.TrainingMethod.passes`
(1 natural, 2 FGSM-adv, steps + 1 PGD-adv, steps + 2 TRADES) plus a forward pass over the test
split each epoch. Interventions: levels (× layers with ``per_layer``) × the attack at one ε
(+ DeepFool). The estimates count every step the inputs ask for (no early stopping): a bound,
not a forecast.

Time: a pass of a model with F forward FLOPs per example (counted by PyTorch's
``FlopCounterMode``, on the meta device when the model is only a spec) is taken to cost
3·F / :data:`FLOP_RATE` + :data:`PASS_OVERHEAD` seconds. These are constants fitted to this
project's machines (2 CPU cores; one thread at batch 256 measured 45,000 passes/s on mlp/MNIST,
72,000 on mlp/synthetic, 3,500 on lenet5, 110 on cnn-small/CIFAR-10; the constants give
22,000, 47,000, 7,700 and 85: within 2x either way), not a measurement made by each command,
so that the same inputs get the same answer in any load. The bound is for work that cannot
finish (days, years), not a forecast; a faster machine (a GPU) raises it with ``--max-hours``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rankrobust.attacks.registry import ATTACKS, FORWARD
from rankrobust.errors import ConfigError
from rankrobust.work_args import DEFAULT_MAX_HOURS

FLOP_RATE = 2e10  # FLOP/s (one thread here: 9-37 GFLOP/s measured, see the module docstring)
PASS_OVERHEAD = 5e-6  # seconds per example pass beyond its FLOPs (≤ 200,000 passes/s)
SANITY_STEPS, SANITY_QUERIES = 20, 1000  # rankrobust.robustness.sanity_checks' defaults



@dataclass(frozen=True)
class Work:
    """``passes`` example passes (see the module docstring) of a model whose pass takes
    ``seconds_per_pass``; ``what`` names the work in the refusal message."""

    passes: float
    seconds_per_pass: float
    what: str = "this command"

    @property
    def hours(self) -> float:
        return self.passes * self.seconds_per_pass / 3600.0

    def __add__(self, other: Work) -> Work:
        """Both works; the time per pass is the passes-weighted mean."""
        passes = self.passes + other.passes
        if passes <= 0 or not math.isfinite(passes):
            return Work(passes, max(self.seconds_per_pass, other.seconds_per_pass), self.what)
        seconds = (self.passes * self.seconds_per_pass + other.passes * other.seconds_per_pass)
        return Work(passes, seconds / passes, self.what)


def check_work(work: Work, max_hours: float | None, flag: str = "--max-hours", workers: int = 1) -> None:
    """ConfigError in one line when ``work`` (shared by ``workers`` parallel workers) would take
    longer than ``max_hours`` (default :data:`DEFAULT_MAX_HOURS`), naming ``flag``."""
    limit = DEFAULT_MAX_HOURS if max_hours is None else max_hours
    if not (math.isfinite(limit) and limit > 0):
        raise ConfigError(f"{flag} must be a finite number of hours > 0, got {limit}")
    hours = work.hours / max(1, workers)
    if not hours <= limit:  # also NaN
        rate = 1.0 / work.seconds_per_pass
        raise ConfigError(
            f"{work.what} asks for ≈ {work.passes:.3g} forward+backward passes, ≈ {_duration(hours)} "
            f"at ≈ {rate:,.0f} passes/s{f' on {workers} workers' if workers > 1 else ''}, more "
            f"than the {limit:g} h bound; pass {flag} {_suggest(hours)} to allow it")


def _duration(hours: float) -> str:
    if not math.isfinite(hours):
        return "forever"
    if hours >= 24 * 365:
        return f"{hours / (24 * 365):.3g} years"
    return f"{hours:,.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"


def _suggest(hours: float) -> str:
    return f"{math.ceil(hours):d}" if math.isfinite(hours) and hours < 1e15 else "N"


# -- the model's cost per pass -------------------------------------------------------------------
def forward_flops(model: nn.Module, in_shape: Sequence[int]) -> float:
    """FLOPs of one example's forward pass through ``model`` (matrix products and convolutions,
    as PyTorch's FlopCounterMode counts them); on the model's device (meta: nothing computed)."""
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.zeros((1, *(int(v) for v in in_shape)), device=device, dtype=dtype)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops())


def seconds_per_pass(flops: float) -> float:
    """The assumed time of one example pass (forward + backward ≈ 3 forwards) of ``flops``."""
    return 3.0 * flops / FLOP_RATE + PASS_OVERHEAD


_META: dict[str, tuple[float, int]] = {}


def spec_cost(name: str, in_shape: Sequence[int], num_classes: int,
              options: Mapping[str, Any]) -> tuple[float, int]:
    """(:func:`seconds_per_pass`, number of Linear/Conv weights) of a rankrobust model spec,
    counted on the meta device (no memory, no compute; remembered per spec)."""
    from rankrobust.models.registry import meta_model
    from rankrobust.regularizers import select_weights

    key = repr((name, tuple(in_shape), num_classes, sorted(options.items(), key=str)))
    if key not in _META:
        model = meta_model(name, in_shape, num_classes, **dict(options))
        if len(_META) >= 256:
            _META.clear()
        _META[key] = (seconds_per_pass(forward_flops(model, in_shape)),
                      len(select_weights(model, "all")))
    return _META[key]


# -- passes per example --------------------------------------------------------------------------
def attack_passes(attack: str, budgets: int, num_classes: int, options: Mapping[str, Any]) -> float:
    """Passes per example of ``attack`` at ``budgets`` ε's: the registered attack's cost
    (``Attack.passes``, the built-ins' table in :mod:`rankrobust.attacks.builtin`) at its
    options; an attack without a registered cost counts one pass per budget."""
    entry = ATTACKS.get(attack)
    if entry is None:
        return float(budgets)
    return entry.passes(float(budgets), num_classes, entry.resolved(options))


def sanity_passes(budgets: int, num_classes: int, model_checks: bool = True) -> float:
    """Passes per example of :func:`rankrobust.robustness.sanity_checks` on a curve of
    ``budgets`` ε's: PGD/FGSM per ε, random noise per ε, the autoattack ensemble at
    SANITY_STEPS steps and SANITY_QUERIES queries per ε; with ``model_checks`` PGD at one ε and
    DeepFool."""
    opts = {"steps": SANITY_STEPS, "n_queries": SANITY_QUERIES}
    per = (attack_passes("pgd", budgets, num_classes, {"steps": SANITY_STEPS}) + budgets * FORWARD
           + attack_passes("autoattack", budgets, num_classes, opts))
    if model_checks:
        per += attack_passes("pgd", 1, num_classes, {"steps": SANITY_STEPS})
        per += attack_passes("deepfool", 1, num_classes, {}) + 1.0
    return per


def intervention_passes(levels: int, layers: int, attack: str, num_classes: int,
                        options: Mapping[str, Any], deepfool: bool) -> float:
    """Passes per example of an intervention table: ``levels`` keep shares (× ``layers`` when
    per layer), each row measured clean, under ``attack`` at one ε and, with ``deepfool``, by
    DeepFool's ρ_adv."""
    per_row = FORWARD + attack_passes(attack, 1, num_classes, options)
    if deepfool:
        per_row += attack_passes("deepfool", 1, num_classes, {})
    return float(levels) * max(1, layers) * per_row


def curve_passes(attack: str, budgets: int, num_classes: int, options: Mapping[str, Any],
                 sanity: bool) -> float:
    """Passes per example of one fooling-ratio curve: the attack at every budget, the clean
    predictions and, with ``sanity``, its sanity checks."""
    per = attack_passes(attack, budgets, num_classes, options) + FORWARD
    return per + (sanity_passes(budgets, num_classes) if sanity else 0.0)


def model_work(model: nn.Module, in_shape: Sequence[int], passes: float, what: str) -> Work:
    """``passes`` of the loaded ``model`` (its FLOPs counted on one zero input of ``in_shape``)."""
    return Work(passes, seconds_per_pass(forward_flops(model, in_shape)), what)


def training_passes(epochs: int, n_train: int, n_test: int, method_passes: float) -> float:
    """Passes of training: epochs · (N_train · the method's passes + N_test forward passes)."""
    return float(epochs) * (float(n_train) * method_passes + float(n_test) * FORWARD)
