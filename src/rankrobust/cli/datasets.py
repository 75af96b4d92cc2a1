"""``rankrobust datasets``: every registered dataset, its shapes, sizes, ε scale and where to get it."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "datasets", help="list the datasets and how to get them",
        description="List every registered dataset: input shape, classes, nominal split sizes, "
        "the ε scale `reproduce` divides a preset's MNIST-scale budgets by, the models its "
        "studies use (when it names them) and how to get the files.",
    )
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(run=run)


def catalogue() -> list[dict[str, Any]]:
    """One entry per dataset, as plain data."""
    from rankrobust.data import DATASETS  # heavy: imports torch

    return [{"name": d.name, "in_shape": list(d.in_shape), "num_classes": d.num_classes,
             "train_size": d.train_size, "test_size": d.test_size, "eps_scale": d.eps_scale,
             "models": None if d.models is None else list(d.models), "how_to_get": d.how_to_get}
            for d in DATASETS.values()]


def run(args: argparse.Namespace) -> int:
    entries = catalogue()
    if args.format == "json":
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    for e in entries:
        scale = "" if e["eps_scale"] == 1.0 else f", ε ÷ {e['eps_scale']:.4g}"
        models = f", models {' + '.join(e['models'])}" if e["models"] else ""
        print(f"{e['name']}  {'×'.join(map(str, e['in_shape']))}, {e['num_classes']} classes, "
              f"{e['train_size']:,} / {e['test_size']:,} images{scale}{models}")
        print(f"    get it: {e['how_to_get']}")
    return 0
