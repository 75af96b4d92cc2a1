"""``rankrobust train``: train one model with a registered method and save its checkpoint.

The method is ``--method NAME`` with ``--set key=value`` for its parameters (``rankrobust
methods`` lists them). The older flags stay as aliases: ``--regularizer l1`` is ``--method l1``,
``--adversarial pgd`` is ``--method pgd-adv``, and ``--lambda-l1 X`` is ``--set lambda_l1=X``.
Heavy modules (torch) are imported inside :func:`run`, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from rankrobust.cli.common import check_choice, int_list, key_values
from rankrobust.cli.help import DATASET_NAMES, MODEL_NAMES, registry_help
from rankrobust.errors import ConfigError
from rankrobust.work_args import add_max_hours_argument

# alias flag (argparse dest) → method parameter it sets
PARAM_ALIASES = {
    "lambda_l1": "lambda_l1", "lambda_nuclear": "lambda_nuclear", "nuclear_mode": "nuclear_mode",
    "l1_mode": "l1_mode", "nuclear_method": "nuclear_method", "svd_every": "svd_every",
    "eps": "eps", "adv_alpha": "alpha", "adv_steps": "steps", "adv_step_size": "step_size",
    "eps_warmup": "warmup_epochs",
}
ADVERSARIAL_ALIASES = {"fgsm": "fgsm-adv", "pgd": "pgd-adv"}
# settings with a flag of their own: ``--set`` of one of them (unless the method has a parameter
# of that name) is refused, never read as a second, conflicting value
FLAG_KEYS = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule",
             "seed", "device", "track_structure", "dataset", "data_dir", "model", "hidden",
             "widths", "method", "out")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="train a model and save a checkpoint",
        description="Train a model with a registered method (natural, adversarial, regularized, "
        "parametrized; see `rankrobust methods`) and save OUT/model.safetensors, OUT/model.json "
        "and OUT/history.json.",
    )
    p.add_argument("--dataset", default="mnist5k", help=registry_help(DATASET_NAMES, "{names} (default mnist5k; see `rankrobust datasets`)"))
    p.add_argument("--data-dir", default=None, help="folder with dataset files (mnist, cifar10, ...)")
    p.add_argument("--model", default="lenet5", help=registry_help(MODEL_NAMES, "{names} (default lenet5; see `rankrobust models`)"))
    p.add_argument("--hidden", type=int_list, default=None,
                   help="hidden sizes of a model with a 'hidden' option (mlp), e.g. 150,100")
    p.add_argument("--widths", type=int_list, default=None,
                   help="block widths of a model with a 'widths' option (cnn-small), e.g. 32,64,128")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="adam")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", choices=["constant", "cosine", "step"], default="cosine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--track-structure", action="store_true", help="record per-layer structure each epoch")
    m = p.add_argument_group("method (see `rankrobust methods`)")
    m.add_argument("--method", default=None, help="training method name (default natural)")
    m.add_argument("--set", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="a method parameter, e.g. --set lambda_l1=1e-3 (repeatable; YAML values)")
    a = p.add_argument_group("aliases of --method/--set (kept for older scripts)")
    a.add_argument("--regularizer", default=None, help="l1 | nuclear | l1+nuclear | product-l1 (= --method)")
    a.add_argument("--adversarial", default=None, help="fgsm | pgd (= --method fgsm-adv | pgd-adv)")
    a.add_argument("--lambda-l1", type=float, default=None, help="= --set lambda_l1=…")
    a.add_argument("--lambda-nuclear", type=float, default=None, help="= --set lambda_nuclear=…")
    a.add_argument("--nuclear-mode", default=None, help="subgradient | proximal")
    a.add_argument("--l1-mode", default=None, help="subgradient | proximal")
    a.add_argument("--nuclear-method", default=None, help="fast | exact")
    a.add_argument("--svd-every", type=int, default=None, help="steps between decompositions (0: auto)")
    a.add_argument("--eps", type=float, default=None, help="ℓ∞ training budget in pixel units")
    a.add_argument("--adv-alpha", type=float, default=None, help="FGSM clean-loss weight α")
    a.add_argument("--adv-steps", type=int, default=None, help="PGD steps")
    a.add_argument("--adv-step-size", type=float, default=None, help="PGD step size")
    a.add_argument("--eps-warmup", type=int, default=None, help="epochs of linear ε warm-up")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_max_hours_argument(p)
    p.set_defaults(run=run)


def parse_set(items: list[str]) -> dict[str, Any]:
    """['rank=8', 'layers=fc'] → {'rank': 8, 'layers': 'fc'}, typed by :func:`key_values`;
    ``name`` is refused (the method is chosen with --method)."""
    values = key_values(items, "--set")
    if "name" in values:
        raise ConfigError("--set name=…: the method is chosen with --method (or its aliases), "
                          "not --set")
    return values


def method_config(args: argparse.Namespace) -> dict[str, Any]:
    """The method as config data ``{"name": ..., **params}`` from --method/--set and the aliases."""
    names = [n for n in (
        args.method,
        args.regularizer if args.regularizer not in (None, "none") else None,
        ADVERSARIAL_ALIASES.get(args.adversarial, args.adversarial)
        if args.adversarial not in (None, "none") else None,
    ) if n is not None]
    if len(names) > 1:
        raise ConfigError("give one method: --method, --regularizer and --adversarial are alternatives")
    params = parse_set(args.params)
    for dest, key in PARAM_ALIASES.items():
        value = getattr(args, dest)
        if value is None:
            continue
        if key in params:
            raise ConfigError(f"--{dest.replace('_', '-')} and --set {key} both given")
        params[key] = value
    name = names[0] if names else "natural"
    from rankrobust.methods import get_method  # heavy: imports torch

    fields = {f.name for f in dataclasses.fields(get_method(name))}
    for key in params:
        if key in FLAG_KEYS and key not in fields:
            raise ConfigError(f"--set {key}=…: {key!r} is not a parameter of method {name!r}; "
                              f"use --{key.replace('_', '-')}")
    return {"name": name, **params}


def run(args: argparse.Namespace) -> int:
    # heavy: imports torch
    from rankrobust.data import DATASETS
    from rankrobust.methods import method_from_config
    from rankrobust.models import MODELS, model_options
    from rankrobust.training.config import TrainConfig
    from rankrobust.training.fit import fit, save_fit

    check_choice("--dataset", args.dataset, DATASETS)
    check_choice("--model", args.model, MODELS)
    options: dict[str, Any] = {}
    for key in ("hidden", "widths"):
        if getattr(args, key) is not None:
            if key not in model_options(args.model):
                raise ConfigError(f"--{key}: model {args.model!r} has no {key!r} option (options: "
                                  f"{', '.join(model_options(args.model))})")
            options[key] = getattr(args, key)
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule,
        seed=args.seed, device=args.device, track_structure=args.track_structure,
        progress=not args.no_progress and sys.stderr.isatty(),
        method=method_from_config(method_config(args), "method"),
    )
    from rankrobust.work import Work, check_work, spec_cost, training_passes

    info = DATASETS[args.dataset]
    seconds, _ = spec_cost(args.model, info.in_shape, info.num_classes, options)
    passes = training_passes(config.epochs, config.training_images(info.train_size), info.test_size,
                             config.method.passes())
    check_work(Work(passes, seconds, f"training {args.model} via {config.method.name}"), args.max_hours)
    fitted = fit(args.dataset, args.model, config, options, args.data_dir)
    path = save_fit(args.out, fitted)
    for row in fitted.result.history:
        print(f"epoch {row['epoch']:>3}  train_loss {row['train_loss']:.4f}  "
              f"train_acc {row['train_acc']:.4f}  test_loss {row['test_loss']:.4f}  "
              f"test_acc {row['test_acc']:.4f}  ({row['epoch_seconds']:.1f}s)")
    final = fitted.result.final
    print(f"{args.model} via {config.method.name} on {args.dataset}: test accuracy "
          f"{final['test_acc']:.4f} in {fitted.result.seconds:.1f}s; checkpoint {path}")
    return 0
