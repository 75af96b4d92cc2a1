"""What ``rankrobust evaluate`` and ``rankrobust intervene`` share: the attack and input flags,
their checks, the attack options the flags set, and the settings an attack runs with.

Every attack name, option and default comes from the attack registry
(:mod:`rankrobust.attacks.registry`). Help texts naming them are made when help is shown
(:class:`LazyHelp`), so that building the parser imports no attack code (torch).
"""

from __future__ import annotations

import argparse
from typing import Any

from rankrobust.cli.common import (
    add_model_source_args,
    add_progress_argument,
    check_choice,
    load_model_for_cli,
    load_test_split,
    require_dataset,
)
from rankrobust.cli.help import DATASET_NAMES, LazyHelp, registry_help
from rankrobust.configuration import check_seed
from rankrobust.errors import ConfigError

# flag → (argparse dest, the option keys it sets: the first one the attack takes, what it counts)
FLAGS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "--steps": ("steps", ("steps", "max_iter"), "iterations"),
    "--restarts": ("restarts", ("restarts",), "random restarts"),
    "--queries": ("queries", ("n_queries",), "queries"),
    "--grid": ("grid", ("grid",), ""),
    "--bisect": ("bisect", ("bisect",), ""),
}
# options that steer how an attack runs, not what it is: left out of the settings shown
MECHANICS = frozenset({"bounds", "batch_size", "early_stop", "warm_start", "grid", "bisect",
                       "plain_iter"})


def _takers(keys: tuple[str, ...]) -> list[tuple[str, str, Any]]:
    """(attack, option key, default) for every registered attack taking one of ``keys``."""
    from rankrobust.attacks import ATTACKS  # heavy: imports torch

    out = []
    for name, entry in ATTACKS.items():
        key = next((k for k in keys if k in entry.options), None)
        if key is not None:
            out.append((name, key, entry.options[key]))
    return out


def _attack_help() -> str:
    from rankrobust.attacks import ATTACKS

    return ("a registered attack (default pgd; `rankrobust attacks` lists their options): "
            + " | ".join(ATTACKS) + ". "
            + "; ".join(f"{name} = {a.description}" for name, a in ATTACKS.items() if a.description))


def _flag_help(flag: str) -> str:
    _, keys, what = FLAGS[flag]
    return f"{what} of " + ", ".join(
        f"{name} (default {default}{'' if key == keys[0] else f', its {key}'})"
        for name, key, default in _takers(keys))


def add_attack_arguments(p: argparse.ArgumentParser, *, n: int, queries: bool) -> None:
    """--attack, --norm, --dataset, --data-dir, --n (default ``n``), --batch-size, --steps,
    --restarts, --queries (when ``queries``), --device, --format and the model-source,
    progress flags."""
    p.add_argument("--attack", default="pgd", help=LazyHelp(_attack_help))
    p.add_argument("--norm", default="inf", choices=["inf", "2"])
    p.add_argument("--dataset", default=None,
                   help=registry_help(DATASET_NAMES, "{names} (default: the dataset stored "
                   "with the checkpoint; with --model-factory, the one its inputs and class count "
                   "come from)"))
    p.add_argument("--data-dir", default=None, help="folder with dataset files")
    p.add_argument("--n", type=int, default=n, help=f"number of test inputs (default {n})")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=None, help=LazyHelp(lambda: _flag_help("--steps")))
    p.add_argument("--restarts", type=int, default=None,
                   help=LazyHelp(lambda: _flag_help("--restarts")))
    if queries:
        p.add_argument("--queries", type=int, default=None,
                       help=LazyHelp(lambda: _flag_help("--queries")))
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--format", default="table", choices=["table", "csv", "json"])
    add_progress_argument(p)
    add_model_source_args(p)


def check_attack_args(args: argparse.Namespace) -> None:
    """The flags every attacking command checks before it loads anything (ConfigError)."""
    from rankrobust.attacks import ATTACKS, get_attack
    from rankrobust.data import DATASETS

    check_choice("--attack", args.attack, ATTACKS)
    get_attack(args.attack).check_norm(args.norm, "--norm")
    if args.dataset is not None:
        check_choice("--dataset", args.dataset, DATASETS)
    if args.n < 1 or args.batch_size < 1:
        raise ConfigError("--n and --batch-size must be positive")
    check_seed(args.seed, "--seed")


def load_attack_inputs(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(loaded model, x, y): the checkpoint on ``--device`` and its test split."""
    from rankrobust.device import resolve_device

    require_dataset(args)
    loaded = load_model_for_cli(args, resolve_device(args.device))
    x, y = load_test_split(args, loaded)
    return loaded, x, y


def attack_options(args: argparse.Namespace) -> dict[str, Any]:
    """Attack keyword options from --steps/--restarts/--queries/--grid/--bisect: each sets the
    first of its option keys the attack takes (ConfigError where the attack takes none)."""
    from rankrobust.attacks import get_attack

    entry = get_attack(args.attack, "--attack")
    options: dict[str, Any] = {}
    for flag, (dest, keys, _) in FLAGS.items():
        value = getattr(args, dest, None)  # `intervene` has no --queries, --grid, --bisect
        if value is None or value is False:
            continue
        key = next((k for k in keys if k in entry.options), None)
        if key is None:
            takers = " | ".join(name for name, _, _ in _takers(keys))
            raise ConfigError(f"{flag} applies to --attack {takers} only, not {args.attack}")
        options[key] = value
    return options


def attack_settings(attack: str, norm: str, seed: int, options: dict[str, Any],
                    num_classes: int | None = None) -> dict[str, Any]:
    """The settings the attack runs with: the given ``options`` over the attack's registered
    defaults (less :data:`MECHANICS`), its fixed settings (``Attack.settings``: APGD's loss, a
    step size rule shown where the option is unset), plus norm and seed; targets as run, at most
    K − 1 for a model of ``num_classes`` = K; e.g. for pgd {"attack": "pgd", "norm": "inf",
    "seed": 0, "steps": 40, "step_size": "2.5*eps/steps", "random_start": true, "restarts": 1}."""
    from rankrobust.attacks import get_attack

    entry = get_attack(attack)
    settings: dict[str, Any] = {"attack": attack, "norm": norm, "seed": seed}
    for key, value in entry.resolved(options).items():
        if key not in MECHANICS:
            settings[key] = list(value) if isinstance(value, tuple) else value
    for key, value in entry.settings.items():
        if settings.get(key) is None:
            settings[key] = value
    if "n_targets" in settings and num_classes is not None:
        settings["n_targets"] = min(settings["n_targets"], num_classes - 1)
    return settings
