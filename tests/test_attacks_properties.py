"""Properties (hypothesis): every adversarial input lies in its ε-ball and in the bounds, the
reported success is what the model says, success grows with ε, and the model's modes survive."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import examples
from rankrobust.attacks import apgd, autoattack, deepfool, fgsm, pgd, square
from rankrobust.attacks.base import predict
from rankrobust.attacks.perturb import flat_norm
from rankrobust.errors import ConfigError

TOL = 1e-5



def tiny_model(seed: int, classes: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(16, classes)).double()  # float64: no batch-size-dependent ties


ATTACKS = {
    "fgsm": lambda m, x, y, e, n, b, g: fgsm(m, x, y, e, norm=n, bounds=b),
    "pgd": lambda m, x, y, e, n, b, g: pgd(m, x, y, e, norm=n, steps=4, restarts=2, bounds=b,
                                           generator=g),
    "apgd-ce": lambda m, x, y, e, n, b, g: apgd(m, x, y, e, norm=n, steps=5, bounds=b, generator=g),
    "apgd-t": lambda m, x, y, e, n, b, g: apgd(m, x, y, e, norm=n, loss="dlr-targeted", steps=4,
                                               n_targets=2, bounds=b, generator=g),
    "square": lambda m, x, y, e, n, b, g: square(m, x, y, e, norm=n, n_queries=20, bounds=b,
                                                 generator=g),
    "autoattack": lambda m, x, y, e, n, b, g: autoattack(
        m, x, y, e, norm=n, steps=3, n_targets=2, n_queries=10, bounds=b,
        seed=int(torch.randint(0, 1000, (1,), generator=g))),
}


@settings(max_examples=examples(16), deadline=None)
@given(
    seed=st.integers(0, 10_000),
    name=st.sampled_from(sorted(ATTACKS)),
    norm=st.sampled_from(["inf", "2"]),
    eps=st.lists(st.floats(0.0, 3.0, allow_nan=False), min_size=1, max_size=4),
    low=st.sampled_from([0.0, -1.0]),
)
# regression: APGD's step-size checkpoint once replaced a just-fooling iterate by the best-loss one
@example(seed=6540, name="apgd-ce", norm="inf", eps=[2.0], low=-1.0)
def test_adversarial_inputs_lie_in_the_ball_and_the_bounds(
    seed: int, name: str, norm: str, eps: list[float], low: float
) -> None:
    model = tiny_model(seed).train()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(10, 1, 3, 4, generator=g, dtype=torch.float64) * (1 - low) + low
    y = torch.randint(0, 4, (10,), generator=g)
    res = ATTACKS[name](model, x, y, eps, norm, (low, 1.0), torch.Generator().manual_seed(seed))
    assert model.training and all(m.training for m in model.modules())  # modes restored
    assert res.success.shape == (len(eps), 10) and res.x_adv.shape == (len(eps), *x.shape)
    for k, e in enumerate(eps):
        assert torch.all(flat_norm(res.x_adv[k] - x, norm) <= e + TOL)
        assert res.x_adv[k].min() >= low and res.x_adv[k].max() <= 1.0
        model.eval()
        fooled = predict(model, res.x_adv[k]) != y
        assert torch.equal(res.success[k], fooled)  # success is what the model says
        model.train()
    order = sorted(range(len(eps)), key=lambda i: eps[i])
    s = res.success[order].int()
    assert torch.all(s[1:] >= s[:-1])  # fooled at ε stays fooled at every larger ε


@settings(max_examples=examples(10), deadline=None)
@given(seed=st.integers(0, 10_000), norm=st.sampled_from(["inf", "2"]))
def test_deepfool_outputs_are_in_bounds_and_consistent(seed: int, norm: str) -> None:
    model = tiny_model(seed).train()
    x = torch.rand(10, 1, 3, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    model.eval()
    y = predict(model, x)
    model.train()
    res = deepfool(model, x, y, norm=norm, max_iter=20)
    assert model.training
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert torch.allclose(res.perturbation, res.x_adv - x)
    assert torch.allclose(res.norms, flat_norm(res.perturbation, norm))
    model.eval()
    assert torch.equal(res.success, predict(model, res.x_adv) != y)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_fgsm_curve_is_the_or_of_single_budget_runs(norm: str) -> None:
    # success[k] = OR over ε_j ≤ ε_k of the single-ε FGSM success, whatever the forward chunking;
    # x_adv[k] is the single-ε point at the first fooling budget, else at ε_k
    model = tiny_model(1).eval()
    x = torch.rand(64, 1, 3, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = predict(model, x)
    # unsorted, with a repeat and ε = 0; some inputs are fooled at ε_j but not at a larger ε_k
    eps = [(0.15 if norm == "2" else 0.05) * i for i in (3, 0, 1, 1, 5, 2, 8, 4, 11)]
    singles = [fgsm(model, x, y, [e], norm=norm) for e in eps]
    res = fgsm(model, x, y, eps, norm=norm, batch_size=7)
    assert 0.1 < res.success.double().mean() < 0.9  # a mix of early, late and never fooled
    for k, e in enumerate(eps):
        below = [j for j, f in enumerate(eps) if f <= e]
        expected = torch.stack([singles[j].success[0] for j in below]).any(0)
        assert torch.equal(res.success[k], expected)
        first = {}  # input → the smallest fooling budget's single-ε point
        for j in sorted(below, key=lambda j: eps[j]):
            for i in singles[j].success[0].nonzero().flatten().tolist():
                first.setdefault(i, singles[j].x_adv[0, i])
        for i in range(len(x)):
            assert torch.equal(res.x_adv[k, i], first.get(i, singles[k].x_adv[0, i]))


def test_attacks_are_deterministic_for_a_seeded_generator() -> None:
    model = tiny_model(3).eval()
    x = torch.rand(16, 1, 3, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y = predict(model, x)
    a = pgd(model, x, y, [0.1, 0.3], steps=5, generator=torch.Generator().manual_seed(7))
    b = pgd(model, x, y, [0.1, 0.3], steps=5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.success, b.success)


def test_restarts_never_lose_successes() -> None:
    model = tiny_model(5).eval()
    x = torch.rand(32, 1, 3, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    y = predict(model, x)
    eps = [0.15]  # one budget: the first restart is the very same run (same random draws)
    one = pgd(model, x, y, eps, steps=5, generator=torch.Generator().manual_seed(0)).success
    three = pgd(model, x, y, eps, steps=5, restarts=3, generator=torch.Generator().manual_seed(0))
    assert not (one & ~three.success).any()
    assert three.success.sum() >= one.sum()


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x, y: fgsm(m, x, y, [0.1], norm="1"),
        lambda m, x, y: fgsm(m, x, y, [-0.1]),
        lambda m, x, y: fgsm(m, x, y, []),
        lambda m, x, y: pgd(m, x, y, [0.1], steps=0),
        lambda m, x, y: apgd(m, x, y, [0.1], loss="hinge"),
        lambda m, x, y: square(m, x, y, [0.1], n_queries=0),
        lambda m, x, y: square(m, x, y, [0.1], p_init=1.5),
        lambda m, x, y: autoattack(m, x, y, [0.1], members=("apgd-ce", "fab-t")),
        lambda m, x, y: autoattack(m, x, y, [0.1], members=()),
        lambda m, x, y: deepfool(m, x, y, max_iter=0),
        lambda m, x, y: fgsm(m, x, y[:3], [0.1]),
        lambda m, x, y: fgsm(m, x, y, [0.1], batch_size=0),
        lambda m, x, y: pgd(m, x, y, [0.1], bounds=(1.0, 0.0)),
    ],
)
def test_bad_arguments_raise_config_error(call: object) -> None:
    model = tiny_model(0)
    x, y = torch.rand(4, 1, 3, 4), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ConfigError):
        call(model, x, y)  # type: ignore[operator]
