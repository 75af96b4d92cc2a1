"""One run as a pure, picklable function of its config: train, track structure, evaluate.

``execute_run(config)`` never touches the results database and never raises for a failing run:
an exception (including :class:`~rankrobust.errors.TrainingDivergedError`) comes back as a
``RunResult`` with ``status="failed"`` and the reason, so the same function serves tests
(in-process), local worker processes and Ray tasks. Its only side effect is the optional
checkpoint under ``<output_dir>/checkpoints/<run_id>/`` (written to a temp file and renamed).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import socket
import time
import traceback as _tb
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy
import pandas as pd
import torch

from rankrobust import __version__
from rankrobust.attacks import get_attack
from rankrobust.checkpoint import save_checkpoint
from rankrobust.configuration import to_dict
from rankrobust.data import load_dataset
from rankrobust.experiments.config import RunConfig
from rankrobust.experiments.grid import run_id as compute_run_id
from rankrobust.interventions import intervention_table
from rankrobust.robustness import rho_adv, robustness_curve, sanity_checks
from rankrobust.robustness.summaries import summarize
from rankrobust.structure import spectra
from rankrobust.training.fit import FitResult, fit
from rankrobust.training.seeding import seed_everything
from rankrobust.training.selection import collapse_warning, detect_collapse

Status = Literal["complete", "failed"]


def utc_now() -> str:
    """ISO 8601 UTC timestamp with seconds precision, e.g. '2024-01-31T12:00:00+00:00'."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    """Versions that can change results: python, torch, numpy, rankrobust."""
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(numpy.__version__),
        "rankrobust": __version__,
    }


def _plain(value: Any) -> Any:
    """numpy/torch scalars → Python numbers; containers recursively; for pickling and SQLite."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


@dataclass
class RunResult:
    """Everything a run produced, as plain Python data (what executors send to the driver)."""

    run_id: str
    status: Status
    error: str | None = None  # one line: "ExceptionType: message"
    traceback: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # per-epoch metrics
    structure: list[dict[str, Any]] = field(default_factory=list)  # per-epoch, per-layer rows
    robustness: list[dict[str, Any]] = field(default_factory=list)  # fooling-ratio curve rows
    scalars: dict[str, float] = field(default_factory=dict)
    spectra: dict[str, list[float]] = field(default_factory=dict)  # layer → σ₁ ≥ σ₂ ≥ …
    interventions: list[dict[str, Any]] = field(default_factory=list)  # intervention table rows
    points: list[dict[str, Any]] = field(default_factory=list)  # point_robustness rows
    clean_accuracy: float | None = None
    train_seconds: float | None = None
    eval_seconds: float | None = None
    started_at: str = ""
    finished_at: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    host: str = ""
    node: str | None = None  # the Ray node id that ran it (None: not run on Ray)
    worker_pid: int | None = None  # the process that ran it
    lost: bool = False  # not a failure of the run: its node or worker went away (retry it)
    checkpoint: str | None = None
    warnings: list[str] = field(default_factory=list)  # sanity-check and collapse warnings

    @property
    def ok(self) -> bool:
        return self.status == "complete"


def failed_result(rid: str, exc: BaseException, started_at: str = "") -> RunResult:
    """A failed RunResult carrying ``exc`` as one line plus its traceback."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return RunResult(
        run_id=rid, status="failed", error=f"{type(exc).__name__}: {first}".rstrip(": "),
        traceback="".join(_tb.format_exception(type(exc), exc, exc.__traceback__)),
        started_at=started_at or utc_now(), finished_at=utc_now(), host=socket.gethostname(),
    )


def _per_point(attack: str, norm: str, curve: Any, result: RunResult) -> None:
    """``curve``'s ε_min rows (point = index in the test split) and its summaries as scalars
    ``{attack}_{norm}_{area|eps50|eps_min_q25|…}`` (:mod:`rankrobust.robustness.summaries`;
    an undefined or infinite summary is stored as NULL: not reached within the budgets)."""
    frame = curve.frame
    result.points += [{"attack": attack, "norm": norm, "point": i, "eps_min": float(e)}
                      for i, e in enumerate(curve.eps_min)]
    summary = summarize(frame["epsilon"].tolist(), frame["robust_accuracy"].tolist(),
                        float(frame["clean_accuracy"].iloc[0]), curve.eps_min)
    for name, value in summary.items():
        result.scalars[f"{attack}_{norm}_{name}"] = value if math.isfinite(value) else math.nan


def _evaluate(config: RunConfig, model: Any, result: RunResult) -> float:
    """Robustness curves (with per-input ε_min and summaries of the first curve per norm of an
    attack registered ``per_point``: autoattack), ρ_adv, intervention tables and spectra of ``model`` into ``result``; returns the
    seconds spent in the sanity checks (part of the evaluation)."""
    ev = config.evaluation
    checks_seconds = 0.0
    if ev.attacks or ev.deepfool or ev.interventions:
        x, y = load_dataset(config.dataset, "test", config.data_dir)
        curves = []
        for spec in ev.attacks:
            seed_everything(config.seed)  # same random starts whatever ran before
            options = {"seed": config.seed, **spec.options}
            curve = robustness_curve(
                model, (x, y), spec.attack, list(spec.epsilons), norm=spec.norm,
                batch_size=ev.batch_size, n=spec.n or ev.n, **options,
            )
            frame = curve.frame
            curves.append(frame)
            stored = json.dumps(spec.options, sort_keys=True)
            for row in frame.to_dict(orient="records"):
                result.robustness.append({**_plain(row), "options": stored})
            if get_attack(spec.attack).per_point and not any(
                    p["attack"] == spec.attack and p["norm"] == spec.norm for p in result.points):
                _per_point(spec.attack, spec.norm, curve, result)
        checked_norms: set[str] = set()
        for spec, frame in zip(ev.attacks, curves, strict=True):
            if ev.checks(spec.attack):  # after every curve, so that checks reuse the others
                n = spec.n or ev.n  # checks compare curves made on the same points only
                others = [c for s, c in zip(ev.attacks, curves, strict=True)
                          if c is not frame and (s.n or ev.n) == n]
                t0 = time.perf_counter()
                result.warnings += sanity_checks(
                    model, (x, y), frame, batch_size=ev.batch_size, n=n, seed=config.seed,
                    reference=pd.concat(others, ignore_index=True) if others else None,
                    model_checks=spec.norm not in checked_norms)
                checks_seconds += time.perf_counter() - t0
                checked_norms.add(spec.norm)
        if ev.deepfool:
            seed_everything(config.seed)
            result.scalars["rho_adv"] = float(
                rho_adv(model, (x, y), batch_size=ev.batch_size, n=ev.n, **ev.deepfool_options)
            )
        for item in ev.interventions:
            table = intervention_table(
                model, (x, y), item.kind, list(item.keeps), attack=item.attack, eps=item.eps,
                norm=item.norm, n=ev.n, batch_size=ev.batch_size, per_layer=item.per_layer,
                seed=config.seed, deepfool=item.deepfool, progress=False, **item.options,
            )
            result.interventions += [_plain(row) for row in table.to_dict(orient="records")]
    if ev.spectra:
        result.spectra = {k: [float(s) for s in v] for k, v in spectra(model).items()}
    return checks_seconds


def _training_facts(fitted: FitResult, result: RunResult) -> None:
    """Scalars and warnings about how training went: ``best_epoch`` (the epoch the model holds),
    ``collapsed`` (1.0/0.0; with ``collapse_epoch``) and a warning line when it collapsed."""
    trained = fitted.result
    history = trained.history
    result.scalars["best_epoch"] = float(trained.best_epoch or len(history))
    collapses = detect_collapse(history, fitted.spec.num_classes)
    result.scalars["collapsed"] = 1.0 if collapses else 0.0
    if collapses:
        result.scalars["collapse_epoch"] = float(collapses[0][0])
        result.warnings.append(collapse_warning(collapses, fitted.spec.num_classes,
                                                trained.best_epoch))


def _complete(config: RunConfig, fitted: FitResult | BaseException, started_at: str) -> RunResult:
    """The RunResult of one trained run (or the exception its training raised): final metrics,
    evaluation, optional checkpoint; any exception becomes a failed result."""
    rid = compute_run_id(config)
    try:
        if isinstance(fitted, BaseException):
            raise fitted
        final = fitted.result.final
        result = RunResult(
            run_id=rid, status="complete", started_at=started_at, host=socket.gethostname(),
            history=_plain(fitted.result.history), structure=_plain(fitted.result.records.get("structure", [])),
            train_seconds=fitted.result.seconds, versions=package_versions(),
        )
        result.clean_accuracy = float(final["test_acc"]) if "test_acc" in final else None
        for key in ("test_acc", "test_loss", "train_loss", "train_acc", "val_acc", "val_loss",
                    "val_robust_acc"):
            if key in final and math.isfinite(float(final[key])):
                result.scalars[f"final_{key}"] = float(final[key])
        _training_facts(fitted, result)
        t0 = time.perf_counter()
        checks_seconds = _evaluate(config, fitted.model, result)
        result.eval_seconds = time.perf_counter() - t0
        # where the hours go: training, evaluation, sanity checks
        result.scalars["time_train_s"] = float(fitted.result.seconds)
        result.scalars["time_eval_s"] = result.eval_seconds - checks_seconds
        result.scalars["time_checks_s"] = checks_seconds
        if config.save_checkpoints and config.output_dir:
            meta = {"run_id": rid, "dataset": config.dataset, "run_config": to_dict(config),
                    "train_config": to_dict(config.train), "metrics": final}
            path = save_checkpoint(Path(config.output_dir) / "checkpoints" / rid, fitted.model,
                                   fitted.spec, meta)
            result.checkpoint = str(path)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded, the sweep goes on
        failed = failed_result(rid, exc, started_at)
        failed.versions = package_versions()
        return failed
    result.finished_at = utc_now()
    return result


def execute_run(config: RunConfig) -> RunResult:
    """Train and evaluate one run; returns its results (status "failed" with the reason on error)."""
    started_at = utc_now()
    fitted: FitResult | BaseException
    try:
        fitted = fit(config.dataset, config.model, config.train, dict(config.model_options),
                     config.data_dir)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - recorded as the run's failure
        fitted = exc
    result = _complete(config, fitted, started_at)
    result.worker_pid = os.getpid()
    return result
