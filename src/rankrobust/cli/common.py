"""Shared CLI pieces: a parser that fails in one line (exit 2), list parsing, name and folder
checks, output formats. Cheap to import: pandas is imported only when a table is printed."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from rankrobust.configuration import closest
from rankrobust.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


class UsageError(ConfigError):
    """Bad command-line arguments."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def float_list(text: str) -> list[float]:
    """'0.1,0.2, 0.3' → [0.1, 0.2, 0.3]."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def int_list(text: str) -> list[int]:
    """'150,100' → [150, 100] (positive integers)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def check_choice(flag: str, value: str, known: Iterable[str]) -> str:
    """``value`` if it is one of ``known``, else ConfigError with a did-you-mean.

    For names from registries that import torch: the parser takes any string (so that building
    it stays cheap) and ``run()`` checks it here, in argparse's words: ``--attack: invalid choice
    'pdg' (did you mean 'pgd'?); choose from fgsm, pgd, ...``.
    """
    options = list(known)
    if value not in options:
        raise ConfigError(f"{flag}: invalid choice {value!r}{closest(value, options)}; "
                          f"choose from {', '.join(options)}")
    return value


def output_dir(path: str | os.PathLike[str], flag: str) -> Path:
    """The folder ``path``, created with its parents; ConfigError naming ``flag`` and the path
    when it cannot be created or written (the file boundary of every command that writes)."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{flag} {folder}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {folder}: the folder is not writable")
    return folder


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """``--stack`` and ``--max-stack`` of the commands that run sweeps (see :func:`stack_options`)."""
    parser.add_argument("--stack", action="store_true",
                        help="train compatible runs (same data, model and optimizer settings; "
                        "seeds x lambdas x methods that stack) together as one stacked model, "
                        "one task per group; each run's results match training it alone up to "
                        "float rounding (as with another thread count)")
    parser.add_argument("--max-stack", type=int, default=None, metavar="N",
                        help="with --stack: at most N runs per stacked model (default 10)")


def stack_options(args: argparse.Namespace) -> dict[str, Any]:
    """``run_sweep``'s ``stack`` and ``max_stack`` from the flags of :func:`add_stack_arguments`."""
    if args.max_stack is not None and not args.stack:
        raise UsageError("--max-stack applies with --stack only")
    if args.max_stack is not None and args.max_stack < 1:
        raise UsageError(f"--max-stack must be ≥ 1, got {args.max_stack}")
    return {"stack": args.stack, "max_stack": args.max_stack}


def emit_frame(frame: pd.DataFrame, fmt: str, stream: Any = None) -> None:
    """Print a DataFrame as an aligned table, CSV, or JSON records."""
    import pandas as pd  # heavy: imports pandas (~0.5 s), only when a table is printed

    out = stream or sys.stdout
    if fmt == "csv":
        frame.to_csv(out, index=False)
    elif fmt == "json":
        # NaN/inf are not JSON: they become null (json.dumps would print a bare NaN)
        records = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                    for k, v in row.items()} for row in frame.to_dict(orient="records")]
        out.write(json.dumps(records, indent=2, default=str, allow_nan=False) + "\n")
    else:
        with pd.option_context("display.max_rows", None, "display.max_columns", None,
                               "display.width", 200, "display.float_format", "{:.4g}".format):
            out.write(frame.to_string(index=False) + "\n")


def shape_arg(text: str) -> tuple[int, int, int]:
    """'1,28,28' → (1, 28, 28): an input shape C,H,W of positive integers."""
    values = int_list(text)
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected C,H,W (three positive integers), got {text!r}")
    return values[0], values[1], values[2]


def add_model_source_args(parser: argparse.ArgumentParser) -> None:
    """Flags that load any PyTorch model instead of a rankrobust checkpoint: the positional
    checkpoint is then the weights file (.safetensors; a torch.save state dict only with
    --allow-torch-load)."""
    group = parser.add_argument_group(
        "any PyTorch model", "instead of a rankrobust checkpoint, build the model with a factory "
        "and read the positional path as its weights (.safetensors, or a torch.save state dict "
        "with --allow-torch-load)")
    group.add_argument("--model-factory", metavar="MODULE:FUNCTION", default=None,
                       help="a callable returning the torch.nn.Module, e.g. mypkg.nets:make_net; "
                       "called with num_classes=K if it takes that keyword, else with no arguments")
    group.add_argument("--input-shape", metavar="C,H,W", type=shape_arg, default=None,
                       help="input shape of the factory model (default: the --dataset's)")
    group.add_argument("--num-classes", metavar="K", type=int, default=None,
                       help="number of classes of the factory model (default: the --dataset's)")
    group.add_argument("--allow-torch-load", action="store_true",
                       help="accept a torch.save state dict, read with torch.load(weights_only=True) "
                       "(PyTorch's restricted unpickler; anything but a flat dict of tensors is refused)")


class LoadedModel(NamedTuple):
    """What a command knows about its model: the module (eval mode), the input shape (C, H, W)
    and class count when known, and the dataset named by --dataset or stored with a checkpoint."""

    model: Any  # torch.nn.Module (torch is not imported here)
    in_shape: tuple[int, int, int] | None
    num_classes: int | None
    dataset: str | None


def load_model_for_cli(args: argparse.Namespace, device: Any) -> LoadedModel:
    """The model of ``args.checkpoint``: a rankrobust checkpoint, or with ``--model-factory`` the
    factory's model with the positional path as its weights (see :func:`add_model_source_args`).

    For a factory model the input shape and class count come from --input-shape/--num-classes,
    else from ``args.dataset`` when the command has one; with an input shape the model is probed
    once and the class count read from its logits.
    """
    # heavy: imports torch
    from rankrobust.checkpoint import load_checkpoint

    dataset = getattr(args, "dataset", None)
    factory = getattr(args, "model_factory", None)
    if factory is None:
        for flag, value in (("--input-shape", getattr(args, "input_shape", None)),
                            ("--num-classes", getattr(args, "num_classes", None)),
                            ("--allow-torch-load", getattr(args, "allow_torch_load", False) or None)):
            if value is not None:
                raise ConfigError(f"{flag} applies only with --model-factory (a rankrobust "
                                  "checkpoint stores its model)")
        ckpt = load_checkpoint(args.checkpoint, device=device)
        stored = ckpt.meta.get("dataset")
        return LoadedModel(ckpt.model, ckpt.spec.in_shape, ckpt.spec.num_classes,
                           dataset or (str(stored) if stored else None))

    from rankrobust.data import DATASETS
    from rankrobust.external import load_external_model, output_classes

    in_shape: tuple[int, int, int] | None = args.input_shape
    num_classes: int | None = args.num_classes
    if num_classes is not None and num_classes < 2:
        raise ConfigError(f"--num-classes must be at least 2, got {num_classes}")
    if dataset is not None:
        info = DATASETS[check_choice("--dataset", dataset, DATASETS)]
        if in_shape is not None and in_shape != info.in_shape:
            raise ConfigError(f"--input-shape {','.join(map(str, in_shape))} does not match dataset "
                              f"{dataset} ({','.join(map(str, info.in_shape))})")
        if num_classes is not None and num_classes != info.num_classes:
            raise ConfigError(f"--num-classes {num_classes} does not match dataset {dataset} "
                              f"({info.num_classes} classes)")
        in_shape, num_classes = info.in_shape, info.num_classes
    model = load_external_model(factory, args.checkpoint, in_shape=in_shape, num_classes=num_classes,
                                allow_torch_load=args.allow_torch_load, device=device)
    if in_shape is not None and num_classes is None:
        num_classes = output_classes(model, in_shape, None, factory)
    return LoadedModel(model, in_shape, num_classes, dataset)


def load_test_split(args: argparse.Namespace, loaded: LoadedModel) -> tuple[Any, Any]:
    """The test split (x, y) of the model's dataset (``--dataset`` or the checkpoint's), checked
    against the model's input shape; ConfigError when there is no dataset or the shapes differ."""
    from rankrobust.data import load_dataset  # heavy: imports torch

    if not loaded.dataset:
        source = ("a --model-factory model has no stored dataset" if args.model_factory
                  else "no dataset stored with the checkpoint")
        raise ConfigError(f"{args.checkpoint}: {source}; pass --dataset")
    x, y = load_dataset(str(loaded.dataset), "test", args.data_dir)
    if loaded.in_shape is not None and tuple(x.shape[1:]) != tuple(loaded.in_shape):
        raise ConfigError(f"dataset {loaded.dataset} has inputs {tuple(x.shape[1:])} but the model "
                          f"expects {tuple(loaded.in_shape)}")
    return x, y
