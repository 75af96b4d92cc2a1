"""``rankrobust datasets``: every registered dataset, its shapes, sizes, ε scale and where to get it."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from rankrobust.cli.help import add_listing, print_listing


def register(subparsers: Any) -> None:
    add_listing(
        subparsers, "datasets", "list the datasets and how to get them",
        "List every registered dataset: input shape, classes, nominal split sizes, the ε scale "
        "`reproduce` divides a preset's MNIST-scale budgets by, the models its studies use (when "
        "it names them) and how to get the files.", run,
    )


def catalogue() -> list[dict[str, Any]]:
    """One entry per dataset, as plain data."""
    from rankrobust.data import DATASETS

    return [{"name": d.name, "in_shape": list(d.in_shape), "num_classes": d.num_classes,
             "train_size": d.train_size, "test_size": d.test_size, "eps_scale": d.eps_scale,
             "models": None if d.models is None else list(d.models), "how_to_get": d.how_to_get}
            for d in DATASETS.values()]


def _lines(e: dict[str, Any]) -> Iterator[str]:
    scale = "" if e["eps_scale"] == 1.0 else f", ε ÷ {e['eps_scale']:.4g}"
    models = f", models {' + '.join(e['models'])}" if e["models"] else ""
    yield (f"{e['name']}  {'×'.join(map(str, e['in_shape']))}, {e['num_classes']} classes, "
           f"{e['train_size']:,} / {e['test_size']:,} images{scale}{models}")
    yield f"    get it: {e['how_to_get']}"


def run(args: argparse.Namespace) -> int:
    return print_listing(catalogue(), args.format, _lines)
