"""AutoAttack ensemble vs torchattacks.AutoAttack(version="standard") on the same LeNet-5s and
the same test inputs of mnist5k (issue "Evaluation a reviewer trusts", part 1).

Run: .venv/bin/python benchmarks/bench_autoattack.py [--n 500] [--eps 0.1,0.2,0.3]
     [--threads 1] [--natural-epochs 2] [--pgd-epochs 5] [--pgd-steps 7] [--only natural|pgd]
     [--square-alone]

Two models, trained here with rankrobust: natural (Adam, ``--natural-epochs``) and PGD
adversarially trained (ε = 0.3 ℓ∞, ``--pgd-steps`` steps, one warm-up epoch). On each: ours,
``autoattack(model, x, y, epsilons)`` with its defaults, one call for the whole ε list; theirs,
torchattacks' AutoAttack once per ε (APGD-CE, APGD-T with 9 targets and FAB-T at torchattacks'
default 10 steps each, Square 5000 queries; ours: APGD-CE, APGD-T at AutoAttack's 100 steps,
Square 2500 queries, no FAB-T). Robust accuracy is on the true labels (a misclassified input is
never robust).

Prints a table, then as the last line one JSON object:
  {model}_time_ratio                    ours / theirs, wall time over the ε list   goal ≤ 1.0
  {model}_cpu_time_ratio                the same in process CPU time (with one torch thread,
                                        unaffected by other processes' load)         (reference)
  {model}_robacc_gap_pts_eps{ε}         100·(ours − theirs) robust accuracy        goal ≤ 0.5
  with --square-alone, on the PGD model at the largest ε, Square by itself (no APGD first):
  square_alone_robacc_gap_pts_q{Q}      100·(ours at Q queries − torchattacks' Square at 5000)
Single runs (each takes minutes); the machine is shared, so wall times are noisy.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from rankrobust.attacks import autoattack
from rankrobust.attacks.base import flat_norm, predict
from rankrobust.data import load_dataset
from rankrobust.methods.pgd_adv import PGDAdv
from rankrobust.training.config import TrainConfig
from rankrobust.training.fit import fit


def train_model(kind: str, args: argparse.Namespace) -> torch.nn.Module:
    if kind == "natural":
        config = TrainConfig(epochs=args.natural_epochs, progress=False, device="cpu")
    else:
        config = TrainConfig(epochs=args.pgd_epochs, progress=False, device="cpu",
                             method=PGDAdv(eps=0.3, steps=args.pgd_steps, warmup_epochs=1))
    start = time.perf_counter()
    fitted = fit("mnist5k", "lenet5", config)
    print(f"{kind}: trained in {time.perf_counter() - start:.0f} s, "
          f"test accuracy {fitted.result.final['test_acc']:.3f}", flush=True)
    return fitted.model.eval()


def theirs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: list[float]
           ) -> tuple[float, float, list[float]]:
    import torchattacks

    robust, start, cpu = [], time.perf_counter(), time.process_time()
    for e in eps:
        attack = torchattacks.AutoAttack(model, norm="Linf", eps=e, version="standard",
                                         n_classes=10, seed=0)
        adv = attack(x, y)
        assert flat_norm(adv - x, "inf").max() <= e + 1e-5
        robust.append(float((predict(model, adv) == y).float().mean()))
    return time.perf_counter() - start, time.process_time() - cpu, robust


def square_alone(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                 ratios: dict[str, float]) -> None:
    """Square by itself: ours at 1000 / 2500 / 5000 queries vs torchattacks' at 5000."""
    import torchattacks

    from rankrobust.attacks import square

    adv = torchattacks.Square(model, norm="Linf", eps=eps, n_queries=5000, seed=0)(x, y)
    theirs = float((predict(model, adv) == y).float().mean())
    print(f"square alone, ε={eps:g}: torchattacks 5000 queries robust accuracy {theirs:.3f}")
    for q in (1000, 2500, 5000):
        ours = 1 - float(square(model, x, y, [eps], n_queries=q).success.float().mean())
        print(f"square alone, ε={eps:g}: ours {q} queries robust accuracy {ours:.3f}", flush=True)
        ratios[f"square_alone_robacc_gap_pts_q{q}"] = round(100 * (ours - theirs), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--eps", default="0.1,0.2,0.3")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--natural-epochs", type=int, default=2)
    parser.add_argument("--pgd-epochs", type=int, default=5)
    parser.add_argument("--pgd-steps", type=int, default=7)
    parser.add_argument("--only", choices=["natural", "pgd"], default=None)
    parser.add_argument("--square-alone", action="store_true",
                        help="also compare Square by itself on the PGD model at the largest ε")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    eps = [float(e) for e in args.eps.split(",")]
    x, y = load_dataset("mnist5k", "test")
    x, y = x[: args.n], y[: args.n]
    ratios: dict[str, float] = {}
    for kind in ["natural", "pgd"] if args.only is None else [args.only]:
        model = train_model(kind, args)
        clean = float((predict(model, x) == y).float().mean())
        start, cpu = time.perf_counter(), time.process_time()
        ours = autoattack(model, x, y, eps)
        t_ours, c_ours = time.perf_counter() - start, time.process_time() - cpu
        rob_ours = (1 - ours.success.float().mean(1)).tolist()
        print(f"{kind}: ours {t_ours:.1f} s, broken by member per ε: {ours.counts()}", flush=True)
        t_theirs, c_theirs, rob_theirs = theirs(model, x, y, eps)
        print(f"{kind}: clean accuracy {clean:.3f}; n = {len(x)}")
        print(f"{'ε':>6} {'ours':>8} {'theirs':>8} {'gap pts':>8}")
        for e, a, b in zip(eps, rob_ours, rob_theirs, strict=True):
            print(f"{e:>6g} {a:>8.3f} {b:>8.3f} {100 * (a - b):>8.1f}")
            ratios[f"{kind}_robacc_gap_pts_eps{e:g}"] = round(100 * (a - b), 2)
        print(f"{kind}: wall time ours {t_ours:.1f} s, theirs {t_theirs:.1f} s, ratio "
              f"{t_ours / t_theirs:.3f}; CPU time ours {c_ours:.1f} s, theirs {c_theirs:.1f} s, "
              f"ratio {c_ours / c_theirs:.3f}", flush=True)
        ratios[f"{kind}_time_ratio"] = round(t_ours / t_theirs, 3)
        ratios[f"{kind}_cpu_time_ratio"] = round(c_ours / c_theirs, 3)
        if kind == "pgd" and args.square_alone:
            square_alone(model, x, y, max(eps), ratios)
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
