"""``analyze(model)``: one row of structure metrics per weight matrix, computed in a few batched calls.

All spectra come from :func:`singular_values_many` (float64 Gram eigenvalues by default) and are
zero-padded into one (L, k_max) tensor, so every spectral metric of every layer is one tensor
expression; entry metrics (ℓ1, Frobenius, effective sparsity) are float64-accumulated reductions per layer.
Everything stays on the model's device until the final (L, C) table is copied to the host once.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from rankrobust.errors import NonFiniteError
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


def _kinds(model: nn.Module, names: list[str]) -> list[str]:
    modules = weight_modules(model)
    return [layer_kind(modules[name.split("[", 1)[0]]) for name in names]


def _entry_stats(w: torch.Tensor, order: float) -> torch.Tensor:
    """(Σ|w|, Σw², D_α(|w|/Σ|w|)) as float64 (3,), element-wise work in w's own precision.

    With a = |w| and S = Σa the Shannon case needs no normalized copy of the entries:
    H = −Σ (a/S) log(a/S) = log S − (Σ a log a) / S; order 2 is S²/Σa² and order ∞ is S/max a.
    Sums accumulate in float64; other orders take the float64 :func:`hill_numbers` path.
    """
    a = w.reshape(-1).abs()
    if not a.is_floating_point() or a.dtype in (torch.float16, torch.bfloat16):
        a = a.to(torch.float32)
    total = a.sum(dtype=torch.float64)
    squares = torch.linalg.vector_norm(a, dtype=torch.float64).square()
    if order == 1:
        xlogx = torch.special.xlogy(a, a).sum(dtype=torch.float64)
        safe = torch.where(total > 0, total, torch.ones_like(total))
        value = torch.exp(torch.log(safe) - xlogx / safe)
    elif order == 2:
        value = total.square() / torch.where(squares > 0, squares, torch.ones_like(squares))
    elif math.isinf(order):
        top = a.max().to(torch.float64) if a.numel() else total
        value = total / torch.where(top > 0, top, torch.ones_like(top))
    else:
        value = hill_numbers(a.to(torch.float64), order)
    value = torch.where(total > 0, value, torch.zeros_like(value))
    return torch.stack([total, squares, value])


def structure_table(
    matrices: OrderedDict[str, torch.Tensor],
    order: float = 1.0,
    method: SpectrumMethod | str = "gram",
) -> dict[str, torch.Tensor]:
    """Every numeric column of :func:`analyze` as a float64 tensor (L,) on the matrices' device.

    With σ the padded spectra (L, k_max) and w the entries of each matrix:
    effective_rank = D_α(σ/Σσ); stable_rank = Σw²/σ₁²; numerical_rank = #{i : σᵢ > max(m, n)·ε·σ₁}
    with ε the machine epsilon of the weights' dtype (numpy's ``matrix_rank`` rule); nuclear = Σσ; spectral = σ₁;
    frobenius = (Σw²)^{1/2}; l1 = Σ|w|; effective_sparsity = D_α(|w|/Σ|w|); normalized
    variants divide by min(m, n) and by m·n. Zero matrices give 0 throughout (no NaN).
    """
    order = check_order(order)
    mats = list(matrices.values())
    sigma = pad_spectra(singular_values_many(mats, method))  # (L, k_max), descending, zero-padded
    if not mats:
        return {name: torch.zeros(0, dtype=torch.float64) for name in _NUMERIC}
    device = sigma.device
    entry = torch.stack([_entry_stats(m.detach(), order) for m in mats]).to(device)  # (L, 3)
    l1, frob_sq, eff_sparsity = entry.unbind(1)
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
    for name, matrix in matrices.items():
        if matrix.is_floating_point() and not bool(torch.isfinite(matrix).all()):
            raise NonFiniteError(f"layer {name!r} holds NaN or infinite weights; its structure is undefined")
    table = structure_table(matrices, order, method)
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

