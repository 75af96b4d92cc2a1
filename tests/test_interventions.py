"""Interventions after training: closed-form SVD truncation and pruning, purity (the input model is
never modified, keep=1 is an exact copy), per-layer scope, the measurement table and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize as P

from rankrobust.checkpoint import load_checkpoint, save_checkpoint
from rankrobust.cli.main import main
from rankrobust.data import load_dataset
from rankrobust.errors import ConfigError
from rankrobust.interventions import (
    COLUMNS,
    MEASURES,
    energy_rank,
    intervention_table,
    measure,
    prune_magnitude,
    share_count,
    structure_summary,
    truncate_matrix,
    truncate_svd,
)
from rankrobust.models import ModelSpec
from rankrobust.structure import analyze, layer_matrices, numerical_rank

SPEC = ModelSpec("mlp", (1, 16, 16), 4, {"hidden": [8]})
ATTACK: dict[str, Any] = {"attack": "pgd", "eps": 0.1, "n": 24, "steps": 2, "seed": 0}


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return SPEC.build().eval()


def _cnn() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))


def _diag_linear(values: list[float]) -> nn.Linear:
    layer = nn.Linear(len(values), len(values))
    with torch.no_grad():
        layer.weight.copy_(torch.diag(torch.tensor(values)))
    return layer


@pytest.mark.parametrize(("keep", "total", "count"),
                         [(0.1, 30, 3), (0.25, 10, 3), (0.5, 7, 4), (1.0, 7, 7), (1e-9, 5, 1), (0.3, 20, 6)])
def test_share_count_is_the_ceiling_without_float_noise(keep: float, total: int, count: int) -> None:
    assert share_count(keep, total) == count


@pytest.mark.parametrize("keep", [0.0, -0.5, 1.5, math.nan, math.inf])
def test_keep_outside_unit_interval_is_a_config_error(keep: float) -> None:
    with pytest.raises(ConfigError, match="keep must be in"):
        truncate_svd(_mlp(), keep)
    with pytest.raises(ConfigError, match="keep must be in"):
        prune_magnitude(_mlp(), keep)


def test_svd_truncation_of_a_diagonal_keeps_the_top_entries_in_place() -> None:
    values = [2.0, 5.0, 1.0, 4.0, 3.0]  # σ = 5, 4, 3, 2, 1 at shuffled positions
    layer = _diag_linear(values)
    out = truncate_svd(layer, 0.4)  # r = ⌈0.4·5⌉ = 2: keeps 5 and 4
    torch.testing.assert_close(out.weight, torch.diag(torch.tensor([0.0, 5.0, 0.0, 4.0, 0.0])),
                               atol=1e-6, rtol=0)
    assert torch.equal(out.bias, layer.bias)
    # energy: σ² = 25, 16, 9, 4, 1 (Σ 55); shares 0.4545, 0.7455, 0.9091, 0.9818, 1
    sigma = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    assert [energy_rank(sigma, k) for k in (0.45, 0.46, 0.7455, 0.75, 0.99)] == [1, 2, 3, 3, 5]
    out = truncate_svd(layer, 0.75, mode="energy")
    torch.testing.assert_close(out.weight, torch.diag(torch.tensor([0.0, 5.0, 0.0, 4.0, 3.0])),
                               atol=1e-6, rtol=0)


def test_conv_kernels_are_truncated_as_out_by_in_times_k_matrices() -> None:
    model = _cnn()
    out = truncate_svd(model, 0.25)  # conv: (8, 27) → r = 2; linear: (5, 128) → r = 2
    ranks = {name: numerical_rank(w) for name, w in layer_matrices(out).items()}
    assert ranks == {"0": 2, "3": 2}
    w = layer_matrices(model)["0"].double()
    sigma = torch.linalg.svdvals(w)
    error = (w - layer_matrices(out)["0"].double()).square().sum()
    torch.testing.assert_close(error, sigma[2:].square().sum(), rtol=1e-4, atol=1e-8)  # Eckart–Young


def test_truncate_matrix_returns_the_input_when_nothing_is_cut() -> None:
    w = torch.randn(6, 3)
    assert truncate_matrix(w, 1.0) is w
    assert truncate_matrix(w, 0.9) is w  # ⌈0.9·3⌉ = 3 = k
    assert truncate_matrix(w, 0.5) is not w


@pytest.mark.parametrize("intervene", [
    lambda m: truncate_svd(m, 1.0), lambda m: truncate_svd(m, 1.0, mode="energy"),
    lambda m: prune_magnitude(m, 1.0), lambda m: prune_magnitude(m, 1.0, scope="global"),
])
def test_keep_one_is_an_exact_copy_without_any_svd(intervene: object, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_svd(*args: object, **kwargs: object) -> None:
        raise AssertionError("keep=1 must not compute an SVD")

    monkeypatch.setattr(torch.linalg, "svd", no_svd)
    model = _cnn()
    out = intervene(model)  # type: ignore[operator]
    assert out is not model and out[0].weight is not model[0].weight
    assert _same_state(_state(out), _state(model))


def test_interventions_never_modify_their_input() -> None:
    model = _cnn()
    before = _state(model)
    for out in (truncate_svd(model, 0.3), truncate_svd(model, 0.5, mode="energy"),
                prune_magnitude(model, 0.3), prune_magnitude(model, 0.3, scope="global")):
        assert not _same_state(_state(out), before)
    assert _same_state(_state(model), before)


@pytest.mark.parametrize("intervene", [
    lambda m, layers: truncate_svd(m, 0.3, layers=layers),
    lambda m, layers: prune_magnitude(m, 0.3, layers=layers),
])
def test_one_layer_changes_only_that_layer(intervene: object) -> None:
    model = _cnn()
    before = _state(model)
    after = _state(intervene(model, ["3"]))  # type: ignore[operator]
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == ["3.weight"]


def test_unknown_layer_is_a_config_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"unknown layer 'layer\.0'.*did you mean 'layers\.0'"):
        truncate_svd(_mlp(), 0.5, layers=["layer.0"])


def test_parametrized_weights_are_refused_and_the_input_survives() -> None:
    class Double(nn.Module):
        def forward(self, w: torch.Tensor) -> torch.Tensor:
            return 2 * w

    model = nn.Sequential(nn.Linear(6, 5))
    P.register_parametrization(model[0], "weight", Double())
    weight = model[0].weight.detach().clone()
    with pytest.raises(ConfigError, match="parametrized weight"):
        truncate_svd(model, 0.4)
    assert torch.equal(truncate_svd(model, 1.0)[0].weight, weight)  # an exact copy is fine
    assert torch.equal(model[0].weight, weight)


def test_pruning_keeps_exactly_the_largest_magnitudes() -> None:
    layer = nn.Linear(5, 4, bias=False)
    gen = torch.Generator().manual_seed(0)
    values = (torch.randperm(20, generator=gen) + 1).float()
    signs = torch.where(torch.rand(20, generator=gen) < 0.5, -1.0, 1.0)
    with torch.no_grad():
        layer.weight.copy_((values * signs).reshape(4, 5))
    out = prune_magnitude(layer, 0.3)  # ⌈0.3·20⌉ = 6: |w| ∈ {15, …, 20}
    kept = out.weight != 0
    assert int(kept.sum()) == 6
    assert torch.equal(kept, layer.weight.abs() >= 15)
    assert torch.equal(out.weight[kept], layer.weight[kept])
    ties = nn.Linear(5, 4, bias=False)
    nn.init.ones_(ties.weight)
    assert int((prune_magnitude(ties, 0.5).weight != 0).sum()) == 10  # exact count despite ties


def test_global_pruning_uses_one_threshold_for_all_layers() -> None:
    model = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 3, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.arange(1.0, 7.0).reshape(2, 3))  # small weights
        model[1].weight.copy_(-torch.arange(7.0, 13.0).reshape(3, 2))  # large weights
    glob = prune_magnitude(model, 0.5, scope="global")
    assert int((glob[0].weight != 0).sum()) == 0 and int((glob[1].weight != 0).sum()) == 6
    local = prune_magnitude(model, 0.5)
    assert int((local[0].weight != 0).sum()) == 3 and int((local[1].weight != 0).sum()) == 3


def _nan_equal(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def test_table_rows_and_keep_one_reproduces_the_unmodified_model() -> None:
    model = _mlp()
    data = load_dataset("synthetic", "test")
    before = _state(model)
    table = intervention_table(model, data, "svd", [0.5, 1.0], progress=False, **ATTACK)
    assert list(table.columns) == list(COLUMNS)
    assert list(table["layer"]) == ["all", "all"] and list(table["keep"]) == [0.5, 1.0]
    base = measure(model, data, **ATTACK)
    assert _nan_equal({c: float(table[c].iloc[1]) for c in MEASURES}, base)
    # closed form: layers (8, 256) and (4, 8) keep ⌈0.5·8⌉ = 4 and ⌈0.5·4⌉ = 2 singular values
    assert table["numerical_rank"].tolist() == [3.0, base["numerical_rank"]] and base["numerical_rank"] == 6.0
    pruned = intervention_table(model, data, "prune", [0.5], progress=False, deepfool=False, **ATTACK)
    assert pruned["density"].iloc[0] == 0.5 and math.isnan(pruned["rho_adv"].iloc[0])
    assert _same_state(_state(model), before)


def test_per_layer_table_has_one_row_per_layer_and_keep() -> None:
    model = _mlp()
    data = load_dataset("synthetic", "test")
    table = intervention_table(model, data, "svd", [0.25, 1.0], per_layer=True, deepfool=False,
                               progress=False, **ATTACK)
    assert list(zip(table["layer"], table["keep"], strict=True)) == [
        ("layers.0", 0.25), ("layers.0", 1.0), ("layers.2", 0.25), ("layers.2", 1.0)]
    # each row's structure is its own layer's (issue 21 §1.7), not the model's mean: (8, 256)
    # truncated to ⌈0.25·8⌉ = 2, unmodified 8; (4, 8) truncated to ⌈0.25·4⌉ = 1, unmodified 4
    assert table["numerical_rank"].tolist() == [2.0, 8.0, 1.0, 4.0]
    whole = structure_summary(model)
    for layer, rank in zip(table["layer"][1::2], table["effective_rank"][1::2], strict=True):
        own = analyze(model)
        assert rank == float(own[own["layer"] == layer]["effective_rank"].iloc[0]) != whole["effective_rank"]
    with pytest.raises(ConfigError, match="no per-layer form"):
        intervention_table(model, data, "prune-global", [0.5], per_layer=True, **ATTACK)
    with pytest.raises(ConfigError, match="unknown intervention 'svd-enrgy'.*'svd-energy'"):
        intervention_table(model, data, "svd-enrgy", [0.5], **ATTACK)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("intervene")
    save_checkpoint(folder, _mlp(), SPEC, meta={"dataset": "synthetic"})
    return folder


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    assert main(argv) == 0, capsys.readouterr().err
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return rows


def test_cli_json_row_per_keep_and_keep_one_matches_the_library(
    checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _cli(["intervene", str(checkpoint), "--svd-keep", "0.1,0.5,1", "--attack", "pgd",
                 "--eps", "0.1", "--format", "json", "--n", "24", "--steps", "2", "--device", "cpu"],
                capsys)
    assert [r["keep"] for r in rows] == [0.1, 0.5, 1.0]
    assert {r["intervention"] for r in rows} == {"svd"} and {r["layer"] for r in rows} == {"all"}
    base = measure(load_checkpoint(checkpoint).model, load_dataset("synthetic", "test"), **ATTACK)
    assert _nan_equal({c: float(rows[2][c]) for c in MEASURES}, base)  # type: ignore[arg-type]
    rows = _cli(["intervene", str(checkpoint), "--prune-keep", "0.5", "--global", "--eps", "0.1",
                 "--n", "8", "--steps", "1", "--no-deepfool", "--format", "json", "--device", "cpu"],
                capsys)
    assert len(rows) == 1 and "rho_adv" not in rows[0] and rows[0]["intervention"] == "prune-global"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--svd-keep", "0.5", "--prune-keep", "0.5"], "exactly one of --svd-keep and --prune-keep"),
        ([], "exactly one of --svd-keep and --prune-keep"),
        (["--svd-keep", "0,0.5"], "--svd-keep: every share must be in (0, 1], got 0"),
        (["--prune-keep", "1.5"], "--prune-keep: every share must be in (0, 1], got 1.5"),
        (["--svd-keep", ","], "expected at least one number"),
        (["--prune-keep", "0.5", "--energy"], "--energy applies to --svd-keep"),
        (["--svd-keep", "0.5", "--global"], "--global applies to --prune-keep"),
        (["--prune-keep", "0.5", "--global", "--per-layer"], "--per-layer and --global"),
        (["--svd-keep", "0.5", "--attack", "pdg"], "(did you mean 'pgd'?)"),
        (["--svd-keep", "0.5", "--input-shape", "1,16,16"], "--input-shape applies only with --model-factory"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(
    checkpoint: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    assert main(["intervene", str(checkpoint), "--eps", "0.1", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
