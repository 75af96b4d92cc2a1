"""The report's figures: PNGs drawn with matplotlib's Agg backend from the study's DataFrames.

Figures are built on ``matplotlib.figure.Figure`` (Agg canvas, no pyplot, no global state).
Every function takes plain DataFrames (run info already merged in: ``model``, ``method``,
``seed``), writes one PNG and returns its path, or returns None when its data are absent.
Means are over seeds; bands and error bars are 95 % Student-t intervals over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from rankrobust.attacks.registry import attack_label
from rankrobust.report.claims import t_interval
from rankrobust.report.correlation import spearman
from rankrobust.report.summary import (
    NATURAL,
    family,
    method_color,
    method_label,
    method_order,
    methods_of_kind,
)

DPI = 110


def _methods(frame: pd.DataFrame, allowed: Sequence[str] | None = None) -> list[str]:
    """Methods present in ``frame`` (and in ``allowed``), registry order, unknown ones last."""
    present = set(frame["method"])
    order = method_order()
    ordered = [m for m in order if m in present] + sorted(str(m) for m in present - set(order))
    return [m for m in ordered if allowed is None or m in allowed]


def _models(frame: pd.DataFrame) -> list[str]:
    """Models, fully connected first (FC left of CNN)."""
    return sorted(set(frame["model"]), key=lambda m: (family(m) != "FC", m))


def _ci(values: pd.Series, bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float, float]:
    """(mean, low, high) of the 95 % t interval, clipped to ``bounds`` (every plotted metric —
    fooling ratio, robust accuracy, normalized structure — lies in [0, 1])."""
    mean, low, high = t_interval(values.to_numpy())
    if not math.isfinite(low):
        low = high = mean
    return mean, max(low, bounds[0]), min(high, bounds[1])


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _grid(nrows: int, ncols: int, w: float = 4.2, h: float = 3.2) -> tuple[Any, np.ndarray]:
    fig = Figure(figsize=(w * ncols, h * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


STRUCTURE_METRICS = (("normalized_effective_rank", "effective rank / min(m, n)"),
                     ("normalized_effective_sparsity", "effective sparsity / (m·n)"))


def plot_structure_by_layer(structure: pd.DataFrame, path: Path) -> Path | None:
    """Bars per layer and method of the final normalized erank and esparsity, 95 % error bars."""
    if structure.empty:
        return None
    models, methods = _models(structure), _methods(structure)
    fig, axes = _grid(2, len(models), w=max(4.2, 1.0 + 0.9 * len(methods)))
    width = 0.8 / max(len(methods), 1)
    for j, model in enumerate(models):
        sub = structure[structure["model"] == model]
        layers = list(dict.fromkeys(sub["layer"]))
        for i, (col, ylabel) in enumerate(STRUCTURE_METRICS):
            ax = axes[i, j]
            for k, method in enumerate(methods):
                g = sub[sub["method"] == method]
                if g.empty:
                    continue
                cis = [_ci(g[g["layer"] == layer][col]) for layer in layers]
                mean = np.array([c[0] for c in cis])
                err = np.array([[c[0] - c[1] for c in cis], [c[2] - c[0] for c in cis]])
                x = np.arange(len(layers)) + (k - (len(methods) - 1) / 2) * width
                ax.bar(x, mean, width, yerr=err, capsize=2, color=method_color(method),
                       label=method_label(method))
            ax.set_xticks(np.arange(len(layers)), layers, rotation=30, ha="right", fontsize=8)
            ax.set_ylabel(ylabel)
            ax.set_title(f"{model} ({family(model)})")
        axes[0, j].legend(fontsize=7, ncol=2)
    fig.suptitle("Weight structure after training, per layer (mean, 95 % CI over seeds)")
    return _save(fig, path)


def _epoch_band(ax: Any, rows: pd.DataFrame, col: str, method: str,
                bounds: tuple[float, float] = (0.0, 1.0)) -> None:
    """``method``'s mean of ``col`` per epoch over ``rows`` (one per run and epoch), with its
    95 % band clipped to ``bounds``, in the method's colour; nothing for no rows."""
    if rows.empty:
        return
    band = np.array([_ci(e[col].astype(float), bounds) for _, e in rows.groupby("epoch")])
    epochs = sorted(rows["epoch"].unique())
    ax.plot(epochs, band[:, 0], color=method_color(method), marker=".", label=method_label(method))
    ax.fill_between(epochs, band[:, 1], band[:, 2], color=method_color(method), alpha=0.2)


def plot_structure_epochs(structure: pd.DataFrame, path: Path,
                          methods: Sequence[str] | None = None) -> Path | None:
    """Mean-over-layers normalized erank / esparsity vs epoch, natural vs adversarial (default:
    natural and every registered adversarial method) and any ``methods`` given, 95 % bands."""
    if structure.empty:
        return None
    methods = methods if methods is not None else [NATURAL, *methods_of_kind("adversarial")]
    data = structure[structure["method"].isin(methods)]
    if data.empty or data["epoch"].nunique() < 2:
        return None
    per_run = (data.groupby(["model", "method", "seed", "run_id", "epoch"])
               [[c for c, _ in STRUCTURE_METRICS]].mean().reset_index())
    models = _models(per_run)
    fig, axes = _grid(2, len(models))
    for j, model in enumerate(models):
        for i, (col, ylabel) in enumerate(STRUCTURE_METRICS):
            ax = axes[i, j]
            for method in _methods(per_run, methods):
                _epoch_band(ax, per_run[(per_run["model"] == model) & (per_run["method"] == method)],
                            col, method)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch (0 = initialization)")
            ax.set_ylabel(f"mean {ylabel}")
            ax.set_title(f"{model} ({family(model)})")
        axes[0, j].legend(fontsize=7)
    fig.suptitle("Evolution of weight structure during training (mean over layers)")
    return _save(fig, path)


TRAINING_METRICS = (("train_loss", "training loss"), ("val_acc", "validation accuracy"),
                    ("val_robust_acc", "validation robust accuracy"),
                    ("test_acc", "clean test accuracy"))


def plot_training_curves(epochs: pd.DataFrame, path: Path) -> Path | None:
    """Training loss, validation accuracy (clean, and robust where measured) and clean test
    accuracy vs epoch for every method (rows: metrics, columns: models), mean over seeds with
    95 % bands: whether each method had converged when training stopped. Stars: the epoch each
    run with validation-based selection kept (rows where ``epochs["selected"]``). The loss
    includes each method's own terms (adversarial, penalties), so compare its flattening, not
    its level, across methods."""
    metrics = [(c, lab) for c, lab in TRAINING_METRICS
               if c in epochs.columns and epochs[c].notna().any()]
    if epochs.empty or not metrics or epochs["epoch"].nunique() < 2:
        return None
    models = _models(epochs)
    fig, axes = _grid(len(metrics), len(models))
    for j, model in enumerate(models):
        sub = epochs[epochs["model"] == model]
        for i, (col, ylabel) in enumerate(metrics):
            ax = axes[i, j]
            for method in _methods(sub):
                rows = sub[(sub["method"] == method) & sub[col].notna()]
                _epoch_band(ax, rows, col, method, (0.0, math.inf) if col == "train_loss" else (0.0, 1.0))
                kept = rows[rows["selected"].astype(bool)] if "selected" in rows else rows.iloc[:0]
                ax.scatter(kept["epoch"], kept[col].astype(float), marker="*", s=70, zorder=3,
                           color=method_color(method), edgecolors="black", linewidths=0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if not sub[col].notna().any():  # e.g. robust validation accuracy of a natural-only model
                ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{model} ({family(model)})")
        axes[0, j].legend(fontsize=7)
    fig.suptitle("Training curves of the compared runs (mean over seeds; ★ each run's selected "
                 "epoch)")
    return _save(fig, path)


def plot_spectra(spectra: pd.DataFrame, path: Path, methods: Sequence[str] | None = None,
                 ) -> Path | None:
    """σ_i/σ_1 against i per layer (final models), mean over seeds, one panel per model·layer;
    every method by default."""
    if spectra.empty:
        return None
    methods = methods if methods is not None else _methods(spectra)
    data = spectra[spectra["method"].isin(methods)].copy()
    if data.empty:
        return None
    data["relative"] = data["singular_value"] / data.groupby(["run_id", "layer"])[
        "singular_value"].transform("max").replace(0, np.nan)
    panels = [(m, layer) for m in _models(data)
              for layer in dict.fromkeys(data[data["model"] == m]["layer"])]
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = _grid(nrows, ncols, w=3.6, h=2.9)
    for ax, (model, layer) in zip(axes.flat, panels, strict=False):
        sub = data[(data["model"] == model) & (data["layer"] == layer)]
        for method in _methods(sub, methods):
            curve = sub[sub["method"] == method].groupby("index")["relative"].mean()
            ax.plot(curve.index + 1, curve.to_numpy(), color=method_color(method),
                    label=method_label(method))
        ax.set_title(f"{model} · {layer}", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("index i")
        ax.set_ylabel("σᵢ / σ₁")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Singular value spectra of the trained weights (mean over seeds)")
    return _save(fig, path)


def plot_robustness_vs_rank(summary: pd.DataFrame, path: Path, attack: str = "pgd",
                            targets: Sequence[tuple[str, str]] | None = None) -> Path | None:
    """Scatter of every run: mean normalized erank vs robustness; Spearman's ρ in each title.

    Degenerate runs (``summary["degenerate"]``) are drawn hollow and left out of ρ.
    """
    name = attack_label(attack)
    targets = targets if targets is not None else (
        (f"fr_auc_{attack}_inf", f"{name} ℓ∞ fooling ratio (area over ε)"),
        (f"ra_auc_{attack}_inf", f"{name} ℓ∞ robust accuracy (area over ε)"),
        ("rho_adv", "DeepFool ρ_adv"))
    present = [(c, lab) for c, lab in targets
               if c in summary.columns and summary[c].notna().any()]
    if not present or "erank" not in summary.columns or summary["erank"].isna().all():
        return None
    fig, axes = _grid(1, len(present), w=4.8, h=3.8)
    markers = {m: mk for m, mk in zip(_models(summary), "os^Dv", strict=False)}
    flagged = (summary["degenerate"].astype(bool) if "degenerate" in summary.columns
               else pd.Series(False, index=summary.index))
    for ax, (col, label) in zip(axes[0], present, strict=True):
        for (method, model), g in summary.groupby(["method", "model"]):
            color, marker = method_color(str(method)), markers.get(str(model), "o")
            ok, bad = g[~flagged[g.index]], g[flagged[g.index]]
            ax.scatter(ok["erank"], ok[col], color=color, alpha=0.8, marker=marker, s=22,
                       label=f"{method_label(str(method))} · {model}")
            if len(bad):
                ax.scatter(bad["erank"], bad[col], facecolors="none", edgecolors=color,
                           marker=marker, s=22)
        healthy = summary[~flagged]
        rho, p, n = spearman(healthy["erank"], healthy[col])
        ax.set_title(f"Spearman ρ = {rho:.2f} (p = {p:.2g}, n = {n})", fontsize=10)
        ax.set_xlabel("mean normalized effective rank")
        ax.set_ylabel(label)
    axes[0, -1].legend(fontsize=6, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.suptitle("Robustness vs effective rank across all runs")
    return _save(fig, path)


def plot_lambda_selection(selection: pd.DataFrame, path: Path, tolerance: float = 0.02) -> Path | None:
    """Mean clean accuracy over the λ grid per regularizer, the natural − tolerance line, choice."""
    if selection.empty:
        return None
    models = _models(selection)
    fig, axes = _grid(1, len(models), w=4.4, h=3.2)
    for ax, model in zip(axes[0], models, strict=True):
        sub = selection[selection["model"] == model]
        for method in _methods(sub):
            g = sub[sub["method"] == method].reset_index(drop=True)
            score = ("val_accuracy" if "selected_on" in g and (g["selected_on"] == "validation").all()
                     else "clean_accuracy")
            ax.plot(g.index, g[score], marker="o", color=method_color(method),
                    label=method_label(method))
            chosen = g[g["selected"]]
            ax.scatter(chosen.index, chosen[score], s=120, facecolors="none",
                       edgecolors=method_color(method), linewidths=2)
        nat = float(sub["natural_accuracy"].iloc[0])
        if math.isfinite(nat):
            ax.axhline(nat, color=method_color(NATURAL), ls="--", lw=1, label="natural")
            ax.axhline(nat - tolerance, color=method_color(NATURAL), ls=":", lw=1,
                       label=f"natural − {100 * tolerance:g} points")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("setting (weakest → strongest: λ up, rank budget down)")
        ax.set_ylabel("accuracy the rule compares (mean over seeds)")
        ax.set_title(f"{model} ({family(model)}); circled = chosen λ", fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(f"Choosing λ: largest λ within {100 * tolerance:g} points of natural accuracy")
    return _save(fig, path)


def plot_interventions(interventions: pd.DataFrame, path: Path) -> Path | None:
    """Robust and clean accuracy vs kept share, per method, after whole-model interventions
    (layer "all"): columns = model × intervention, rows = {robust accuracy, clean accuracy};
    mean over seeds with 95 % bands clipped to [0, 1]."""
    if interventions.empty:
        return None
    data = interventions[interventions["layer"] == "all"]
    if data.empty:
        return None
    panels = [(m, k) for m in _models(data) for k in sorted(set(data[data["model"] == m]["intervention"]))]
    fig, axes = _grid(2, len(panels))
    for j, (model, kind) in enumerate(panels):
        sub = data[(data["model"] == model) & (data["intervention"] == kind)]
        for i, (col, ylabel) in enumerate((("robust_accuracy", "robust accuracy"),
                                           ("clean_accuracy", "clean accuracy"))):
            ax = axes[i, j]
            for method in _methods(sub):
                g = sub[sub["method"] == method]
                band = np.array([_ci(e[col]) for _, e in g.groupby("keep")])
                keeps = sorted(g["keep"].unique())
                ax.plot(keeps, band[:, 0], color=method_color(method), marker=".",
                        label=method_label(method))
                ax.fill_between(keeps, band[:, 1], band[:, 2], color=method_color(method), alpha=0.15)
            ax.set_xscale("log")
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("kept share (rank or weights)")
            ax.set_ylabel(ylabel)
            attack = sub["attack"].iloc[0] if "attack" in sub and len(sub) else ""
            eps = float(sub["epsilon"].iloc[0]) if "epsilon" in sub and len(sub) else float("nan")
            ax.set_title(f"{kind} · {model} ({family(model)})" + (f" · {attack} ε={eps:g}" if i == 0 else ""),
                         fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Interventions after training: is low rank sufficient for robustness?")
    return _save(fig, path)
