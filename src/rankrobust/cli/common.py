"""Shared CLI pieces: a parser that fails in one line (exit 2), list parsing, name and folder
checks, output formats. Cheap to import: pandas is imported only when a table is printed."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterable
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


def emit_frame(frame: pd.DataFrame, fmt: str, stream: Any = None,
               extra: dict[str, Any] | None = None) -> None:
    """Print a DataFrame as an aligned table, CSV, or JSON records; ``extra`` fields (e.g. the
    attack's settings) are added to every JSON record."""
    import pandas as pd  # heavy: imports pandas (~0.5 s), only when a table is printed

    out = stream or sys.stdout
    if fmt == "csv":
        frame.to_csv(out, index=False)
    elif fmt == "json":
        # NaN/inf are not JSON: they become null (json.dumps would print a bare NaN)
        records = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                    for k, v in row.items()} | (extra or {}) for row in frame.to_dict(orient="records")]
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


def key_values(items: list[str], flag: str) -> dict[str, Any]:
    """['rank=8', 'layers=fc'] → {'rank': 8, 'layers': 'fc'} (``--set``, ``--factory-arg``).

    A value is an int, else a float (so '1e-3' is a number, which YAML 1.1 would keep as text),
    else a YAML scalar (true, null, ...), else the text itself.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        if key in out:
            raise ConfigError(f"{flag} {key}: given twice")
        out[key] = scalar(text.strip(), flag)
    return out


def scalar(text: str, where: str = "value") -> Any:
    """The typed value of one ``KEY=VALUE`` text (see :func:`key_values`)."""
    from rankrobust.errors import ConfigError as _Refused
    from rankrobust.strict_yaml import load_yaml

    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    try:
        value = load_yaml(text, where) if text else ""
    except _Refused:
        return text
    if isinstance(value, (dict, list)) or value is None and text not in ("null", "~"):
        return text  # only scalars: anything else is the literal text
    return value


def add_model_source_args(parser: argparse.ArgumentParser, *, has_dataset: bool = True) -> None:
    """Flags that load any PyTorch model instead of a rankrobust checkpoint: the positional
    checkpoint is then the weights file (.safetensors; a torch.save state dict only with
    --allow-torch-load). ``has_dataset``: the command has --dataset, from which the input shape
    and class count default."""
    group = parser.add_argument_group(
        "any PyTorch model", "instead of a rankrobust checkpoint, build the model with a factory "
        "and read the positional path as its weights (.safetensors, or a torch.save state dict "
        "with --allow-torch-load)")
    group.add_argument("--model-factory", metavar="MODULE:FUNCTION", default=None,
                       help="a callable returning the torch.nn.Module: mypkg.nets:make_net (the "
                       "current folder is importable), path/to/nets.py:make_net, or a call with "
                       "literal arguments, nets:make_wide(width=16); called with num_classes=K "
                       "when it declares that parameter")
    group.add_argument("--factory-arg", metavar="KEY=VALUE", action="append", default=[],
                       help="a keyword argument of the factory, typed like --set (repeatable)")
    if has_dataset:
        shape_help = "input shape C,H,W of the factory model (default: the --dataset's)"
        classes_help = "number of classes of the factory model (default: the --dataset's)"
    else:
        shape_help = ("input shape C,H,W: probe the factory model with one input of this shape "
                      "(checks that it returns logits (1, K))")
        classes_help = "number of classes K: passed to the factory, checked by the probe"
    group.add_argument("--input-shape", metavar="C,H,W", type=shape_arg, default=None, help=shape_help)
    group.add_argument("--num-classes", metavar="K", type=int, default=None, help=classes_help)
    group.add_argument("--logits", metavar="KEY|INDEX", default=None,
                       help="the model returns a tuple (INDEX), a dict (KEY) or an object with "
                       "attributes (KEY, e.g. logits for Hugging Face outputs): where its logits are")
    group.add_argument("--mean", metavar="M1,M2,...", type=float_list, default=None,
                       help="per-channel mean of the inputs the model was trained on; with --std "
                       "the model sees (x - mean) / std and attacks run on pixels x in [0, 1]")
    group.add_argument("--std", metavar="S1,S2,...", type=float_list, default=None,
                       help="per-channel std (with --mean)")
    group.add_argument("--allow-torch-load", action="store_true",
                       help="accept a torch.save state dict or training checkpoint ({'state_dict': "
                       "...}), read with torch.load(weights_only=True) (PyTorch's restricted "
                       "unpickler; anything else is refused)")


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``: no bar on a terminal, no progress lines in a log."""
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress output (default: a bar on a terminal, one line every "
                        "~10 s when stderr is a file)")


def note(message: str) -> None:
    """A one-line note for the user on stderr (``note: ...``)."""
    print(f"note: {message}", file=sys.stderr)


class LoadedModel(NamedTuple):
    """What a command knows about its model: the module to attack (eval mode; for a factory
    model with --logits/--mean/--std a ModelAdapter around the user's network), the user's
    network itself, the input shape (C, H, W) and class count when known, the dataset named by
    --dataset or stored with a checkpoint, and the adaptation applied (for results)."""

    model: Any  # torch.nn.Module (torch is not imported here)
    in_shape: tuple[int, int, int] | None
    num_classes: int | None
    dataset: str | None
    network: Any = None  # the user's nn.Module (= model when nothing is adapted)
    adaptation: dict[str, Any] | None = None


FACTORY_ONLY = ("--input-shape", "--num-classes", "--allow-torch-load", "--factory-arg", "--logits",
                "--mean", "--std")


def _factory_only_flags(args: argparse.Namespace) -> list[str]:
    values = (getattr(args, "input_shape", None), getattr(args, "num_classes", None),
              getattr(args, "allow_torch_load", False) or None, getattr(args, "factory_arg", None) or None,
              getattr(args, "logits", None), getattr(args, "mean", None), getattr(args, "std", None))
    return [flag for flag, value in zip(FACTORY_ONLY, values, strict=True) if value is not None]


def load_model_for_cli(args: argparse.Namespace, device: Any) -> LoadedModel:
    """The model of ``args.checkpoint``: a rankrobust checkpoint, or with ``--model-factory`` the
    factory's model with the positional path as its weights (see :func:`add_model_source_args`).

    For a factory model the input shape and class count come from --input-shape/--num-classes,
    else from ``args.dataset`` when the command has one; with an input shape the model is probed
    once and the class count read from its logits. Notes (a checkpoint entry read, a key prefix
    stripped, the normalization applied) go to stderr.
    """
    # heavy: imports torch
    from rankrobust.checkpoint import load_checkpoint

    dataset = getattr(args, "dataset", None)
    factory = getattr(args, "model_factory", None)
    if factory is None:
        for flag in _factory_only_flags(args):
            raise ConfigError(f"{flag} applies only with --model-factory (a rankrobust "
                              "checkpoint stores its model)")
        ckpt = load_checkpoint(args.checkpoint, device=device)
        stored = ckpt.meta.get("dataset")
        return LoadedModel(ckpt.model, ckpt.spec.in_shape, ckpt.spec.num_classes,
                           dataset or (str(stored) if stored else None), ckpt.model)

    from rankrobust.data import DATASETS
    from rankrobust.external import load_external_model, output_classes
    from rankrobust.models.adapter import ModelAdapter, Normalization, parse_logits, unwrap

    in_shape: tuple[int, int, int] | None = args.input_shape
    num_classes: int | None = args.num_classes
    if num_classes is not None and num_classes < 2:
        raise ConfigError(f"--num-classes must be at least 2, got {num_classes}")
    factory_args = key_values(args.factory_arg, "--factory-arg")
    logits = None if args.logits is None else parse_logits(args.logits)
    normalization = (None if args.mean is None and args.std is None
                     else Normalization.of(args.mean, args.std))
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
                                allow_torch_load=args.allow_torch_load, device=device,
                                factory_args=factory_args, logits=logits,
                                normalization=normalization, note=note)
    if in_shape is not None and num_classes is None:
        num_classes = output_classes(model, in_shape, None, factory)
    adaptation = model.describe() if isinstance(model, ModelAdapter) else None
    if normalization is not None:
        note(f"inputs normalized inside the model, (x - mean) / std with mean {list(normalization.mean)} "
             f"std {list(normalization.std)}; every ε is in [0, 1] pixel units")
    return LoadedModel(model, in_shape, num_classes, dataset, unwrap(model), adaptation)


def require_dataset(args: argparse.Namespace) -> None:
    """Before anything is loaded: a --model-factory model has no stored dataset, so a command
    that attacks its test inputs needs --dataset (input shape and class count follow from it)."""
    if getattr(args, "model_factory", None) and not getattr(args, "dataset", None):
        raise ConfigError(f"{args.checkpoint}: a --model-factory model has no stored dataset; pass "
                          "--dataset (its test inputs are attacked; --input-shape and --num-classes "
                          "then follow from it)")


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


def emit_catalogue(entries: list[dict[str, Any]], fmt: str,
                   lines: Callable[[dict[str, Any]], list[str]]) -> int:
    """A registry listing (``rankrobust methods``, ``rankrobust attacks``): ``entries`` as one
    JSON array, or each entry's ``lines``; returns the exit code 0."""
    if fmt == "json":
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    for entry in entries:
        print("\n".join(lines(entry)))
    return 0
