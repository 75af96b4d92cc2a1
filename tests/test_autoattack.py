"""The autoattack ensemble: never weaker than any of its members run alone with the same seed
(on affine oracles and on a trained LeNet-5, float64), which member broke each input, robust
accuracy on the true labels, and a cross-check against torchattacks.AutoAttack("standard")."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rankrobust.attacks import apgd, autoattack, square
from rankrobust.attacks.base import AttackResult, flat_norm, predict
from rankrobust.data import dataset_info, load_dataset
from rankrobust.models import build_model
from rankrobust.training import train
from rankrobust.training.config import TrainConfig
from test_attacks_oracle import BOUNDS, affine, exact_distances, inputs

SMALL = {"steps": 10, "n_targets": 3, "n_queries": 60}


def members_alone(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: list[float],
                  norm: str, seed: int, bounds: tuple[float, float]) -> dict[str, AttackResult]:
    """Each member with the ensemble's settings and seed, run alone."""
    def gen() -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    steps, targets, queries = SMALL["steps"], SMALL["n_targets"], SMALL["n_queries"]
    return {
        "apgd-ce": apgd(model, x, y, eps, norm=norm, steps=steps, bounds=bounds, generator=gen()),
        "apgd-t": apgd(model, x, y, eps, norm=norm, loss="dlr-targeted", steps=steps,
                       n_targets=targets, bounds=bounds, generator=gen()),
        "square": square(model, x, y, eps, norm=norm, n_queries=queries, bounds=bounds,
                         generator=gen()),
    }


def check_superset(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: list[float],
                   norm: str, bounds: tuple[float, float]) -> torch.Tensor:
    ens = autoattack(model, x, y, eps, norm=norm, bounds=bounds, seed=3, **SMALL)
    alone = members_alone(model, x, y, eps, norm, 3, bounds)
    for name, res in alone.items():
        assert not (res.success & ~ens.success).any(), f"{name} alone fooled an input the ensemble did not"
    union = torch.stack([r.success for r in alone.values()]).any(0)
    assert ens.success.sum() >= union.sum()
    # consistency of the result itself
    assert torch.equal(ens.success, ens.broken_by >= 0)
    for k, e in enumerate(eps):
        assert torch.all(flat_norm(ens.x_adv[k] - x, norm) <= e * (1 + 1e-9) + 1e-12)
        assert torch.equal(predict(model, ens.x_adv[k]) != y, ens.success[k])
    return ens.success


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_ensemble_contains_its_members_on_affine_oracles(norm: str) -> None:
    model = affine(5, seed=3)
    x = inputs(16, seed=4)
    y, d_inf, d_2 = exact_distances(model, x)
    exact = d_inf if norm == "inf" else d_2
    q = exact.quantile(torch.linspace(0, 1, 5, dtype=torch.float64))
    eps = sorted({float(v) for v in torch.cat([q * 0.9999, q * 1.05])})
    success = check_superset(model, x, y, eps, norm, BOUNDS)
    below = torch.tensor(eps, dtype=torch.float64)[:, None] < exact[None, :]
    assert not success[below].any()  # sound: nothing below the exact distance
    above = torch.tensor(eps, dtype=torch.float64)[:, None] >= exact[None, :] * 1.05
    assert success[above].all()  # and complete 5 % above it


@pytest.fixture(scope="module")
def lenet() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """LeNet-5 trained one epoch (Adam) on mnist5k, its first 128 test inputs and true labels."""
    info = dataset_info("mnist5k")
    torch.manual_seed(0)
    model = build_model("lenet5", info.in_shape, info.num_classes, mean=list(info.mean),
                        std=list(info.std))
    train(model, load_dataset("mnist5k", "train"), None,
          TrainConfig(epochs=1, optimizer="adam", lr=0.003, batch_size=64, progress=False,
                      device="cpu"))
    x, y = load_dataset("mnist5k", "test")
    return model.eval(), x[:128], y[:128]


def test_ensemble_contains_its_members_on_a_trained_net(
    lenet: tuple[nn.Module, torch.Tensor, torch.Tensor]
) -> None:
    model, x, y = lenet
    model64 = build_model("lenet5", (1, 28, 28), 10)  # float64: no batch-dependent rounding
    model64.load_state_dict(model.state_dict())
    model64 = model64.double().eval()
    x64 = x[:32].double()
    success = check_superset(model64, x64, y[:32], [0.05, 0.1], "inf", (0.0, 1.0))
    assert 0 < success[0].sum() < success[1].sum() < 32  # the check is not vacuous


def test_broken_by_names_the_member_and_carries_over_budgets() -> None:
    model = affine(4, seed=5)
    x = inputs(20, seed=6)
    y, d_inf, _ = exact_distances(model, x)
    y = y.clone()
    y[:3] = (y[:3] + 1) % 4  # three inputs misclassified unperturbed
    res = autoattack(model, x, y, [0.0, float(d_inf.median()), 100.0], bounds=BOUNDS, **SMALL)
    assert res.names == ("clean", "apgd-ce", "apgd-t", "square")
    assert torch.equal(res.broken_by[0], torch.where(torch.arange(20) < 3, 0, -1))
    assert (res.broken_by[:, :3] == 0).all() and res.success[2].all()
    counts = res.counts()
    assert counts[0] == {"clean": 3, "apgd-ce": 0, "apgd-t": 0, "square": 0}
    assert sum(counts[2].values()) == 20
    # an input broken at a smaller budget keeps its member and example at larger ones
    early = res.success[1]
    assert torch.equal(res.broken_by[2][early], res.broken_by[1][early])
    assert torch.equal(res.x_adv[2][early], res.x_adv[1][early])


def test_autoattack_is_deterministic_for_a_seed() -> None:
    model = affine(5, seed=1)
    x = inputs(12, seed=2)
    y = predict(model, x)
    a = autoattack(model, x, y, [0.05, 0.2], seed=4, bounds=BOUNDS, **SMALL)
    b = autoattack(model, x, y, [0.05, 0.2], seed=4, bounds=BOUNDS, **SMALL)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.broken_by, b.broken_by)


@pytest.mark.slow  # ≈ 15 s on an idle core
def test_autoattack_is_at_least_as_strong_as_torchattacks(
    lenet: tuple[nn.Module, torch.Tensor, torch.Tensor]
) -> None:
    """Same model, same 96 inputs, ε = 0.15, the same ensemble at the same settings:
    torchattacks' AutoAttack("standard") members APGD-CE and APGD-T (9 target classes) at its
    10 steps, one restart, and Square, both Squares at 300 queries to keep this fast. FAB-T,
    which ours leaves out, is taken out of theirs so that the ensembles are equal. Robust
    accuracy (true labels): ours may not be above theirs, with no slack."""
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = lenet
    x, y, eps = x[:96], y[:96], 0.15
    ours = autoattack(model, x, y, [eps], steps=10, restarts=1, n_targets=9, n_queries=300)
    theirs_attack = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard",
                                            n_classes=10, seed=0)
    members = theirs_attack._autoattack.attacks
    assert [type(m).__name__ for m in members] == ["APGD", "APGDT", "FAB", "Square"]
    apgd_ce, apgd_t, _, square_t = members
    assert apgd_ce.steps == apgd_t.steps == 10 and apgd_ce.loss == "ce"
    assert apgd_t.n_target_classes == 9 and apgd_ce.n_restarts == apgd_t.n_restarts == 1
    square_t.n_queries = 300
    theirs_attack._autoattack.attacks = [apgd_ce, apgd_t, square_t]  # = ours: no FAB-T
    adv = theirs_attack(x, y)
    assert flat_norm(adv - x, "inf").max() <= eps + 1e-6
    robust_ours = int((~ours.success[0]).sum())  # inputs still correctly classified, of 96
    robust_theirs = int((predict(model, adv) == y).sum())
    clean = int((predict(model, x) == y).sum())
    assert robust_theirs < clean - 19  # the attacks do break inputs: the check means something
    assert robust_ours <= robust_theirs
