"""Device selection shared by training, attacks and the CLI."""

from __future__ import annotations

import torch

from rankrobust.errors import ConfigError


def resolve_device(spec: str = "auto") -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N`` to a ``torch.device``; ``auto`` picks CUDA when available."""
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {spec} requested but CUDA is not available on this machine")
        return torch.device(spec)
    raise ConfigError(f"unknown device {spec!r}; expected one of auto, cpu, cuda, cuda:N")
