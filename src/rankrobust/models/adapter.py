"""``ModelAdapter``: a user's network seen as rankrobust's attacks need it, x in [0, 1] → logits.

Two conventions of other projects are bridged here, once, for every command and the Python API:

* **Normalized inputs.** A network trained on z = (x − mean) / std (per channel) is wrapped as
  x ↦ net((x − mean) / std), so attacks run on pixels x ∈ [0, 1] and every ε is in pixel units
  (the same convention as rankrobust's own models, whose first layer is :class:`Normalize`).
* **Outputs that are not a logits tensor.** A tuple or list (``(logits, features)``), a dict
  (``{"logits": ...}``) or an object with attributes (Hugging Face's ``ModelOutput``, whose
  ``.logits`` is the tensor) is reduced to its logits by ``logits``: an int indexes a tuple or
  list (or ``to_tuple()`` of a ModelOutput), a string names a dict key or an attribute.

A wrong choice is one line (ConfigError) naming what the network returns.

Example::

    model = ModelAdapter(net, logits="logits", normalization=Normalization.of(
        [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]))
    pgd(model, x, y, [8 / 255])
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rankrobust.errors import ConfigError
from rankrobust.models.normalize import Normalize

LogitsKey = str | int


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std (equal lengths, finite, std > 0) of z = (x − mean) / std."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, mean: Sequence[float] | None, std: Sequence[float] | None) -> Normalization:
        """Checked: both given, equal non-zero lengths, finite values, every std > 0."""
        if mean is None or std is None:
            raise ConfigError("--mean and --std go together: give both, one value per channel")
        m, s = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        if not m or len(m) != len(s):
            raise ConfigError(f"--mean has {len(m)} values but --std has {len(s)}; give one per channel")
        if not all(math.isfinite(v) for v in m + s) or min(s) <= 0:
            raise ConfigError(f"--mean and --std must be finite with every std > 0, got mean {list(m)} "
                              f"std {list(s)}")
        return cls(m, s)

    def check_channels(self, channels: int) -> None:
        """ConfigError unless there is one value per input channel."""
        if len(self.mean) != channels:
            raise ConfigError(f"--mean/--std have {len(self.mean)} values but the inputs have "
                              f"{channels} channel{'s' if channels != 1 else ''}")

    def describe(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


def parse_logits(text: str) -> LogitsKey:
    """'0' or '-1' → an index, anything else → a key or attribute name."""
    value = text.strip()
    if not value:
        raise ConfigError("--logits: expected a key or an index, got an empty string")
    return int(value) if re.fullmatch(r"-?\d{1,9}", value) else value


def describe_output(out: object) -> str:
    """What a network returned, in words: 'a dict with keys 'logits', 'aux'', 'a tuple of 2', ..."""
    if isinstance(out, torch.Tensor):
        return f"a tensor of shape {tuple(out.shape)}"
    if isinstance(out, Mapping):
        keys = [repr(k) for k in list(out)[:8]]
        return f"a {type(out).__name__} with keys {', '.join(keys) or '(none)'}"
    if isinstance(out, tuple | list):
        return f"a {type(out).__name__} of {len(out)}"
    names = [n for n in vars(out) if not n.startswith("_")][:8] if hasattr(out, "__dict__") else []
    return f"an object of type {type(out).__name__}" + (f" with attributes {', '.join(names)}" if names else "")


def select_logits(out: object, key: LogitsKey | None) -> torch.Tensor:
    """The logits tensor in a network's output ``out`` (see the module docstring)."""
    if key is None:
        if isinstance(out, torch.Tensor):
            return out
        raise ConfigError(f"the model returns {describe_output(out)}, not a logits tensor; pass "
                          "--logits KEY|INDEX (logits= in ModelAdapter) to pick it")
    picked: Any
    if isinstance(key, int):
        seq = out.to_tuple() if hasattr(out, "to_tuple") else out
        if not isinstance(seq, tuple | list):
            raise ConfigError(f"--logits {key}: the model returns {describe_output(out)}, which has "
                              "no positions; pass a key or attribute name")
        if not -len(seq) <= key < len(seq):
            raise ConfigError(f"--logits {key}: out of range, the model returns {describe_output(out)}")
        picked = seq[key]
    elif isinstance(out, Mapping):
        if key not in out:
            raise ConfigError(f"--logits {key}: no such key, the model returns {describe_output(out)}")
        picked = out[key]
    elif hasattr(out, key) and not isinstance(out, torch.Tensor):
        picked = getattr(out, key)
    else:
        raise ConfigError(f"--logits {key}: the model returns {describe_output(out)}, without "
                          f"{key!r}")
    if not isinstance(picked, torch.Tensor):
        raise ConfigError(f"--logits {key}: picks an object of type {type(picked).__name__}, not a "
                          "tensor of logits")
    return picked


class ModelAdapter(nn.Module):
    """x (B, C, H, W) in [0, 1] ↦ select_logits(net((x − mean) / std), logits): the user's ``net``
    (as the submodule ``net``) behind an optional :class:`Normalization` and logits choice."""

    def __init__(self, net: nn.Module, logits: LogitsKey | None = None,
                 normalization: Normalization | None = None) -> None:
        super().__init__()
        self.net = net
        self.logits = logits
        self.normalization = normalization
        self.normalize = (Normalize(normalization.mean, normalization.std)
                          if normalization is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize is not None:
            assert self.normalization is not None
            if x.ndim != 4:
                raise ConfigError(f"--mean/--std apply to inputs (B, C, H, W), got {tuple(x.shape)}")
            self.normalization.check_channels(x.shape[1])
            x = self.normalize(x)
        return select_logits(self.net(x), self.logits)

    def describe(self) -> dict[str, Any]:
        """The adaptation, for results: {"logits": ..., "normalization": {...} or None}."""
        return {"logits": self.logits,
                "normalization": None if self.normalization is None else self.normalization.describe()}


def unwrap(model: nn.Module) -> nn.Module:
    """The user's network inside a :class:`ModelAdapter` (``model`` itself otherwise)."""
    return model.net if isinstance(model, ModelAdapter) else model
