"""``rankrobust evaluate``: a fooling-ratio curve of a saved checkpoint, with sanity warnings.

``--attack autoattack`` prints robust accuracy (true labels) and the fooling ratio per ε, plus a
``broken_by`` column: how many inputs each member (clean, apgd-ce, apgd-t, square) broke;
``--grid`` runs it as the ε-grid AutoAttack (largest budget first, Square there only; ``--bisect``
refines each input's minimal budget). ``--summary`` adds the curve's summaries (area, ε₅₀,
ε_min quantiles: :mod:`rankrobust.robustness.summaries`) and, with ``--format json``, each
input's ε_min: the output is then one object {"curve": [...], "summary": {...}, "eps_min": [...]}."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from rankrobust.cli.common import (
    add_model_source_args,
    add_progress_argument,
    check_choice,
    emit_frame,
    float_list,
    load_model_for_cli,
    load_test_split,
    require_dataset,
)
from rankrobust.cli.help import DATASET_NAMES, registry_help
from rankrobust.configuration import check_seed
from rankrobust.errors import ConfigError
from rankrobust.work_args import add_max_hours_argument, check_levels


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate", help="fooling-ratio curve of a checkpoint under an attack",
        description="Attack the first N test inputs of a checkpoint's dataset at each ε and print "
        "the fooling ratio (share of changed labels), robust and clean accuracy. Sanity checks "
        "against gradient masking print 'warning: ...' lines on stderr; --format json adds to "
        "every row the attack's settings and those warnings.",
    )
    p.add_argument("checkpoint", help="model.safetensors, model.json or their folder")
    p.add_argument("--attack", default="pgd",
                   help="fgsm | pgd | apgd-ce | apgd-dlr | apgd-t | square | autoattack | deepfool "
                   "(default pgd); autoattack = APGD-CE → APGD-T → Square, each on the inputs "
                   "the earlier ones left, with a broken_by column")
    p.add_argument("--norm", default="inf", choices=["inf", "2"])
    p.add_argument("--eps", type=float_list, required=True, help="budgets, e.g. 0.05,0.1,0.2,0.3")
    p.add_argument("--dataset", default=None,
                   help=registry_help(DATASET_NAMES, "{names} (default: the dataset stored with "
                   "the checkpoint; with --model-factory, the one its inputs and class count come from)"))
    p.add_argument("--data-dir", default=None, help="folder with dataset files")
    p.add_argument("--n", type=int, default=1000, help="number of test inputs (default 1000)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=None, help="iterations of pgd/apgd (max_iter of deepfool)")
    p.add_argument("--restarts", type=int, default=None, help="random restarts of pgd/apgd")
    p.add_argument("--queries", type=int, default=None,
                   help="queries of square (default 5000; within autoattack 2500)")
    p.add_argument("--grid", action="store_true",
                   help="autoattack over the ε grid: largest budget first, APGD-CE → APGD-T at "
                   "every budget, Square at the largest only; a smaller budget attacks only the "
                   "inputs broken at the next larger one (≈ the cost of the largest budget)")
    p.add_argument("--bisect", type=int, default=None, metavar="T",
                   help="autoattack: refine each input's minimal budget by T bisection steps "
                   "between grid budgets (0..20)")
    p.add_argument("--summary", action="store_true",
                   help="also print the curve's summaries: area (mean robust accuracy over "
                   "[0, max ε], clean accuracy at ε 0), eps50 (where robust accuracy halves) and "
                   "quantiles of the inputs' minimal budgets; with --format json, also every "
                   "input's eps_min (null: never broken)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--format", default="table", choices=["table", "csv", "json"])
    p.add_argument("--no-sanity", action="store_true", help="skip the gradient-masking checks")
    add_progress_argument(p)
    add_model_source_args(p)
    add_max_hours_argument(p)
    p.set_defaults(run=run)


def attack_options(args: argparse.Namespace) -> dict[str, Any]:
    """Attack keyword options from --steps/--restarts/--queries (ConfigError where they do not
    apply)."""
    options: dict[str, Any] = {}
    if args.steps is not None:
        if args.attack in ("fgsm", "square"):
            raise ConfigError(f"--steps does not apply to --attack {args.attack}")
        options["max_iter" if args.attack == "deepfool" else "steps"] = args.steps
    if args.restarts is not None:
        if args.attack in ("fgsm", "deepfool", "square"):
            raise ConfigError(f"--restarts does not apply to --attack {args.attack}")
        options["restarts"] = args.restarts
    queries = getattr(args, "queries", None)  # `rankrobust intervene` reuses this without it
    if queries is not None:
        if args.attack not in ("square", "autoattack"):
            raise ConfigError(f"--queries does not apply to --attack {args.attack}")
        options["n_queries"] = queries
    for flag, key, value in (("--grid", "grid", getattr(args, "grid", False) or None),
                             ("--bisect", "bisect", getattr(args, "bisect", None))):
        if value is not None:
            if args.attack != "autoattack":
                raise ConfigError(f"{flag} applies to --attack autoattack only")
            options[key] = value
    return options


SETTINGS = ("steps", "step_size", "random_start", "restarts", "loss", "n_targets", "n_queries",
            "p_init", "max_iter", "overshoot", "members")
APGD_LOSSES = {"apgd-ce": "ce", "apgd-dlr": "dlr", "apgd-t": "dlr-targeted"}


def attack_settings(attack: str, norm: str, seed: int, options: dict[str, Any],
                    num_classes: int | None = None) -> dict[str, Any]:
    """The settings the attack runs with: the given ``options`` over the defaults of the attack
    function's own signature (one source of truth), plus norm and seed; targets as run, at most
    K − 1 for a model of ``num_classes`` = K; e.g. for pgd
    {"attack": "pgd", "norm": "inf", "seed": 0, "steps": 40, "step_size": "2.5*eps/steps",
    "random_start": true, "restarts": 1}."""
    import inspect

    from rankrobust import attacks

    functions: dict[str, Callable[..., Any]] = {"fgsm": attacks.fgsm, "pgd": attacks.pgd, "square": attacks.square,
                "autoattack": attacks.autoattack, "deepfool": attacks.deepfool}
    function = functions.get(attack, attacks.apgd)
    params = inspect.signature(function).parameters
    settings: dict[str, Any] = {"attack": attack, "norm": norm, "seed": seed}
    for key in SETTINGS:
        if key in params:
            value = options.get(key, params[key].default)
            settings[key] = list(value) if isinstance(value, tuple) else value
    if attack in APGD_LOSSES:
        settings["loss"] = APGD_LOSSES[attack]
        if attack != "apgd-t":
            settings.pop("n_targets")
    if "n_targets" in settings and num_classes is not None:
        settings["n_targets"] = min(settings["n_targets"], num_classes - 1)
    if attack == "pgd" and settings["step_size"] is None:
        settings["step_size"] = "2.5*eps/steps"
    if attack in APGD_LOSSES or attack == "autoattack":
        settings["step_size"] = "adaptive (2*eps at first)"
    return settings


def check_evaluation_work(args: argparse.Namespace, loaded: Any, x: Any, y: Any,
                          options: dict[str, Any]) -> None:
    """Refuse (ConfigError, one line) a curve estimated beyond ``--max-hours`` (rankrobust.work)."""
    from rankrobust.work import check_work, curve_passes, model_work

    classes = loaded.num_classes or int(y.max()) + 1
    per = curve_passes(args.attack, len(args.eps), classes, options, not args.no_sanity)
    what = f"{args.attack} at {len(args.eps)} budgets on {min(args.n, len(x))} inputs"
    check_work(model_work(loaded.model, tuple(x.shape[1:]), min(args.n, len(x)) * per, what),
               args.max_hours)


def run(args: argparse.Namespace) -> int:
    # heavy: imports torch
    from rankrobust.data import DATASETS
    from rankrobust.device import resolve_device
    from rankrobust.progress import Progress
    from rankrobust.robustness import ATTACKS, robustness_curve, sanity_checks

    check_choice("--attack", args.attack, ATTACKS)
    if args.dataset is not None:
        check_choice("--dataset", args.dataset, DATASETS)
    if args.n < 1 or args.batch_size < 1:
        raise ConfigError("--n and --batch-size must be positive")
    if any(e < 0 for e in args.eps):
        raise ConfigError("--eps values must be non-negative")
    check_seed(args.seed, "--seed")
    check_levels(args.eps, "--eps")
    if args.summary and args.format == "csv":
        raise ConfigError("--summary needs --format table or json")
    options = attack_options(args)
    require_dataset(args)
    loaded = load_model_for_cli(args, resolve_device(args.device))
    x, y = load_test_split(args, loaded)
    check_evaluation_work(args, loaded, x, y, options)
    with Progress(min(args.n, len(x)), f"evaluate {args.attack}", "inputs",
                  enabled=False if args.no_progress else None) as progress:
        result = robustness_curve(loaded.model, (x, y), args.attack, args.eps, norm=args.norm,
                                  batch_size=args.batch_size, n=args.n, seed=args.seed,
                                  progress=progress.update, **options)
    curve = result.frame
    warnings: list[str] = []
    if not args.no_sanity:  # further attacks: minutes on a large model
        with Progress(None, "evaluate: gradient-masking checks", enabled=False if args.no_progress else None):
            warnings = sanity_checks(loaded.model, (x, y), curve, batch_size=args.batch_size,
                                     n=args.n, seed=args.seed)
    settings = {**attack_settings(args.attack, args.norm, args.seed, options, loaded.num_classes),
                **(loaded.adaptation or {})}
    if args.summary:
        emit_summary(result, args.format, {"settings": settings, "warnings": warnings})
    else:
        emit_frame(curve, args.format, extra={"settings": settings, "warnings": warnings})
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    return 0


def emit_summary(result: Any, fmt: str, extra: dict[str, Any]) -> None:
    """The curve and its summaries: two tables, or one JSON object with every input's ε_min and
    ``extra`` (the attack settings and masking warnings)."""
    import json
    import math

    import pandas as pd

    from rankrobust.robustness.summaries import summarize

    frame = result.frame
    summary = summarize(frame["epsilon"].tolist(), frame["robust_accuracy"].tolist(),
                        float(frame["clean_accuracy"].iloc[0]), result.eps_min)
    if fmt == "json":
        def plain(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        records = json.loads(frame.to_json(orient="records"))
        print(json.dumps({"curve": records, "summary": {k: plain(v) for k, v in summary.items()},
                          "eps_min": [plain(e) for e in result.eps_min], **extra}, indent=2,
                         allow_nan=False))
        return
    emit_frame(frame, fmt)
    print()
    emit_frame(pd.DataFrame({"summary": list(summary), "value": list(summary.values())}), fmt)
