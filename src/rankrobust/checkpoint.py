"""Checkpoints: weights in safetensors plus a JSON sidecar; nothing is ever unpickled.

A checkpoint ``NAME`` is two files, ``NAME.safetensors`` (tensors only) and ``NAME.json``
(format tag, model spec, training config, metrics). ``load_checkpoint`` accepts either file or
the folder holding ``model.safetensors``. Before anything is parsed the file's leading bytes are
checked: a pickle or a ``torch.save`` zip is refused with a clear error and its code never runs.

Loading never trusts a size it has not checked: both files must be regular files within
:data:`MAX_SIDECAR_BYTES` / :data:`MAX_WEIGHTS_BYTES`; the sidecar is strict JSON (no NaN or
Infinity, no duplicate keys, a known format version); and the model's tensor shapes, computed
without allocating (see :func:`rankrobust.models.state_shapes`), must equal those the weights
file declares before the model is built. Non-finite weights are refused, naming the tensor,
both as stored and as loaded into the model's dtype; the input normalization buffers must equal
the spec's.

Saving checks every target path first, writes each file to a temporary name and renames it, so a
crash or a bad path never leaves half a checkpoint; files get mode 0o666 minus the umask.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn
from torch.nn.utils import parametrize as P

from rankrobust.configuration import brief, clip
from rankrobust.data.files import GiB, MiB, read_regular
from rankrobust.errors import CheckpointError, ConfigError
from rankrobust.foreign import HEAD_BYTES, sniff
from rankrobust.models import ModelSpec, Normalize

FORMAT = "rankrobust-checkpoint"
FORMAT_VERSION = 1
DEFAULT_NAME = "model"
MAX_HEADER = 100 * 1024 * 1024
MAX_SIDECAR_BYTES = 16 * MiB
MAX_WEIGHTS_BYTES = 4 * GiB  # ≥ MAX_PARAMETERS float32 weights plus header
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


@dataclass
class Checkpoint:
    """A rebuilt model (on CPU unless asked otherwise, in eval mode) and its sidecar metadata."""

    model: nn.Module
    spec: ModelSpec
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _umask() -> int:
    try:  # Linux ≥ 4.7 reports it without changing it
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename.

    The file gets mode ``0o666 & ~umask``, as ``open(path, "w")`` would give it (a temporary
    file from ``mkstemp`` is 0600). A path that cannot be written raises CheckpointError naming it.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise CheckpointError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise CheckpointError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def _check_target(path: Path) -> None:
    """CheckpointError unless ``path`` can be written: not a folder, its folder creatable."""
    if path.is_dir():
        raise CheckpointError(f"cannot write {path}: it is a folder")
    parent = path.parent
    while not parent.exists():  # the nearest existing ancestor must be a writable folder
        parent = parent.parent
    if not parent.is_dir():
        raise CheckpointError(f"cannot write {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CheckpointError(f"cannot write {path}: {parent} is not writable")


def _strict_json(text: str | bytes) -> Any:
    """``json.loads`` that refuses NaN/Infinity, out-of-range numbers and duplicate keys
    (ValueError); deep nesting raises RecursionError."""

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a number JSON allows")

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"number {brief(text)} is out of range")
        return value

    def integer(text: str) -> int:
        if len(text) > 40:
            raise ValueError(f"integer {brief(text)} is out of range")
        return int(text)

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {brief(key)}")
            out[key] = value
        return out

    return json.loads(text, parse_constant=constant, parse_float=number, parse_int=integer,
                      object_pairs_hook=unique)


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
    extra_files: Mapping[str, bytes] | None = None,
) -> Path:
    """Save ``model`` as ``<path>.safetensors`` + ``<path>.json``; a folder gets ``model.*``.

    ``extra_files`` ({file name: bytes}, e.g. ``{"history.json": ...}``) are written into the
    folder of the checkpoint. Every target is checked before the first byte is written
    (CheckpointError naming it), then each file is written atomically. Returns the path of the
    ``.safetensors`` file.
    """
    p = Path(path)
    if p.suffix not in (".safetensors", ".json") and (p.is_dir() or not p.suffix):
        p = p / DEFAULT_NAME
    weights_path, sidecar_path = _paths(p)
    extras = {weights_path.parent / name: data for name, data in (extra_files or {}).items()}
    for name in extra_files or {}:
        if Path(name).name != name or name in ("", ".", ".."):
            raise CheckpointError(f"extra checkpoint file {name!r}: expected a plain file name")
    targets = [weights_path, sidecar_path, *extras]
    for target in targets:
        _check_target(target)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in effective_state_dict(model).items()}
    sidecar = {"format": FORMAT, "version": FORMAT_VERSION, "model": spec.to_dict(), **(meta or {})}
    payloads = {
        weights_path: st_save(tensors, metadata={"format": FORMAT}),
        sidecar_path: json.dumps(sidecar, indent=2, default=str).encode(),
        **extras,
    }
    for target, data in payloads.items():
        atomic_write_bytes(target, data)
    return weights_path


def _read_weights(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The raw bytes of a safetensors file and its parsed header, framing checked."""
    raw = read_regular(path, MAX_WEIGHTS_BYTES, CheckpointError, "checkpoint")
    foreign = sniff(raw[:HEAD_BYTES])
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
        header = _strict_json(raw[8 : 8 + header_len])
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: corrupt safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not a mapping)")
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise CheckpointError(f"{path}: corrupt safetensors header (entry {brief(name)})")
    return raw, header


def _load_tensors(path: Path, raw: bytes) -> dict[str, torch.Tensor]:
    try:
        return st_load(raw)
    except MemoryError:
        raise CheckpointError(f"{path}: not enough memory to load the checkpoint") from None
    except Exception as exc:  # the Rust parser raises its own types; all mean "corrupt"
        raise CheckpointError(f"{path}: corrupt safetensors checkpoint ({clip(str(exc), 200)})") from None


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Validate the safetensors framing (8-byte header length, JSON header), then load tensors.

    Only a regular file of at most :data:`MAX_WEIGHTS_BYTES` is read.
    """
    raw, _ = _read_weights(Path(path))
    return _load_tensors(Path(path), raw)


def _read_sidecar(path: Path) -> dict[str, Any]:
    """The sidecar as a dict: strict JSON, our format tag and a known version."""
    if not os.path.lexists(path):
        raise CheckpointError(f"checkpoint sidecar missing: {path}")
    raw = read_regular(path, MAX_SIDECAR_BYTES, CheckpointError, "checkpoint sidecar")
    try:
        meta = _strict_json(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        kind = "nested too deeply" if isinstance(exc, RecursionError) else clip(str(exc), 120)
        raise CheckpointError(f"{path}: unreadable JSON sidecar ({kind})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a rankrobust checkpoint sidecar")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: unknown checkpoint format version {brief(version)} (this rankrobust reads "
            f"version {FORMAT_VERSION}; a newer rankrobust may have written it)"
        )
    if "model" not in meta:
        raise CheckpointError(f"{path}: cannot rebuild the model (the sidecar has no 'model')")
    return meta


def _match(weights_path: Path, header: dict[str, Any], expected: dict[str, tuple[int, ...]]) -> None:
    """CheckpointError unless the file declares exactly the expected tensors and shapes."""
    found = {k: v for k, v in header.items() if k != "__metadata__"}
    problem = ""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    if missing:
        problem = f"missing tensor {missing[0]!r}"
    elif unexpected:
        problem = f"unexpected tensor {brief(unexpected[0])}"
    else:
        for key, shape in expected.items():
            entry = found[key]
            if tuple(entry["shape"]) != shape:
                problem = (f"{key}: the file has {tuple(entry['shape'])}, the model spec needs "
                           f"{shape}")
                break
            if entry.get("dtype") not in FLOAT_DTYPES:
                problem = f"{key}: dtype {brief(entry.get('dtype'))} is not a float type"
                break
    if problem:
        raise CheckpointError(f"{weights_path}: weights do not match the model spec ({problem})")


def check_dtypes(expected: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor],
                 where: str | os.PathLike[str]) -> None:
    """CheckpointError naming the first key whose file tensor would be cast with a loss: only
    real floating dtypes load into the model's floating tensors (a complex value would lose its
    imaginary part, an integer or bool is not a weight); an integer buffer (BatchNorm's
    ``num_batches_tracked``) takes integers only."""
    for key, target in expected.items():
        found = tensors.get(key)
        if found is None:
            continue
        ok = (found.is_floating_point() if target.is_floating_point()
              else not (found.is_floating_point() or found.is_complex() or found.dtype == torch.bool))
        if not ok:
            raise CheckpointError(
                f"{where}: tensor {key!r} is {str(found.dtype).removeprefix('torch.')}, but the "
                f"model's is {str(target.dtype).removeprefix('torch.')}; only real floating-point "
                "weights load (complex, integer and bool tensors are refused)")


def fixed_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the input normalization buffers (``Normalize.mean`` / ``.std``) of a freshly
    built model: they come from the model spec and training never changes them."""
    return {f"{name}.{key}" if name else key: getattr(module, key).detach().clone()
            for name, module in model.named_modules() if isinstance(module, Normalize)
            for key in ("mean", "std")}


def check_loaded(model: nn.Module, weights_path: Path, fixed: Mapping[str, torch.Tensor]) -> None:
    """CheckpointError unless, after loading, every floating tensor of ``model`` is finite (a
    finite float64 value such as 1e300 in the file becomes inf in a float32 model) and the
    ``fixed`` buffers are unchanged (a std of 0 or −1 in the weights file would otherwise
    override the spec's and divide the inputs by it)."""
    state = model.state_dict()
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{weights_path}: tensor {name!r} is NaN or infinite in the "
                                  f"model's {str(tensor.dtype).removeprefix('torch.')} (out of range)")
    for name, before in fixed.items():
        if not torch.equal(state[name], before):
            raise CheckpointError(f"{weights_path}: buffer {name!r} differs from the model spec's "
                                  f"normalization ({brief(state[name].flatten().tolist())} vs "
                                  f"{brief(before.flatten().tolist())})")


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model saved at ``path`` (either file of the pair, or its folder).

    Raises CheckpointError with one line for a missing, foreign (pickle), oversized, corrupt or
    mismatched checkpoint, and for weights that are NaN or infinite (see the module docstring).
    """
    weights_path, sidecar_path = _paths(path)
    if not weights_path.exists() and Path(path).exists() and Path(path).is_file():
        weights_path = Path(path)  # a file with another extension: check what it is anyway
    raw, header = _read_weights(weights_path)
    meta = _read_sidecar(sidecar_path)
    try:
        spec = ModelSpec.from_dict(meta["model"])
        expected = spec.state_shapes()  # on the meta device: nothing allocated yet
    except ConfigError as exc:
        raise CheckpointError(f"{sidecar_path}: cannot rebuild the model ({exc})") from None
    _match(weights_path, header, expected)
    tensors = _load_tensors(weights_path, raw)
    del raw
    for name, tensor in tensors.items():
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{weights_path}: tensor {name!r} holds NaN or infinite values")
    try:
        model = spec.build()
        fixed = fixed_buffers(model)  # set by the spec, never trained: the file must agree
        model.load_state_dict(tensors, strict=True)
    except ConfigError as exc:
        raise CheckpointError(f"{sidecar_path}: cannot rebuild the model ({exc})") from None
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise CheckpointError(f"{weights_path}: weights do not match the model spec ({detail})") from None
    check_loaded(model, weights_path, fixed)
    model.to(device).eval()
    return Checkpoint(model, spec, meta, weights_path)
