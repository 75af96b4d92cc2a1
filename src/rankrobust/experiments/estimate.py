"""Work estimates of runs and studies (:mod:`rankrobust.work`), before anything is trained.

:func:`run_work` adds up one run's training and evaluation (every attack curve, its sanity
checks, DeepFool's ρ_adv and the intervention tables); :func:`study_work` sums the runs of a
study, so that ``sweep`` and ``reproduce`` refuse a study whose total would exceed the bound.
"""

from __future__ import annotations

from collections.abc import Sequence

from rankrobust.data import dataset_info
from rankrobust.experiments.config import RunConfig
from rankrobust.work import (
    FORWARD,
    Work,
    attack_passes,
    intervention_passes,
    sanity_passes,
    spec_cost,
    training_passes,
)


def run_work(config: RunConfig) -> Work:
    """The passes of one run (training, then its evaluation; see :mod:`rankrobust.work`)."""
    info = dataset_info(config.dataset)
    seconds, layers = spec_cost(config.model, info.in_shape, info.num_classes, config.model_options)
    train = config.train
    passes = training_passes(train.epochs, train.training_images(info.train_size), info.test_size,
                             train.method.passes())
    ev = config.evaluation
    classes = info.num_classes
    n = min(ev.n, info.test_size)
    checked_norms: set[str] = set()
    for spec in ev.attacks:
        points = min(spec.n or n, n)
        per = attack_passes(spec.attack, len(spec.epsilons), classes, spec.options) + FORWARD
        if ev.checks(spec.attack):
            per += sanity_passes(len(spec.epsilons), classes, spec.norm not in checked_norms)
            checked_norms.add(spec.norm)
        passes += points * per
    if ev.deepfool:
        passes += n * attack_passes("deepfool", 1, classes, ev.deepfool_options)
    for item in ev.interventions:
        passes += n * intervention_passes(len(item.keeps), layers if item.per_layer else 1,
                                          item.attack, classes, item.options, item.deepfool)
    label = f"run {config.label}" if config.label else "this run"
    return Work(passes, seconds, label)


def study_work(name: str, configs: Sequence[RunConfig]) -> Work:
    """The passes of every run in ``configs`` together (named after study ``name``)."""
    total = Work(0.0, 0.0, f"study {name}")
    for config in configs:
        total = total + run_work(config)
    return Work(total.passes, total.seconds_per_pass, f"study {name} ({len(configs)} runs)")
