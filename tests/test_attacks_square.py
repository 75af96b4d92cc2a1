"""Square Attack: in the ball and the bounds, seeded, independent of the other inputs, exact on
affine classifiers in ℓ∞ (greedy search over vertices reaches the optimal vertex), never
succeeding below the exact distance, and its schedule and ℓ2 pattern."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import examples
from rankrobust.attacks import square
from rankrobust.attacks.base import eval_mode, flat_norm, predict
from rankrobust.attacks.square import eta, p_schedule, square_budgets
from test_attacks_oracle import BOUNDS, affine, exact_distances, inputs


def small_cnn(seed: int, classes: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 7, classes)).double().eval()


@settings(max_examples=examples(10), deadline=None)
@given(seed=st.integers(0, 10_000), norm=st.sampled_from(["inf", "2"]),
       eps=st.lists(st.floats(0.0, 2.0, allow_nan=False), min_size=1, max_size=3),
       low=st.sampled_from([0.0, -1.0]))
def test_square_stays_in_the_ball_and_bounds_and_is_seeded(
    seed: int, norm: str, eps: list[float], low: float
) -> None:
    model = small_cnn(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(8, 2, 6, 7, generator=g, dtype=torch.float64) * (1 - low) + low
    y = torch.randint(0, 4, (8,), generator=g)
    run = lambda s: square(model, x, y, eps, norm=norm, n_queries=25, bounds=(low, 1.0),  # noqa: E731
                           generator=torch.Generator().manual_seed(s))
    res = run(seed)
    for k, e in enumerate(eps):
        assert torch.all(flat_norm(res.x_adv[k] - x, norm) <= e + 1e-9)
        assert res.x_adv[k].min() >= low and res.x_adv[k].max() <= 1.0
        assert torch.equal(res.success[k], predict(model, res.x_adv[k]) != y)
    again = run(seed)
    assert torch.equal(again.x_adv, res.x_adv) and torch.equal(again.success, res.success)


def test_square_result_per_input_does_not_depend_on_the_others() -> None:
    model = small_cnn(1)
    x = torch.rand(12, 2, 6, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = predict(model, x)
    for norm, eps in (("inf", 0.05), ("2", 0.2)):
        with eval_mode(model):
            one = square_budgets(model, x, y, norm, n_queries=40,
                                 generator=torch.Generator().manual_seed(3))
            full_x, full_hit = one(x, y, eps, torch.arange(12))
            for rows in (torch.tensor([7, 2, 10]), (~full_hit).nonzero().squeeze(1)):
                sub_x, sub_hit = one(x[rows], y[rows], eps, rows)
                assert torch.equal(sub_x, full_x[rows]) and torch.equal(sub_hit, full_hit[rows])
        assert 0 < full_hit.sum() < 12  # a mix: inputs leave the batch at different times


def test_square_is_exact_on_affine_classifiers_in_linf() -> None:
    model = affine(2)
    x = inputs(8)
    y, d_inf, d_2 = exact_distances(model, x)
    grid = sorted({float(v) for v in torch.cat([d_inf * 0.999, d_inf * 1.001])})
    res = square(model, x, y, grid, n_queries=150, bounds=BOUNDS)
    expected = torch.tensor(grid, dtype=torch.float64)[:, None] > d_inf[None, :]
    assert torch.equal(res.success, expected)
    # ℓ2: random patterns need not reach the optimum, but never cross below the distance
    grid2 = sorted(float(v) for v in d_2 * 0.999)
    res2 = square(model, x, y, grid2, norm="2", n_queries=100, bounds=BOUNDS)
    below = torch.tensor(grid2, dtype=torch.float64)[:, None] < d_2[None, :]
    assert not res2.success[below].any() and res2.success[~below].any()


def test_square_counts_misclassified_inputs_as_fooled_and_skips_eps_zero() -> None:
    model = small_cnn(4)
    x = torch.rand(10, 2, 6, 7, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    y = (predict(model, x) + torch.arange(10) % 2) % 4  # every other label wrong
    res = square(model, x, y, [0.0, 0.01], n_queries=5)
    wrong = torch.arange(10) % 2 == 1
    assert torch.equal(res.success[0], wrong) and torch.equal(res.x_adv[0], x)
    assert res.success[1][wrong].all() and torch.equal(res.x_adv[1][wrong], x[wrong])


def test_square_works_on_flat_inputs() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 3)).double()
    x = torch.rand(6, 10, dtype=torch.float64)
    res = square(model, x, predict(model, x), [0.2, 5.0], n_queries=50)
    assert res.x_adv.shape == (2, 6, 10) and res.success[1].all()


def test_schedule_and_l2_pattern() -> None:
    assert p_schedule(0, 5000, 0.8) == 0.8
    assert p_schedule(25, 5000, 0.8) == pytest.approx(0.4)  # 25/5000·10000 = 50: still p/2
    assert p_schedule(26, 5000, 0.8) == pytest.approx(0.2)
    assert p_schedule(4999, 5000, 0.8) == pytest.approx(0.8 / 512)
    for s in (1, 3, 5, 8):
        e = eta(s)
        assert e.shape == (s, s) and e.norm() == pytest.approx(1.0)
        if s > 1:
            assert (e[: s // 2] > 0).all() and (e[s // 2 :] < 0).all()
