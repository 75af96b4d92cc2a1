"""Attack speed and strength vs torchattacks on LeNet-5 / mnist5k, batch 256 (issues 5 and 13).

Run: .venv/bin/python benchmarks/bench_attacks.py [--threads 2] [--epochs 2] [--repeats 5]
     [--df-n 64] [--only pgd|fgsm] (just that part: its ratios) [--clock wall|cpu]

Every ratio compares two calls timed interleaved (A, B, A, B, …, one warm-up each) by the median
of ``--repeats`` pairs, and is printed with ``os.getloadavg()`` taken right after its
measurements (the machine is shared: a ratio measured under load is only indicative). Prints,
then as the last line one JSON object of ratios and load averages:
  pgd_vs_limit              PGD-40 ℓ∞ (early stop off) / 40·(forward + backward)   goal ≤ 1.05
  pgd_vs_iterates_limit     the same / 40·(forward + backward) at PGD's own iterates (reference)
  pgd_early_stop_vs_limit   the same with early stopping (the default)             (reference)
  torchattacks_pgd_vs_limit torchattacks PGD-40 / the same limit                    (reference)
  pgd_curve_vs_torchattacks 5-ε PGD-40 curve / torchattacks PGD-40 once per ε       goal ≤ 0.6
  pgd_curve_fooling_gain    min over ε of (ours − torchattacks) fooling ratio       goal ≥ 0
  deepfool_speedup          torchattacks DeepFool time / ours (same inputs)         goal ≥ 10
  deepfool_rho_rel_diff     |ρ_ours/ρ_torchattacks − 1| on inputs both fooled       goal ≤ 0.02
  fgsm_curve_vs_single      10-ε FGSM curve (one gradient, one batched forward over
                            the 10·256 points) / one single-ε FGSM                  (reference)
The limit is 40 calls of ``input_gradient`` at x (one forward and one backward each, nothing
else). A forward+backward costs a few % more at perturbed inputs than at the clean MNIST x (data
dependent kernels), so the limit at the 40 iterates PGD visits (recorded from one run, each in its
own buffer: colder in cache than PGD's one iterate) is printed for reference. PGD-40 also scores
its last iterate (one more forward) and checks its inputs once. ``--clock cpu`` times with
``time.process_time`` instead of the wall clock: steadier on a loaded machine with 1 thread,
meaningless with several (spinning threads count).
The single-ε FGSM baseline is one gradient plus the forward that tells which labels changed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from rankrobust.attacks import deepfool, fgsm, input_gradient, pgd
from rankrobust.attacks.base import predict
from rankrobust.data import load_dataset
from rankrobust.training.config import TrainConfig
from rankrobust.training.fit import fit


def load() -> list[float]:
    """``os.getloadavg()`` (1, 5, 15 min), rounded."""
    return [round(v, 2) for v in os.getloadavg()]


CLOCK: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter  # set from --clock


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, float], dict[str, Any]]:
    """(median wall time of each function, its last output): the functions called in turn in
    every round (A, B, A, B, …) after one warm-up each, so that a change of machine load hits
    both sides of a ratio alike."""
    out = {name: fn() for name, fn in fns.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            out[name] = fn()
            times[name].append(clock() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}, out


def report(ratios: dict[str, Any], key: str, value: float, text: str, digits: int = 3) -> None:
    """Record ratio ``key`` with the load average now, and print it with that load."""
    now = load()
    ratios[key] = round(value, digits)
    ratios[f"loadavg_{key}"] = now
    print(f"{text}: {key} = {value:.{digits}f} (load average {now})")


def pgd_part(model: torch.nn.Module, x: torch.Tensor, p: torch.Tensor, args: argparse.Namespace,
             ratios: dict[str, Any]) -> None:
    """PGD-40 (early stop off, and on) and torchattacks PGD-40 vs the limit 40·(f+b)."""
    iterates: list[torch.Tensor] = []  # the inputs of PGD-40's 40 gradient passes

    def record(_: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if inputs[0].requires_grad and len(inputs[0]) == len(x):
            iterates.append(inputs[0].detach().clone())

    hook = model.register_forward_pre_hook(record)
    pgd(model, x, p, [0.1], steps=40, early_stop=False)
    hook.remove()
    assert len(iterates) == 40, len(iterates)

    def limit_loop() -> None:  # the limit: 40 forward+backward passes, nothing else
        for _ in range(40):
            input_gradient(model, x, p)

    def iterates_loop() -> None:  # 40 forward+backward passes at PGD's iterates
        for xt in iterates:
            input_gradient(model, xt, p)

    calls: dict[str, Callable[[], Any]] = {
        "limit": limit_loop,
        "pgd": lambda: pgd(model, x, p, [0.1], steps=40, early_stop=False),
        "iterates": iterates_loop,
    }
    med, _ = interleaved(calls, args.repeats)
    print(f"fwd+bwd {med['limit'] / 40 * 1e3:.1f} ms at x, {med['iterates'] / 40 * 1e3:.1f} ms at PGD's "
          f"iterates; limit 40·(f+b) {med['limit']:.3f} s; PGD-40 {med['pgd']:.3f} s ({args.clock} clock)")
    report(ratios, "pgd_vs_limit", med["pgd"] / med["limit"], "PGD-40 / 40·(f+b) at x, early stop off")
    report(ratios, "pgd_vs_iterates_limit", med["pgd"] / med["iterates"],
           "PGD-40 / 40·(f+b) at its own iterates, early stop off")
    if args.only == "pgd":
        return
    med, _ = interleaved({"limit": limit_loop, "pgd": lambda: pgd(model, x, p, [0.1], steps=40)},
                         args.repeats)
    report(ratios, "pgd_early_stop_vs_limit", med["pgd"] / med["limit"], "PGD-40 / 40·(f+b), early stop on")
    try:
        import torchattacks
    except ImportError:
        print("torchattacks unavailable: its reference ratios are skipped")
        return
    ta_pgd = torchattacks.PGD(model, eps=0.1, alpha=0.1 / 16, steps=40)
    med, _ = interleaved({"limit": limit_loop, "ta": lambda: ta_pgd(x, p)}, args.repeats)
    report(ratios, "torchattacks_pgd_vs_limit", med["ta"] / med["limit"], "torchattacks PGD-40 / 40·(f+b) at x")


def torchattacks_parts(
    model: torch.nn.Module,
    x: torch.Tensor,
    p: torch.Tensor,
    args: argparse.Namespace,
    changed: Callable[[torch.Tensor], float],
    ratios: dict[str, Any],
) -> None:
    """The 5-ε PGD curve and DeepFool vs torchattacks."""
    import torchattacks

    eps5 = [0.05, 0.1, 0.15, 0.2, 0.3]

    def ta_curve() -> list[float]:
        torch.manual_seed(0)
        return [changed(torchattacks.PGD(model, eps=e, alpha=2.5 * e / 40, steps=40)(x, p))
                for e in eps5]

    med, out = interleaved({"ours": lambda: pgd(model, x, p, eps5, steps=40), "theirs": ta_curve},
                           args.repeats)
    ours5, theirs5 = out["ours"].success_rate().tolist(), out["theirs"]
    t_eval = interleaved({"eval": lambda: predict(model, x)}, 10)[0]["eval"] * len(eps5)
    print(f"5-ε PGD curve {med['ours']:.3f} s vs torchattacks {med['theirs']:.3f} s "
          f"(+{t_eval:.3f} s to evaluate theirs, not counted)")
    print(f"  fooling ours   {[round(v, 4) for v in ours5]}")
    print(f"  fooling theirs {[round(v, 4) for v in theirs5]}")
    report(ratios, "pgd_curve_vs_torchattacks", med["ours"] / med["theirs"], "5-ε PGD-40 curve / torchattacks")
    ratios["pgd_curve_fooling_gain"] = round(min(a - b for a, b in zip(ours5, theirs5, strict=True)), 4)

    xd, pd_ = x[: args.df_n], p[: args.df_n]
    ta_df = torchattacks.DeepFool(model, steps=50, overshoot=0.02)
    med, out = interleaved({"ours": lambda: deepfool(model, xd, pd_, overshoot=0.02, max_iter=50),
                            "theirs": lambda: ta_df.forward_return_target_labels(xd, pd_)},
                           max(1, args.repeats // 3))
    df, (adv, _) = out["ours"], out["theirs"]
    theirs_ok = predict(model, adv) != pd_
    both = df.success & theirs_ok
    xn = xd.flatten(1).norm(dim=1)
    rho_ours = float((df.norms / xn)[both].mean())
    rho_theirs = float(((adv - xd).flatten(1).norm(dim=1) / xn)[both].mean())
    print(f"DeepFool on {len(xd)}: ours {med['ours']:.3f} s (success {df.success.float().mean():.3f}), "
          f"torchattacks {med['theirs']:.3f} s (success {theirs_ok.float().mean():.3f}); "
          f"ρ_adv on {int(both.sum())} both fooled: {rho_ours:.4f} vs {rho_theirs:.4f}; "
          f"ours over all its successes {float((df.norms / xn)[df.success].mean()):.4f}")
    report(ratios, "deepfool_speedup", med["theirs"] / med["ours"], "torchattacks DeepFool / ours", 1)
    ratios["deepfool_rho_rel_diff"] = round(abs(rho_ours / rho_theirs - 1), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved pairs per ratio")
    parser.add_argument("--df-n", type=int, default=64, help="inputs for the DeepFool comparison")
    parser.add_argument("--only", choices=["pgd", "fgsm"], default=None, help="run only this part")
    parser.add_argument("--clock", choices=list(CLOCK), default="wall")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global clock
    clock = CLOCK[args.clock]

    fitted = fit("mnist5k", "lenet5", TrainConfig(epochs=args.epochs, progress=False, device="cpu"))
    model = fitted.model.eval()
    x_all, _ = load_dataset("mnist5k", "test")
    x = x_all[:256]
    p = predict(model, x)  # attack the clean predictions: fooling ratio = label change
    start_load = load()
    print(f"LeNet-5 mnist5k, {args.epochs} epochs, test acc {fitted.result.final['test_acc']:.3f}; "
          f"threads {args.threads}, batch {len(x)}; load average {start_load}")

    def changed(x_adv: torch.Tensor) -> float:
        return float((predict(model, x_adv) != p).float().mean())

    ratios: dict[str, Any] = {}
    if args.only in (None, "pgd"):
        pgd_part(model, x, p, args, ratios)
    if args.only is None:
        try:
            torchattacks_parts(model, x, p, args, changed, ratios)
        except ImportError:
            print("torchattacks unavailable: the curve and DeepFool comparisons are skipped")

    if args.only in (None, "fgsm"):  # FGSM curve over 10 ε vs one single-ε FGSM
        eps10 = [0.03 * i for i in range(1, 11)]
        med, out = interleaved({"single": lambda: fgsm(model, x, p, [0.1]),
                                "curve": lambda: fgsm(model, x, p, eps10)}, 5 * args.repeats)
        print(f"FGSM single ε {med['single'] * 1e3:.1f} ms; 10-ε curve {med['curve'] * 1e3:.1f} ms; "
              f"fooling {[round(v, 4) for v in out['curve'].success_rate().tolist()]}")
        report(ratios, "fgsm_curve_vs_single", med["curve"] / med["single"], "FGSM 10-ε curve / one ε")
    ratios.update(threads=args.threads, clock=args.clock, loadavg_start=start_load, loadavg_end=load())
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
