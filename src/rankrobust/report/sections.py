"""The report as a table of sections: :data:`SECTIONS`, in reading order.

A :class:`Section` is one row: a heading (None continues the previous one), ``prose`` (blocks
before the figure), a figure file with its ``plot`` and ``caption``, and ``after`` (blocks after
the figure, e.g. a table the figure summarizes); ``applies`` leaves a section out where its data
cannot exist (e.g. a store without per-point budgets). Every callable takes the
:class:`~rankrobust.report.context.Context`. To add a section, write its function(s) and add
one row; the figure file is then written, referenced and cleaned up with no other edit.

The first rows are the summary a reader can stop after: verdicts, the frontier figure and the
robust-accuracy table; the per-row tables, figures and method notes follow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rankrobust.report import figures as fig
from rankrobust.report import figures_robustness as rfig
from rankrobust.report import prose
from rankrobust.report.capacity import MATCH_TOLERANCE, models_table
from rankrobust.report.claims import CLAIM_TEXT
from rankrobust.report.context import Context
from rankrobust.report.correlation import spearman_table
from rankrobust.report.document import Block, Bullets, Paragraph, Table, code, plain
from rankrobust.report.evaluation import (
    attack_gaps,
    attack_settings,
    autoattack_members,
    gap_sentence,
    member_sentence,
    sanity_statement,
    sanity_warnings,
)
from rankrobust.report.hours import hours_table
from rankrobust.report.limits import database_limits
from rankrobust.report.provenance import machine, provenance
from rankrobust.report.runs import FALLBACK_MARK, headline, never_robust, pct, run_table
from rankrobust.report.scoring import is_collapsed
from rankrobust.report.summary import DEGENERATE_MARGIN, method_label, method_order

Blocks = Callable[[Context], list[Block]]
Plot = Callable[[Context, Path], Path | None]


def _nothing(ctx: Context) -> list[Block]:
    return []


def _always(ctx: Context) -> bool:
    return True


@dataclass(frozen=True)
class Section:
    """One row of the report's table of sections (see the module doc)."""

    title: str | None
    prose: Blocks = _nothing
    figure: str | None = None
    plot: Plot | None = None
    caption: str = ""
    after: Blocks = _nothing
    applies: Callable[[Context], bool] = _always
    missing: str = ""  # shown instead of the figure when its plot has no data
    beside: bool = False  # the figure and the ``after`` blocks side by side (HTML)


def _signed(value: Any) -> str:
    return "–" if pd.isna(value) else f"{float(value):+.4f}"


def _points(value: Any) -> str:
    return "–" if pd.isna(value) else f"{float(value):+.1f}"


# -- summary ------------------------------------------------------------------------------------
def intro(ctx: Context) -> list[Block]:
    runs, done = ctx.tables.runs, ctx.done.runs
    names = {k: ", ".join(plain(v) for v in sorted(map(str, done[k].unique()))) or "–"
             for k in ("dataset", "model")}
    seeds = done["seed"].nunique() if len(done) else 0
    fell = int(is_collapsed(ctx.summary).sum()) if len(ctx.summary) else 0
    collapsed = (f" {fell} run(s) flagged collapsed (validation accuracy fell to chance during "
                 "training): listed in **Runs**, left out of the claims, the λ choice and the "
                 "tables of compared runs." if fell else "")
    weak = int(never_robust(done, ctx.done.epoch_metrics).sum()) if len(done) else 0
    collapsed += (f" {weak} adversarially trained run(s) never became robust (validation robust "
                  "accuracy below twice chance at every epoch): flagged in **Runs**, kept in the "
                  "claims as measured." if weak else "")
    return [Paragraph(
        f"Study of Langenberg et al. (2019), arXiv:1901.10371, from the results database "
        f"{code(ctx.source)}: {len(done)} of {len(runs)} runs complete; datasets "
        f"{names['dataset']}; models {names['model']} (parameter counts under **Claims in detail**); seeds {seeds}; "
        f"machine {plain(machine(ctx.done))}.{collapsed} Summary first; the per-row tables, "
        "figures and notes on method follow it.")]


def models(ctx: Context) -> list[Block]:
    table = models_table(ctx.scored.models)
    return [Table(table, "models", "Trainable parameters (weights and biases) per model and the "
                  "capacity-matched FC ↔ CNN pair C3 compares (parameter counts within "
                  f"±{100 * MATCH_TOLERANCE:g} %).")] if len(table) else []


def verdicts(ctx: Context) -> list[Block]:
    blocks: list[Block] = []
    if ctx.pipeline:
        blocks.append(Paragraph(prose.PIPELINE))
    table = ctx.verdicts.drop(columns=["borderline"], errors="ignore")
    blocks.append(Table(table, "claims-summary", "The paper's claims and our verdicts from their "
                        "primary rows (\"borderline\": a row's CI edge within one point-level "
                        "standard error of 0; rows per claim: **Claims in detail** below)."))
    return blocks


def headline_table(ctx: Context) -> list[Block]:
    table = headline(ctx.chosen, ctx.robustness, ctx.selection, ctx.attack,
                     ctx.scored.eps_train)
    if table.empty:
        return [Paragraph("(No robust-accuracy curves stored.)")]
    note = (f" {FALLBACK_MARK}: fallback, no setting of this method stayed within the λ rule "
            "(**Choosing λ**); the most accurate one is shown." if
            any(FALLBACK_MARK in str(v) for v in table.to_numpy().ravel()) else "")
    return [Table(table, "headline", "Clean and robust accuracy per method at the settings the "
                  f"claims compare (mean over n seeds; collapsed runs left out).{note}")]


def plot_frontier(ctx: Context, path: Path) -> Path | None:
    return rfig.plot_frontier(ctx.frontier, ctx.paths, path)


# -- claims, evaluation --------------------------------------------------------------------------
BORDERLINE_MARK = "‡"


def _interval(low: Any, high: Any) -> str:
    return "–" if pd.isna(low) or pd.isna(high) else f"[{float(low):+.4f}, {float(high):+.4f}]"


def _verdict_cell(row: pd.Series) -> str:
    text = str(row["verdict"])
    if bool(row.get("small", False)) and "small" not in text:
        text += " (small)"
    return text + (f" {BORDERLINE_MARK}" if bool(row.get("borderline", False)) else "")


def claim_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The claims rows as printed: intervals as [low, high], the verdict with its small and
    borderline marks."""
    if rows.empty:
        return pd.DataFrame()
    out = rows[["scope", "metric", "comparison", "role"]].copy()
    out["effect"] = rows["effect"].map(_signed)
    out["95 % CI"] = [_interval(a, b) for a, b in zip(rows["ci_low"], rows["ci_high"], strict=True)]
    out["t CI"] = [_interval(a, b) for a, b in zip(rows["t_low"], rows["t_high"], strict=True)]
    out["n (seeds)"] = rows["n"].map(lambda v: "–" if pd.isna(v) else str(int(v)))
    out["se_point"] = rows["se_point"].map(lambda v: "–" if pd.isna(v) else f"{float(v):.4f}")
    out["margin"] = rows["margin"].map(lambda v: "–" if pd.isna(v) else f"±{float(v):.4f}")
    out["test"] = rows["test"]
    out["verdict"] = [_verdict_cell(r) for _, r in rows.iterrows()]
    out["note"] = rows["note"].fillna("")
    return out.reset_index(drop=True)


def claims_detail(ctx: Context) -> list[Block]:
    blocks: list[Block] = models(ctx)  # the networks compared, with their sizes (C3's pairs)
    for claim, statement in CLAIM_TEXT.items():
        sub = ctx.claims[ctx.claims["claim"] == claim]
        if sub.empty:
            continue
        primary = sub.sort_values("role", key=lambda r: r.map({"primary": 0}).fillna(1),
                                  kind="stable")
        blocks.append(Table(claim_rows(primary), f"claims-{claim.lower()}",
                            f"**{claim}** ({plain(statement, block_start=False)}): rows, primary "
                            f"first; {BORDERLINE_MARK}: borderline."))
    blocks.append(prose.claims_notes())
    flagged = ctx.summary[ctx.summary["degenerate"].astype(bool)] if len(ctx.summary) else ctx.summary
    if len(flagged):
        blocks.append(Paragraph(prose.degenerate(len(flagged), DEGENERATE_MARGIN)))
    return blocks


def margins(ctx: Context) -> list[Block]:
    table = ctx.scored.margins.drop(columns=["scale", "factor"], errors="ignore")
    source = str(ctx.scored.margins["source"].iloc[0]) if len(table) else "default"
    said = ("declared in the study file before the run" if source == "declared" else
            "the defaults (this study declared none before its run)")
    return [Paragraph(f"A row is **negligible** only when its whole CI lies inside the margin "
                      f"and contains 0; the margins are {said}."),
            Table(table, "margins", "Equivalence margins per metric family.")]


def rules(ctx: Context) -> list[Block]:
    return [Bullets(list(ctx.scored.rules))]


def notes(ctx: Context) -> list[Block]:
    # the notes name stored datasets and models: shown as plain text
    blocks: list[Block] = ([Bullets([plain(n, block_start=True) for n in ctx.scored.notes])]
                           if ctx.scored.notes else [])
    missing = database_limits(ctx)
    if missing:
        blocks += [Paragraph("What this database cannot give (the report's fallback in each "
                             "case):"), Bullets(missing)]
    return blocks


def evaluation(ctx: Context) -> list[Block]:
    blocks: list[Block] = []
    settings = attack_settings(ctx.done.runs)
    if not settings.empty:
        blocks.append(Table(settings, "attack-settings",
                            "Evaluation settings: attack, norm, steps, restarts, test points, ε grid."))
    gaps = attack_gaps(ctx.robustness)
    if not gaps.empty:
        blocks.append(Paragraph(gap_sentence(gaps)))
        blocks.append(Table(gaps, "attack-gaps", "Robust accuracy per attack at the budgets the "
                            "strongest attack shares with weaker ones, at the settings the claims "
                            "compare (mean over seeds).", {
                                "robust accuracy": pct, "overstated (points)": _points,
                                **{c: pct for c in gaps.columns if c.startswith("vs ")}}))
    members = autoattack_members(ctx.curves)
    if not members.empty:
        blocks.append(Paragraph(member_sentence(members)))
        blocks.append(Table(members, "autoattack-members", "Inputs each AutoAttack member broke "
                            "first, summed over seeds (clean: misclassified without attack)."))
    notes = sanity_warnings(ctx.done.runs)
    if notes:
        blocks += [Paragraph("Warnings of the gradient-masking checks (Carlini et al. 2019), "
                             "per run:"), Bullets(notes)]
    else:
        blocks.append(Paragraph(sanity_statement(ctx.done.runs)))
    return blocks


# -- figures with their prose ------------------------------------------------------------------
def plot_curves(ctx: Context, path: Path) -> Path | None:
    return rfig.plot_fooling_curves(ctx.robustness, path)


def has_points(ctx: Context) -> bool:
    return not ctx.points.empty


def plot_points(ctx: Context, path: Path) -> Path | None:
    return rfig.plot_point_robustness(ctx.points, path)


def choosing_lambda(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Paragraph(prose.LAMBDA_RULE)]
    if not ctx.selection.empty:
        blocks.append(Table(ctx.selection, "lambda-table", "The λ grid and the chosen settings.",
                            {"clean_accuracy": pct, "val_accuracy": pct, "natural_accuracy": pct}))
    return blocks


def plot_lambda(ctx: Context, path: Path) -> Path | None:
    return fig.plot_lambda_selection(ctx.selection, path)


def plot_layers(ctx: Context, path: Path) -> Path | None:
    return fig.plot_structure_by_layer(ctx.final, path)


def plot_structure_epochs(ctx: Context, path: Path) -> Path | None:
    return fig.plot_structure_epochs(ctx.structure, path)


def plot_training(ctx: Context, path: Path) -> Path | None:
    return fig.plot_training_curves(ctx.epochs, path)


def plot_spectra(ctx: Context, path: Path) -> Path | None:
    return fig.plot_spectra(ctx.spectra, path)


def plot_rank(ctx: Context, path: Path) -> Path | None:
    return fig.plot_robustness_vs_rank(ctx.summary, path, ctx.attack)


def spearman(ctx: Context) -> list[Block]:
    table = spearman_table(ctx.summary, ctx.attack)
    return [Table(table, "spearman-table", "Spearman's ρ across all runs (degenerate runs left "
                  "out).")] if len(table) else []


def interventions(ctx: Context) -> list[Block]:
    return [Paragraph(prose.INTERVENTIONS)] if not ctx.interventions.empty else []


def plot_interventions(ctx: Context, path: Path) -> Path | None:
    return fig.plot_interventions(ctx.interventions, path)


# -- provenance, runs, choices -----------------------------------------------------------------
def provenance_blocks(ctx: Context) -> list[Block]:
    text, sessions = provenance(ctx.tables)
    blocks: list[Block] = [Paragraph(text)] if text else []
    if len(sessions):
        blocks.append(Table(sessions, "provenance", "Sweep sessions that wrote this database: "
                            "repeat a study with its command at its commit."))
    hours = hours_table(ctx.tables)
    if len(hours):
        blocks.append(Table(hours, "hours", "Where the hours go: worker time per run by model and "
                            "method, split into training, evaluation and sanity checks (mean "
                            "seconds per run; worker hours summed over runs; W workers share "
                            "the wall time)."))
    return blocks or [Paragraph("(No sweep session recorded.)")]


def runs(ctx: Context) -> list[Block]:
    labels = ", ".join(f"`{k}` = {method_label(k)}" for k in method_order())
    return [Paragraph(f"Every run in the database (failed ones included). Methods: {labels}. "
                      "Flags: degenerate (clean accuracy near chance), collapsed (the run stored "
                      "that its training collapsed: left out of the claims), never robust "
                      "(validation robust accuracy below twice chance at every epoch: kept in the "
                      "claims as measured). Parameters: the "
                      "network's trainable weights and biases. Kept epoch: the best validation "
                      "epoch of a run that selects one (its weights were evaluated)."),
            Table(run_table(ctx.tables), "run-table",
                  "Runs: configuration, clean accuracy, timings (s).", {"clean_accuracy": pct})]


def choices(ctx: Context) -> list[Block]:
    return [Paragraph(prose.our_choices())]


SECTIONS: tuple[Section, ...] = (
    Section(None, intro),
    Section("Summary", verdicts, "frontier.png", plot_frontier, prose.FRONTIER_CAPTION,
            after=headline_table, beside=True),
    Section("Claims in detail", claims_detail),
    Section("Declared margins", margins),
    Section("How rows combine into a verdict", rules),
    Section("Notes on the scoring", notes),
    Section("Evaluation", evaluation),
    Section("Robustness", figure="fooling_ratio.png", plot=plot_curves,
            caption="Fooling ratio and robust accuracy vs ε per method and model (bands: 95 % "
                    "CI, clipped to [0, 1]); an attack stored at one ε: a point per method."),
    Section(None, figure="point_robustness.png", plot=plot_points, applies=has_points,
            caption="Per-point minimal ℓ∞ perturbation: share of test points broken at a "
                    "budget ≤ ε, per method (pooled over seeds)."),
    Section("Choosing λ", choosing_lambda, "lambda_selection.png", plot_lambda,
            "Clean accuracy over each regularizer's λ grid; circled: the chosen λ."),
    Section("Weight structure", figure="structure_by_layer.png", plot=plot_layers,
            caption="Normalized effective rank and effective sparsity per layer and method "
                    "(error bars: 95 % CI)."),
    Section(None, figure="structure_epochs.png", plot=plot_structure_epochs,
            caption="Evolution over epochs, natural vs adversarial training (bands: 95 % CI)."),
    Section("Training curves", figure="training_curves.png", plot=plot_training,
            caption="Training loss, validation accuracy (clean; robust where the run measured "
                    "it) and clean test accuracy per epoch of the compared runs (the chosen λ per "
                    "method; bands: 95 % CI over seeds): has each method's validation curve "
                    "flattened? ★: the epoch a run with validation-based selection kept (its "
                    "weights are the ones evaluated; never chosen on test points)."),
    Section("Spectra", figure="spectra.png", plot=plot_spectra,
            caption="Singular value spectra σᵢ/σ₁ per layer: natural vs adversarial vs nuclear."),
    Section("Robustness vs effective rank", figure="robustness_vs_rank.png", plot=plot_rank,
            caption="Robustness vs mean normalized effective rank across all runs, with "
                    "Spearman's ρ (hollow: degenerate runs, left out of ρ).", after=spearman),
    Section("Interventions: is low rank sufficient?", interventions, "interventions.png",
            plot_interventions, "Robust and clean accuracy vs kept share per method (bands: "
            "95 % CI).", missing=prose.NO_INTERVENTIONS),
    Section("Provenance", provenance_blocks),
    Section("Runs", runs),
    Section("Our choices", choices),
)
FIGURE_NAMES = tuple(s.figure for s in SECTIONS if s.figure is not None)
