"""Study files: YAML read through the hardened loader (:func:`rankrobust.strict_yaml.load_yaml`),
bounded in size, plain data only, then parsed (:func:`rankrobust.experiments.study_config.study_from_dict`)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from rankrobust.configuration import brief
from rankrobust.data.files import read_regular
from rankrobust.errors import ConfigError
from rankrobust.experiments.study_config import StudyConfig, study_from_dict
from rankrobust.strict_yaml import load_yaml

MAX_STUDY_BYTES = 256 * 1024  # a study file is a few KB; parsing is ~4 µs/byte


def _check_plain(value: Any, where: str) -> None:
    """ConfigError naming the dotted path of the first value that is not plain JSON-like data."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where or 'study'}: key {brief(key)} is not a name (a string)")
            _check_plain(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: {value} is not a finite number")
    elif value is not None and not isinstance(value, (str, int, bool)):
        raise ConfigError(f"{where}: a {type(value).__name__} value is not allowed here "
                          f"({brief(value)}); quote it to make it a string")


def parse_study_yaml(text: str, where: str) -> Any:
    """The plain data of a study file's text (see the module docstring); ConfigError otherwise."""
    data = load_yaml(text, where)
    if data is None or data == {}:
        raise ConfigError(f"{where}: the study file is empty (write at least a 'name:' or a 'grid:')")
    try:
        _check_plain(data, "")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return data


def load_study(path: str | os.PathLike[str]) -> StudyConfig:
    """Read and validate a study YAML file (its file stem is the default study name)."""
    p = Path(path)
    if not os.path.lexists(p):
        raise ConfigError(f"study file not found: {p}")
    raw = read_regular(p, MAX_STUDY_BYTES, ConfigError, "study file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    return study_from_dict(parse_study_yaml(text, str(p)), default_name=p.stem)

