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

from rankrobust.cli import attacking
from rankrobust.cli.common import emit_frame, float_list
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
    p.add_argument("--eps", type=float_list, required=True, help="budgets, e.g. 0.05,0.1,0.2,0.3")
    attacking.add_attack_arguments(p, n=1000, queries=True)
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
    p.add_argument("--no-sanity", action="store_true", help="skip the gradient-masking checks")
    add_max_hours_argument(p)
    p.set_defaults(run=run)


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
    from rankrobust.progress import Progress
    from rankrobust.robustness import robustness_curve, sanity_checks

    attacking.check_attack_args(args)
    if any(e < 0 for e in args.eps):
        raise ConfigError("--eps values must be non-negative")
    check_levels(args.eps, "--eps")
    if args.summary and args.format == "csv":
        raise ConfigError("--summary needs --format table or json")
    options = attacking.attack_options(args)
    loaded, x, y = attacking.load_attack_inputs(args)
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
    settings = {**attacking.attack_settings(args.attack, args.norm, args.seed, options, loaded.num_classes),
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
