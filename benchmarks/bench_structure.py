"""Benchmark: rankrobust.structure.analyze vs weightwatcher and per-layer svdvals, speed and accuracy.

Model: a ResNet-18-shaped network built here (no torchvision): 11.7 M parameters, 21 weight
matrices (conv1 64×147 … layer4 512×4608, fc 1000×512).

Speed: best-of-N wall time of ``analyze(model)`` against weightwatcher's default
``WeightWatcher(model=model).analyze()`` (if importable: ``make bench-structure`` installs it in
``benchmarks/.venv-ww``) and against ``torch.linalg.svdvals`` over every layer (float32).

Accuracy: effective rank, stable rank and nuclear norm of every matrix, fast path vs a float64 SVD
(``method="svd"``), max relative error over layers, on three weight sets: the random init; a
trained-like nearly low-rank model (σ_i = σ₁·10^(−6 i/k): six decades of decay); a heavy-tailed
power law σ_i ∝ i^(−1.5); and exactly low rank (rank k/8 after singular value thresholding,
stored in float32). Reported for the float64 Gram path (the default) and for a float32 Gram.

Usage: ``python benchmarks/bench_structure.py [--repeats 5] [--device cpu]``. The last line printed
is one JSON object with the ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from rankrobust.structure import analyze, layer_matrices

METRICS = ("effective_rank", "stable_rank", "nuclear_norm")
GOAL_SPEEDUP, GOAL_REL_ERR = 10.0, 1e-4


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.downsample(x))


def resnet18(num_classes: int = 1000) -> nn.Module:
    """ResNet-18 (He et al. 2016), ImageNet geometry: 11,689,512 parameters."""
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                               nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)


def best_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Minimum wall time over ``repeats`` calls after one warm-up: on a shared, loaded machine the
    minimum is the least disturbed estimate (other processes only ever add time)."""
    fn()  # warm-up (allocations, BLAS threads)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def set_spectra(model: nn.Module, profile: Callable[[int], torch.Tensor], seed: int) -> None:
    """Replace each weight W (m×n, k = min) by U diag(σ₁·profile) Vᵀ with random orthonormal U, V."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, (nn.Linear, nn.Conv2d)):
                continue
            w = module.weight
            m, n = w.shape[0], w[0].numel()
            k = min(m, n)
            u, _ = torch.linalg.qr(torch.randn(m, k, generator=g, dtype=torch.float64))
            v, _ = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))
            sigma = profile(k) * float(torch.linalg.matrix_norm(w.reshape(m, -1).double(), 2))
            w.copy_(((u * sigma) @ v.T).reshape(w.shape).to(w.dtype))  # stored in float32


def nearly_low_rank(k: int) -> torch.Tensor:
    return 10 ** (-6 * torch.arange(k, dtype=torch.float64) / k)


def power_law(k: int) -> torch.Tensor:
    return torch.arange(1, k + 1, dtype=torch.float64) ** -1.5


def exactly_low_rank(k: int) -> torch.Tensor:
    sigma = torch.zeros(k, dtype=torch.float64)
    r = max(1, k // 8)
    sigma[:r] = torch.linspace(1.0, 0.2, r, dtype=torch.float64)
    return sigma


def max_rel_errors(model: nn.Module, method: str, reference: Any) -> dict[str, float]:
    frame = analyze(model, method=method)
    return {m: float(((frame[m] - reference[m]).abs() / reference[m].abs()).max()) for m in METRICS}


def weightwatcher_seconds(model: nn.Module, repeats: int) -> tuple[float | None, str]:
    try:
        import weightwatcher as ww
    except Exception as exc:  # not installed, or broken import: fall back to the svdvals baseline
        return None, f"weightwatcher unavailable ({type(exc).__name__}: {exc})"
    import logging

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    watcher = ww.WeightWatcher(model=model)
    seconds = best_seconds(lambda: watcher.analyze(), repeats)
    return seconds, f"weightwatcher {getattr(ww, '__version__', '?')} analyze() defaults"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ww-repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = resnet18().eval()
    mats = layer_matrices(model)
    params = sum(p.numel() for p in model.parameters())
    largest = max(mats.values(), key=lambda t: t.numel())
    print(f"model: ResNet-18 shape, {params:,} parameters, {len(mats)} weight matrices, "
          f"largest {largest.shape[0]}x{largest.shape[1]}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}")

    ww_s, ww_note = weightwatcher_seconds(model, args.ww_repeats)  # ww runs on CPU
    model.to(args.device)
    ours = best_seconds(lambda: analyze(model), args.repeats)
    ours_svd = best_seconds(lambda: analyze(model, method="svd"), max(1, args.repeats // 2))
    svdvals = best_seconds(lambda: [torch.linalg.svdvals(m) for m in layer_matrices(model).values()],
                             args.repeats)
    print(f"analyze() float64-Gram path:      {ours:8.3f} s")
    print(f"analyze(method='svd') float64:    {ours_svd:8.3f} s")
    print(f"svdvals per layer (float32):      {svdvals:8.3f} s")
    print(f"{ww_note}: " + (f"{ww_s:8.3f} s" if ww_s is not None else "skipped"))

    errors: dict[str, dict[str, float]] = {}
    for label, profile in (("random", None), ("nearly_low_rank", nearly_low_rank),
                           ("power_law", power_law), ("exactly_low_rank", exactly_low_rank)):
        net = resnet18()
        if profile is None:
            net.load_state_dict(model.state_dict())
        else:
            set_spectra(net, profile, seed=1)
        net.to(args.device)
        reference = analyze(net, method="svd")
        for method in ("gram", "gram32"):
            errors[f"{method}_{label}"] = max_rel_errors(net, method, reference)
    print("max relative error vs float64 SVD over the 21 layers:")
    for key, errs in errors.items():
        print(f"  {key:26s} " + "  ".join(f"{m} {v:.1e}" for m, v in errs.items()))

    gram64_err = max(v for k, errs in errors.items() if k.startswith("gram_") for v in errs.values())
    gram32_err = max(v for k, errs in errors.items() if k.startswith("gram32_") for v in errs.values())
    baseline = "weightwatcher" if ww_s is not None else "svdvals"
    speedup = (ww_s if ww_s is not None else svdvals) / ours
    result: dict[str, Any] = {
        "bench": "structure",
        "baseline": baseline,
        "speedup_vs_weightwatcher": round(ww_s / ours, 2) if ww_s is not None else None,
        "speedup_vs_svdvals": round(svdvals / ours, 2),
        "speedup_vs_analyze_svd": round(ours_svd / ours, 2),
        "analyze_seconds": round(ours, 4),
        "weightwatcher_seconds": round(ww_s, 3) if ww_s is not None else None,
        "svdvals_seconds": round(svdvals, 3),
        "max_rel_err_gram64": float(f"{gram64_err:.2e}"),
        "max_rel_err_gram32": float(f"{gram32_err:.2e}"),
        "goal_met": bool(speedup >= GOAL_SPEEDUP and gram64_err <= GOAL_REL_ERR and math.isfinite(speedup)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
