"""PNG figures for ``rankrobust analyze --plot DIR`` (Agg backend, no global pyplot state)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rankrobust.errors import ConfigError


def _grid(count: int, title: str) -> tuple[Figure, list]:  # type: ignore[type-arg]
    """A figure with ``count`` panels, at most 4 per row, and its list of axes."""
    cols = min(4, max(count, 1))
    rows = max(1, math.ceil(count / cols))
    fig = Figure(figsize=(3.6 * cols, 2.8 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(count)]
    fig.suptitle(title)
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG to ``path``; ConfigError naming the path when it cannot be written."""
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def plot_spectra(spectra: Mapping[str, np.ndarray], path: Path) -> Path:
    """One panel per layer: singular values σ_i (log scale) against their index i."""
    fig, axes = _grid(len(spectra), "singular value spectra")
    for ax, (name, sigma) in zip(axes, spectra.items(), strict=True):
        positive = sigma[sigma > 0]
        if positive.size:
            ax.semilogy(np.arange(1, positive.size + 1), positive, marker=".", markersize=2, lw=1)
        ax.set_title(f"{name} ({sigma.size} values)", fontsize=8)
        ax.set_xlabel("index i", fontsize=7)
        ax.set_ylabel("σ_i", fontsize=7)
        ax.tick_params(labelsize=6)
    return _save(fig, path)


def plot_weight_histograms(weights: Mapping[str, np.ndarray], path: Path, bins: int = 60) -> Path:
    """One panel per layer: histogram of |w| over the layer's entries (log-spaced bins)."""
    fig, axes = _grid(len(weights), "weight magnitudes |w|")
    for ax, (name, w) in zip(axes, weights.items(), strict=True):
        mags = np.abs(w.ravel())
        mags = mags[mags > 0]
        if mags.size:
            lo, hi = float(mags.min()), float(mags.max())
            edges = np.geomspace(lo, hi, bins) if hi > lo else np.array([lo * 0.9, hi * 1.1])
            ax.hist(mags, bins=edges)
            ax.set_xscale("log")
        ax.set_title(f"{name} ({w.size} entries)", fontsize=8)
        ax.set_xlabel("|w|", fontsize=7)
        ax.tick_params(labelsize=6)
    return _save(fig, path)


def write_plots(
    spectra: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray], out_dir: str | Path
) -> list[Path]:
    """Write ``spectra.png`` and ``weight_histograms.png`` into ``out_dir`` (created)."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        plot_spectra(spectra, folder / "spectra.png"),
        plot_weight_histograms(weights, folder / "weight_histograms.png"),
    ]
