"""``rankrobust intervene``: truncate or prune a trained model's weights and measure what it loses."""

from __future__ import annotations

import argparse
from typing import Any

from rankrobust.cli import attacking
from rankrobust.cli.common import emit_frame, float_list
from rankrobust.errors import ConfigError
from rankrobust.work_args import add_max_hours_argument, check_levels


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "intervene", help="truncate SVDs or prune weights after training; accuracy and robustness",
        description="Without retraining, truncate every layer's SVD (--svd-keep: a share of each "
        "layer's rank, or with --energy of its squared Frobenius norm) or magnitude-prune its "
        "weights (--prune-keep: a share of each layer's weights, or with --global of all "
        "weights), for all layers at once or one at a time (--per-layer), and print one row per "
        "(layer, keep) with clean and robust accuracy under --attack at --eps, fooling ratio, "
        "DeepFool's rho_adv and effective rank and sparsity (means over layers; with --per-layer, "
        "those of the row's layer). keep=1 is the unmodified model. --format json adds the "
        "attack's settings to every row.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="model.safetensors, model.json or their folder (with --model-factory: the "
                   "weights file)")
    p.add_argument("--svd-keep", type=float_list, default=None, metavar="SHARES",
                   help="shares in (0, 1] of each layer's rank to keep, e.g. 0.05,0.1,0.25,0.5,1")
    p.add_argument("--prune-keep", type=float_list, default=None, metavar="SHARES",
                   help="shares in (0, 1] of the weights to keep (largest magnitudes)")
    p.add_argument("--energy", action="store_true",
                   help="with --svd-keep: keep the fewest singular values holding that share of Σσ²")
    p.add_argument("--global", dest="global_scope", action="store_true",
                   help="with --prune-keep: one magnitude threshold over all layers together")
    p.add_argument("--per-layer", action="store_true",
                   help="intervene on one layer at a time (one row per layer and keep)")
    p.add_argument("--eps", type=float, required=True, help="attack budget, e.g. 0.1")
    attacking.add_attack_arguments(p, n=500, queries=False)
    p.add_argument("--seed", type=int, default=0, help="attack seed, shared by every row (default 0)")
    p.add_argument("--no-deepfool", action="store_true", help="skip rho_adv (DeepFool), the slowest column")
    add_max_hours_argument(p)
    p.set_defaults(run=run)


def intervention_kind(args: argparse.Namespace) -> tuple[str, list[float]]:
    """(registered intervention name, keep shares) from --svd-keep/--prune-keep and modifiers."""
    if (args.svd_keep is None) == (args.prune_keep is None):
        raise ConfigError("pass exactly one of --svd-keep and --prune-keep")
    if args.svd_keep is not None:
        if args.global_scope:
            raise ConfigError("--global applies to --prune-keep, not --svd-keep")
        kind, keeps = ("svd-energy" if args.energy else "svd"), list(args.svd_keep)
        flag = "--svd-keep"
    else:
        if args.energy:
            raise ConfigError("--energy applies to --svd-keep, not --prune-keep")
        kind, keeps = ("prune-global" if args.global_scope else "prune"), list(args.prune_keep)
        flag = "--prune-keep"
    if args.per_layer and args.global_scope:
        raise ConfigError("--per-layer and --global exclude each other (one layer has no global threshold)")
    bad = [k for k in keeps if not 0.0 < k <= 1.0]
    if bad:
        raise ConfigError(f"{flag}: every share must be in (0, 1], got {bad[0]:g}")
    return kind, keeps


def check_intervention_work(args: argparse.Namespace, loaded: Any, x: Any, y: Any,
                            keeps: list[float], options: dict[str, Any]) -> None:
    """Refuse (ConfigError, one line) a table estimated beyond ``--max-hours`` (rankrobust.work)."""
    from rankrobust.regularizers import select_weights
    from rankrobust.work import check_work, intervention_passes, model_work

    classes = loaded.num_classes or int(y.max()) + 1
    layers = len(select_weights(loaded.model, "all")) if args.per_layer else 1
    n = min(args.n, len(x))
    per = intervention_passes(len(keeps), layers, args.attack, classes, options, not args.no_deepfool)
    what = f"{len(keeps) * layers} intervention rows on {n} inputs"
    check_work(model_work(loaded.model, tuple(x.shape[1:]), n * per, what), args.max_hours)


def run(args: argparse.Namespace) -> int:
    # heavy: imports torch
    from rankrobust.interventions import intervention_table

    kind, keeps = intervention_kind(args)
    attacking.check_attack_args(args)
    if not args.eps >= 0:
        raise ConfigError(f"--eps must be non-negative, got {args.eps}")
    check_levels(keeps, "--svd-keep" if args.svd_keep is not None else "--prune-keep")
    options = attacking.attack_options(args)
    loaded, x, y = attacking.load_attack_inputs(args)
    check_intervention_work(args, loaded, x, y, keeps, options)
    frame = intervention_table(
        loaded.model, (x, y), kind, keeps, attack=args.attack, eps=args.eps, norm=args.norm,
        n=args.n, batch_size=args.batch_size, per_layer=args.per_layer, seed=args.seed,
        deepfool=not args.no_deepfool, progress=False if args.no_progress else None, **options)
    if args.no_deepfool:
        frame = frame.drop(columns="rho_adv")
    if loaded.network is not loaded.model:  # behind a ModelAdapter: name layers as analyze does
        frame["layer"] = frame["layer"].str.replace(r"^net\.", "", regex=True)
    settings = {**attacking.attack_settings(args.attack, args.norm, args.seed, options, loaded.num_classes),
                **(loaded.adaptation or {})}
    emit_frame(frame, args.format, extra={"settings": settings})
    return 0
