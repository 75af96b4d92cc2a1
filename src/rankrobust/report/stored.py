"""The JSON a report reads from a results database, checked against its schema in one place.

A database can hold values that are each valid SQL and valid JSON yet break the report together
(a config whose ``evaluation.attacks`` lists a string, ``warnings = '5'``). :func:`validate`
parses every stored JSON field the report reads, checks it against the schema below (only the
fields the report uses; other keys pass) and hands the parsed objects on, so nothing after it
parses JSON again:

- a run's ``config``, ``method_params`` and ``warnings``, and an attack's ``broken_by`` counts,
  are the results the report computes with: a violation is a :class:`DataError`, one line naming
  the database, the run, the field and its path;
- a sweep session's record is provenance, shown and never computed with: a field of the wrong
  type is dropped (shown as "–") and the report says so in a note.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from rankrobust.errors import DataError


@dataclass(frozen=True)
class Obj:
    """A JSON object whose listed keys, where present and not null, match their schemas."""

    fields: dict[str, Any]


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class MapOf:
    value: Any


COUNT = "count"  # an integer ≥ 0
NUMBER = "number"  # a finite int or float (not a bool)
TEXT, FLAG, ANY_OBJECT = str, bool, Obj({})

ATTACK = Obj({"attack": TEXT, "norm": TEXT, "options": ANY_OBJECT, "epsilons": ListOf(NUMBER),
              "n": COUNT})
CONFIG = Obj({
    "dataset": TEXT, "model": TEXT,
    "train": Obj({"epochs": COUNT, "optimizer": TEXT, "lr": NUMBER, "batch_size": COUNT,
                  "method": ANY_OBJECT}),
    "evaluation": Obj({"n": COUNT, "attacks": ListOf(ATTACK), "deepfool": FLAG,
                       "deepfool_options": ANY_OBJECT, "sanity_checks": (FLAG, ListOf(TEXT)),
                       "interventions": ListOf(ANY_OBJECT)}),
})
RUN_FIELDS = {"config": CONFIG, "method_params": ANY_OBJECT, "warnings": ListOf(TEXT)}
BROKEN_BY = MapOf(COUNT)
SESSION = {"command": TEXT, "git_commit": TEXT, "versions": MapOf((TEXT, NUMBER)), "host": TEXT,
           "cpus": COUNT, "executor": TEXT, "workers": COUNT, "runs_executed": COUNT,
           "runs_failed": COUNT, "started_at": TEXT, "finished_at": TEXT, "stack": FLAG}


class SchemaError(ValueError):
    """``path``: what was expected and what was found."""


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _fail(path: str, expected: str, value: Any) -> SchemaError:
    return SchemaError(f"{path + ': ' if path else ''}expected {expected}, got {_show(value)}")


def check(value: Any, schema: Any, path: str = "") -> None:
    """Raise :class:`SchemaError` where ``value`` does not match ``schema``."""
    if isinstance(schema, tuple):  # any of
        errors = []
        for option in schema:
            try:
                check(value, option, path)
                return
            except SchemaError as err:
                errors.append(str(err).split("expected ", 1)[-1].split(", got ")[0])
        raise _fail(path, " or ".join(errors), value)
    if isinstance(schema, Obj):
        if not isinstance(value, dict):
            raise _fail(path, "an object", value)
        for key, sub in schema.fields.items():
            if value.get(key) is not None:
                check(value[key], sub, f"{path}.{key}" if path else key)
    elif isinstance(schema, ListOf):
        if not isinstance(value, list):
            raise _fail(path, "a list", value)
        for i, item in enumerate(value):
            check(item, schema.item, f"{path}[{i}]")
    elif isinstance(schema, MapOf):
        if not isinstance(value, dict):
            raise _fail(path, "an object", value)
        for key, item in value.items():
            check(item, schema.value, f"{path}.{key}" if path else str(key))
    elif schema in (COUNT, NUMBER):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or (schema == COUNT and (
                value < 0 or value != int(value))):
            raise _fail(path, "a whole number ≥ 0" if schema == COUNT else "a finite number", value)
    elif not isinstance(value, schema) or (schema is int and isinstance(value, bool)):
        raise _fail(path, {str: "text", bool: "true or false"}.get(schema, schema.__name__), value)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse(value: Any, schema: Any) -> Any:
    """``value`` (JSON text, an already parsed object, or None/NaN for "not stored") parsed and
    checked: None when not stored; :class:`SchemaError` when it is not JSON or does not match."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bytes, str)):
        try:
            value = json.loads(value, parse_constant=_no_constant)
        except ValueError as err:
            raise SchemaError(f"not JSON ({err})") from None
    check(value, schema)
    return value


def validate_runs(runs: pd.DataFrame, where: str) -> pd.DataFrame:
    """``runs`` with config, method_params and warnings parsed (see the module doc)."""
    out = runs.copy()
    for column, schema in RUN_FIELDS.items():
        if column not in out.columns:
            continue
        parsed = []
        for rid, value in zip(out["run_id"], out[column], strict=True):
            try:
                parsed.append(parse(value, schema))
            except SchemaError as err:
                raise DataError(f"{where}: run {rid}: stored {column} is not valid: {err}") from None
        out[column] = pd.Series(parsed, index=out.index, dtype=object)
    return out


def validate_robustness(robustness: pd.DataFrame, where: str) -> pd.DataFrame:
    """``robustness`` with each curve's ``broken_by`` (AutoAttack's per-member counts) parsed."""
    if "broken_by" not in robustness.columns:
        return robustness
    out = robustness.copy()
    parsed = []
    for rid, value in zip(out["run_id"], out["broken_by"], strict=True):
        try:
            parsed.append(parse(value, BROKEN_BY))
        except SchemaError as err:
            raise DataError(f"{where}: run {rid}: stored broken_by is not valid: {err}") from None
    out["broken_by"] = pd.Series(parsed, index=out.index, dtype=object)
    return out


def validate_sessions(sessions: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Sessions with every field of the wrong type set to None, and one note per such field."""
    out, notes = sessions.copy(), []
    for column, schema in SESSION.items():
        if column not in out.columns:
            continue
        values = []
        for key, value in zip(out["key"], out[column], strict=True):
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            try:
                if not missing:  # the store decoded the record already
                    check(value, schema, column)
                values.append(None if missing else value)
            except SchemaError as err:
                notes.append(f"session {key}: {err} (shown as –)")
                values.append(None)
        out[column] = pd.Series(values, index=out.index, dtype=object)
    return out, notes
