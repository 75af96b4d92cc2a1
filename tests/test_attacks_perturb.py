"""The single-budget primitives: training perturbations pinned bit for bit to the loops they
replaced, the ``loss_fn`` hook, the one ε-ball sampler, the shared PGD loop and ``predict``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.attacks.base import flat_norm, predict
from rankrobust.attacks.perturb import (
    cross_entropy_sum,
    fgsm_perturb,
    pgd_perturb,
    pgd_run,
    random_in_ball,
)
from rankrobust.training.evaluate import predict as training_predict

# ---- oracles: the training primitives as they were before the PGD loops were merged ----------


def _old_as_batch(eps: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    e = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if e.ndim == 0:
        e = e.expand(x.shape[0])
    return e.view(-1, *([1] * (x.ndim - 1)))


def _old_input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def _old_steepest_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "inf":
        return grad.sign()
    n = grad.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)
    return grad / n.view(-1, *([1] * (grad.ndim - 1)))


def _old_project(delta: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "inf":
        return torch.maximum(torch.minimum(delta, eps), -eps)
    n = delta.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (delta.ndim - 1)))
    factor = torch.clamp(eps / n.clamp_min(1e-12), max=1.0)
    return delta * factor


def old_fgsm_perturb(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor,
    norm: str = "inf", bounds: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    e = _old_as_batch(eps, x)
    d = _old_steepest_direction(_old_input_gradient(model, x, y), norm)
    return (x + e * d).clamp(*bounds).detach()


def old_pgd_perturb(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor,
    norm: str = "inf", steps: int = 10, step_size: float | torch.Tensor | None = None,
    random_start: bool = True, bounds: tuple[float, float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    e = _old_as_batch(eps, x)
    alpha = 2.5 * e / steps if step_size is None else _old_as_batch(step_size, x)
    x = x.detach()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device="cpu", dtype=x.dtype).to(x.device)
        if norm == "inf":
            delta = (2 * noise - 1) * e
        else:
            g = torch.randn(x.shape, generator=generator, device="cpu", dtype=x.dtype).to(x.device)
            g = g / g.flatten(1).norm(p=2, dim=1).clamp_min(1e-12).view(-1, *([1] * (x.ndim - 1)))
            r = noise.flatten(1)[:, :1].view(-1, *([1] * (x.ndim - 1)))
            delta = g * e * r
    else:
        delta = torch.zeros_like(x)
    x_adv = (x + delta).clamp(*bounds)
    for _ in range(steps):
        d = _old_steepest_direction(_old_input_gradient(model, x_adv, y), norm)
        delta = _old_project(x_adv + alpha * d - x, e, norm)
        x_adv = (x + delta).clamp(*bounds).detach()
    return x_adv


# ---- fixtures -----------------------------------------------------------------------------------


def small_cnn(seed: int) -> nn.Module:
    """float32, BatchNorm and dropout: in train mode every forward moves running stats and draws
    from the global RNG, so an extra or missing forward would show."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Dropout(0.3), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))


def batch(seed: int = 0, n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def state(model: nn.Module) -> list[torch.Tensor]:
    return [v.clone() for v in model.state_dict().values()]


# ---- bit identity with the old training loops ---------------------------------------------------


@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("random_start", [True, False])
@pytest.mark.parametrize("step_size", [None, 0.01])
@pytest.mark.parametrize("per_sample_eps", [False, True])
@pytest.mark.parametrize("steps", [1, 7])
def test_pgd_perturb_is_bit_identical_to_the_old_loop(
    norm: str, random_start: bool, step_size: float | None, per_sample_eps: bool, steps: int
) -> None:
    x, y = batch()
    eps: float | torch.Tensor = 0.1 if norm == "inf" else 0.8
    if per_sample_eps:
        eps = torch.rand(len(x), generator=torch.Generator().manual_seed(1)) * 2 * float(eps)
    outs, states, after = [], [], []
    for fn in (old_pgd_perturb, pgd_perturb):
        model = small_cnn(3).train()
        torch.manual_seed(5)  # dropout masks come from the global RNG
        gen = torch.Generator().manual_seed(11)
        # twice in a row: the generator must also be left in the same state
        first = fn(model, x, y, eps, norm, steps, step_size, random_start, generator=gen)
        second = fn(model, x, y, eps, norm, steps, step_size, random_start, generator=gen)
        outs.append(torch.stack([first, second]))
        states.append(state(model))
        after.append(torch.rand(4))  # the global RNG advanced by the same dropout draws
    assert torch.equal(outs[0], outs[1])
    assert all(torch.equal(a, b) for a, b in zip(*states, strict=True))
    assert torch.equal(after[0], after[1])
    if random_start or steps > 1:
        assert not torch.equal(outs[1][0], x)  # the check compares moved points


def test_pgd_perturb_random_start_from_the_global_rng_is_unchanged() -> None:
    x, y = batch(2)
    outs = []
    for fn in (old_pgd_perturb, pgd_perturb):
        model = small_cnn(4).train()
        torch.manual_seed(21)
        outs.append(fn(model, x, y, 0.2, "inf", 3))  # generator=None: torch's global RNG
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("per_sample_eps", [False, True])
def test_fgsm_perturb_is_bit_identical_to_the_old_one(norm: str, per_sample_eps: bool) -> None:
    x, y = batch(3)
    eps: float | torch.Tensor = torch.linspace(0, 0.3, len(x)) if per_sample_eps else 0.15
    outs = []
    for fn in (old_fgsm_perturb, fgsm_perturb):
        model = small_cnn(5).train()
        torch.manual_seed(8)
        outs.append(fn(model, x, y, eps, norm))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[1], x)


# ---- loss_fn -------------------------------------------------------------------------------------


def kl_to_clean(logits_adv: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """Σᵢ KL(p_cleanᵢ ‖ softmax(logits_advᵢ)), TRADES' inner objective."""
    return F.kl_div(F.log_softmax(logits_adv, dim=1), p_clean, reduction="sum")


def test_pgd_perturb_ascends_a_kl_loss_to_clean_probabilities() -> None:
    x, _ = batch(4)
    model = small_cnn(6).eval()
    with torch.no_grad():
        p_clean = F.softmax(model(x), dim=1)  # (B, K): the target is not a label
    gen = torch.Generator().manual_seed(0)
    x_adv = pgd_perturb(model, x, p_clean, 0.1, "inf", 10, None, True, generator=gen,
                        loss_fn=kl_to_clean)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert torch.all(flat_norm(x_adv - x, "inf") <= 0.1 + 1e-6)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        kl_adv = F.kl_div(F.log_softmax(model(x_adv), 1), p_clean, reduction="none").sum(1)
        start = x + random_in_ball(x, 0.1, "inf", torch.Generator().manual_seed(0))
        kl_start = F.kl_div(F.log_softmax(model(start.clamp(0, 1)), 1), p_clean,
                            reduction="none").sum(1)
    assert (kl_adv > kl_start).float().mean() > 0.9  # the ascent raised the KL it was given


def test_loss_fn_default_is_the_summed_cross_entropy_and_is_used() -> None:
    x, y = batch(5)
    model = small_cnn(7).eval()

    def run(loss_fn: object) -> torch.Tensor:
        gen = torch.Generator().manual_seed(3)
        return pgd_perturb(model, x, y, 0.1, "inf", 5, None, True, generator=gen,
                           loss_fn=loss_fn)  # type: ignore[arg-type]

    default = run(None)
    assert torch.equal(default, run(cross_entropy_sum))

    def descend(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -cross_entropy_sum(logits, target)

    lower = run(descend)
    with torch.no_grad():
        ce_up = F.cross_entropy(model(default), y, reduction="none")
        ce_down = F.cross_entropy(model(lower), y, reduction="none")
    assert torch.all(ce_down < ce_up)
    assert torch.equal(fgsm_perturb(model, x, y, 0.1, loss_fn=cross_entropy_sum),
                       fgsm_perturb(model, x, y, 0.1))
    assert torch.all(F.cross_entropy(model(fgsm_perturb(model, x, y, 0.1, loss_fn=descend)), y,
                                     reduction="none")
                     < F.cross_entropy(model(fgsm_perturb(model, x, y, 0.1)), y, reduction="none"))


# ---- the ε-ball sampler --------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_random_in_ball_stays_in_the_ball_and_is_seeded(norm: str) -> None:
    x = torch.zeros(500, 2, 3, 3, dtype=torch.float64)
    eps = torch.linspace(0.01, 2.0, 500, dtype=torch.float64)
    d = random_in_ball(x, eps, norm, torch.Generator().manual_seed(0))
    again = random_in_ball(x, eps, norm, torch.Generator().manual_seed(0))
    assert d.shape == x.shape and d.dtype == x.dtype and torch.equal(d, again)
    ratio = flat_norm(d, norm) / eps
    assert torch.all(ratio <= 1 + 1e-12)
    if norm == "inf":  # uniform in the cube: each coordinate ~ U[−ε, ε]
        u = (d / eps.view(-1, 1, 1, 1)).flatten()
        assert abs(float(u.mean())) < 0.03 and abs(float((u.abs() < 0.5).double().mean()) - 0.5) < 0.03
    else:  # radius ε·U[0, 1): mean ratio 1/2
        assert abs(float(ratio.mean()) - 0.5) < 0.05
        full = random_in_ball(x, eps, norm, torch.Generator().manual_seed(0), full_radius=True)
        assert torch.allclose(flat_norm(full, "2"), eps)
        # same draws, same directions: full radius only rescales
        assert torch.allclose(full * broadcast_like(ratio, full), d)


def broadcast_like(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.ndim - 1)))


def test_random_in_ball_draw_order_is_uniforms_then_normals() -> None:
    x = torch.zeros(6, 1, 2, 2)
    gen = torch.Generator().manual_seed(9)
    u = torch.rand(x.shape, generator=gen)
    g = torch.randn(x.shape, generator=gen)
    d = random_in_ball(x, 0.5, "2", torch.Generator().manual_seed(9))
    expected = 0.5 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * u.flatten(1)[:, :1].view(-1, 1, 1, 1)
    assert torch.allclose(d, expected)
    assert torch.allclose(random_in_ball(x, 0.5, "inf", torch.Generator().manual_seed(9)),
                          (2 * u - 1) * 0.5)


# ---- the shared loop in its evaluation form ------------------------------------------------------


@pytest.mark.parametrize("early_stop", [True, False])
def test_tracked_pgd_run_keeps_fooling_or_highest_loss_iterates(early_stop: bool) -> None:
    x, _ = batch(6, n=64)
    model = small_cnn(8).eval()
    y = predict(model, x)
    start = random_in_ball(x, 0.05, "inf", torch.Generator().manual_seed(1))
    run = pgd_run(model, x, y, 0.05, "inf", 6, 0.02, start, track=True, early_stop=early_stop)
    assert run.fooled is not None and run.loss is not None
    assert 0 < run.fooled.sum() < len(x)
    assert torch.all(flat_norm(run.x_adv - x, "inf") <= 0.05 + 1e-6)
    assert torch.equal(predict(model, run.x_adv) != y, run.fooled)
    assert torch.all(run.loss[run.fooled] == torch.inf)
    with torch.no_grad():
        ce = F.cross_entropy(model(run.x_adv), y, reduction="none")
    assert torch.allclose(run.loss[~run.fooled], ce[~run.fooled])
    # untracked: the last of the same iterates (no early stop, nothing kept)
    last = pgd_run(model, x, y, 0.05, "inf", 6, 0.02, start).x_adv
    same = pgd_run(model, x, y, 0.05, "inf", 6, 0.02, start, track=True, early_stop=False)
    assert same.fooled is not None and torch.equal(same.fooled, run.fooled)
    assert not torch.equal(last, run.x_adv)


def _reference_pgd_run(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, norm: str,
    steps: int, alpha: float | torch.Tensor, start: torch.Tensor, track: bool, early_stop: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The tracked PGD loop written plainly (allocating, boolean masks): the oracle for the
    in-place step and row-wise bookkeeping of ``pgd_run`` (issue 13)."""
    e = _old_as_batch(eps, x)
    al = _old_as_batch(alpha, x) if isinstance(alpha, torch.Tensor) else alpha
    b = len(x)
    best_x, fooled = x.clone(), torch.zeros(b, dtype=torch.bool)
    best_loss, rows = torch.full((b,), -torch.inf), torch.arange(b)
    xs, ys, es, xa = x, y, e, (x + start).clamp(0, 1)
    for t in range(steps + 1):
        if t == steps and not track:
            break
        if t == steps:
            with torch.no_grad():
                logits = model(xa)
        else:
            xg = xa.detach().requires_grad_(True)
            logits = model(xg)
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, ys, reduction="sum"), xg)
            logits = logits.detach()
        if track:
            loss = F.cross_entropy(logits, ys, reduction="none")
            hit = (logits.argmax(1) != ys) & ~fooled[rows]
            better = (loss > best_loss[rows]) & ~fooled[rows]
            best_x[rows[hit | better]] = xa[hit | better]
            best_loss[rows[better]] = loss[better]
            fooled[rows[hit]] = True
            best_loss[rows[hit]] = torch.inf
            if t == steps:
                break
        delta = _old_project(xa + al * _old_steepest_direction(grad, norm) - xs, es, norm)
        xa = (xs + delta).clamp(0, 1)
        if track and early_stop:
            keep = ~fooled[rows]
            rows, xa, xs, ys, es = rows[keep], xa[keep], xs[keep], ys[keep], es[keep]
            al = al[keep] if isinstance(al, torch.Tensor) else al
            if not len(rows):
                break
    return (best_x, fooled, best_loss) if track else (xa, None, None)


@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("mode", ["untracked", "early_stop", "full"])
@pytest.mark.parametrize("per_sample", [False, True])
def test_pgd_run_is_bit_identical_to_a_plain_reference_loop(norm: str, mode: str, per_sample: bool) -> None:
    x, _ = batch(10, n=48)
    model = small_cnn(11).eval()
    y = predict(model, x)
    eps: float | torch.Tensor = 0.04 if norm == "inf" else 0.3
    alpha: float | torch.Tensor = 2.5 * float(eps) / 7
    if per_sample:
        scale = torch.rand(len(x), generator=torch.Generator().manual_seed(2)) + 0.5
        eps, alpha = scale * float(eps), scale * float(alpha)
    start = random_in_ball(x, eps, norm, torch.Generator().manual_seed(3))
    track, early_stop = mode != "untracked", mode == "early_stop"
    got = pgd_run(model, x, y, eps, norm, 7, alpha, start, track=track, early_stop=early_stop)
    want = _reference_pgd_run(model, x, y, eps, norm, 7, alpha, start, track, early_stop)
    assert torch.equal(got.x_adv, want[0]) and not torch.equal(got.x_adv, x)
    for a, b in ((got.fooled, want[1]), (got.loss, want[2])):
        assert (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
    if track:
        assert got.fooled is not None and 0 < int(got.fooled.sum()) < len(x)  # both branches seen
    assert torch.equal(start, random_in_ball(x, eps, norm, torch.Generator().manual_seed(3)))


# ---- the one batched predict --------------------------------------------------------------------


def test_predict_is_batched_restores_every_mode_and_is_shared_with_training() -> None:
    model = small_cnn(9)
    model.train()
    model[1].eval()  # a submodule in its own mode
    x, _ = batch(7, n=50)
    with torch.no_grad():
        expected = model.eval()(x).argmax(1)
    model.train()
    model[1].eval()
    got = predict(model, x, batch_size=7)
    assert torch.equal(got, expected) and got.dtype == torch.long
    assert model.training and model[3].training and not model[1].training
    assert predict(model, x[:0]).shape == (0,)
    assert training_predict is predict  # training re-exports the one batched predict
