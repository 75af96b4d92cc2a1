"""Checks against gradient masking and broken evaluations (Carlini et al. 2019, "On evaluating
adversarial robustness", §5 checklist), returned as one-line warnings.

Given a fooling-ratio curve (from :func:`fooling_ratio_curve`) on the same model and data:

1. iterative attacks are at least as strong as single-step ones: PGD ≥ FGSM at every ε;
2. success reaches ~100 % at a budget that covers the whole input box (ℓ∞: high − low;
   ℓ2: (high − low)·√D), where any label can be reached unless the model is constant;
3. random noise of the same size (ℓ∞: random corners ε·sign; ℓ2: a random direction of
   length ε) never fools more inputs than the attack;
4. an unbounded attack (DeepFool) changes every label;
5. input gradients are not zero (a sign of saturated softmax or shattered gradients);
6. a gradient-free attack (Square) breaks no more than a few inputs that the gradient attacks
   (APGD-CE, APGD-T) left: Square succeeding where gradients fail is the signature of masked
   gradients (Croce & Hein 2020, §5);
7. no stronger attack beats the reported one: the autoattack ensemble (APGD-CE → APGD-T →
   Square, at ``steps`` APGD iterations and ``queries`` Square queries, or the curve itself when
   it is autoattack) fools at most ``STRONGER_GAP`` more of the inputs at any ε.

An empty list means no check fired, not that the evaluation is proven sound.

Reuse: checks 1 and 7 compare two attacks. When the run already measured the other attack on
the same inputs and norm (``reference``: the run's other curves), its stored ratios are used at
the budgets both curves share, and nothing is recomputed; only when no reference covers any of
the curve's budgets is the other attack run. Checks 2, 4 and 5 concern the model, not the curve
(``model_checks=False`` skips them, e.g. for a run's second curve of the same norm).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import torch
from torch import nn

from rankrobust.attacks import ATTACKS, deepfool, get_attack, input_gradient
from rankrobust.attacks.base import (
    Bounds,
    broadcast,
    check_norm,
    eval_mode,
    flat_norm,
    model_device,
    predict,
)
from rankrobust.robustness.curves import Data, fooling_ratio_curve, make_generator, select

LARGE_SUCCESS = 0.99  # minimum fooling ratio at a budget that covers the whole box
ZERO_GRADIENT_SHARE = 0.01
SQUARE_SHARE = 0.005  # most inputs (share of n) Square may break after APGD-CE and APGD-T
STRONGER_GAP = 0.01  # most fooling ratio a stronger attack may add to the reported one
# The checklist's reference attacks (registered built-ins). Which other attacks check 1 compares
# with FGSM, and which stored curves serve as FGSM's iterative reference, the registry says
# (``Attack.beats_single_step``, ``Attack.iterative``).
SINGLE_STEP, ITERATIVE_REFERENCE, ENSEMBLE = "fgsm", "pgd", "autoattack"


def iterative_attacks() -> tuple[str, ...]:
    """The registered multi-step gradient attacks (check 1's references for FGSM)."""
    return tuple(name for name, a in ATTACKS.items() if a.iterative)


def stored_ratios(reference: pd.DataFrame | None, attacks: tuple[str, ...], norm: str,
                  epsilons: list[float]) -> dict[float, float]:
    """Fooling ratio per ε in ``epsilons`` (ε > 0) of the strongest curve in ``reference`` made
    by one of ``attacks`` with ``norm``: the largest stored ratio at each budget found."""
    if reference is None or reference.empty:
        return {}
    rows = reference[reference["attack"].astype(str).isin(attacks)
                     & (reference["norm"].astype(str) == norm)]
    found: dict[float, float] = {}
    for e in epsilons:
        at = rows[(rows["epsilon"].astype(float) - e).abs() <= 1e-12]
        if e > 0 and len(at):
            found[e] = float(at["fooling_ratio"].astype(float).max())
    return found


def noise_fooling_ratio(
    model: nn.Module,
    data: Data,
    epsilons: list[float],
    norm: str,
    bounds: Bounds = (0.0, 1.0),
    generator: torch.Generator | None = None,
    batch_size: int = 256,
) -> list[float]:
    """Share of inputs whose label changes under random noise of size exactly ε, per ε."""
    x_all, _ = data
    gen = generator or torch.Generator().manual_seed(0)
    device = model_device(model)
    fooled = [0] * len(epsilons)
    for i in range(0, len(x_all), batch_size):
        x = x_all[i : i + batch_size].to(device)
        pred = predict(model, x)
        for k, e in enumerate(epsilons):
            if norm == "inf":
                d = (torch.randint(0, 2, x.shape, generator=gen).to(x) * 2 - 1)
            else:
                d = torch.randn(x.shape, generator=gen).to(x)
                d = d / broadcast(flat_norm(d, "2").clamp_min(1e-12), d)
            fooled[k] += int((predict(model, (x + e * d).clamp(*bounds)) != pred).sum())
    return [f / len(x_all) for f in fooled]


def sanity_checks(
    model: nn.Module,
    data: Data,
    curve: pd.DataFrame,
    *,
    bounds: Bounds = (0.0, 1.0),
    batch_size: int = 256,
    n: int | None = None,
    seed: int | None = None,
    steps: int = 20,
    queries: int = 1000,
    reference: pd.DataFrame | None = None,
    model_checks: bool = True,
) -> list[str]:
    """Warnings (one line each) about ``curve``, the fooling-ratio curve of one attack and norm
    on the first ``n`` inputs of ``data``; an empty list when every check passes. ``steps``:
    iterations of the PGD / APGD runs the checks make; ``queries``: Square's (checks 6, 7);
    ``reference``: other curves of the same model on the same inputs, reused by checks 1 and 7
    (module docstring); ``model_checks``: run checks 2, 4 and 5."""
    attack, norm = str(curve["attack"].iloc[0]), check_norm(str(curve["norm"].iloc[0]))
    eps = [float(e) for e in curve["epsilon"]]
    ratios = [float(r) for r in curve["fooling_ratio"]]
    x, y = select(data, n)
    gen = make_generator(seed)
    opts: dict[str, Any] = {"norm": norm, "batch_size": batch_size, "bounds": bounds}
    warnings: list[str] = []
    with eval_mode(model):
        # 1. iterative ≥ single-step
        fgsm = attack == SINGLE_STEP
        if fgsm or get_attack(attack).beats_single_step:
            mine = dict(zip(eps, ratios, strict=True))
            other = stored_ratios(reference, iterative_attacks() if fgsm else (SINGLE_STEP,), norm,
                                  eps)
            if not other:
                seed1 = int(torch.randint(0, 2**62, (1,), generator=gen))
                computed = (fooling_ratio_curve(model, (x, y), SINGLE_STEP, eps, **opts)
                            if not fgsm else fooling_ratio_curve(
                                model, (x, y), ITERATIVE_REFERENCE, eps, steps=steps, seed=seed1,
                                **opts))
                other = dict(zip(eps, computed["fooling_ratio"].astype(float), strict=True))
            single, multi = (mine, other) if fgsm else (other, mine)
            name = ITERATIVE_REFERENCE if fgsm else attack
            for e in sorted(other):
                s, m = single[e], multi[e]
                if m < s:
                    warnings.append(f"{name} fools fewer inputs than single-step fgsm at ε={e:g} "
                                    f"({m:.3f} < {s:.3f}): the iterative attack is not converging")
        # 3. random noise never beats the attack
        noise = noise_fooling_ratio(model, (x, y), eps, norm, bounds, gen, batch_size)
        for e, r, q in zip(eps, ratios, noise, strict=True):
            if q > r:
                warnings.append(f"random noise of size ε={e:g} fools more inputs than {attack} "
                                f"({q:.3f} > {r:.3f}): the attack's gradients are unreliable")
        if model_checks:
            warnings += model_sanity_checks(model, (x, y), norm, gen, steps, opts)
        warnings += ensemble_checks(model, (x, y), curve, gen, steps, queries, opts, reference)
    return warnings


def model_sanity_checks(model: nn.Module, data: Data, norm: str, generator: torch.Generator,
                        steps: int, opts: dict[str, Any]) -> list[str]:
    """Checks 2, 4 and 5 of :func:`sanity_checks`: properties of the model under ``norm``."""
    x, _ = data
    bounds, batch_size = opts["bounds"], opts["batch_size"]
    warnings: list[str] = []
    with eval_mode(model):
        # 2. a budget covering the whole box
        dim = x[0].numel()
        big = (bounds[1] - bounds[0]) * (1.0 if norm == "inf" else math.sqrt(dim))
        large = fooling_ratio_curve(model, data, ITERATIVE_REFERENCE, [big], steps=steps,
                                    seed=int(torch.randint(0, 2**62, (1,), generator=generator)),
                                    **opts)["fooling_ratio"].iloc[0]
        if large < LARGE_SUCCESS:
            warnings.append(f"pgd at ε={big:g} (the whole input box) fools only {large:.3f} of "
                            "inputs, expected ~1: gradients may be masked or the model constant")
        # 4. unbounded attack changes every label; 5. non-zero gradients
        failed = zero = 0
        device = model_device(model)
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(device)
            pred = predict(model, xb)
            failed += int((~deepfool(model, xb, pred, norm=norm, bounds=bounds).success).sum())
            zero += int((flat_norm(input_gradient(model, xb, pred), "inf") == 0).sum())
        if failed:
            warnings.append(f"unbounded deepfool ({norm}) failed to change {failed} of {len(x)} "
                            "labels: expected every label to change")
        if zero > ZERO_GRADIENT_SHARE * len(x):
            warnings.append(f"input gradient is exactly zero for {zero} of {len(x)} inputs: "
                            "saturated softmax or masked gradients make gradient attacks blind")
    return warnings


def ensemble_checks(
    model: nn.Module,
    data: Data,
    curve: pd.DataFrame,
    generator: torch.Generator,
    steps: int,
    queries: int,
    opts: dict[str, Any],
    reference: pd.DataFrame | None = None,
) -> list[str]:
    """Checks 6 and 7 of :func:`sanity_checks` on the inputs ``data`` the curve was made on.
    Check 7 reuses a stored autoattack curve of the same norm in ``reference`` at the budgets
    both share (check 6 is then that curve's own); otherwise it runs the ensemble."""
    attack, norm = str(curve["attack"].iloc[0]), str(curve["norm"].iloc[0])
    eps = [float(e) for e in curve["epsilon"]]
    mine = dict(zip(eps, curve["fooling_ratio"].astype(float), strict=True))
    stored = {} if attack == ENSEMBLE else stored_ratios(reference, (ENSEMBLE,), norm, eps)
    if attack == ENSEMBLE and "broken_by" in curve:
        ens = curve
    elif stored:
        ens = None
    else:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        ens = fooling_ratio_curve(model, data, ENSEMBLE, eps, steps=steps, n_queries=queries,
                                  seed=seed, **opts)
    n = len(data[0])
    warnings = []
    if ens is not None:
        for e, counts in zip(eps, ens["broken_by"], strict=True):
            square = int(json.loads(counts).get("square", 0))
            if square > SQUARE_SHARE * n:
                warnings.append(f"gradient-free square broke {square} of {n} inputs at ε={e:g} "
                                "that apgd-ce and apgd-t left: gradients are likely masked")
        if ens is not curve:
            stored = dict(zip(eps, ens["fooling_ratio"].astype(float), strict=True))
    if attack != ENSEMBLE:
        for e in sorted(stored):
            r, s = mine[e], stored[e]
            if s - r > STRONGER_GAP:
                warnings.append(f"a stronger attack (autoattack) fools {100 * (s - r):.1f} points "
                                f"more inputs than {attack} at ε={e:g} ({s:.3f} > {r:.3f}): the "
                                "reported attack under-reports")
    return warnings
