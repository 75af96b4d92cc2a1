"""Benchmark: rankrobust.structure.analyze vs weightwatcher and per-layer svdvals, speed and accuracy.

Model: a ResNet-18-shaped network built here (no torchvision): 11.7 M parameters, 21 weight
matrices (conv1 64×147 … layer4 512×4608, fc 1000×512).

Speed: ``analyze(model)`` against weightwatcher's default ``WeightWatcher(model=model).analyze()``
(if importable: ``make bench-structure`` installs it in ``benchmarks/.venv-ww``) and against
``torch.linalg.svdvals`` over every layer (float32), called interleaved (ours, baseline, ours,
baseline, …; one warm-up each) with ``--threads`` torch threads (default 2); each time is the
median, and every ratio is printed with ``os.getloadavg()`` taken right after its measurements
(the machine is shared: a ratio measured under load is only indicative).

Accuracy: effective rank, stable rank, nuclear, spectral and Frobenius norm of every matrix, fast
path vs a float64 SVD (``method="svd"``), max relative error over layers, on four weight sets: the
random init; a trained-like nearly low-rank model (σ_i = σ₁·10^(−6 i/k): six decades of decay); a
heavy-tailed power law σ_i ∝ i^(−1.5); and exactly low rank (rank k/8 after singular value
thresholding, stored in float32). Reported for the float64 Gram path (the default) and for a
float32 Gram.

Usage: ``python benchmarks/bench_structure.py [--repeats 7] [--ww-repeats 5] [--threads 2]
[--device cpu] [--part all|timing|accuracy] [--with-svd]``. The last line printed is one JSON object with the
ratios and the load averages.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from rankrobust.structure import analyze, layer_matrices

METRICS = ("effective_rank", "stable_rank", "nuclear_norm", "spectral_norm", "frobenius_norm")
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


def interleaved_medians(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median wall time of each function over ``repeats`` rounds, the functions called in turn in
    every round (A, B, A, B, …) after one warm-up each, so that a change of machine load hits
    both sides of a ratio alike."""
    for fn in fns.values():
        fn()  # warm-up (imports, allocations, BLAS threads)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def load() -> list[float]:
    """``os.getloadavg()`` (1, 5, 15 min), rounded."""
    return [round(v, 2) for v in os.getloadavg()]


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


def weightwatcher_analyze(model: nn.Module) -> tuple[Callable[[], Any] | None, str]:
    """(a call of weightwatcher's default analyze() on ``model``, its label), or (None, why not)."""
    try:
        import weightwatcher as ww
    except Exception as exc:  # not installed, or broken import: fall back to the svdvals baseline
        return None, f"weightwatcher unavailable ({type(exc).__name__}: {exc})"
    import logging

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    watcher = ww.WeightWatcher(model=model)
    return watcher.analyze, f"weightwatcher {getattr(ww, '__version__', '?')} analyze() defaults"


def timings(model: nn.Module, args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved medians: analyze vs weightwatcher (CPU; if importable), analyze vs per-layer
    svdvals, [analyze vs analyze(method="svd")]; each ratio printed with the load average."""
    out: dict[str, Any] = {}
    ww_call, ww_note = weightwatcher_analyze(model)  # weightwatcher runs on CPU
    model.to(args.device)
    pairs: list[tuple[str, str, Callable[[], Any], int]] = []
    if ww_call is not None:
        pairs.append(("weightwatcher", ww_note, ww_call, args.ww_repeats))
    else:
        print(ww_note)
    pairs.append(("svdvals", "svdvals per layer (float32)",
                  lambda: [torch.linalg.svdvals(m) for m in layer_matrices(model).values()], args.repeats))
    if args.with_svd:
        pairs.append(("analyze_svd", "analyze(method='svd') float64",
                      lambda: analyze(model, method="svd"), max(1, args.repeats // 2)))
    for key, label, baseline, repeats in pairs:
        med = interleaved_medians({"ours": lambda: analyze(model), key: baseline}, repeats)
        ratio, now = med[key] / med["ours"], load()
        print(f"analyze() {med['ours']:7.3f} s vs {label} {med[key]:7.3f} s: {ratio:6.2f}x "
              f"(medians of {repeats} interleaved pairs; load average {now})")
        out[f"speedup_vs_{key}"] = round(ratio, 2)
        out[f"{key}_seconds"] = round(med[key], 4)
        out.setdefault("analyze_seconds", []).append(round(med["ours"], 4))
        out[f"loadavg_{key}"] = now
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved pairs vs svdvals")
    parser.add_argument("--ww-repeats", type=int, default=5, help="interleaved pairs vs weightwatcher")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--part", choices=["all", "timing", "accuracy"], default="all")
    parser.add_argument("--with-svd", action="store_true", help="also time analyze(method='svd')")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = resnet18().eval()
    mats = layer_matrices(model)
    params = sum(p.numel() for p in model.parameters())
    largest = max(mats.values(), key=lambda t: t.numel())
    start_load = load()
    print(f"model: ResNet-18 shape, {params:,} parameters, {len(mats)} weight matrices, "
          f"largest {largest.shape[0]}x{largest.shape[1]}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}; load average {start_load}")
    timed = timings(model, args) if args.part != "accuracy" else {}
    baseline = None if not timed else "weightwatcher" if "weightwatcher_seconds" in timed else "svdvals"
    result: dict[str, Any] = {"bench": "structure", "baseline": baseline, **timed}
    if args.part == "timing":
        result.update(threads=args.threads, loadavg_start=start_load, loadavg_end=load())
        print(json.dumps(result))
        return

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
    speedup = float(result.get(f"speedup_vs_{baseline}", math.nan))
    result.update(
        max_rel_err_gram64=float(f"{gram64_err:.2e}"),
        max_rel_err_gram32=float(f"{gram32_err:.2e}"),
        accuracy_goal_met=gram64_err <= GOAL_REL_ERR,
        goal_met=None if baseline is None else bool(
            baseline == "weightwatcher" and speedup >= GOAL_SPEEDUP and gram64_err <= GOAL_REL_ERR),
        threads=args.threads, loadavg_start=start_load, loadavg_end=load(),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
