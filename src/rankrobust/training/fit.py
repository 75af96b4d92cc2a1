"""Train a named model on a named dataset and save it: what ``rankrobust train`` runs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize as P

from rankrobust import __version__
from rankrobust.checkpoint import effective_state_dict, save_checkpoint
from rankrobust.configuration import to_dict
from rankrobust.data import dataset_info, load_dataset
from rankrobust.errors import ConfigError
from rankrobust.models import ModelSpec
from rankrobust.training.config import TrainConfig
from rankrobust.training.evaluate import evaluate
from rankrobust.training.loop import Data, TrainResult, train
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


VALIDATION_SEED = 20190128  # fixed: every run of a study holds out the same examples


def split_validation(data: Data, size: int) -> tuple[Data, Data]:
    """(train, validation): ``size`` examples chosen by a fixed permutation, the rest for training."""
    x, y = data
    if size >= len(x):
        raise ConfigError(f"validation_size {size} leaves no training data (the split has {len(x)})")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(VALIDATION_SEED))
    keep, held = perm[size:].sort().values, perm[:size].sort().values
    return (x[keep], y[keep]), (x[held], y[held])


SUBSET_SEED = 20200312  # fixed: every run of a study trains on the same subset


def stratified_subset(data: Data, size: int) -> Data:
    """``size`` examples of ``data`` with each class's share kept (a fixed choice, in data order).

    Class c of n_c of n examples gets ⌊size·n_c/n⌋ plus one for the classes with the largest
    remainders until the quotas sum to ``size``; its examples are the first of a fixed
    permutation (seed :data:`SUBSET_SEED`).
    """
    x, y = data
    if not 0 < size <= len(x):
        raise ConfigError(f"train_size {size} must be in 1..{len(x)} (the training images left)")
    classes, counts = torch.unique(y, return_counts=True)
    exact = counts.double() * size / len(x)
    quota = exact.floor().long()
    short = size - int(quota.sum())
    quota[torch.argsort(exact - quota, descending=True, stable=True)[:short]] += 1
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(SUBSET_SEED))
    keep = [perm[y[perm] == c][:q] for c, q in zip(classes.tolist(), quota.tolist(), strict=True)]
    idx = torch.cat(keep).sort().values
    return x[idx], y[idx]


def split_data(data: Data, config: TrainConfig) -> tuple[Data, Data | None]:
    """(training data, validation data or None) of a run: ``validation_size`` held out first
    (:func:`split_validation`), then ``train_size`` > 0 keeps a stratified subset of the rest."""
    val = None
    if config.validation_size > 0:
        data, val = split_validation(data, config.validation_size)
    if config.train_size > 0:
        data = stratified_subset(data, config.train_size)
    return data, val


def fit(
    dataset: str,
    model: str,
    config: TrainConfig,
    model_options: dict[str, Any] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> FitResult:
    """Load ``dataset``, build ``model`` from ``config.seed`` and train it; test split evaluated.

    With ``config.validation_size`` > 0 those training examples are held out (see
    :func:`split_validation`): every epoch's metrics gain ``val_loss`` and ``val_acc`` (the
    final ones of the model as returned), and ``config.select_epoch`` may keep the best epoch.
    """
    spec = model_spec_for(dataset, model, model_options)
    train_data = load_dataset(dataset, "train", data_dir)
    test_data = load_dataset(dataset, "test", data_dir)
    train_data, val_data = split_data(train_data, config)
    seed_everything(config.seed)
    net = spec.build()
    result = train(net, train_data, test_data, config, val_data=val_data)
    if any(P.is_parametrized(m) for m in net.modules()):
        # e.g. W = U·V: from here on the model is the plain architecture with its effective
        # weights (what checkpoints store, attacks see and interventions may cut)
        state = effective_state_dict(net)
        net = spec.build().to(next(iter(state.values())).device)
        net.load_state_dict(state)
        net.eval()
    if val_data is not None and result.history:  # the model as returned (after final steps)
        device = next(net.parameters()).device
        result.final["val_loss"], result.final["val_acc"] = evaluate(
            net, val_data[0].to(device), val_data[1].to(device), config.eval_batch_size)
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
    history = {"history": fitted.result.history, "records": fitted.result.records}
    # one call: every target is checked before the first byte is written
    return save_checkpoint(out_dir, fitted.model, fitted.spec, meta, extra_files={
        "history.json": json.dumps(history, indent=1, default=float).encode()})
