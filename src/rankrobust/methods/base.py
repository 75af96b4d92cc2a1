"""What a training method is: a frozen, validated parameter set plus the hooks that change training.

A method is a frozen dataclass subclassing :class:`TrainingMethod`. Its class attributes declare
who it is (``name``, ``label``, ``color``, ``kind``, ``description``, ``swept``); its fields are
its parameters, checked once in ``__post_init__``; and up to four hooks say how it changes one
training run (the loop in ``rankrobust.training.loop`` calls them, in this order)::

    parametrize(model)       # once, before the optimizer exists (e.g. W = U·V)
    objective(seed)          # (model, x, y, info) → (loss, logits): CE, adversarial, TRADES
    regularize(model)        # Penalty: loss_terms {name: term(info) → λ·R(W)} added to the loss,
                             #   prox_steps [prox(step, lr)] after each optimizer step,
                             #   final_steps [fn()] once after the last epoch

A method that ends up changing nothing is an error, never a natural run stored under another
label: parameters that would make it natural (a clean-loss weight of 1, β = 0) are refused when
the method is built, and :meth:`TrainingMethod.check_model` refuses a model on which its layer
selection selects nothing it acts on (the loop calls it before ``parametrize``; a study checks
it on the meta device before any run starts). :meth:`TrainingMethod.passes` is the method's
cost, in forward+backward passes per training example (``rankrobust.work``).

Each hook returns fresh closures: per-run state (a cached polar factor, an accumulated
threshold) lives in them, never in the frozen method. A loss term is a plain function; a term
that acts only through a prox step returns its value detached (logged, no gradient). The loop
logs each term's epoch mean as ``penalty_<name>`` and their sum as ``penalty``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.configuration import closest, from_dict, require
from rankrobust.errors import ConfigError
from rankrobust.regularizers import select_weights

Kind = Literal["natural", "adversarial", "regularized", "parametrized"]
KINDS: tuple[str, ...] = ("natural", "adversarial", "regularized", "parametrized")


class StepInfo(Protocol):
    """Where training stands when a hook runs (``rankrobust.training.TrainState`` is one)."""

    step: int  # optimizer steps taken so far

    @property
    def lr(self) -> float:
        """The learning rate of the step about to be taken."""
        ...

    @property
    def progress(self) -> float:
        """Training progress in (fractional) epochs."""
        ...


class Objective(Protocol):
    """(model, x (B, C, H, W), y (B,), info) → (loss to minimize, logits (B, classes))."""

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: StepInfo
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


LossTerm = Callable[[StepInfo], torch.Tensor]
ProxStep = Callable[[int, float], None]  # (steps taken, this one included; lr of the step)
FinalStep = Callable[[], None]


@dataclass
class Penalty:
    """What a structure-promoting method adds to one run (all closures over one run's state)."""

    loss_terms: dict[str, LossTerm] = field(default_factory=dict)
    prox_steps: list[ProxStep] = field(default_factory=list)
    final_steps: list[FinalStep] = field(default_factory=list)

    def __add__(self, other: Penalty) -> Penalty:
        """Both penalties, ``self``'s terms and steps first."""
        return Penalty({**self.loss_terms, **other.loss_terms}, [*self.prox_steps, *other.prox_steps],
                       [*self.final_steps, *other.final_steps])


def natural_objective(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: StepInfo
) -> tuple[torch.Tensor, torch.Tensor]:
    """Natural training: mean cross-entropy L(x, y) on the clean batch."""
    logits = model(x)
    return F.cross_entropy(logits, y), logits


def finite_nonneg(value: float, name: str) -> None:
    """ConfigError unless ``value`` is a finite number ≥ 0."""
    require(math.isfinite(value) and value >= 0, f"{name} must be a finite number ≥ 0, got {value}")


def positive(value: float, name: str) -> None:
    """ConfigError unless ``value`` is a finite number > 0."""
    require(math.isfinite(value) and value > 0, f"{name} must be a finite number > 0, got {value}")


@dataclass(frozen=True)
class TrainingMethod:
    """Base of every method: identity as class attributes, parameters as frozen fields."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    color: ClassVar[str] = "#777777"
    kind: ClassVar[Kind] = "natural"
    description: ClassVar[str] = ""
    # Parameters a study sweeps (its λ grid), in the order the λ rule ranks settings by
    # (last = least significant); shown as the columns of the report's λ table.
    swept: ClassVar[tuple[str, ...]] = ()
    # +1: larger swept values are the stronger setting (λ); -1: smaller ones are (a rank).
    stronger: ClassVar[int] = 1

    # -- hooks (defaults: no change to natural training) ----------------------------------
    def check_model(self, model: nn.Module) -> None:
        """ConfigError when this method would change nothing on ``model``. The default checks a
        ``layers`` parameter: its pattern must select at least one Linear or Conv weight."""
        layers = getattr(self, "layers", None)
        if isinstance(layers, str):
            try:
                select_weights(model, layers)
            except ConfigError as exc:
                raise ConfigError(f"method {self.name!r}: {exc}; it would change nothing") from None

    def passes(self) -> float:
        """Forward+backward passes per training example and step (1: one clean pass)."""
        return 1.0

    def parametrize(self, model: nn.Module) -> None:
        """Change the model's parametrization in place before the optimizer is built."""

    def objective(self, seed: int) -> Objective:
        """The per-batch objective; ``seed`` seeds any private random stream."""
        return natural_objective

    def regularize(self, model: nn.Module) -> Penalty:
        """Loss terms, prox steps and final steps for one run of ``model`` (fresh state)."""
        return Penalty()

    # -- parameters -----------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The parameter values as plain data (tuples as lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def swept_values(self) -> dict[str, Any]:
        """The values of the ``swept`` parameters."""
        return {k: getattr(self, k) for k in self.swept}

    def to_config(self) -> dict[str, Any]:
        """``{"name": ..., **params}``: the form stored in configs, checkpoints and run ids."""
        return {"name": self.name, **self.params()}

    @classmethod
    def from_config(cls, data: Any, where: str = "method") -> TrainingMethod:
        """Any registered method from its config form (see :func:`method_from_config`)."""
        return method_from_config(data, where)


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def check_budget(eps: float, warmup_epochs: int, steps: int = 1, step_size: float | None = None) -> None:
    """The rules of an ℓ∞ training budget (pixel units) and its attack, shared by adversarial methods."""
    require(0 < eps <= 1, f"eps must be in (0, 1] (pixel units), got {eps}")
    require(steps >= 1, f"steps must be ≥ 1, got {steps}")
    require(step_size is None or (math.isfinite(step_size) and step_size > 0),
            f"step_size must be > 0, got {step_size}")
    require(warmup_epochs >= 0, f"warmup_epochs must be ≥ 0, got {warmup_epochs}")


def warmup_eps(eps: float, warmup_epochs: int, progress: float) -> float:
    """ε·min(1, progress / warmup_epochs); ε itself when warmup_epochs = 0 (linear ε warm-up)."""
    if warmup_epochs <= 0:
        return eps
    return eps * min(1.0, progress / warmup_epochs)


# -- the registry ---------------------------------------------------------------------------
METHODS: dict[str, type[TrainingMethod]] = {}


def register(cls: type[TrainingMethod]) -> type[TrainingMethod]:
    """Class decorator: add a method to the registry under ``cls.name`` (names are unique)."""
    if not cls.name or not cls.label or cls.kind not in KINDS:
        raise ValueError(f"method {cls.__name__} needs a name, a label and a kind in {KINDS}")
    if METHODS.get(cls.name, cls) is not cls:
        raise ValueError(f"a method named {cls.name!r} is already registered")
    for key in cls.swept:
        if key not in {f.name for f in dataclasses.fields(cls)}:
            raise ValueError(f"method {cls.name!r}: swept parameter {key!r} is not a field")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[TrainingMethod]:
    """The registered method class called ``name`` (ConfigError with a suggestion otherwise)."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        names = list(METHODS)
        raise ConfigError(
            f"unknown method {name!r}{closest(str(name), names)}; choose from {', '.join(names)}"
        ) from None


def method_from_config(data: Any, where: str = "method") -> TrainingMethod:
    """A validated method from ``"name"`` or ``{"name": ..., param: value, ...}``.

    Parameters are type-checked and unknown ones refused, each error naming ``where.param``.
    """
    if isinstance(data, TrainingMethod):
        return data
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a method name or a mapping with 'name', got {data!r}")
    params = dict(data)
    name = params.pop("name", None)
    require(isinstance(name, str), f"{where}.name: expected a method name, got {name!r}")
    try:
        cls = get_method(str(name))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    try:
        return from_dict(cls, params, where)
    except ConfigError as exc:
        msg = str(exc)
        if msg.startswith("unknown key"):
            fields = ", ".join(f.name for f in dataclasses.fields(cls)) or "(none)"
            msg = f"{msg}; method {cls.name!r} takes: {fields}"
        elif msg.startswith(f"{where}: "):  # the method's own check (__post_init__)
            msg = f"{where} ({cls.name}): {msg.removeprefix(f'{where}: ')}"
        elif not msg.startswith((f"{where}.", f"{where}:")):
            msg = f"{where} ({cls.name}): {msg}"
        raise ConfigError(msg) from None
