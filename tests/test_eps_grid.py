"""The ε-grid AutoAttack (attacks.grid, autoattack(grid=True, bisect=t)) and per-input minimal
budgets: closed-form oracles on affine classifiers (the exact minimal ℓ∞ perturbation is
margin/‖Δw‖₁), the largest budget equal to AutoAttack alone, nesting, and a work count that
holds by construction."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from rankrobust.attacks import autoattack
from rankrobust.attacks.grid import bisect_budgets, descending_budgets, first_success
from rankrobust.robustness.curves import robustness_curve

BOUNDS = (-10.0, 10.0)


def binary_affine(seed: int = 0, dim: int = 6) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(dim, 2)).double().eval()


def exact_linf(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean labels, exact minimal ℓ∞ distance margin / ‖w_y − w_other‖₁) of a 2-class affine
    model on inputs where clipping never binds."""
    lin = model[1]
    logits = model(x).detach()
    y = logits.argmax(1)
    w = lin.weight.detach()
    margin = (logits[:, 0] - logits[:, 1]).abs()
    return y, margin / (w[0] - w[1]).abs().sum()


def points(n: int = 24, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 2, 3, generator=g, dtype=torch.float64) * 2 - 1


class Counting(nn.Module):
    """Wraps a model; counts the inputs it was called on (forward passes × batch size)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.inputs = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs += len(x)
        return self.inner(x)


@pytest.mark.parametrize("steps", [0, 4, 10])
def test_grid_and_bisection_bracket_the_exact_minimal_perturbation(steps: int) -> None:
    model = binary_affine()
    x = points()
    y, d = exact_linf(model, x)
    grid = [float(q) * float(d.max()) * 1.2 for q in (0.25, 0.5, 0.75, 1.0)]
    res = autoattack(model, x, y, grid, members=("apgd-ce",), steps=20, bounds=BOUNDS,
                     grid=True, bisect=steps)
    assert res.eps_min is not None
    lower = torch.tensor([0.0, *grid[:-1]], dtype=torch.float64)
    upper = torch.tensor(grid, dtype=torch.float64)
    k = torch.searchsorted(upper, d)  # the grid interval (lower_k, upper_k] holding d
    width = (upper - lower)[k] / 2**steps
    assert not torch.isnan(res.eps_min).any()  # every d lies below the largest budget
    assert (res.eps_min >= d * (1 - 1e-9)).all()  # nothing breaks below the exact distance
    assert (res.eps_min - d <= width + 1e-9).all()  # and the bracket is as narrow as promised
    if steps == 0:  # the smallest grid budget at or above d
        assert torch.equal(res.eps_min, upper[k])


def test_unbroken_inputs_are_nan_and_misclassified_zero() -> None:
    model = binary_affine()
    x = points()
    y, d = exact_linf(model, x)
    wrong = y.clone()
    wrong[:3] = 1 - wrong[:3]  # labels the model gets wrong
    budget = float(d.min()) / 2
    res = autoattack(model, x, wrong, [budget / 2, budget], members=("apgd-ce",), steps=10,
                     bounds=BOUNDS, grid=True, bisect=3)
    assert res.eps_min is not None
    assert (res.eps_min[:3] == 0).all()
    assert torch.isnan(res.eps_min[3:]).all()


def small_net(seed: int = 0, classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, classes)).eval()


def image_batch(n: int = 40, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 4, 4, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_largest_budget_is_autoattack_alone_and_success_nests() -> None:
    model = small_net()
    x, y = image_batch()
    y = model(x).argmax(1)
    options = {"steps": 10, "n_targets": 3, "n_queries": 60, "seed": 5}
    grid = [0.02, 0.04, 0.06, 0.08]
    res = autoattack(model, x, y, grid, grid=True, **options)
    alone = autoattack(model, x, y, [0.08], **options)
    assert torch.equal(res.success[-1], alone.success[0])
    assert torch.equal(res.broken_by[-1], alone.broken_by[0])
    assert 0 < int(res.success[0].sum()) < int(res.success[-1].sum()) < len(x)  # a real test
    for k in range(len(grid) - 1):  # broken at a smaller budget ⇒ broken at every larger one
        assert not (res.success[k] & ~res.success[k + 1]).any()
    square = res.names.index("square")
    assert not (res.broken_by[:-1] == square).any()  # Square at the largest budget only
    assert res.x_adv is not None and res.x_adv.shape == (4, *x.shape)
    for k, e in enumerate(grid):
        assert float((res.x_adv[k] - x).abs().max()) <= e + 1e-6
        assert torch.equal(model(res.x_adv[k]).argmax(1) != y, res.success[k])


def test_given_order_and_duplicate_budgets() -> None:
    model = small_net()
    x, _ = image_batch()
    y = model(x).argmax(1)
    options = {"steps": 5, "n_targets": 2, "n_queries": 20, "seed": 1, "keep_adv": False}
    res = autoattack(model, x, y, [0.06, 0.02, 0.06], grid=True, **options)
    sorted_res = autoattack(model, x, y, [0.02, 0.06], grid=True, **options)
    assert res.x_adv is None
    assert torch.equal(res.success[0], res.success[2])
    assert torch.equal(res.success[[1, 0]], sorted_res.success)


def test_robust_inputs_cost_exactly_one_budget() -> None:
    """Inputs robust at the largest budget are never attacked again: the grid makes exactly the
    forward passes of AutoAttack at the largest budget alone (counted, not timed)."""
    model = Counting(binary_affine())
    x = points()
    y, d = exact_linf(model.inner, x)
    top = float(d.min()) * 0.9  # every input is robust everywhere on the grid
    options = {"steps": 10, "n_queries": 50, "bounds": BOUNDS, "seed": 0}
    autoattack(model, x, y, [top], **options)
    single = model.inputs
    model.inputs = 0
    res = autoattack(model, x, y, [top / 4, top / 2, 3 * top / 4, top], grid=True, **options)
    assert not res.success.any()
    assert model.inputs == single
    model.inputs = 0  # the ascending schedule pays every budget in full
    autoattack(model, x, y, [top / 4, top / 2, 3 * top / 4, top], **options)
    assert model.inputs > 3 * single


def test_first_success_and_bisection_helpers() -> None:
    success = torch.tensor([[False, True, False], [True, True, False]])
    eps_min = first_success(success, [0.1, 0.2])
    assert eps_min[0].item() == 0.2 and eps_min[1].item() == 0.1 and math.isnan(eps_min[2].item())
    x = torch.zeros(3, 1)
    threshold = torch.tensor([0.13, 0.05, math.inf])

    def oracle(xs: torch.Tensor, ys: torch.Tensor, eps: float, rows: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        return xs, eps >= threshold[rows]

    refined = bisect_budgets(x, torch.zeros(3, dtype=torch.long), [0.1, 0.2], eps_min, [oracle], 8)
    assert 0.13 <= refined[0].item() <= 0.13 + 0.1 / 2**8
    assert 0.05 <= refined[1].item() <= 0.05 + 0.1 / 2**8
    assert math.isnan(refined[2].item())
    res, by = descending_budgets(x, torch.zeros(3, dtype=torch.long), [0.1, 0.2], "inf", [oracle])
    assert torch.equal(res.success, success) and res.x_adv is None
    assert torch.equal(by, torch.where(success, 0, -1))


def test_curve_rows_follow_from_eps_min() -> None:
    """robust accuracy at ε_k = share of inputs with ε_min > ε_k (NaN = never broken)."""
    model = small_net(3)
    x, y = image_batch(50)
    grid = [0.0, 0.03, 0.06, 0.1]
    for attack, options in (("autoattack", {"grid": True, "steps": 5, "n_targets": 2,
                                            "n_queries": 30}),
                            ("fgsm", {}), ("pgd", {"steps": 5})):
        curve = robustness_curve(model, (x, y), attack, grid, batch_size=16, seed=0, **options)
        eps_min = curve.eps_min
        assert eps_min.shape == (50,)
        for eps, acc in zip(curve.frame["epsilon"], curve.frame["robust_accuracy"], strict=True):
            assert acc == pytest.approx(float(np.mean(np.isnan(eps_min) | (eps_min > eps))))
        assert (eps_min[model(x).argmax(1).numpy() != y.numpy()] == 0).all()


def _checkpoint(tmp_path: Path) -> Path:
    from rankrobust.checkpoint import save_checkpoint
    from rankrobust.models import ModelSpec

    spec = ModelSpec("mlp", (1, 16, 16), 4, {"hidden": [8]})  # synthetic: 4 classes, 16×16
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "ck", spec.build(), spec, {"dataset": "synthetic"})


def test_evaluate_grid_summary_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rankrobust.cli.main import main
    from rankrobust.robustness.summaries import summarize

    argv = ["evaluate", str(_checkpoint(tmp_path)), "--attack", "autoattack", "--grid",
            "--bisect", "2", "--eps", "0.05,0.1,0.15,0.2", "--n", "12", "--steps", "5",
            "--queries", "20", "--no-sanity", "--summary", "--format", "json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"curve", "summary", "eps_min", "settings", "warnings"}
    assert out["settings"]["attack"] == "autoattack" and out["warnings"] == []
    eps_min = np.array([math.nan if e is None else e for e in out["eps_min"]])
    assert eps_min.shape == (12,)
    curve = out["curve"]
    assert [row["epsilon"] for row in curve] == [0.05, 0.1, 0.15, 0.2]
    expected = summarize([r["epsilon"] for r in curve], [r["robust_accuracy"] for r in curve],
                         curve[0]["clean_accuracy"], eps_min)
    for key, value in expected.items():
        got = out["summary"][key]
        assert (got is None and not math.isfinite(value)) or got == pytest.approx(value)


@pytest.mark.parametrize(("flags", "needle"), [
    (["--attack", "pgd", "--grid"], "--grid applies to --attack autoattack only"),
    (["--attack", "autoattack", "--bisect", "99"], "bisect: expected an integer in 0..20"),
    (["--attack", "fgsm", "--summary", "--format", "csv"], "--summary needs --format table"),
])
def test_evaluate_grid_flags_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], needle: str
) -> None:
    from rankrobust.cli.main import main

    argv = ["evaluate", str(_checkpoint(tmp_path)), "--eps", "0.1", "--n", "4", "--no-sanity",
            *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rankrobust: error: ") and err.count("\n") == 1 and needle in err, err


class LargestTensor(TorchFunctionMode):
    """Records the largest number of elements of any tensor a torch function returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize(("attack", "options", "k"), [
    ("fgsm", {}, 1000), ("pgd", {"steps": 2}, 100), ("apgd-ce", {"steps": 2}, 100),
    ("square", {"n_queries": 2}, 100),
    ("autoattack", {"steps": 2, "n_targets": 1, "n_queries": 2}, 100),
    ("autoattack", {"steps": 2, "n_targets": 1, "n_queries": 2, "grid": True}, 100),
])
def test_curve_memory_does_not_grow_with_the_number_of_budgets(
    attack: str, options: dict[str, Any], k: int
) -> None:
    """#22 §2: no tensor of a curve's making holds K × N × D numbers (N = 8 inputs of D = 16
    pixels): the largest is at most a quarter of K·N·D (K·N booleans, a batch of inputs, FGSM's
    1,024 forwarded points × D), counted per returned tensor, not timed. Keeping the examples
    (the attacks' default) does make the (K, N, D) tensor, so the count sees it."""
    model = small_net()
    x, y = image_batch(8)
    budgets = [0.2 * (j + 1) / k for j in range(k)]
    with LargestTensor() as mode:
        curve = robustness_curve(model, (x, y), attack, budgets, seed=0, **options)
    assert len(curve.frame) == k
    assert mode.largest <= k * 8 * 16 // 4, mode.largest
    with LargestTensor() as kept:
        autoattack(model, x, y, budgets[:50], steps=1, n_targets=1, n_queries=1)
    assert kept.largest >= 50 * 8 * 16
