"""Train a named model on a named dataset and save it: what ``rankrobust train`` runs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from rankrobust import __version__
from rankrobust.checkpoint import atomic_write_bytes, save_checkpoint
from rankrobust.configuration import to_dict
from rankrobust.data import dataset_info, load_dataset
from rankrobust.models import ModelSpec
from rankrobust.training.config import TrainConfig
from rankrobust.training.loop import TrainResult, train
from rankrobust.training.seeding import seed_everything


@dataclass
class FitResult:
    model: nn.Module
    spec: ModelSpec
    config: TrainConfig
    dataset: str
    result: TrainResult


def model_spec_for(dataset: str, model: str, options: dict[str, Any] | None = None) -> ModelSpec:
    """The spec of ``model`` sized for ``dataset``, normalizing with its pixel mean and std."""
    info = dataset_info(dataset)
    opts = {"mean": list(info.mean), "std": list(info.std), **(options or {})}
    return ModelSpec(model, info.in_shape, info.num_classes, opts)


def fit(
    dataset: str,
    model: str,
    config: TrainConfig,
    model_options: dict[str, Any] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> FitResult:
    """Load ``dataset``, build ``model`` from ``config.seed`` and train it; test split evaluated."""
    spec = model_spec_for(dataset, model, model_options)
    train_data = load_dataset(dataset, "train", data_dir)
    test_data = load_dataset(dataset, "test", data_dir)
    seed_everything(config.seed)
    net = spec.build()
    result = train(net, train_data, test_data, config)
    return FitResult(net, spec, config, dataset, result)


def save_fit(out: str | os.PathLike[str], fitted: FitResult) -> Path:
    """Write ``out/model.safetensors``, ``out/model.json`` and ``out/history.json``."""
    out_dir = Path(out)
    meta = {
        "dataset": fitted.dataset,
        "train_config": to_dict(fitted.config),
        "metrics": fitted.result.final,
        "train_seconds": fitted.result.seconds,
        "rankrobust_version": __version__,
    }
    path = save_checkpoint(out_dir, fitted.model, fitted.spec, meta)
    history = {"history": fitted.result.history, "records": fitted.result.records}
    atomic_write_bytes(out_dir / "history.json", json.dumps(history, indent=1, default=float).encode())
    return path
