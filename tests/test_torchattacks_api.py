"""The torchattacks-shaped layer (``rankrobust.attacks.PGD`` ...): torchattacks' defaults, the same
x_adv as torchattacks 3.5.1 where the algorithms coincide, and nothing but the package's own
functions underneath.

Exactness by construction: a batch of 16 (a power of two) makes torchattacks' mean
cross-entropy gradient exactly 1/16 of our summed one (scaling by a power of two is exact in
floating point), so every sign(∇) is the same and PGD's iterates are the same bits; with a random
start both draw ``uniform_(−ε, ε)`` from torch's global generator after the same seed."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from rankrobust.attacks import APGD, APGDT, PGD, AutoAttack, Square, apgd, autoattack, pgd, square
from rankrobust.attacks.base import predict
from rankrobust.errors import ConfigError

torchattacks = pytest.importorskip("torchattacks")


def cnn(seed: int = 0, classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 7 * 7, classes)).eval()


def batch(n: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_defaults_are_torchattacks_defaults() -> None:
    for ours, theirs in ((PGD, torchattacks.PGD), (APGD, torchattacks.APGD), (APGDT, torchattacks.APGDT),
                         (Square, torchattacks.Square), (AutoAttack, torchattacks.AutoAttack)):
        mine = inspect.signature(ours).parameters
        their = inspect.signature(theirs).parameters
        assert list(their) == [p for p in mine if p in their], ours.__name__  # same names, same order
        for name, param in their.items():
            assert mine[name].default == param.default, (ours.__name__, name)


@pytest.mark.parametrize("eps", [2 / 255, 8 / 255, 0.1])
def test_pgd_without_random_start_is_torchattacks_bit_for_bit(eps: float) -> None:
    model = cnn()
    x, y = batch()
    ours = PGD(model, eps=eps, alpha=eps / 4, steps=7, random_start=False)(x, y)
    theirs = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=7, random_start=False)(x, y)
    assert torch.equal(ours, theirs)
    assert not torch.equal(ours, x)  # it moved


def test_pgd_with_random_start_matches_torchattacks_under_the_same_seed() -> None:
    model = cnn()
    x, y = batch()
    torch.manual_seed(5)
    ours = PGD(model)(x, y)  # defaults: eps 8/255, alpha 2/255, 10 steps, random start
    torch.manual_seed(5)
    theirs = torchattacks.PGD(model)(x, y)
    assert torch.equal(ours, theirs)
    torch.manual_seed(6)
    assert not torch.equal(PGD(model)(x, y), theirs)  # the start is random


def test_each_class_is_its_function() -> None:
    model = cnn()
    x, y = batch(8)
    e = 8 / 255
    gen = torch.Generator
    assert torch.equal(APGD(model, eps=e, steps=5, n_restarts=2, seed=3, loss="dlr")(x, y),
                       apgd(model, x, y, [e], loss="dlr", steps=5, restarts=2,
                            generator=gen().manual_seed(3)).x_adv[0])
    assert torch.equal(APGDT(model, eps=e, steps=5, n_classes=5)(x, y),
                       apgd(model, x, y, [e], loss="dlr-targeted", steps=5, n_targets=4,
                            generator=gen().manual_seed(0)).x_adv[0])
    assert torch.equal(Square(model, eps=e, n_queries=30, seed=2)(x, y),
                       square(model, x, y, [e], n_queries=30, generator=gen().manual_seed(2)).x_adv[0])
    assert torch.equal(AutoAttack(model, eps=e, n_classes=10, seed=4, n_queries=30)(x, y),
                       autoattack(model, x, y, [e], steps=10, n_targets=9, n_queries=30, seed=4).x_adv[0])


def affine_pair() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A binary affine classifier on inputs in [0.4, 0.6] (ε ≤ 0.1: the box never binds), its
    predictions and the exact minimal ℓ∞ distance margin / ‖w₀ − w₁‖₁ of each input."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).eval()
    x = 0.4 + 0.2 * torch.rand(64, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        z = model(x)
    y = z.argmax(1)
    w = model[1].weight.detach()
    distance = (z.max(1).values - z.min(1).values) / (w[0] - w[1]).abs().sum()
    return model, x, y, distance


@pytest.mark.parametrize("name", ["APGD", "PGD", "AutoAttack"])
def test_agrees_with_torchattacks_on_the_exact_answer(name: str) -> None:
    """On a binary affine model the steepest ℓ∞ step reaches the optimum −ε·sign(w_y − w_j) at
    once, so both implementations fool exactly the inputs closer than ε to the boundary (inputs
    within 1e-4 of ε on either side are left out: rounding)."""
    model, x, y, distance = affine_pair()
    eps = float(distance.median())
    clear = (distance - eps).abs() > 1e-4
    expected = distance < eps
    ours_cls = {"APGD": APGD, "PGD": PGD, "AutoAttack": AutoAttack}[name]
    kwargs = {"PGD": {"alpha": eps, "steps": 3}, "APGD": {}, "AutoAttack": {"n_classes": 2}}[name]
    torch.manual_seed(0)
    ours = predict(model, ours_cls(model, eps=eps, **kwargs)(x, y)) != y
    assert torch.equal(ours[clear], expected[clear])
    if name != "AutoAttack":  # torchattacks' AutoAttack needs ≥ 4 classes for its APGD-T
        theirs_cls = getattr(torchattacks, name)
        torch.manual_seed(0)
        theirs = predict(model, theirs_cls(model, eps=eps, **kwargs)(x, y)) != y
        assert torch.equal(theirs[clear], expected[clear])
    assert 10 < int(expected[clear].sum()) < int(clear.sum()) - 10  # both outcomes occur


def test_normalization_as_torchattacks_sets_it() -> None:
    """torchattacks 3.5: after set_normalization_used the attack takes and returns normalized
    inputs z = (x − mean) / std and attacks the pixels behind them."""
    model = cnn()
    x, y = batch()
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    z = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    ours = PGD(model, random_start=False)
    ours.set_normalization_used(mean=mean, std=std)
    theirs = torchattacks.PGD(model, random_start=False)
    theirs.set_normalization_used(mean=mean, std=std)
    z_ours, z_theirs = ours(z, y), theirs(z, y)
    assert torch.allclose(z_ours, z_theirs, atol=1e-5)
    assert not torch.allclose(z_ours, z, atol=1e-3)  # it moved


def test_unsupported_options_are_refused_not_ignored() -> None:
    model = cnn()
    with pytest.raises(ConfigError, match="eot_iter=2 is not supported"):
        APGD(model, eot_iter=2)
    with pytest.raises(ConfigError, match="n_restarts=2 is not supported"):
        Square(model, n_restarts=2)
    with pytest.raises(ConfigError, match="version='plus' is not supported"):
        AutoAttack(model, version="plus")


def test_results_print_as_summaries() -> None:
    model = cnn()
    x, y = batch()
    res = pgd(model, x, y, [0.01, 0.1], steps=2)
    text = repr(res)
    assert text.startswith("AttackResult(norm='inf', epsilons=[0.01, 0.1], n=16, success_rate=[")
    assert "x_adv=<2×16×3×16×16 float32>" in text and "tensor(" not in text and len(text) < 200
    ens = autoattack(model, x, y, [0.05], steps=2, n_queries=5)
    assert repr(ens).startswith("EnsembleResult(norm='inf'") and "tensor(" not in repr(ens)
    assert "tensor(" not in repr(PGD(model)) and repr(PGD(model)).startswith("PGD(eps=")
