"""Checkpoints: weights in safetensors plus a JSON sidecar; nothing is ever unpickled.

A checkpoint ``NAME`` is two files, ``NAME.safetensors`` (tensors only) and ``NAME.json``
(format tag, model spec, training config, metrics). ``load_checkpoint`` accepts either file or
the folder holding ``model.safetensors``. Before anything is parsed the file's leading bytes are
checked: a pickle or a ``torch.save`` zip is refused with a clear error and its code never runs.
Both files are written to a temporary name and renamed, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn
from torch.nn.utils import parametrize as P

from rankrobust.errors import CheckpointError, ConfigError
from rankrobust.models import ModelSpec

FORMAT = "rankrobust-checkpoint"
FORMAT_VERSION = 1
DEFAULT_NAME = "model"
MAX_HEADER = 100 * 1024 * 1024


@dataclass
class Checkpoint:
    """A rebuilt model (on CPU unless asked otherwise, in eval mode) and its sidecar metadata."""

    model: nn.Module
    spec: ModelSpec
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    p = Path(path)
    if p.is_dir():
        p = p / f"{DEFAULT_NAME}.safetensors"
    base = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def effective_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with every ``torch.nn.utils.parametrize`` tensor as its effective value.

    A parametrized weight (e.g. a factorized W = U·V) is stored as W itself under the plain
    name (``fc1.weight``), so the checkpoint loads into the unparametrized model.
    """
    state = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    parametrized: dict[str, nn.Module] = {}
    for path, module in model.named_modules():
        if P.is_parametrized(module):
            prefix = f"{path}." if path else ""
            parametrized[f"{prefix}parametrizations."] = module
            for name in module.parametrizations:  # type: ignore[union-attr]
                out[f"{prefix}{name}"] = getattr(module, name).detach()
    for key, value in state.items():
        if not any(key.startswith(p) for p in parametrized):
            out[key] = value
    return out


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    spec: ModelSpec,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` as ``<path>.safetensors`` + ``<path>.json``; a folder gets ``model.*``.

    Returns the path of the ``.safetensors`` file.
    """
    p = Path(path)
    if p.suffix not in (".safetensors", ".json") and (p.is_dir() or not p.suffix):
        p = p / DEFAULT_NAME
    weights_path, sidecar_path = _paths(p)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in effective_state_dict(model).items()}
    sidecar = {"format": FORMAT, "version": FORMAT_VERSION, "model": spec.to_dict(), **(meta or {})}
    atomic_write_bytes(weights_path, st_save(tensors, metadata={"format": FORMAT}))
    atomic_write_bytes(sidecar_path, json.dumps(sidecar, indent=2, default=str).encode())
    return weights_path


def _describe_foreign(head: bytes) -> str | None:
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "a Python pickle"
    if head[:2] == b"PK":
        return "a zip archive (torch.save format, which holds pickles)"
    return None


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Validate the safetensors framing (8-byte header length, JSON header), then load tensors."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    foreign = _describe_foreign(raw[:2])
    if foreign:
        raise CheckpointError(
            f"{path} is {foreign}, not a safetensors checkpoint; refusing to unpickle it "
            "(convert it with safetensors in a trusted environment)"
        )
    if len(raw) < 10:
        raise CheckpointError(f"{path}: not a safetensors checkpoint (only {len(raw)} bytes)")
    (header_len,) = struct.unpack("<Q", raw[:8])
    if header_len > min(MAX_HEADER, len(raw) - 8) or raw[8:9] != b"{":
        raise CheckpointError(f"{path}: not a safetensors checkpoint (bad header)")
    try:
        json.loads(raw[8 : 8 + header_len])
        return st_load(raw)
    except Exception as exc:  # the Rust parser raises its own types; all mean "corrupt"
        raise CheckpointError(f"{path}: corrupt safetensors checkpoint ({exc})") from None


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model saved at ``path`` (either file of the pair, or its folder).

    Raises CheckpointError with one line for a missing, foreign (pickle), corrupt or mismatched
    checkpoint.
    """
    weights_path, sidecar_path = _paths(path)
    if not weights_path.exists() and Path(path).exists() and Path(path).is_file():
        weights_path = Path(path)  # a file with another extension: check what it is anyway
    tensors = read_safetensors(weights_path)
    try:
        meta = json.loads(sidecar_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint sidecar missing: {sidecar_path}") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{sidecar_path}: unreadable JSON sidecar ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{sidecar_path}: not a rankrobust checkpoint sidecar")
    try:
        spec = ModelSpec.from_dict(meta["model"])
        model = spec.build()
    except (KeyError, ConfigError) as exc:
        raise CheckpointError(f"{sidecar_path}: cannot rebuild the model ({exc})") from None
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise CheckpointError(f"{weights_path}: weights do not match the model spec ({detail})") from None
    model.to(device).eval()
    return Checkpoint(model, spec, meta, weights_path)
