"""``analyze(model)``: one row of structure metrics per weight matrix, computed in a few batched calls.

All spectra come from :func:`singular_values_many` (float64 Gram eigenvalues by default) and are
zero-padded into one (L, k_max) tensor, so every spectral metric of every layer is one tensor
expression on the same σ: spectral σ₁, nuclear Σσ, Frobenius (Σσ²)^{1/2}, stable rank Σσ²/σ₁²,
effective and numerical rank. The entry metrics (ℓ1, effective sparsity) take one pass over each
matrix's entries in their own precision with float64 sums (:func:`_entry_stats_cpu` with numpy on
CPU, :func:`_entry_stats` elsewhere); its ℓ1 sum also tells non-finite weights (NaN or ±∞ make
Σ|w| non-finite) before any spectrum is computed. On CUDA everything stays on the model's device
until the final (L, C) table is copied to the host once.

Structure of the update W − W₀ (:func:`analyze_delta`): the same numeric metrics of each layer's
difference from a snapshot W₀ (:func:`snapshot`, e.g. the weights at initialization), in columns
named ``delta_<metric>`` (:data:`DELTA_COLUMNS`). Trained weights often stay close to their
initialization, so the structure of W mostly measures the init; the delta isolates what training
changed. A zero delta (W = W₀, e.g. at epoch 0) gives 0 in every delta column, as any zero
matrix does (no NaN): "no update" has effective rank 0, not 1.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from rankrobust.errors import ConfigError, NonFiniteError
from rankrobust.structure.matrices import ConvMode, layer_kind, layer_matrices, weight_modules
from rankrobust.structure.metrics import check_order, hill_numbers
from rankrobust.structure.spectrum import SpectrumMethod, pad_spectra, singular_values_many

if TYPE_CHECKING:
    import pandas as pd

COLUMNS: tuple[str, ...] = (
    "layer", "kind", "shape", "rows", "cols", "effective_rank", "effective_sparsity",
    "stable_rank", "numerical_rank", "nuclear_norm", "spectral_norm", "frobenius_norm", "l1_norm",
    "normalized_effective_rank", "normalized_effective_sparsity",
)
_NUMERIC = COLUMNS[5:]
DELTA_PREFIX = "delta_"
DELTA_COLUMNS: tuple[str, ...] = tuple(DELTA_PREFIX + c for c in _NUMERIC)


def _kinds(model: nn.Module, names: list[str]) -> list[str]:
    modules = weight_modules(model)
    return [layer_kind(modules[name.split("[", 1)[0]]) for name in names]


def _entry_stats(w: torch.Tensor, order: float) -> torch.Tensor:
    """(Σ|w|, D_α(|w|/Σ|w|)) as float64 (2,) on w's device, element-wise work in w's precision.

    With a = |w| and S = Σa the Shannon case needs no normalized copy of the entries:
    H = −Σ (a/S) log(a/S) = log S − (Σ a log a) / S; order 2 is S²/Σa² and order ∞ is S/max a.
    Sums accumulate in float64; other orders take the float64 :func:`hill_numbers` path. S = 0
    gives D = 0; a non-finite entry makes S non-finite.
    """
    a = w.reshape(-1).abs()
    if not a.is_floating_point() or a.dtype in (torch.float16, torch.bfloat16):
        a = a.to(torch.float32)
    total = a.sum(dtype=torch.float64)
    if order == 1:
        xlogx = torch.special.xlogy(a, a).sum(dtype=torch.float64)
        safe = torch.where(total > 0, total, torch.ones_like(total))
        value = torch.exp(torch.log(safe) - xlogx / safe)
    elif order == 2:
        squares = torch.linalg.vector_norm(a, dtype=torch.float64).square()
        value = total.square() / torch.where(squares > 0, squares, torch.ones_like(squares))
    elif math.isinf(order):
        top = a.max().to(torch.float64) if a.numel() else total
        value = total / torch.where(top > 0, top, torch.ones_like(top))
    else:
        value = hill_numbers(a.to(torch.float64), order)
    value = torch.where(total > 0, value, torch.zeros_like(value))
    return torch.stack([total, value])


def _entry_stats_cpu(w: torch.Tensor, order: float) -> tuple[float, float]:
    """(Σ|w|, D_α(|w|/Σ|w|)) of a CPU tensor: the math of :func:`_entry_stats`, done in numpy.

    The entries are read in place (half types as float32), a = |w| and a·log a are computed in
    that precision, and every sum accumulates in float64 (numpy's pairwise sum, casting in small
    buffers: no float64 copy of w). With S = Σa: D₁ = exp(log S − (Σ a log a)/S), with
    0·log 0 = 0; D₂ = S²/Σa²; D_∞ = S/max a. S = 0 gives D = 0; a non-finite entry makes S
    non-finite, and then D is not computed (0).
    """
    t = w.detach()
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    a = np.abs(t.numpy().reshape(-1))
    total = float(np.add.reduce(a, dtype=np.float64))
    if not (math.isfinite(total) and total > 0):
        return total, 0.0
    if order == 1:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            alog = np.log(a)
            alog *= a  # a·log a, NaN where a = 0 (0·(−∞))
        xlogx = float(np.add.reduce(alog, dtype=np.float64))
        if math.isnan(xlogx):  # zero entries: 0·log 0 = 0
            alog[a == 0] = 0
            xlogx = float(np.add.reduce(alog, dtype=np.float64))
        return total, math.exp(math.log(total) - xlogx / total)
    if order == 2:
        return total, total**2 / float(np.add.reduce(np.square(a, dtype=np.float64)))
    if math.isinf(order):
        return total, total / float(a.max())
    return total, float(hill_numbers(torch.from_numpy(a).to(torch.float64), order))


def structure_table(
    matrices: OrderedDict[str, torch.Tensor],
    order: float = 1.0,
    method: SpectrumMethod | str = "gram",
) -> dict[str, torch.Tensor]:
    """Every numeric column of :func:`analyze` as a float64 tensor (L,) on the matrices' device.

    With σ the padded spectra (L, k_max) and w the entries of each matrix:
    effective_rank = D_α(σ/Σσ); stable_rank = Σσ²/σ₁² (= Σw²/σ₁²); numerical_rank =
    #{i : σᵢ > max(m, n)·ε·σ₁} with ε the machine epsilon of the weights' dtype (numpy's
    ``matrix_rank`` rule); nuclear = Σσ; spectral = σ₁; frobenius = (Σσ²)^{1/2} = (Σw²)^{1/2}
    (the float64 eigenvalues' sum is trace G = Σw² to ≈ k·ε₆₄ relative); l1 = Σ|w|;
    effective_sparsity = D_α(|w|/Σ|w|); normalized variants divide by min(m, n) and by m·n.
    Zero matrices give 0 throughout (no NaN). A matrix with NaN or infinite entries raises
    :class:`~rankrobust.errors.NonFiniteError` (found by its entry pass, before any spectrum).
    """
    order = check_order(order)
    names, mats = list(matrices), [m.detach() for m in matrices.values()]
    if not mats:
        return {name: torch.zeros(0, dtype=torch.float64) for name in _NUMERIC}
    if all(m.device.type == "cpu" for m in mats):
        entry = torch.tensor([_entry_stats_cpu(m, order) for m in mats], dtype=torch.float64)
    else:
        entry = torch.stack([_entry_stats(m, order).to(mats[0].device) for m in mats])  # (L, 2)
    finite = torch.isfinite(entry[:, 0])
    if not bool(finite.all()):
        for i in (~finite).nonzero().flatten().tolist():  # Σ|w| of finite float64 w may overflow
            if mats[i].is_floating_point() and not bool(torch.isfinite(mats[i]).all()):
                raise NonFiniteError(f"layer {names[i]!r} holds NaN or infinite weights; "
                                     "its structure is undefined")
    sigma = pad_spectra(singular_values_many(mats, method))  # (L, k_max), descending, zero-padded
    device = sigma.device
    l1, eff_sparsity = entry.to(device).unbind(1)
    frob_sq = sigma.square().sum(1)
    top = sigma[:, 0] if sigma.shape[1] else torch.zeros(len(mats), dtype=torch.float64, device=device)
    rank_cap = torch.tensor([min(m.shape) for m in mats], dtype=torch.float64, device=device)
    numel = torch.tensor([m.numel() for m in mats], dtype=torch.float64, device=device)
    eff_rank = hill_numbers(sigma, order)
    ones = torch.ones_like(top)
    rtol = torch.tensor([max(m.shape) * torch.finfo(m.dtype if m.is_floating_point() else torch.float64).eps
                         for m in mats], dtype=torch.float64, device=device)
    numerical = (sigma > (rtol * top)[:, None]).sum(1).to(torch.float64) * (top > 0)
    return {
        "effective_rank": eff_rank,
        "effective_sparsity": eff_sparsity,
        "stable_rank": torch.where(top > 0, frob_sq / torch.where(top > 0, top, ones) ** 2, 0 * top),
        "numerical_rank": numerical,
        "nuclear_norm": sigma.sum(1),
        "spectral_norm": top,
        "frobenius_norm": frob_sq.sqrt(),
        "l1_norm": l1,
        "normalized_effective_rank": eff_rank / rank_cap.clamp_min(1),
        "normalized_effective_sparsity": eff_sparsity / numel.clamp_min(1),
    }


def analyze(
    model: nn.Module,
    conv: ConvMode | str = "reshape",
    *,
    order: float = 1.0,
    method: SpectrumMethod | str = "gram",
) -> pd.DataFrame:
    """One row per weight matrix of ``model`` with the columns in :data:`COLUMNS`.

    ``layer`` is the module path (``"path[i,j]"`` per tap with ``conv="per-tap"``), ``kind``
    "linear"|"conv", ``shape`` "rows×cols" as ``"120x400"``. ``order`` is the Rényi order of
    effective rank and sparsity (1 = Shannon); ``method`` picks how singular values are computed
    (see :mod:`rankrobust.structure.spectrum`). The model is not modified and needs no data.
    A layer with NaN or infinite weights raises :class:`~rankrobust.errors.NonFiniteError`.
    """
    import pandas as pd  # heavy: imports pandas (~0.6 s), which nothing else here needs

    matrices = layer_matrices(model, conv)
    table = structure_table(matrices, order, method)  # raises NonFiniteError first if need be
    names = list(matrices)
    numeric = torch.stack([table[c] for c in _NUMERIC], 1).cpu().numpy() if names else np.zeros((0, len(_NUMERIC)))
    frame = pd.DataFrame(numeric, columns=list(_NUMERIC))
    frame.insert(0, "layer", names)
    frame.insert(1, "kind", _kinds(model, names))
    frame.insert(2, "shape", [f"{m.shape[0]}x{m.shape[1]}" for m in matrices.values()])
    frame.insert(3, "rows", [int(m.shape[0]) for m in matrices.values()])
    frame.insert(4, "cols", [int(m.shape[1]) for m in matrices.values()])
    frame["numerical_rank"] = frame["numerical_rank"].astype(int)
    return frame


def spectra(
    model: nn.Module, conv: ConvMode | str = "reshape", method: SpectrumMethod | str = "gram"
) -> dict[str, np.ndarray]:
    """{layer path: descending singular values (min(m, n),) as float64 numpy}, in layer order."""
    matrices = layer_matrices(model, conv)
    values = singular_values_many(list(matrices.values()), method)
    return {name: s.cpu().numpy() for name, s in zip(matrices, values, strict=True)}



def snapshot(model: nn.Module, conv: ConvMode | str = "reshape") -> OrderedDict[str, torch.Tensor]:
    """Copies of ``model``'s :func:`~rankrobust.structure.matrices.layer_matrices` (the W₀ of
    :func:`analyze_delta`), unaffected by later changes of the weights."""
    return OrderedDict((k, v.clone()) for k, v in layer_matrices(model, conv).items())


def analyze_delta(
    model: nn.Module,
    init: Mapping[str, torch.Tensor],
    conv: ConvMode | str = "reshape",
    *,
    order: float = 1.0,
    method: SpectrumMethod | str = "gram",
) -> pd.DataFrame:
    """One row per weight matrix of ``model``: ``layer`` and :data:`DELTA_COLUMNS`, the
    :func:`analyze` metrics of W − W₀ with W₀ = ``init[layer]`` (from :func:`snapshot` of the
    same architecture; ``init`` may hold more layers). Zero deltas give 0 throughout. A layer
    missing from ``init`` or of another shape raises ConfigError naming it."""
    import pandas as pd  # heavy: see analyze()

    current = layer_matrices(model, conv)
    deltas: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, w in current.items():
        w0 = init.get(name)
        if w0 is None or tuple(w0.shape) != tuple(w.shape):
            found = "missing" if w0 is None else f"{tuple(w0.shape)} instead of {tuple(w.shape)}"
            raise ConfigError(f"initial weights of layer {name!r}: {found}")
        deltas[name] = w - w0.to(device=w.device, dtype=w.dtype)
    table = structure_table(deltas, order, method)
    columns = {new: table[old].cpu().numpy() for new, old in zip(DELTA_COLUMNS, _NUMERIC, strict=True)}
    frame = pd.DataFrame({"layer": list(deltas), **columns})
    return frame.astype({f"{DELTA_PREFIX}numerical_rank": int})
