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
from typing import Any

from rankrobust.cli.common import (
    add_model_source_args,
    check_choice,
    emit_frame,
    float_list,
    load_model_for_cli,
    load_test_split,
)
from rankrobust.errors import ConfigError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate", help="fooling-ratio curve of a checkpoint under an attack",
        description="Attack the first N test inputs of a checkpoint's dataset at each ε and print "
        "the fooling ratio (share of changed labels), robust and clean accuracy. Sanity checks "
        "against gradient masking print 'warning: ...' lines on stderr.",
    )
    p.add_argument("checkpoint", help="model.safetensors, model.json or their folder")
    p.add_argument("--attack", default="pgd",
                   help="fgsm | pgd | apgd-ce | apgd-dlr | apgd-t | square | autoattack | deepfool "
                   "(default pgd); autoattack = APGD-CE → APGD-T → Square, each on the inputs "
                   "the earlier ones left, with a broken_by column")
    p.add_argument("--norm", default="inf", choices=["inf", "2"])
    p.add_argument("--eps", type=float_list, required=True, help="budgets, e.g. 0.05,0.1,0.2,0.3")
    p.add_argument("--dataset", default=None,
                   help="mnist5k | fashion-mnist | mnist | cifar10 | synthetic (default: the "
                   "dataset stored with the checkpoint)")
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
    add_model_source_args(p)
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


def run(args: argparse.Namespace) -> int:
    # heavy: imports torch
    from rankrobust.data import DATASETS
    from rankrobust.device import resolve_device
    from rankrobust.robustness import ATTACKS, robustness_curve, sanity_checks

    check_choice("--attack", args.attack, ATTACKS)
    if args.dataset is not None:
        check_choice("--dataset", args.dataset, DATASETS)
    if args.n < 1 or args.batch_size < 1:
        raise ConfigError("--n and --batch-size must be positive")
    if any(e < 0 for e in args.eps):
        raise ConfigError("--eps values must be non-negative")
    if args.summary and args.format == "csv":
        raise ConfigError("--summary needs --format table or json")
    options = attack_options(args)
    loaded = load_model_for_cli(args, resolve_device(args.device))
    x, y = load_test_split(args, loaded)
    result = robustness_curve(loaded.model, (x, y), args.attack, args.eps, norm=args.norm,
                              batch_size=args.batch_size, n=args.n, seed=args.seed, **options)
    curve = result.frame
    if args.summary:
        emit_summary(result, args.format)
    else:
        emit_frame(curve, args.format)
    if not args.no_sanity:
        for line in sanity_checks(loaded.model, (x, y), curve, batch_size=args.batch_size,
                                  n=args.n, seed=args.seed):
            print(f"warning: {line}", file=sys.stderr)
    return 0


def emit_summary(result: Any, fmt: str) -> None:
    """The curve and its summaries: two tables, or one JSON object with every input's ε_min."""
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
                          "eps_min": [plain(e) for e in result.eps_min]}, indent=2,
                         allow_nan=False))
        return
    emit_frame(frame, fmt)
    print()
    emit_frame(pd.DataFrame({"summary": list(summary), "value": list(summary.values())}), fmt)
