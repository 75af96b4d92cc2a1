"""The evaluation attacks by name: one :class:`Attack` entry says everything a command, a study,
the work estimate, the masking checks and the report need to know about an attack.

``ATTACKS[name]`` is the entry; :func:`get_attack` looks one up (ConfigError with a did-you-mean).
Registering a new attack is one decorator on its runner, in one file::

    @register_attack("random-sign", label="Random sign", norms=("inf",),
                     passes=lambda budgets, classes, options: budgets * options["tries"] * FORWARD)
    def random_sign(model, x, labels, epsilons, norm, generator, tries: int = 1) -> AttackResult:
        ...  # (K, B) success of x + ε·s, s a random sign pattern drawn from ``generator``

The runner attacks one batch ``x`` (B, ...) (on the model's device, model in eval mode) against
``labels`` (B,) at every ε of ``epsilons`` (K,) in the ℓ_``norm`` ball, drawing any randomness
from ``generator``, and returns an :class:`~rankrobust.attacks.base.AttackResult` whose
``success`` is (K, B) bool (an ensemble returns an ``EnsembleResult``: which member broke what).
Its keyword parameters after ``generator`` are its options; their defaults are the option
defaults (``options=`` overrides that, for a runner that forwards ``**options``). An option not
declared is refused with a did-you-mean, by a command, by a study file and by the library.

``passes(budgets K, classes C, options)`` is the work of one input in forward+backward passes
(:mod:`rankrobust.work`; ``options`` = the defaults updated by the given ones; a forward pass
alone is :data:`FORWARD`). ``strength`` ranks the attacks for "the strongest attack stored"
(higher is stronger; None: never chosen as the report's primary attack).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from rankrobust.configuration import closest
from rankrobust.errors import ConfigError

FORWARD = 1.0 / 3.0  # a forward pass alone, in passes (backward ≈ 2 forwards)
NORMS = ("inf", "2")
# Parameters every runner receives positionally, and curve-level ones that are never options.
RUNNER_ARGS = ("model", "x", "labels", "epsilons", "norm", "generator")
CURVE_KEYS = ("seed",)  # an attack spec's ``seed`` seeds the curve (robustness_curve), every attack

Runner = Callable[..., Any]  # (model, x, labels, epsilons, norm, generator, **options) → AttackResult
Passes = Callable[[float, int, Mapping[str, Any]], float]  # (budgets, classes, options) → passes


@dataclass(frozen=True)
class Attack:
    """One evaluation attack: identity, the batch runner, its options and what consumers need."""

    name: str
    label: str  # display name in tables and figure titles, e.g. "APGD-T"
    run: Runner
    passes: Passes
    options: Mapping[str, Any] = field(default_factory=dict)  # accepted options → defaults
    norms: tuple[str, ...] = NORMS
    strength: int | None = None  # "strongest attack" order (higher first); None: never primary
    random: bool = False  # draws from the generator (random starts, queries, a seed)
    nests: bool = False  # success at ε implies success at every larger budget of the same call
    ensemble: bool = False  # returns an EnsembleResult (which member broke each input)
    per_point: bool = False  # a run stores its per-input ε_min and summaries (needs ``nests``)
    iterative: bool = False  # multi-step gradient attack: check 1's reference against FGSM
    beats_single_step: bool = False  # check 1: its curve must fool at least as many as FGSM
    norm_labels: Mapping[str, str] = field(default_factory=dict)  # e.g. fgsm: {"2": "FGM"}
    settings: Mapping[str, Any] = field(default_factory=dict)  # shown settings that are not options
    description: str = ""

    def label_for(self, norm: str | None = None) -> str:
        """'PGD', or with a norm 'PGD ℓ∞', 'FGM ℓ2' (a label of its own for that norm)."""
        if norm is None:
            return self.label
        name = self.norm_labels.get(str(norm), self.label)
        return f"{name} ℓ{'∞' if str(norm) == 'inf' else norm}"

    def check_options(self, options: Mapping[str, Any], where: str = "", curve_keys: bool = False
                      ) -> None:
        """ConfigError (one line, with a did-you-mean) for an option key this attack does not
        take; ``curve_keys`` also accepts :data:`CURVE_KEYS` (a study's attack options)."""
        known = [*self.options, *(CURVE_KEYS if curve_keys else ())]
        for key in options:
            if key in known:
                continue
            at = f"{where}.{key}: " if where else f"option {key!r}: "
            others = [a.name for a in ATTACKS.values() if key in a.options]
            if others:
                raise ConfigError(f"{at}only {', '.join(others)} take{'s' if len(others) == 1 else ''} "
                                  f"it, not {self.name}")
            takes = ", ".join(known) or "no options"
            raise ConfigError(f"{at}unknown option {key!r} of attack {self.name!r}"
                              f"{closest(str(key), known)}; {self.name} takes: {takes}")

    def check_norm(self, norm: str, where: str = "norm") -> None:
        """ConfigError unless this attack supports the (canonical) ``norm``."""
        if norm not in self.norms:
            raise ConfigError(f"{where}: attack {self.name!r} supports norm "
                              f"{' | '.join(self.norms)}, not {norm!r}")

    def check_spec(self, norm: str, options: Mapping[str, Any], where: str) -> None:
        """A study's attack spec at ``where``: the norm supported, every option known."""
        at = f"{where}." if where else ""  # a config's own checks name paths relative to it
        self.check_norm(norm, f"{at}norm")
        self.check_options(options, f"{at}options", curve_keys=True)

    def resolved(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The option defaults updated by ``options``: what the attack runs with."""
        return {**self.options, **options}


ATTACKS: dict[str, Attack] = {}


def runner_options(run: Runner) -> dict[str, Any]:
    """The options of a runner: its parameters after :data:`RUNNER_ARGS`, with their defaults."""
    params = list(inspect.signature(run).parameters.values())
    names = [p.name for p in params[: len(RUNNER_ARGS)]]
    if names != list(RUNNER_ARGS):
        raise ValueError(f"an attack runner takes ({', '.join(RUNNER_ARGS)}, **options) first, "
                         f"got ({', '.join(names)})")
    rest = params[len(RUNNER_ARGS):]
    missing = [p.name for p in rest if p.kind is not p.VAR_KEYWORD and p.default is p.empty]
    if missing:
        raise ValueError(f"attack options need defaults: {', '.join(missing)}")
    return {p.name: p.default for p in rest if p.kind is not p.VAR_KEYWORD}


def register_attack(
    name: str, *, label: str, passes: Passes, options: Mapping[str, Any] | None = None, **info: Any
) -> Callable[[Runner], Runner]:
    """Decorator: register the runner under ``name`` (the other :class:`Attack` fields by
    keyword). Options are the runner's keyword parameters unless ``options`` is given. Names
    are unique; every entry needs a label, known norms and a cost."""

    def add(run: Runner) -> Runner:
        entry = Attack(name, label, run, passes,
                       MappingProxyType(dict(runner_options(run) if options is None else options)),
                       **info)
        if not name or not label or not callable(passes):
            raise ValueError(f"attack {name!r} needs a name, a label and a cost (passes)")
        if not entry.norms or any(n not in NORMS for n in entry.norms):
            raise ValueError(f"attack {name!r}: norms must be a non-empty subset of {NORMS}")
        if entry.per_point and not entry.nests:
            raise ValueError(f"attack {name!r}: per-point budgets need nested budgets")
        clash = set(entry.options) & set(CURVE_KEYS)
        if clash:
            raise ValueError(f"attack {name!r}: {sorted(clash)} is a curve setting, not an option")
        if name in ATTACKS and ATTACKS[name].run is not run:
            raise ValueError(f"an attack named {name!r} is already registered")
        ATTACKS[name] = entry
        return run

    return add


def get_attack(name: str, where: str = "") -> Attack:
    """The registered attack ``name``, else ConfigError with a did-you-mean."""
    try:
        return ATTACKS[name]
    except (KeyError, TypeError):
        names = list(ATTACKS)
        at = f"{where}: " if where else ""
        raise ConfigError(f"{at}unknown attack {name!r}{closest(str(name), names)}; "
                          f"choose from {', '.join(names)}") from None


def by_strength() -> list[str]:
    """The attacks with a strength, strongest first (ties: registration order)."""
    ranked = [a for a in ATTACKS.values() if a.strength is not None]
    return [a.name for a in sorted(ranked, key=lambda a: -(a.strength or 0))]


def attack_label(name: str, norm: str | None = None) -> str:
    """The registered label ('PGD ℓ∞'), or the name as stored for an attack not registered."""
    entry = ATTACKS.get(name)
    if entry is not None:
        return entry.label_for(norm)
    return str(name) if norm is None else f"{name} ℓ{'∞' if str(norm) == 'inf' else norm}"


def count(options: Mapping[str, Any], key: str) -> float:
    """``options[key]`` as a count for a cost formula; 1 when absent or not a count ≥ 0 (the
    attack refuses such a value itself)."""
    value = options.get(key, 1)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        return 1.0
    return float(value)


def check_attack_name(value: Any, where: str = "attack") -> str:
    """``value`` when it names a registered attack; ConfigError naming ``where`` otherwise."""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected an attack name, got {value!r}")
    get_attack(value, where)
    return value


if TYPE_CHECKING:
    AttackName = str
else:
    class AttackName(str):
        """A config field's attack name: checked against the registry when the config is parsed
        (:func:`rankrobust.configuration.from_dict` calls ``from_config``; the field then holds
        the plain ``str``)."""

        from_config = staticmethod(check_attack_name)
