"""A results database as MLflow runs (the ``rankrobust[mlflow]`` extra).

One MLflow run per study run, in one experiment per study (the study's name, or ``experiment``):

- **params**: the run's config flattened (``train.lr``, ``train.method.name``, ...; lists as JSON);
- **metrics**: each per-epoch metric with the epoch as its step (``train_loss``, ``test_acc``,
  ``val_acc``, ...), the layer-mean normalized structure per epoch (``structure.<column>``), and
  the run's scalars and clean accuracy and timings at step 0;
- **artifacts**: the run's curves (``robustness.csv``), structure, spectra and intervention
  tables, and the study's ``claims.csv`` (as ``rankrobust report`` computes it);
- **tags**: ``rankrobust.run_id`` (the study run id), study, variant, status, error.

Re-exporting is idempotent: runs are found by their ``rankrobust.run_id`` tag. A run whose stored
record is unchanged (same ``rankrobust.fingerprint``) is left alone, apart from its ``claims.csv``
when the study's claims changed; a changed run (e.g. pending then, complete now), a run left
half-written by an interrupted export (the fingerprint tag is written last) and any duplicate are
deleted and written again. An ``http(s)`` tracking URI is checked to answer before anything is
written.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rankrobust.errors import ConfigError
from rankrobust.export.tables import CONFIG_PREFIX, study_tables

TAG_RUN_ID = "rankrobust.run_id"
TAG_FINGERPRINT = "rankrobust.fingerprint"
TAG_CLAIMS = "rankrobust.claims_digest"
STATUS = {"complete": "FINISHED", "failed": "FAILED", "running": "RUNNING", "pending": "SCHEDULED"}
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param's value
MAX_TAG_VALUE = 5000
BATCH = 100  # MLflow accepts at most 100 params/tags and 1000 entities per log_batch
FINGERPRINT_COLUMNS = ("status", "config", "finished_at", "attempts", "clean_accuracy", "error",
                       "rankrobust_version")
DEFAULT_EXPERIMENT = "rankrobust"  # for runs stored without a study name
ARTIFACT_TABLES = ("robustness", "structure", "spectra", "interventions")


@dataclass(frozen=True)
class MlflowExport:
    """What an export did: runs written anew, rewritten (changed or incomplete), left as they were."""

    experiments: tuple[str, ...]
    created: int
    replaced: int
    unchanged: int


def require_mlflow() -> Any:
    """The ``mlflow`` module, or ConfigError naming the extra to install."""
    try:
        import mlflow
    except ImportError:
        raise ConfigError("--mlflow needs MLflow: pip install 'rankrobust[mlflow]'") from None
    return mlflow


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """ConfigError unless an ``http(s)`` tracking server at ``uri`` answers within ``timeout``
    seconds (any HTTP answer counts: the server is there). Other URIs are MLflow's to judge."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(f"--mlflow {uri}: no MLflow tracking server answers ({reason})") from None


def _millis(stamp: Any) -> int | None:
    """Milliseconds since the epoch of an ISO timestamp, or None."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return int(_dt.datetime.fromisoformat(stamp).timestamp() * 1000)
    except ValueError:
        return None


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_params(run: pd.Series) -> dict[str, str]:
    """The run's flattened config as MLflow params (``config.`` prefix dropped, missing left out)."""
    params = {}
    for key, value in run.items():
        name = str(key)
        if name.startswith(CONFIG_PREFIX) and not pd.isna(value):
            params[name[len(CONFIG_PREFIX):]] = _clip(str(value), MAX_PARAM_VALUE)
    return params


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and bool(
        np.isfinite(float(value)))


def run_metrics(rid: str, run: pd.Series, tables: dict[str, pd.DataFrame]) -> list[tuple[str, float, int]]:
    """(key, value, step) of one run: per-epoch metrics (step = epoch), layer-mean normalized
    structure per epoch, and scalars, clean accuracy and timings (step 0). Non-finite values
    are left out."""
    out: list[tuple[str, float, int]] = []
    epochs = tables["epoch_metrics"]
    mine = epochs[epochs["run_id"] == rid]
    for col in mine.columns:
        if col in ("run_id", "epoch") or not pd.api.types.is_numeric_dtype(mine[col]):
            continue
        out += [(col, float(v), int(e)) for e, v in zip(mine["epoch"], mine[col], strict=True)
                if _finite(v)]
    structure = tables["structure"]
    layers = structure[structure["run_id"] == rid]
    for col in ("normalized_effective_rank", "normalized_effective_sparsity"):
        if col in layers.columns and len(layers):
            means = layers.groupby("epoch")[col].mean()  # (epochs,) mean over layers
            out += [(f"structure.{col}", float(v), int(e))
                    for e, v in zip(means.index, means.to_numpy(), strict=True) if _finite(v)]
    scalars = tables["scalars"]
    for name, value in scalars.loc[scalars["run_id"] == rid, ["name", "value"]].itertuples(index=False):
        if _finite(value):
            out.append((str(name), float(value), 0))
    for col in ("clean_accuracy", "train_seconds", "eval_seconds"):
        if _finite(run.get(col)):
            out.append((col, float(run[col]), 0))
    return out


def run_tags(rid: str, run: pd.Series) -> dict[str, str]:
    """The tags that find a run again and say what it is."""
    tags = {TAG_RUN_ID: rid}
    for col in ("study", "variant", "label", "status", "method", "dataset", "model", "host",
                "rankrobust_version", "error"):
        value = run.get(col)
        if isinstance(value, str) and value:
            tags[f"rankrobust.{col}"] = _clip(value, MAX_TAG_VALUE)
    return tags


def fingerprint(run: pd.Series) -> str:
    """Digest of what the export shows of a run: a changed one is written again."""
    return _digest({c: run.get(c) for c in FINGERPRINT_COLUMNS})


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _experiment_id(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is None:
        return str(client.create_experiment(name, tags={"rankrobust.study": name}))
    if found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    return str(found.experiment_id)


def _existing(client: Any, experiment_id: str) -> dict[str, list[Any]]:
    """study run id → the MLflow runs tagged with it (active ones, every page)."""
    found: dict[str, list[Any]] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        for r in page:
            rid = r.data.tags.get(TAG_RUN_ID)
            if rid:
                found.setdefault(rid, []).append(r)
        token = page.token
        if not token:
            return found


def _write_artifacts(client: Any, mlflow_id: str, rid: str, tables: dict[str, pd.DataFrame],
                     claims: pd.DataFrame | None) -> None:
    with tempfile.TemporaryDirectory(prefix="rankrobust-mlflow-") as scratch:
        folder = Path(scratch)
        for name in ARTIFACT_TABLES:
            frame = tables.get(name)
            if frame is not None and "run_id" in frame.columns:
                mine = frame[frame["run_id"] == rid]
                if len(mine):
                    mine.to_csv(folder / f"{name}.csv", index=False)
        if claims is not None:
            claims.to_csv(folder / "claims.csv", index=False)
        if any(folder.iterdir()):
            client.log_artifacts(mlflow_id, str(folder))


def _create_run(client: Any, experiment_id: str, rid: str, run: pd.Series,
                tables: dict[str, pd.DataFrame], claims: pd.DataFrame, claims_digest: str) -> None:
    """One complete MLflow run for study run ``rid``; the fingerprint tag is written last."""
    from mlflow.entities import Metric, Param, RunTag

    label = run.get("label")
    made = client.create_run(experiment_id, start_time=_millis(run.get("started_at")),
                             tags=run_tags(rid, run),
                             run_name=label if isinstance(label, str) and label else rid)
    mlflow_id = made.info.run_id
    stamp = _millis(run.get("finished_at")) or _millis(run.get("started_at")) or 0
    params = [Param(k, v) for k, v in run_params(run).items()]
    for chunk in _chunks(params, BATCH):
        client.log_batch(mlflow_id, params=list(chunk))
    metrics = [Metric(k, v, stamp, step) for k, v, step in run_metrics(rid, run, tables)]
    for chunk in _chunks(metrics, 1000):
        client.log_batch(mlflow_id, metrics=list(chunk))
    _write_artifacts(client, mlflow_id, rid, tables, claims)
    client.log_batch(mlflow_id, tags=[RunTag(TAG_CLAIMS, claims_digest),
                                      RunTag(TAG_FINGERPRINT, fingerprint(run))])
    status = STATUS.get(str(run.get("status")), "FINISHED")
    if status in ("FINISHED", "FAILED"):
        client.set_terminated(mlflow_id, status, end_time=_millis(run.get("finished_at")))
    else:
        client.update_run(mlflow_id, status=status)


def _export_study(client: Any, name: str, runs: pd.DataFrame, tables: dict[str, pd.DataFrame],
                  claims: pd.DataFrame, step: Callable[[], object]) -> tuple[int, int, int]:
    experiment_id = _experiment_id(client, name)
    existing = _existing(client, experiment_id)
    claims_digest = _digest(claims.to_csv(index=False))
    created = replaced = unchanged = 0
    for _, run in runs.iterrows():
        rid = str(run["run_id"])
        found = existing.get(rid, [])
        if len(found) == 1 and found[0].data.tags.get(TAG_FINGERPRINT) == fingerprint(run):
            if found[0].data.tags.get(TAG_CLAIMS) != claims_digest:
                _write_artifacts(client, found[0].info.run_id, rid, {}, claims)
                client.set_tag(found[0].info.run_id, TAG_CLAIMS, claims_digest)
            unchanged += 1
        else:
            for old in found:
                client.delete_run(old.info.run_id)
            _create_run(client, experiment_id, rid, run, tables, claims, claims_digest)
            replaced += bool(found)
            created += not found
        step()
    return created, replaced, unchanged


def export_mlflow(db: str | os.PathLike[str], uri: str, experiment: str | None = None,
                  progress: bool = True) -> MlflowExport:
    """Export the results database ``db`` to the MLflow tracking server or store at ``uri``
    (see the module docstring); ``experiment`` puts every run into that experiment instead of
    one per study."""
    require_mlflow()
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from tqdm.auto import tqdm

    check_reachable(uri)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # fail in seconds, not minutes
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # one line per run
    tables = study_tables(db)
    runs = tables["runs"]
    claims = tables["claims"]
    studies = pd.Series([experiment or (s if isinstance(s, str) and s else DEFAULT_EXPERIMENT)
                         for s in runs["study"]], index=runs.index, dtype=object)
    client = MlflowClient(tracking_uri=uri)
    totals = [0, 0, 0]
    names = sorted({str(s) for s in studies})
    with tqdm(total=len(runs), unit="run", desc="mlflow", disable=not progress, leave=False) as bar:
        try:
            for name in names:
                done = _export_study(client, name, runs[studies == name], tables, claims,
                                     lambda: bar.update(1))
                totals = [a + b for a, b in zip(totals, done, strict=True)]
        except MlflowException as exc:
            raise ConfigError(f"--mlflow {uri}: {' '.join(str(exc.message).split())[:300]}") from None
    return MlflowExport(tuple(names), *totals)
