"""Attack speed and strength vs torchattacks on LeNet-5 / mnist5k, batch 256 (issue 5).

Run: .venv/bin/python benchmarks/bench_attacks.py [--threads 1] [--epochs 2] [--df-n 64]
     [--only fgsm]  (just the FGSM part: its ratio)

Prints, then as the last line one JSON object of ratios:
  pgd_vs_limit              PGD-40 ℓ∞ (early stop off) / 40·(forward + backward)   goal ≤ 1.05
  torchattacks_pgd_vs_limit torchattacks PGD-40 / the same limit                    (reference)
  pgd_curve_vs_torchattacks 5-ε PGD-40 curve / torchattacks PGD-40 once per ε       goal ≤ 0.6
  pgd_curve_fooling_gain    min over ε of (ours − torchattacks) fooling ratio       goal ≥ 0
  deepfool_speedup          torchattacks DeepFool time / ours (same inputs)         goal ≥ 10
  deepfool_rho_rel_diff     |ρ_ours/ρ_torchattacks − 1| on inputs both fooled       goal ≤ 0.02
  fgsm_curve_vs_single      10-ε FGSM curve (one gradient, one batched forward over
                            the 10·256 points) / one single-ε FGSM                  (reference)
Times are the minimum over repeats (the machine is shared; minima are the least noisy).
The single-ε FGSM baseline is one gradient plus the forward that tells which labels changed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import torch

from rankrobust.attacks import deepfool, fgsm, input_gradient, pgd
from rankrobust.attacks.base import predict
from rankrobust.data import load_dataset
from rankrobust.training.config import TrainConfig
from rankrobust.training.fit import fit


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def other_parts(
    model: torch.nn.Module,
    x: torch.Tensor,
    p: torch.Tensor,
    args: argparse.Namespace,
    changed: Callable[[torch.Tensor], float],
) -> dict[str, float]:
    """Parts 1-3 (PGD, PGD curve, DeepFool vs torchattacks); their ratios."""
    import torchattacks

    # 1. PGD-40 vs the limit 40·(forward + backward)
    def limit_loop() -> None:  # the limit: 40 forward+backward passes, nothing else
        for _ in range(40):
            input_gradient(model, x, p)

    limit, _ = best_time(limit_loop, args.repeats)
    t_fb = limit / 40
    t_pgd, _ = best_time(lambda: pgd(model, x, p, [0.1], steps=40, early_stop=False), args.repeats)
    t_pgd_es, _ = best_time(lambda: pgd(model, x, p, [0.1], steps=40), args.repeats)
    ta_pgd = torchattacks.PGD(model, eps=0.1, alpha=0.1 / 16, steps=40)
    t_ta_pgd, _ = best_time(lambda: ta_pgd(x, p), args.repeats)
    print(f"fwd+bwd {t_fb * 1e3:.1f} ms; limit 40·(f+b) {limit:.3f} s; PGD-40 {t_pgd:.3f} s "
          f"(early stop {t_pgd_es:.3f} s); torchattacks {t_ta_pgd:.3f} s")

    # 2. 5-ε PGD-40 curve vs torchattacks once per ε
    eps5 = [0.05, 0.1, 0.15, 0.2, 0.3]
    t_curve, res = best_time(lambda: pgd(model, x, p, eps5, steps=40), args.repeats)
    ours5 = res.success_rate().tolist()

    def ta_curve() -> list[float]:
        torch.manual_seed(0)
        return [changed(torchattacks.PGD(model, eps=e, alpha=2.5 * e / 40, steps=40)(x, p))
                for e in eps5]

    t_ta_curve, theirs5 = best_time(ta_curve, args.repeats)
    t_eval = best_time(lambda: predict(model, x), 10)[0] * len(eps5)
    print(f"5-ε PGD curve {t_curve:.3f} s vs torchattacks {t_ta_curve:.3f} s "
          f"(+{t_eval:.3f} s to evaluate theirs, not counted)")
    print(f"  fooling ours   {[round(v, 4) for v in ours5]}")
    print(f"  fooling theirs {[round(v, 4) for v in theirs5]}")

    # 3. DeepFool vs torchattacks DeepFool
    xd, pd_ = x[: args.df_n], p[: args.df_n]
    t_df, df = best_time(lambda: deepfool(model, xd, pd_, overshoot=0.02, max_iter=50), args.repeats)
    ta_df = torchattacks.DeepFool(model, steps=50, overshoot=0.02)
    t_ta_df, (adv, _) = best_time(lambda: ta_df.forward_return_target_labels(xd, pd_), 1)
    theirs_ok = predict(model, adv) != pd_
    both = df.success & theirs_ok
    xn = xd.flatten(1).norm(dim=1)
    rho_ours = float((df.norms / xn)[both].mean())
    rho_theirs = float(((adv - xd).flatten(1).norm(dim=1) / xn)[both].mean())
    print(f"DeepFool on {len(xd)}: ours {t_df:.3f} s (success {df.success.float().mean():.3f}), "
          f"torchattacks {t_ta_df:.3f} s (success {theirs_ok.float().mean():.3f}); "
          f"ρ_adv on {int(both.sum())} both fooled: {rho_ours:.4f} vs {rho_theirs:.4f}; "
          f"ours over all its successes {float((df.norms / xn)[df.success].mean()):.4f}")

    return {
        "pgd_vs_limit": round(t_pgd / limit, 3),
        "pgd_early_stop_vs_limit": round(t_pgd_es / limit, 3),
        "torchattacks_pgd_vs_limit": round(t_ta_pgd / limit, 3),
        "pgd_curve_vs_torchattacks": round(t_curve / t_ta_curve, 3),
        "pgd_curve_fooling_gain": round(min(a - b for a, b in zip(ours5, theirs5, strict=True)), 4),
        "deepfool_speedup": round(t_ta_df / t_df, 1),
        "deepfool_rho_rel_diff": round(abs(rho_ours / rho_theirs - 1), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--df-n", type=int, default=64, help="inputs for the DeepFool comparison")
    parser.add_argument("--only", choices=["fgsm"], default=None, help="run only this part")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    fitted = fit("mnist5k", "lenet5", TrainConfig(epochs=args.epochs, progress=False, device="cpu"))
    model = fitted.model.eval()
    x_all, _ = load_dataset("mnist5k", "test")
    x = x_all[:256]
    p = predict(model, x)  # attack the clean predictions: fooling ratio = label change
    print(f"LeNet-5 mnist5k, {args.epochs} epochs, test acc {fitted.result.final['test_acc']:.3f}; "
          f"threads {args.threads}, batch {len(x)}")

    def changed(x_adv: torch.Tensor) -> float:
        return float((predict(model, x_adv) != p).float().mean())

    ratios: dict[str, float] = {}
    if args.only is None:
        ratios = other_parts(model, x, p, args, changed)

    # 4. FGSM curve over 10 ε vs one single-ε FGSM
    eps10 = [0.03 * i for i in range(1, 11)]
    t_single, _ = best_time(lambda: fgsm(model, x, p, [0.1]), 5 * args.repeats)
    t_curve, fc = best_time(lambda: fgsm(model, x, p, eps10), 5 * args.repeats)
    print(f"FGSM single ε {t_single * 1e3:.1f} ms; 10-ε curve {t_curve * 1e3:.1f} ms; "
          f"fooling {[round(v, 4) for v in fc.success_rate().tolist()]}")
    ratios["fgsm_curve_vs_single"] = round(t_curve / t_single, 3)
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
