"""layer_matrices, batched spectra and analyze() on models, cross-checked with the pure metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rankrobust.errors import ConfigError
from rankrobust.models import build_model
from rankrobust.structure import (
    COLUMNS,
    analyze,
    effective_rank,
    effective_sparsity,
    l1_norm,
    layer_matrices,
    nuclear_norm,
    singular_values_many,
    spectra,
    spectral_norm,
    stable_rank,
)
from rankrobust.structure.metrics import frobenius_norm


def _zoo() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(2, 3, 4),
        nn.Conv2d(3, 5, (2, 3), groups=1),
        nn.Conv3d(5, 4, 2),
        nn.ConvTranspose2d(4, 6, 3),
        nn.Sequential(nn.Linear(7, 9), nn.BatchNorm1d(9), nn.Linear(9, 2)),
    )


def test_layer_matrices_reshape_shapes_and_order() -> None:
    mats = layer_matrices(_zoo())
    assert list(mats) == ["0", "1", "2", "3", "4.0", "4.2"]
    assert [tuple(m.shape) for m in mats.values()] == [
        (3, 8), (5, 18), (4, 40), (4, 54), (9, 7), (2, 9)  # transposed conv: (in, out·k·k)
    ]
    assert all(not m.requires_grad for m in mats.values())


def test_layer_matrices_per_tap() -> None:
    model = _zoo()
    mats = layer_matrices(model, "per-tap")
    conv2d = model[1].weight  # (5, 3, 2, 3)
    taps = [k for k in mats if k.startswith("1[")]
    assert taps == [f"1[{i},{j}]" for i in range(2) for j in range(3)]
    for key in taps:
        i, j = (int(v) for v in key[2:-1].split(","))
        assert torch.equal(mats[key], conv2d.detach()[:, :, i, j])
    assert sum(k.startswith("2[") for k in mats) == 8 and mats["2[1,0,1]"].shape == (4, 5)
    assert sum(k.startswith("0[") for k in mats) == 4
    assert mats["4.0"].shape == (9, 7)
    with pytest.raises(ConfigError, match="conv mode"):
        layer_matrices(model, "flatten")


@pytest.mark.parametrize("method", ["gram", "svd"])
def test_batched_spectra_match_float64_svd(method: str) -> None:
    g = torch.Generator().manual_seed(1)
    mats = [torch.randn(5, 9, generator=g), torch.randn(9, 5, generator=g), torch.randn(5, 9, generator=g),
            torch.randn(1, 30, generator=g), torch.zeros(4, 4), torch.zeros(0, 3)]
    got = singular_values_many(mats, method)
    for m, s in zip(mats, got, strict=True):
        ref = torch.linalg.svdvals(m.double())
        assert s.dtype == torch.float64 and s.shape == ref.shape
        assert torch.allclose(s, ref, rtol=1e-9, atol=1e-7 * float(ref.max()) if ref.numel() else 0)
    with pytest.raises(ConfigError, match="method"):
        singular_values_many(mats, "lanczos")


def test_gram64_keeps_small_singular_values_that_gram32_loses() -> None:
    # A trained-like spectrum: σ_i = 10^(−6 i / k), i.e. from 1 down to 1e-6.
    k, n = 64, 256
    g = torch.Generator().manual_seed(2)
    u, _ = torch.linalg.qr(torch.randn(k, k, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))
    sigma = 10 ** (-6 * torch.arange(k, dtype=torch.float64) / k)
    w = (u * sigma) @ v.T
    ref = torch.linalg.svdvals(w)
    gram64 = singular_values_many([w], "gram")[0]
    gram32 = singular_values_many([w.float()], "gram32")[0]
    tail = ref > 1e-5
    assert torch.allclose(gram64[tail], ref[tail], rtol=1e-3)
    assert (gram32[tail] - ref[tail]).abs().div(ref[tail]).max() > 1e-2  # the loss the docs warn of


def test_analyze_rows_match_pure_functions() -> None:
    model = build_model("lenet5", (1, 28, 28), 10)
    frame = analyze(model)
    assert tuple(frame.columns) == COLUMNS
    assert list(frame["layer"]) == ["features.0", "features.3", "classifier.0", "classifier.2", "classifier.4"]
    assert list(frame["kind"]) == ["conv", "conv", "linear", "linear", "linear"]
    assert list(frame["shape"]) == ["6x25", "16x150", "120x400", "84x120", "10x84"]
    mats = layer_matrices(model)
    for row in frame.to_dict(orient="records"):
        w = mats[row["layer"]]
        assert (row["rows"], row["cols"]) == tuple(w.shape)
        assert row["effective_rank"] == pytest.approx(effective_rank(w), rel=1e-9)
        assert row["effective_sparsity"] == pytest.approx(effective_sparsity(w), rel=1e-7)  # float32 log
        assert row["stable_rank"] == pytest.approx(stable_rank(w), rel=1e-9)
        assert row["nuclear_norm"] == pytest.approx(nuclear_norm(w), rel=1e-9)
        assert row["spectral_norm"] == pytest.approx(spectral_norm(w), rel=1e-9)
        assert row["frobenius_norm"] == pytest.approx(frobenius_norm(w), rel=1e-12)
        assert row["l1_norm"] == pytest.approx(l1_norm(w), rel=1e-12)
        assert row["normalized_effective_rank"] == pytest.approx(row["effective_rank"] / min(w.shape))
        assert row["normalized_effective_sparsity"] == pytest.approx(row["effective_sparsity"] / w.numel())


def test_analyze_orders_methods_and_per_tap() -> None:
    model = build_model("cnn-small", (1, 16, 16), 4)
    shannon, svd = analyze(model), analyze(model, method="svd")
    numeric = list(COLUMNS[5:])
    assert np.allclose(shannon[numeric].to_numpy(), svd[numeric].to_numpy(), rtol=1e-9)
    order2 = analyze(model, order=2.0)
    assert (order2["effective_rank"] <= shannon["effective_rank"] * (1 + 1e-12)).all()
    per_tap = analyze(model, "per-tap")
    first = next(k for k in per_tap["layer"] if "[" in k)
    w = layer_matrices(model, "per-tap")[first]
    row = per_tap.set_index("layer").loc[first]
    assert row["kind"] == "conv" and row["effective_rank"] == pytest.approx(effective_rank(w), rel=1e-9)
    with pytest.raises(ConfigError, match="order"):
        analyze(model, order=-2)


def test_analyze_zero_weights_and_empty_model_are_defined() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Conv2d(1, 2, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    frame = analyze(model)
    values = frame[list(COLUMNS[5:])].to_numpy()
    assert np.isfinite(values).all() and (values == 0).all()
    empty = analyze(nn.Sequential(nn.ReLU()))
    assert len(empty) == 0 and tuple(empty.columns) == COLUMNS
    single = analyze(nn.Linear(3, 2))
    assert list(single["layer"]) == ["Linear"]


def test_spectra_and_analyze_leave_the_model_untouched() -> None:
    model = build_model("mlp", (1, 16, 16), 4, hidden=[12])
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = spectra(model)
    analyze(model)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert list(out) == list(layer_matrices(model))
    for name, s in out.items():
        ref = np.linalg.svd(layer_matrices(model)[name].double().numpy(), compute_uv=False)
        assert isinstance(s, np.ndarray) and np.all(np.diff(s) <= 0)
        assert np.allclose(s, ref, rtol=1e-9, atol=1e-9 * ref[0])
        assert math.isclose(float(s.sum()), float(ref.sum()), rel_tol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("order", [0.0, 0.5, 1.0, 2.0, 3.0, math.inf])
def test_entry_metrics_match_a_float64_reference(dtype: torch.dtype, order: float) -> None:
    """ℓ1 and effective sparsity (one numpy pass on CPU; the torch pass used on CUDA) and the
    Frobenius norm (now Σσ² of the spectrum) against float64 formulas, zero entries included."""
    from rankrobust.structure.analyze import _entry_stats, _entry_stats_cpu, structure_table
    from rankrobust.structure.metrics import hill_numbers

    g = torch.Generator().manual_seed(6)
    w = torch.randn(24, 70, generator=g) * torch.rand(24, 70, generator=g).pow(3)
    w[:, ::3] = 0  # a pruned third: 0·log 0 = 0
    mats = {"pruned": w.to(dtype), "dense": torch.randn(9, 5, generator=g).to(dtype),
            "zero": torch.zeros(3, 4, dtype=dtype)}
    table = structure_table(mats, order)  # type: ignore[arg-type]
    for i, m in enumerate(mats.values()):
        a = m.double().abs().reshape(-1)
        ref_l1, ref_d = float(a.sum()), float(hill_numbers(a, order))
        rel = 1e-12 if dtype == torch.float64 else 1e-6  # float32 log; float64 sums
        assert float(table["l1_norm"][i]) == pytest.approx(ref_l1, rel=1e-12)
        assert float(table["effective_sparsity"][i]) == pytest.approx(ref_d, rel=rel, abs=1e-300)
        assert float(table["frobenius_norm"][i]) == pytest.approx(float(m.double().norm()), rel=1e-12)
        cpu = _entry_stats_cpu(m, order)
        torched = _entry_stats(m, order).tolist()
        assert cpu == pytest.approx(torched, rel=rel, abs=1e-300)


def test_non_finite_weights_are_refused_before_any_spectrum() -> None:
    from rankrobust.errors import NonFiniteError
    from rankrobust.structure.analyze import structure_table

    for bad in (math.nan, math.inf, -math.inf):
        model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
        with torch.no_grad():
            model[1].weight[1, 2] = bad
        with pytest.raises(NonFiniteError, match="'1'"):
            analyze(model)
        with pytest.raises(NonFiniteError, match="'b'"):
            structure_table({"a": torch.ones(2, 2), "b": model[1].weight.detach()})
