"""The report's robustness figures: curves over ε, the accuracy–robustness frontier, and the
distribution of per-point minimal perturbations (helpers and conventions of :mod:`.figures`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rankrobust.attacks.registry import attack_label
from rankrobust.report.figures import _ci, _grid, _methods, _models, _save
from rankrobust.report.summary import (
    attack_strength,
    family,
    method_color,
    method_label,
)

CURVE_METRICS = (("fooling_ratio", "fooling ratio"), ("robust_accuracy", "robust accuracy"))


def _attacks(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """Every stored (attack, norm), the strongest first, ℓ∞ before other norms."""
    pairs = {(str(a), str(n)) for a, n in zip(frame["attack"], frame["norm"], strict=True)}
    rank = {a: i for i, a in enumerate(attack_strength())}
    return sorted(pairs, key=lambda p: (p[1] != "inf", p[1], rank.get(p[0], len(rank)), p[0]))


def _norm_label(norm: str) -> str:
    return "ℓ∞" if norm == "inf" else f"ℓ{norm}"


def _curve_panel(ax: Any, sub: pd.DataFrame, col: str) -> None:
    """Mean with 95 % band over ε per method."""
    for method in _methods(sub):
        g = sub[sub["method"] == method]
        band = np.array([_ci(e[col]) for _, e in g.groupby("epsilon")])
        eps = sorted(g["epsilon"].unique())
        ax.plot(eps, band[:, 0], color=method_color(method), marker=".", label=method_label(method))
        ax.fill_between(eps, band[:, 1], band[:, 2], color=method_color(method), alpha=0.15)


def _points_panel(ax: Any, sub: pd.DataFrame, col: str) -> None:
    """One ε only: a point with its 95 % error bar per method, methods along x."""
    methods = _methods(sub)
    for k, method in enumerate(methods):
        mean, low, high = _ci(sub[sub["method"] == method][col])
        ax.errorbar([k], [mean], yerr=[[mean - low], [high - mean]], fmt="o", capsize=3,
                    color=method_color(method), label=method_label(method))
    ax.set_xticks(range(len(methods)), [method_label(m) for m in methods], rotation=40,
                  ha="right", fontsize=7)
    ax.set_xlim(-0.6, len(methods) - 0.4)


def plot_fooling_curves(robustness: pd.DataFrame, path: Path) -> Path | None:
    """Fooling ratio and robust accuracy per attack (rows) and model × metric (columns): a curve
    over ε with 95 % bands, or, for an attack stored at one ε, a point per method."""
    if robustness.empty:
        return None
    attacks, models = _attacks(robustness), _models(robustness)
    metrics = [(c, lab) for c, lab in CURVE_METRICS if c in robustness.columns]
    fig, axes = _grid(len(attacks), len(models) * len(metrics))
    for i, (attack, norm) in enumerate(attacks):
        for j, model in enumerate(models):
            sub = robustness[(robustness["attack"] == attack) & (robustness["norm"] == norm)
                             & (robustness["model"] == model)]
            single = sub["epsilon"].nunique() == 1
            for k, (col, ylabel) in enumerate(metrics):
                ax = axes[i, j * len(metrics) + k]
                (_points_panel if single else _curve_panel)(ax, sub, col)
                ax.set_ylim(-0.02, 1.02)
                ax.set_ylabel(ylabel)
                at = f" at ε = {sub['epsilon'].iloc[0]:g}" if single and len(sub) else ""
                if not single:
                    ax.set_xlabel(f"ε ({_norm_label(norm)})")
                ax.set_title(f"{attack_label(attack, norm)}{at} · {model} ({family(model)})",
                             fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Fooling ratio and robust accuracy vs budget (mean, 95 % band over seeds)")
    return _save(fig, path)


def plot_frontier(points: pd.DataFrame, paths: pd.DataFrame, path: Path) -> Path | None:
    """Clean accuracy (x) vs robust-accuracy area (y), one panel per dataset · model: every run a
    faint point, each method's settings (mean over seeds) joined weakest to strongest: every
    method's path (each λ path, ε_train, rank budget). Degenerate runs (near chance) are left
    out, and counted in the panel's title; a model with no area (no ε_train) has no panel."""
    if "degenerate" in points:
        left_out = points[points["degenerate"].astype(bool)]
        points = points[~points["degenerate"].astype(bool)]
    else:
        left_out = points.iloc[:0]
    points = points[points["area"].notna()]  # a model without ε_train (no adversarial run) has none
    if points.empty:
        return None
    panels = sorted({(str(d), str(m)) for d, m in zip(points["dataset"], points["model"],
                                                       strict=True)},
                    key=lambda p: (p[0], family(p[1]) != "FC", p[1]))
    fig, axes = _grid(1, len(panels), w=3.5, h=3.0)
    for ax, (dataset, model) in zip(axes[0], panels, strict=True):
        sub = points[(points["dataset"] == dataset) & (points["model"] == model)]
        line = paths[(paths["dataset"] == dataset) & (paths["model"] == model)]
        for method in _methods(sub):
            color = method_color(method)
            own = sub[sub["method"] == method]
            ax.scatter(own["clean_accuracy"], own["area"], color=color, s=10, alpha=0.35)
            mean = line[line["method"] == method]
            ax.plot(mean["clean_accuracy"], mean["area"], color=color, marker="o", ms=4,
                    label=method_label(method))
        first = sub.iloc[0]
        ax.set_xlabel("clean accuracy")
        ax.set_ylabel(f"robust-accuracy area over [0, {first['eps_train']:g}]")
        gone = ((left_out["dataset"] == dataset) & (left_out["model"] == model)).sum()
        ax.set_title(f"{model} ({family(model)}) · {dataset}\n{attack_label(first['attack'], 'inf')}"
                     + (f"; {gone} degenerate run(s) left out" if gone else ""), fontsize=8)
    axes[0, 0].legend(fontsize=6)
    fig.suptitle("Accuracy–robustness frontier", fontsize=10)
    return _save(fig, path)


def plot_point_robustness(points: pd.DataFrame, path: Path) -> Path | None:
    """Distribution of the per-point minimal ℓ∞ perturbation ε_min: per dataset · model panel
    and method, the share of test points broken at a budget ≤ ε (pooled over seeds; a point
    never broken within the largest budget, ε_min = ∞ or missing, stays unbroken)."""
    if points.empty:
        return None
    data = points[points["norm"].astype(str) == "inf"]
    data = data[data["attack"] == _attacks(data)[0][0]] if len(data) else data
    finite = data["eps_min"].astype(float)
    if data.empty or not np.isfinite(finite).any():
        return None
    models = _models(data)
    fig, axes = _grid(1, len(models), w=4.6, h=3.4)
    top = float(finite[np.isfinite(finite)].max())
    for ax, model in zip(axes[0], models, strict=True):
        sub = data[data["model"] == model]
        for method in _methods(sub):
            eps = np.sort(sub[sub["method"] == method]["eps_min"].astype(float).to_numpy())
            broken = eps[np.isfinite(eps)]
            share = np.arange(1, broken.size + 1) / max(eps.size, 1)
            ax.step(np.concatenate([[0.0], broken, [top]]),
                    np.concatenate([[0.0], share, [share[-1] if share.size else 0.0]]),
                    where="post", color=method_color(method), label=method_label(method))
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("ε (ℓ∞)")
        ax.set_ylabel("share of points broken at ≤ ε")
        ax.set_title(f"{model} ({family(model)}), {attack_label(str(data['attack'].iloc[0]), 'inf')}",
                     fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Per-point minimal ℓ∞ perturbation (empirical distribution, pooled over seeds)")
    return _save(fig, path)
