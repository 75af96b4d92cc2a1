"""The `paper-v2` Fashion-MNIST wall-time estimate, from measured costs (issue #19's 8 h budget).

Usage: ``python3 benchmarks/estimate_paper_v2.py [--train-size 20000 30000 40000]``.

Inputs, all measured on the 2-core machine on 2026-12-03 beside one other job (load ≈ 3, so
the result is an upper estimate):
- evaluation seconds per run (evaluation + sanity checks), from the study's own MNIST-5k half at
  e2b5e84 (the same models and the same evaluation on 1,000 test points; its report's "Where the
  hours go"), times ``bench_run.py``'s channels-last evaluation ratio for ``lenet5-wide``
  (natural 0.781, PGD-adv 0.817);
- ``lenet5-wide`` training per 1,000 images and epoch at HEAD from ``bench_run.py`` (medians of 3,
  Fashion-MNIST, 1 epoch of 55,000): natural 23.0 s, PGD-5 111.2 s (6 forward+backward passes per
  image); ℓ1/nuclear runs cost 147/102 × natural (MNIST-5k);
- MLP runs: the MNIST-5k half's seconds, training scaled by images × epochs × passes.

Run counts per model are the preset's (93). Prints CPU-hours per part and the wall time on 2
workers; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json

EVAL_RATIO = {"natural": 0.781, "adversarial": 0.817}
NATURAL_PER_K = 23.0 / 55  # s per 1,000 images and epoch
PASS_PER_K = 111.2 / 55 / 6  # one forward+backward pass per 1,000 images
L1_FACTOR = 147 / 102
MNIST5K = 3500


def cnn(train: int) -> tuple[float, float]:
    """CPU seconds of the CNN's runs: (training, evaluation)."""
    k = train / 1000
    kinds = [  # (runs, training s, evaluation s)
        (36, 20 * k * NATURAL_PER_K, 194 * EVAL_RATIO["natural"]),  # natural, weight decay, ...
        (43, 20 * k * NATURAL_PER_K * L1_FACTOR, 198 * EVAL_RATIO["natural"]),  # ℓ1, nuclear
        (5, 15 * k * PASS_PER_K * 8, 272 * EVAL_RATIO["adversarial"]),  # PGD-7
        (3, 15 * k * PASS_PER_K * 7, 563 * EVAL_RATIO["adversarial"]),  # TRADES, 5 steps
        (6, 15 * k * PASS_PER_K * 2, 160 * EVAL_RATIO["natural"]),  # FGSM-adv, FGSM-RS
    ]
    return sum(n * t for n, t, _ in kinds), sum(n * e for n, _, e in kinds)


def mlp(train: int) -> float:
    """CPU seconds of the MLP's runs (MNIST-5k: 60 / 40 epochs, PGD-10, TRADES-10)."""
    r = train / MNIST5K
    kinds = [(36, 8.2 * 20 / 60 * r, 5.6), (43, 25 * 20 / 60 * r, 14.6),
             (5, 115 * r * 15 * 8 / (40 * 11), 57), (3, 46 * r * 15 * 7 / (40 * 12), 16),
             (6, 15 * r * 15 / 40, 11)]
    return sum(n * (t + e) for n, t, e in kinds)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--train-size", type=int, nargs="+", default=[20000, 30000, 40000])
    args = parser.parse_args()
    out = {}
    for size in args.train_size:
        train, evaluation = cnn(size)
        small = mlp(size)
        total = train + evaluation + small
        out[size] = {"cnn_train_cpu_h": round(train / 3600, 1),
                     "cnn_eval_cpu_h": round(evaluation / 3600, 1),
                     "mlp_cpu_h": round(small / 3600, 1),
                     "wall_h_2_workers": round(total / 7200, 1)}
        print(f"{size:,} images: CNN training {train / 3600:.1f} CPU-h, CNN evaluation "
              f"{evaluation / 3600:.1f}, MLP {small / 3600:.1f}; {total / 7200:.1f} h on 2 workers")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
