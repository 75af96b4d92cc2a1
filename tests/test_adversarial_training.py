"""Adversarial training methods: FGSM mix by hand, PGD, ε warm-up, wiring into train()."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.attacks.perturb import fgsm_perturb, pgd_perturb
from rankrobust.errors import ConfigError
from rankrobust.methods import method_from_config, natural_objective
from rankrobust.methods.base import warmup_eps
from rankrobust.methods.fgsm_adv import FGSMAdv
from rankrobust.methods.pgd_adv import PGDAdv
from rankrobust.models import build_model
from rankrobust.training import TrainConfig, TrainState, evaluate, train

Data = tuple[torch.Tensor, torch.Tensor]


def _setup(progress_steps: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor, TrainState]:
    torch.manual_seed(0)
    model = build_model("mlp", (1, 6, 6), 3, hidden=[16]).double()
    x = torch.rand(10, 1, 6, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (10,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    state = TrainState(model, opt, TrainConfig(), torch.device("cpu"), step=progress_steps,
                       steps_per_epoch=10)
    return model, x, y, state


@pytest.mark.parametrize("alpha", [0.5, 0.2, 0.99])  # alpha = 1 is refused (natural training)
def test_fgsm_mix_equals_hand_computation(alpha: float) -> None:
    model, x, y, state = _setup()
    eps = 0.1
    loss, logits = FGSMAdv(eps, alpha).objective(0)(model, x, y, state)
    # by hand: x_adv = clip(x + ε·sign ∇ₓ L(x, y), 0, 1) with L the mean cross-entropy
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
    x_adv = (x + eps * grad.sign()).clamp(0, 1)
    expected = alpha * F.cross_entropy(model(x), y) + (1 - alpha) * F.cross_entropy(model(x_adv), y)
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-12)
    torch.testing.assert_close(logits, model(x))  # clean logits for the train accuracy
    assert all(p.grad is None for p in model.parameters())  # the attack leaves ∇θ alone


def test_warmup_schedule() -> None:
    assert warmup_eps(0.3, 0, 0.0) == 0.3
    assert warmup_eps(0.3, 2, 0.0) == 0.0
    assert warmup_eps(0.3, 2, 1.0) == pytest.approx(0.15)
    assert warmup_eps(0.3, 2, 5.0) == pytest.approx(0.3)


def test_fgsm_warmup_start_is_clean_loss() -> None:
    model, x, y, state = _setup(progress_steps=0)
    loss, _ = FGSMAdv(0.3, 0.5, warmup_epochs=1).objective(0)(model, x, y, state)
    assert loss.item() == pytest.approx(F.cross_entropy(model(x), y).item())
    state.step = 5  # half an epoch into a one-epoch warm-up: ε = 0.15
    loss, _ = FGSMAdv(0.3, 0.5, warmup_epochs=1).objective(0)(model, x, y, state)
    expected = 0.5 * F.cross_entropy(model(x), y) + 0.5 * F.cross_entropy(
        model(fgsm_perturb(model, x, y, 0.15)), y)
    assert loss.item() == pytest.approx(expected.item())


def test_pgd_objective_matches_pgd_perturb_and_is_seeded() -> None:
    model, x, y, state = _setup()
    loss_a, logits = PGDAdv(0.1, steps=3).objective(4)(model, x, y, state)
    loss_b, _ = PGDAdv(0.1, steps=3).objective(4)(model, x, y, state)
    assert loss_a.item() == loss_b.item()
    gen = torch.Generator().manual_seed(4 + 7919)
    x_adv = pgd_perturb(model, x, y, 0.1, "inf", 3, None, True, generator=gen)
    assert loss_a.item() == pytest.approx(F.cross_entropy(model(x_adv), y).item())
    torch.testing.assert_close(logits, model(x_adv))
    assert loss_a.item() >= F.cross_entropy(model(x), y).item()


def test_method_config_wiring_and_errors() -> None:
    assert isinstance(method_from_config({"name": "fgsm-adv", "eps": 0.1}), FGSMAdv)
    assert method_from_config({"name": "pgd-adv", "eps": 0.1, "steps": 2}) == PGDAdv(0.1, 2)
    assert method_from_config("natural").objective(0) is natural_objective
    with pytest.raises(ConfigError, match="eps"):
        PGDAdv(eps=2.0)
    with pytest.raises(ConfigError, match="steps"):
        method_from_config({"name": "pgd-adv", "steps": 0})


def test_pgd_training_is_more_robust_than_natural(synthetic_data: tuple[Data, Data]) -> None:
    (x_tr, y_tr), (x_te, y_te) = synthetic_data
    eps = 0.25
    robust = {}
    for kind in ("none", "pgd"):
        torch.manual_seed(0)
        model = build_model("mlp", (1, 16, 16), 4, hidden=[32])
        method = PGDAdv(eps=eps, steps=3) if kind == "pgd" else method_from_config("natural")
        config = TrainConfig(epochs=8, batch_size=64, lr=5e-3, progress=False, method=method)
        train(model, (x_tr, y_tr), (x_te, y_te), config)
        x_adv = pgd_perturb(model, x_te, y_te, eps, steps=10,
                            generator=torch.Generator().manual_seed(1))
        robust[kind] = evaluate(model, x_adv, y_te)[1]
    assert robust["pgd"] > robust["none"] + 0.2  # observed: 0.48 vs 0.00
