"""The study-v2 methods: FGSM-RS against its definition, the weight-decay and spectral-norm
controls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.checkpoint import load_checkpoint, save_checkpoint
from rankrobust.errors import ConfigError
from rankrobust.methods import METHODS, method_from_config
from rankrobust.methods.fgsm_rs import FGSMRS
from rankrobust.methods.pgd_adv import SEED_OFFSET
from rankrobust.methods.spectral_norm import SpectralNorm
from rankrobust.methods.weight_decay import WeightDecay
from rankrobust.models import build_model
from rankrobust.structure import analyze
from rankrobust.training import TrainConfig, seed_everything, train
from rankrobust.training.fit import fit


class Info:
    """A StepInfo at a given progress (epochs)."""

    def __init__(self, progress: float) -> None:
        self.step, self.lr, self._progress = 0, 1e-3, progress

    @property
    def progress(self) -> float:
        return self._progress


def _tiny() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.rand(6, 1, 4, 4)
    x[0, 0, 0, :2] = torch.tensor([0.0, 1.0])  # pixels on both bounds: the clip matters
    return model, x, torch.tensor([0, 1, 2, 0, 1, 2])


def fgsm_rs_by_definition(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                          generator: torch.Generator) -> torch.Tensor:
    """Wong et al. 2020, Algorithm 3: δ ~ U(−ε, ε); δ ← Π(δ + 1.25ε·sign ∇δ L(x + δ)); clip."""
    delta = eps * (2 * torch.rand(x.shape, generator=generator) - 1)
    x0 = (x + delta).clamp(0, 1).requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x0), y, reduction="sum"), x0)
    delta = (x0.detach() + 1.25 * eps * grad.sign() - x).clamp(-eps, eps)
    return (x + delta).clamp(0, 1)


def test_fgsm_rs_is_one_random_start_fgsm_step_of_125_eps() -> None:
    model, x, y = _tiny()
    method = method_from_config({"name": "fgsm-rs", "eps": 0.1})
    objective = method.objective(seed=3)
    reference = torch.Generator().manual_seed(3 + SEED_OFFSET)  # the method's private stream
    for _ in range(2):  # the second batch continues the stream
        loss, logits = objective(model, x, y, Info(progress=5.0))
        x_adv = fgsm_rs_by_definition(model, x, y, 0.1, reference)
        assert torch.allclose(logits, model(x_adv), atol=1e-6)
        assert torch.allclose(loss, F.cross_entropy(model(x_adv), y), atol=1e-6)
        assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    # the ramp: at progress 0.5 of a 2-epoch warm-up, ε and α are a quarter
    ramped = FGSMRS(eps=0.4, warmup_epochs=2).objective(seed=3)
    loss, _ = ramped(model, x, y, Info(progress=0.5))
    x_adv = fgsm_rs_by_definition(model, x, y, 0.1, torch.Generator().manual_seed(3 + SEED_OFFSET))
    assert torch.allclose(loss, F.cross_entropy(model(x_adv), y), atol=1e-6)


def test_weight_decay_is_lambda_times_squared_frobenius_norms_of_the_weights() -> None:
    model = build_model("mlp", (1, 4, 4), 3, hidden=[5])
    term = WeightDecay(lambda_wd=0.01).regularize(model).loss_terms["l2"]
    weights = [model.layers[0].weight, model.layers[2].weight]  # biases are left alone
    value = term(Info(0.0))
    assert torch.allclose(value, 0.01 * sum(w.pow(2).sum() for w in weights))
    value.backward()
    for w in weights:
        assert torch.allclose(w.grad, 0.02 * w.detach())  # ∂ λ‖W‖² = 2λW
    assert model.layers[0].bias.grad is None
    with pytest.raises(ConfigError, match="lambda_wd must be a finite number > 0"):
        method_from_config({"name": "weight-decay", "lambda_wd": 0.0})


def test_weight_decay_shrinks_the_weights(synthetic_data: Any) -> None:
    norms = []
    for method in ({"name": "natural"}, {"name": "weight-decay", "lambda_wd": 0.05}):
        seed_everything(0)
        model = build_model("mlp", (1, 16, 16), 4, hidden=[32])
        config = TrainConfig(epochs=2, progress=False, method=method_from_config(method))
        train(model, synthetic_data[0], None, config)
        norms.append(sum(float(p.detach().pow(2).sum()) for n, p in model.named_parameters()
                         if "weight" in n))
    assert norms[1] < 0.8 * norms[0]


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_spectral_norm_trains_plain_effective_weights_of_norm_sigma(
    tmp_path: Path, sigma: float
) -> None:
    config = TrainConfig(epochs=2, progress=False, method=SpectralNorm(sigma=sigma))
    fitted = fit("synthetic", "lenet5", config)
    state = fitted.model.state_dict()
    assert not any("parametrizations" in key for key in state)  # baked into plain weights
    rows = analyze(fitted.model)  # the structure analysis sees the effective weight
    assert rows["spectral_norm"].tolist() == pytest.approx([sigma] * 5, rel=0.01)
    path = save_checkpoint(tmp_path / "sn", fitted.model, fitted.spec)
    loaded = load_checkpoint(path)
    x = torch.rand(8, 1, 16, 16)
    assert torch.equal(loaded.model(x), fitted.model(x))


def test_spectral_norm_plain_model_computes_what_the_parametrized_one_did(synthetic_data: Any) -> None:
    from rankrobust.checkpoint import effective_state_dict

    seed_everything(0)
    model = build_model("mlp", (1, 16, 16), 4, hidden=[32])
    train(model, synthetic_data[0], None, TrainConfig(epochs=1, progress=False,
                                                      method=SpectralNorm()))
    plain = build_model("mlp", (1, 16, 16), 4, hidden=[32])
    plain.load_state_dict(effective_state_dict(model))
    x = synthetic_data[1][0][:32]
    assert torch.allclose(plain.eval()(x), model.eval()(x), atol=1e-6)


NEW = [{"name": "fgsm-rs", "eps": 0.1}, {"name": "weight-decay", "lambda_wd": 1e-3},
       {"name": "spectral-norm"}]


def test_new_methods_are_registered() -> None:
    assert {"fgsm-rs", "weight-decay", "spectral-norm"} <= set(METHODS)
    for data in NEW:
        assert method_from_config(data).name == data["name"]
