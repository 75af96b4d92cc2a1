"""Any PyTorch model: a factory ``package.module:function`` plus a file of weights.

The factory is any callable returning an ``nn.Module`` (a function or a class); it is called with
``num_classes=K`` when its signature accepts that keyword and K is known, else with no arguments.
Weights come from

* a ``.safetensors`` file (:func:`rankrobust.checkpoint.read_safetensors`, which checks the
  framing and refuses pickles), or
* only when ``allow_torch_load`` is set, a ``torch.save`` state dict, read with
  ``torch.load(path, weights_only=True)``: PyTorch's restricted unpickler, which refuses any
  global outside its allow-list (so a ``__reduce__`` payload never runs). Its result must be a
  flat ``{name: tensor}`` dict; nested checkpoints ({"state_dict": ...}, optimizers) are refused.

Anything else, missing or unexpected keys and shape mismatches are refused with one line
naming the first problem. Nothing here is imported at CLI parser build time.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from rankrobust.checkpoint import MAX_WEIGHTS_BYTES, check_dtypes, read_safetensors
from rankrobust.data.files import open_regular
from rankrobust.errors import CheckpointError, ConfigError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def import_factory(spec: str) -> Callable[..., Any]:
    """The callable named by ``"package.module:attr"`` (``attr`` may be dotted: ``mod:Cls.make``).

    ConfigError in one line when the spec is malformed, the module cannot be imported, or the
    attribute is missing or not callable. Errors raised while the module runs (a bug in it)
    propagate with their traceback.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name.strip() or not attr.strip() or ":" in attr:
        raise ConfigError(f"--model-factory {spec!r}: expected 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--model-factory {spec}: cannot import module {module_name!r} "
                          f"({exc})") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"--model-factory {spec}: module {module_name!r} has no attribute "
                              f"{attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"--model-factory {spec}: {attr!r} (of type {type(target).__name__}) is "
                          "not callable")
    return target  # type: ignore[no-any-return]


def _accepts_num_classes(factory: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False
    return "num_classes" in params and params["num_classes"].kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def build_from_factory(spec: str, num_classes: int | None = None) -> nn.Module:
    """Call the factory ``spec`` (with ``num_classes`` if it takes it and it is given) and check
    that it returns an ``nn.Module``."""
    factory = import_factory(spec)
    kwargs = {"num_classes": num_classes} if num_classes is not None and _accepts_num_classes(factory) else {}
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:  # required arguments the CLI cannot supply (checked before the call)
        call = "num_classes=" + str(num_classes) if kwargs else "no arguments"
        raise ConfigError(f"--model-factory {spec}: cannot be called with {call} ({exc}); wrap it in "
                          "a function that builds the model") from None
    except ValueError:  # no signature to check (a builtin): let the call speak for itself
        pass
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"--model-factory {spec}: returned an object of type "
                          f"{type(model).__name__}, not a torch.nn.Module")
    return model


def _torch_file_kind(head: bytes) -> str | None:
    """What a torch.save file starts with: a zip archive (the default format) or a raw pickle."""
    if head[:4] == b"PK\x03\x04":
        return "a torch.save zip archive"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "a Python pickle"
    return None


def _refusal_detail(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc))
    found = re.search(r"WeightsUnpickler error: ([^\n]*?)(?: was not an allowed| Please|\n|$)", text)
    if found:
        return found.group(1).strip()
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _flat_tensor_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds an object of type {type(obj).__name__}, not a state "
                              "dict (a flat dict of tensors)")
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: not a flat dict of tensors (entry {key!r} is of type "
                                  f"{type(value).__name__}); save model.state_dict() itself")
    return dict(obj)


def read_state_dict(path: str | os.PathLike[str], *, allow_torch_load: bool = False) -> dict[str, torch.Tensor]:
    """{name: tensor} from a ``.safetensors`` file or, with ``allow_torch_load``, a ``torch.save``
    state dict (``torch.load(weights_only=True)``, tensors mapped to the CPU).

    CheckpointError in one line for a missing or unreadable file, one that is not a regular file
    or larger than :data:`~rankrobust.checkpoint.MAX_WEIGHTS_BYTES`, a torch.save file without
    ``allow_torch_load``, a file the restricted unpickler refuses, or anything but a flat dict of
    tensors.
    """
    p = Path(path)
    # a regular file of bounded size only (no FIFO, device or sparse giant), checked once more on
    # the descriptor that torch.load then reads
    with open_regular(p, MAX_WEIGHTS_BYTES, CheckpointError, "weights file") as fh:
        try:
            head = fh.read(8)
        except OSError as exc:
            raise CheckpointError(f"cannot read weights file {p}: {exc.strerror or exc}") from None
        kind = _torch_file_kind(head)
        if kind is None:
            return read_safetensors(p)  # refuses anything that is not safetensors, in one line
        if not allow_torch_load:
            raise CheckpointError(f"{p} is {kind}, not safetensors; pass --allow-torch-load to read "
                                  "a plain state dict with torch.load(weights_only=True), or convert it")
        fh.seek(0)
        obj = _torch_load(fh, p)
    return _flat_tensor_dict(obj, p)


def _torch_load(fh: BinaryIO, p: Path) -> object:
    """``torch.load(fh, weights_only=True)`` with its refusals as one-line CheckpointErrors."""
    try:
        return torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{p}: torch.load(weights_only=True) refused it "
                              f"({_refusal_detail(exc)}); only plain state dicts are read") from None
    except (RuntimeError, EOFError) as exc:  # torch's zip reader: truncated or corrupt archive
        raise CheckpointError(f"{p}: corrupt torch.save file ({_refusal_detail(exc)})") from None


def first_mismatch(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> str | None:
    """The first difference between ``model.state_dict()`` and ``tensors`` (missing key,
    unexpected key, then shape), in the model's order; None when they match."""
    expected = model.state_dict()
    for key in expected:
        if key not in tensors:
            return f"missing key {key!r}"
    for key in tensors:
        if key not in expected:
            return f"unexpected key {key!r}"
    for key, value in expected.items():
        if tuple(value.shape) != tuple(tensors[key].shape):
            return (f"{key!r} has shape {tuple(tensors[key].shape)} in the file but "
                    f"{tuple(value.shape)} in the model")
    return None


def load_external_model(
    factory: str,
    weights: str | os.PathLike[str],
    *,
    in_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    allow_torch_load: bool = False,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """The model of ``factory`` with the ``weights`` loaded (strictly), on ``device``, in eval mode.

    With ``in_shape`` = (C, H, W) the model is probed with one zero input (1, C, H, W): it must
    return logits (1, K), with K = ``num_classes`` when that is given; ConfigError otherwise.
    """
    model = build_from_factory(factory, num_classes)
    tensors = read_state_dict(weights, allow_torch_load=allow_torch_load)
    mismatch = first_mismatch(model, tensors)
    if mismatch is not None:
        raise CheckpointError(f"{weights}: weights do not match the model of {factory}: {mismatch}")
    check_dtypes(model.state_dict(), tensors, weights)
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{weights}: tensor {key!r} holds NaN or infinite values")
    model.load_state_dict(tensors, strict=True)
    for key, value in model.state_dict().items():  # as loaded: float64 1e300 is inf in float32
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{weights}: tensor {key!r} is NaN or infinite in the model's "
                                  f"{str(value.dtype).removeprefix('torch.')} (out of range)")
    model.to(device).eval()
    if in_shape is not None:
        output_classes(model, in_shape, num_classes, factory)
    return model


def output_classes(model: nn.Module, in_shape: Sequence[int], num_classes: int | None, name: str) -> int:
    """K for a model mapping x (1, C, H, W) to logits (1, K), checked against ``num_classes``."""
    shape = tuple(int(v) for v in in_shape)
    param = next(iter(model.parameters()), None)
    x = torch.zeros(1, *shape, device=param.device if param is not None else "cpu",
                    dtype=param.dtype if param is not None and param.is_floating_point() else torch.float32)
    try:
        with torch.no_grad():
            out = model(x)
    except RuntimeError as exc:  # shape errors of the user's layers: the input shape is wrong
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"--input-shape {','.join(map(str, shape))}: the model of {name} fails "
                          f"on an input (1, {', '.join(map(str, shape))}) ({first})") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"the model of {name} maps an input (1, {', '.join(map(str, shape))}) to "
                          f"{got}, expected logits (1, K)")
    if num_classes is not None and out.shape[1] != num_classes:
        raise ConfigError(f"the model of {name} gives {out.shape[1]} logits but --num-classes is "
                          f"{num_classes}")
    return int(out.shape[1])
