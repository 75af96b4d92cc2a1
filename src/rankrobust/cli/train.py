"""``rankrobust train``: train one model and save its checkpoint and history."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rankrobust.cli.common import int_list
from rankrobust.data import DATASETS
from rankrobust.errors import ConfigError
from rankrobust.models import MODELS
from rankrobust.training.config import AdversarialConfig, RegularizerConfig, TrainConfig
from rankrobust.training.fit import fit, save_fit


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="train a model and save a checkpoint",
        description="Train a model (natural, regularized or adversarial) and save "
        "OUT/model.safetensors, OUT/model.json and OUT/history.json.",
    )
    d = TrainConfig()
    p.add_argument("--dataset", default="mnist5k", choices=sorted(DATASETS))
    p.add_argument("--data-dir", default=None, help="folder with dataset files (mnist, cifar10, ...)")
    p.add_argument("--model", default="lenet5", choices=sorted(MODELS))
    p.add_argument("--hidden", type=int_list, default=None, help="mlp hidden sizes, e.g. 150,100")
    p.add_argument("--widths", type=int_list, default=None, help="cnn-small block widths, e.g. 32,64,128")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--optimizer", choices=["sgd", "adam"], default=d.optimizer)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--schedule", choices=["constant", "cosine", "step"], default=d.schedule)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="auto | cpu | cuda[:N]")
    p.add_argument("--track-structure", action="store_true", help="record per-layer structure each epoch")
    r = p.add_argument_group("regularizer")
    r.add_argument("--regularizer", default="none", choices=["none", "l1", "nuclear", "l1+nuclear", "product-l1"])
    r.add_argument("--lambda-l1", type=float, default=0.0)
    r.add_argument("--lambda-nuclear", type=float, default=0.0)
    r.add_argument("--nuclear-mode", choices=["subgradient", "proximal"], default="proximal")
    r.add_argument("--l1-mode", choices=["subgradient", "proximal"], default="subgradient")
    r.add_argument("--nuclear-method", choices=["fast", "exact"], default="fast",
                   help="fast: amortized Gram eigendecomposition; exact: SVD every step")
    r.add_argument("--svd-every", type=int, default=0, help="steps between decompositions (0: auto)")
    a = p.add_argument_group("adversarial training")
    a.add_argument("--adversarial", default="none", choices=["none", "fgsm", "pgd"])
    a.add_argument("--eps", type=float, default=None, help="ℓ∞ budget in pixel units (default 0.3)")
    a.add_argument("--adv-alpha", type=float, default=None, help="FGSM clean-loss weight α (0.5)")
    a.add_argument("--adv-steps", type=int, default=None, help="PGD steps (7)")
    a.add_argument("--adv-step-size", type=float, default=None, help="PGD step (2.5·eps/steps)")
    a.add_argument("--eps-warmup", type=int, default=None, help="epochs of linear ε warm-up (0)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A validated TrainConfig from parsed arguments (inconsistent options raise ConfigError)."""
    adv_given = {k: v for k, v in {
        "eps": args.eps, "alpha": args.adv_alpha, "steps": args.adv_steps,
        "step_size": args.adv_step_size, "warmup_epochs": args.eps_warmup,
    }.items() if v is not None}
    if args.adversarial == "none" and adv_given:
        flag = next(iter(adv_given)).replace("_", "-")
        raise ConfigError(f"--{flag} given without --adversarial fgsm|pgd")
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule,
        seed=args.seed, device=args.device, track_structure=args.track_structure,
        progress=not args.no_progress and sys.stderr.isatty(),
        regularizer=RegularizerConfig(
            kind=args.regularizer, lambda_l1=args.lambda_l1, lambda_nuclear=args.lambda_nuclear,
            nuclear_mode=args.nuclear_mode, l1_mode=args.l1_mode,
            nuclear_method=args.nuclear_method, svd_every=args.svd_every,
        ),
        adversarial=AdversarialConfig(kind=args.adversarial, **adv_given),
    )
    config.validate()
    return config


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    options: dict[str, Any] = {}
    if args.hidden is not None:
        if args.model != "mlp":
            raise ConfigError("--hidden applies to --model mlp only")
        options["hidden"] = args.hidden
    if args.widths is not None:
        if args.model != "cnn-small":
            raise ConfigError("--widths applies to --model cnn-small only")
        options["widths"] = args.widths
    fitted = fit(args.dataset, args.model, config, options, args.data_dir)
    path = save_fit(args.out, fitted)
    for row in fitted.result.history:
        line = (f"epoch {row['epoch']:>3}  train_loss {row['train_loss']:.4f}  "
                f"train_acc {row['train_acc']:.4f}  test_loss {row['test_loss']:.4f}  "
                f"test_acc {row['test_acc']:.4f}  ({row['epoch_seconds']:.1f}s)")
        print(line)
    final = fitted.result.final
    print(f"{args.model} on {args.dataset}: test accuracy {final['test_acc']:.4f} "
          f"in {fitted.result.seconds:.1f}s; checkpoint {path}")
    return 0
