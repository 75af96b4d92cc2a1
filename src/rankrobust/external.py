"""Any PyTorch model: a factory (:mod:`rankrobust.factory`) plus a file of weights.

Weights come from

* a ``.safetensors`` file (:func:`rankrobust.checkpoint.read_safetensors`, which checks the
  framing and refuses pickles), or
* only when ``allow_torch_load`` is set, a ``torch.save`` file, read with
  ``torch.load(path, weights_only=True)``: PyTorch's restricted unpickler, which refuses any
  global outside its allow-list (so a ``__reduce__`` payload never runs). Its result must be a
  flat ``{name: tensor}`` dict, or a checkpoint holding one under ``state_dict`` (Lightning,
  RobustBench), ``model_state_dict`` or ``model``; its other entries (epoch, optimizer) are
  ignored.

State-dict conventions: keys saved through ``nn.DataParallel`` / DDP (``module.``) or a wrapper
(``model.``) carry a prefix the bare model lacks. A shared leading prefix is stripped only when
that makes the file's keys *exactly* the model's (:func:`match_keys`); what was read and
stripped is reported through ``note``. Anything else, missing or unexpected keys and shape
mismatches are refused with one line naming the first problem. Nothing here is imported at CLI
parser build time.
"""

from __future__ import annotations

import math
import os
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from rankrobust.attacks.base import output_classes
from rankrobust.checkpoint import MAX_WEIGHTS_BYTES, check_dtypes, read_safetensors
from rankrobust.data.files import open_regular
from rankrobust.errors import CheckpointError, CheckpointOptionError, ConfigOptionError
from rankrobust.factory import build_from_factory
from rankrobust.foreign import HEAD_BYTES, sniff
from rankrobust.models.adapter import ModelAdapter, Normalization

Note = Callable[[str], None]  # receives one-line notes for the user (the CLI prints them on stderr)
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
MAX_PREFIX_DEPTH = 3  # e.g. "model.module." (a DataParallel model inside a Lightning module)
MAX_INPUT_ELEMENTS = 2**24  # C·H·W of one input: 64 MiB in float32, 50x ImageNet's 224×224×3

ALLOW_TORCH_LOAD = "allow_torch_load=True"  # how a library error names the option (OptionError)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _refusal_detail(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc))
    found = re.search(r"WeightsUnpickler error: ([^\n]*?)(?: was not an allowed| Please|\n|$)", text)
    if found:
        return found.group(1).strip()
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _is_flat(obj: object) -> bool:
    return isinstance(obj, Mapping) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _flat_tensor_dict(obj: object, path: Path, note: Note | None = None) -> dict[str, torch.Tensor]:
    """The state dict in ``obj``: ``obj`` itself when it is a flat {name: tensor} dict, else the
    one flat dict under a :data:`WRAPPER_KEYS` entry (a training checkpoint)."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds an object of type {type(obj).__name__}, not a state "
                              "dict (a flat dict of tensors)")
    if _is_flat(obj):
        return dict(obj)
    inner = [k for k in WRAPPER_KEYS if k in obj and _is_flat(obj[k])]
    if len(inner) == 1:
        others = sorted(str(k) for k in obj if k != inner[0])
        if note is not None:
            note(f"{path}: read the state dict under {inner[0]!r}"
                 + (f" (ignored: {', '.join(others[:6])}{', ...' if len(others) > 6 else ''})" if others else ""))
        return dict(obj[inner[0]])
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: not a flat dict of tensors (entry {key!r} is of type "
                                  f"{type(value).__name__}), nor a checkpoint with one state dict "
                                  f"under {', '.join(repr(k) for k in WRAPPER_KEYS)}; save "
                                  "model.state_dict() itself")
    raise AssertionError("unreachable: a mapping that is not flat has a non-tensor entry")


def read_state_dict(
    path: str | os.PathLike[str], *, allow_torch_load: bool = False, note: Note | None = None
) -> dict[str, torch.Tensor]:
    """{name: tensor} from a ``.safetensors`` file or, with ``allow_torch_load``, a ``torch.save``
    state dict or training checkpoint (``torch.load(weights_only=True)``, tensors mapped to the
    CPU; see the module docstring).

    CheckpointError in one line for a missing or unreadable file, one that is not a regular file
    or larger than :data:`~rankrobust.checkpoint.MAX_WEIGHTS_BYTES`, a torch.save file without
    ``allow_torch_load``, a file the restricted unpickler refuses, or anything but a flat dict of
    tensors (or a checkpoint holding exactly one). ``note`` hears which entry was read.
    """
    p = Path(path)
    # a regular file of bounded size only (no FIFO, device or sparse giant), checked once more on
    # the descriptor that torch.load then reads
    with open_regular(p, MAX_WEIGHTS_BYTES, CheckpointError, "weights file") as fh:
        try:
            head = fh.read(HEAD_BYTES)
        except OSError as exc:
            raise CheckpointError(f"cannot read weights file {p}: {exc.strerror or exc}") from None
        kind = sniff(head)
        if kind is None:
            return read_safetensors(p)  # refuses anything that is not safetensors, in one line
        if not allow_torch_load:
            raise CheckpointOptionError(
                f"{p} is {kind}, not safetensors; pass {{option}} to read a plain state dict with "
                "torch.load(weights_only=True), or convert it", ALLOW_TORCH_LOAD)
        fh.seek(0)
        obj = _torch_load(fh, p)
    return _flat_tensor_dict(obj, p, note)


def _shared_prefix(keys: Sequence[str]) -> str | None:
    """'module.' when every key starts with that same first dotted component, else None."""
    heads = {k.partition(".")[0] for k in keys}
    if len(heads) != 1 or not keys or any("." not in k for k in keys):
        return None
    return heads.pop() + "."


def match_keys(
    expected: Sequence[str], tensors: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], str]:
    """``tensors`` renamed to the model's keys ``expected`` and the prefix stripped ("" if none).

    A leading prefix shared by *every* key of the file (``module.``, ``model.``, up to
    :data:`MAX_PREFIX_DEPTH` components, e.g. ``model.module.``) is stripped only when the
    stripped keys are exactly the model's; otherwise ``tensors`` come back unchanged, for
    :func:`first_mismatch` to name the problem.
    """
    want = set(expected)
    current, stripped = dict(tensors), ""
    for _ in range(MAX_PREFIX_DEPTH + 1):
        if set(current) == want:
            return current, stripped
        prefix = _shared_prefix(list(current))
        if prefix is None or len(stripped.split(".")) > MAX_PREFIX_DEPTH:
            break
        current = {k[len(prefix):]: v for k, v in current.items()}
        stripped += prefix
    return dict(tensors), ""


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
    unexpected key, then shape), in the model's order; None when they match. A prefix that all
    the file's keys share is named, as a hint."""
    expected = model.state_dict()
    prefix = _shared_prefix(list(tensors))
    hint = (f" (every key in the file starts with {prefix!r}; stripping it does not give the "
            "model's keys either)" if prefix and not any(k.startswith(prefix) for k in expected) else "")
    for key in expected:
        if key not in tensors:
            return f"missing key {key!r}{hint}"
    for key in tensors:
        if key not in expected:
            return f"unexpected key {key!r}{hint}"
    for key, value in expected.items():
        if tuple(value.shape) != tuple(tensors[key].shape):
            return (f"{key!r} has shape {tuple(tensors[key].shape)} in the file but "
                    f"{tuple(value.shape)} in the model")
    return None


def check_input_shape(in_shape: Sequence[int]) -> tuple[int, ...]:
    """(C, H, W) as ints, each ≥ 1, with C·H·W ≤ :data:`MAX_INPUT_ELEMENTS`; checked before any
    input of that shape is allocated (ConfigError naming ``in_shape``)."""
    shape = tuple(int(v) for v in in_shape)
    shown = ",".join(map(str, shape))
    if not shape or min(shape) < 1:
        raise ConfigOptionError(f"{{option}} {shown}: expected positive sizes", "in_shape")
    if math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise ConfigOptionError(f"{{option}} {shown}: {math.prod(shape):,} values per input, above "
                                f"the limit of {MAX_INPUT_ELEMENTS:,}", "in_shape")
    return shape


def load_weights(model: nn.Module, weights: str | os.PathLike[str], name: str, *,
                 allow_torch_load: bool = False, note: Note | None = None) -> None:
    """Read ``weights`` (:func:`read_state_dict`), match their keys (:func:`match_keys`) and
    load them strictly into ``model``; CheckpointError in one line on any mismatch or a
    non-finite value (as stored, or as cast into the model's dtype)."""
    tensors = read_state_dict(weights, allow_torch_load=allow_torch_load, note=note)
    tensors, stripped = match_keys(list(model.state_dict()), tensors)
    if stripped and note is not None:
        note(f"{weights}: stripped the prefix {stripped!r} from every key (saved through "
             f"{'nn.DataParallel/DDP' if stripped.startswith('module.') else 'a wrapper module'})")
    mismatch = first_mismatch(model, tensors)
    if mismatch is not None:
        raise CheckpointError(f"{weights}: weights do not match the model of {name}: {mismatch}")
    check_dtypes(model.state_dict(), tensors, weights)
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{weights}: tensor {key!r} holds NaN or infinite values")
    model.load_state_dict(tensors, strict=True)
    for key, value in model.state_dict().items():  # as loaded: float64 1e300 is inf in float32
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{weights}: tensor {key!r} is NaN or infinite in the model's "
                                  f"{str(value.dtype).removeprefix('torch.')} (out of range)")


def load_external_model(
    factory: str,
    weights: str | os.PathLike[str],
    *,
    in_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    allow_torch_load: bool = False,
    device: str | torch.device = "cpu",
    factory_args: Mapping[str, Any] | None = None,
    logits: str | int | None = None,
    normalization: Normalization | None = None,
    note: Note | None = None,
) -> nn.Module:
    """The model of ``factory`` (:func:`rankrobust.factory.build_from_factory` with
    ``factory_args``) with the ``weights`` loaded (strictly, :func:`load_weights`), on
    ``device``, in eval mode; behind a :class:`~rankrobust.models.adapter.ModelAdapter` when
    ``logits`` or ``normalization`` is given (its ``net`` is the factory's module).

    With ``in_shape`` = (C, H, W) (bounded first: :func:`check_input_shape`) the model is probed
    with one zero input (1, C, H, W): it must return logits (1, K), with K = ``num_classes``
    when that is given; ConfigError otherwise. ``note`` hears which checkpoint entry was read
    and which key prefix was stripped.
    """
    if in_shape is not None:
        in_shape = check_input_shape(in_shape)
        if normalization is not None:
            normalization.check_channels(in_shape[0])
    net = build_from_factory(factory, num_classes, factory_args)
    load_weights(net, weights, factory, allow_torch_load=allow_torch_load, note=note)
    model = net if logits is None and normalization is None else ModelAdapter(net, logits, normalization)
    model.to(device).eval()
    if in_shape is not None:
        probe_classes(model, in_shape, num_classes, factory)
    return model


def probe_classes(model: nn.Module, in_shape: Sequence[int], num_classes: int | None, name: str) -> int:
    """K for a model mapping x (1, C, H, W) to finite logits (1, K)
    (:func:`rankrobust.attacks.base.output_classes` on a zero input), checked against
    ``num_classes``; the shape is bounded (:func:`check_input_shape`) before the input is
    allocated. A model returning a tuple, dict or object is named with the way to pick its
    logits (:func:`rankrobust.models.adapter.select_logits`)."""
    shape = check_input_shape(in_shape)
    shown = ", ".join(map(str, shape))
    probe = model if isinstance(model, ModelAdapter) else ModelAdapter(model)
    try:
        k = output_classes(probe, torch.zeros(1, *shape))
    except RuntimeError as exc:  # shape errors of the user's layers: the input shape is wrong
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigOptionError(f"{{option}} {','.join(map(str, shape))}: the model of {name} "
                                f"fails on an input (1, {shown}) ({first})", "in_shape") from None
    if num_classes is not None and k != num_classes:
        raise ConfigOptionError(f"the model of {name} gives {k} logits but {{option}} is "
                                f"{num_classes}", "num_classes")
    return k
