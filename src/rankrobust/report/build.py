"""``build_report(db_path, out_dir)``: read a results database, write report.html, report.md, PNGs.

Reads only the database (rebuildable without training). Writes ``out_dir/report.html``,
``out_dir/report.md``, ``out_dir/figures/*.png`` and ``out_dir/claims.csv``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any

import pandas as pd

from rankrobust.report import figures as fig
from rankrobust.report.claims import (
    CLAIM_TEXT,
    FOOLING_MARGIN,
    PRIMARY_METRIC,
    STRUCTURE_MARGIN,
    claim_verdicts,
    evaluate_claims,
)
from rankrobust.report.document import Bullets, Document, Figure, Heading, Paragraph, Table
from rankrobust.report.html import render_html
from rankrobust.report.markdown import render_markdown
from rankrobust.report.summary import (
    LAMBDA_TOLERANCE,
    comparison_runs,
    final_structure,
    method_label,
    method_order,
    run_summary,
    select_lambdas,
    setting,
)
from rankrobust.report.tables import StudyTables, load_tables

FIGURE_DIR = "figures"


def _with_runs(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``frame`` joined with the identity columns of the runs it belongs to (inner join)."""
    info = runs[["run_id", "dataset", "model", "method", "seed"]]
    drop = [c for c in ("dataset", "model", "method", "seed") if c in frame.columns]
    return frame.drop(columns=drop).merge(info, on="run_id")


def _config_text(config: Any) -> str:
    try:
        data = json.loads(config) if isinstance(config, str) else dict(config or {})
        t = data.get("train", {})
        return f"{t['epochs']} ep, {t['optimizer']} lr {t['lr']:g}, bs {t['batch_size']}"
    except (TypeError, ValueError, KeyError, AttributeError):
        return ""


def _pct(value: Any) -> str:
    return "–" if pd.isna(value) else f"{100 * float(value):.1f} %"


def _signed(value: Any) -> str:
    return "–" if pd.isna(value) else f"{float(value):+.4f}"


def run_table(tables: StudyTables) -> pd.DataFrame:
    """Every run (failed included): config, clean accuracy and timings."""
    runs = tables.runs.copy()
    if "method_params" in runs.columns:
        runs["setting"] = [setting(m, p) for m, p in zip(runs["method"], runs["method_params"],
                                                         strict=True)]
    cols = [c for c in ("run_id", "dataset", "model", "method", "setting", "seed", "status",
                        "clean_accuracy", "train_seconds", "eval_seconds") if c in runs.columns]
    out = runs[cols].copy()
    if "config" in runs.columns:
        out.insert(len(out.columns) - 3, "training", runs["config"].map(_config_text))
    if "error" in runs.columns and runs["error"].notna().any():
        out["error"] = runs["error"].fillna("")
    return out.sort_values([c for c in ("dataset", "model", "method", "seed") if c in out.columns])


def sanity_warnings(runs: pd.DataFrame) -> list[str]:
    """'run_id (model, method, seed): warning' for every stored sanity-check warning."""
    if "warnings" not in runs.columns:
        return []
    out = []
    for row in runs[runs["warnings"].notna()].to_dict(orient="records"):
        try:
            items = json.loads(row["warnings"])
        except (TypeError, ValueError):
            items = [str(row["warnings"])]
        who = f"`{row['run_id']}` ({row.get('model')}, {row.get('method')}, seed {row.get('seed')})"
        out += [f"{who}: {item}" for item in items]
    return out


def _machine(tables: StudyTables) -> str:
    for col in ("host", "machine"):
        if col in tables.runs.columns and tables.runs[col].notna().any():
            return str(tables.runs[col].dropna().iloc[0])
    return f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs)"


def claims_notes() -> Bullets:
    """How the claims table is computed and judged (shown under it)."""
    return Bullets([
        "**C1** effect: adversarial minus natural training, in the mean over layers of the "
        "normalized effective rank erank(W)/min(m, n) or effective sparsity esparsity(W)/(m·n) "
        "of the final weights (claimed < 0).",
        f"**C2, C4** metric `{PRIMARY_METRIC}`: the PGD ℓ∞ fooling ratio averaged over the ε grid "
        "(normalized area under the curve; lower = more robust). C2: ℓ1+nuclear − natural "
        "(claimed < 0); C4: ℓ1+nuclear − adversarial (claimed > 0, i.e. still less robust).",
        "**C3**: the C2 gain (natural − ℓ1+nuclear) of the CNN minus that of the FC network "
        "(claimed > 0), Welch interval over the per-seed gains.",
        "Intervals: paired Student-t over seeds (same seed, same model); effects and CIs are in "
        "the metric's own units, `relative` is the effect over the reference method's mean.",
        "Verdict: **holds** when the whole 95 % CI lies on the claimed side of 0; **does not "
        "hold** when it lies wholly on the other side, or straddles 0 within a negligible margin "
        f"(±{STRUCTURE_MARGIN} for structure, ±{FOOLING_MARGIN} for fooling ratios); otherwise "
        "**inconclusive** (also with fewer than 2 seeds). A claim holds when all its rows hold.",
    ])


def draw_figures(done: StudyTables, summary: pd.DataFrame, ids: set[str], figure_dir: Path,
                 ) -> list[tuple[Path | None, str]]:
    """The structure, robustness, spectra and rank-vs-robustness figures (None: no data)."""
    structure = _with_runs(done.structure, done.runs) if not done.structure.empty else done.structure
    final = final_structure(structure)
    final = final[final["run_id"].isin(ids)] if not final.empty else final
    robustness = _with_runs(done.robustness, done.runs) if not done.robustness.empty else done.robustness
    robustness = robustness[robustness["run_id"].isin(ids)] if not robustness.empty else robustness
    spectra = _with_runs(done.spectra, done.runs) if not done.spectra.empty else done.spectra
    spectra = spectra[spectra["run_id"].isin(ids)] if not spectra.empty else spectra
    return [
        (fig.plot_structure_by_layer(final, figure_dir / "structure_by_layer.png"),
         "Normalized effective rank and effective sparsity per layer and method (error bars: 95 % CI)."),
        (fig.plot_structure_epochs(structure, figure_dir / "structure_epochs.png"),
         "Evolution over epochs, natural vs adversarial training (bands: 95 % CI)."),
        (fig.plot_fooling_curves(robustness, figure_dir / "fooling_ratio.png"),
         "Fooling ratio vs ε per method; FC left, CNN right (bands: 95 % CI)."),
        (fig.plot_spectra(spectra, figure_dir / "spectra.png"),
         "Singular value spectra σᵢ/σ₁ per layer: natural vs adversarial vs nuclear."),
        (fig.plot_robustness_vs_rank(summary, figure_dir / "robustness_vs_rank.png"),
         "Robustness vs mean normalized effective rank across all runs, with Spearman's ρ."),
    ]


def build_document(tables: StudyTables, figure_dir: Path, source: str = "") -> tuple[Document, pd.DataFrame]:
    """The report and its claims table, drawing figures into ``figure_dir``."""
    all_runs = tables.runs
    done = tables.completed()
    summary = run_summary(done)
    selection = select_lambdas(summary)
    chosen = comparison_runs(summary, selection)
    ids = set(chosen["run_id"])
    claims = evaluate_claims(chosen)
    verdicts = claim_verdicts(claims)

    doc = Document("Low-rank weights and adversarial robustness: the reproduction")
    finished = str(done.runs["finished_at"].max()) if "finished_at" in done.runs and len(done.runs) else "–"
    doc.add(Paragraph(
        f"Study of Langenberg et al. (2019), arXiv:1901.10371, from the results database "
        f"`{source}`: {len(done.runs)} of {len(all_runs)} runs complete; datasets "
        f"{', '.join(sorted(map(str, done.runs['dataset'].unique()))) or '–'}; models "
        f"{', '.join(sorted(map(str, done.runs['model'].unique()))) or '–'}; seeds "
        f"{done.runs['seed'].nunique() if len(done.runs) else 0}. Last run finished {finished}; "
        f"machine {_machine(done)}; report built "
        f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}."
    ))

    doc.add(Heading("Claims"))
    doc.add(Table(verdicts, "claims-summary", "The paper's claims and our verdicts."))
    doc.add(Table(claims, "claims-table", "Measured effects (95 % CI over seeds).",
                  {"effect": _signed, "ci_low": _signed, "ci_high": _signed, "relative": _pct}))
    doc.add(claims_notes())

    doc.add(Heading("Choosing λ"))
    doc.add(Paragraph(
        "Rule: for each model and each method with a swept setting (a λ grid, or a rank budget), "
        "the settings are ordered from weakest to strongest (λ's in the method's declared order, "
        "e.g. (λ_*, λ₁); rank budgets downwards) and the comparisons use the **strongest setting "
        f"whose mean clean accuracy over seeds stays within {100 * LAMBDA_TOLERANCE:g} points of "
        "natural training**. Where none qualifies, the most accurate one is used and flagged "
        "(`fallback`)."
    ))
    if not selection.empty:
        doc.add(Table(selection, "lambda-table", "The λ grid and the chosen settings.",
                      {"clean_accuracy": _pct, "natural_accuracy": _pct}))
    figs: list[tuple[Path | None, str]] = []
    figs.append((fig.plot_lambda_selection(selection, figure_dir / "lambda_selection.png"),
                 "Clean accuracy over each regularizer's λ grid; circled: the chosen λ."))

    figs += draw_figures(done, summary, ids, figure_dir)
    sections = ["Choosing λ", "Weight structure", "Weight structure", "Robustness", "Spectra",
                "Robustness vs effective rank"]
    current = "Choosing λ"
    for (path, caption), section in zip(figs, sections, strict=True):
        if section != current:
            doc.add(Heading(section))
            current = section
        if path is None:
            doc.add(Paragraph(f"(No data for this figure: {caption})"))
        else:
            doc.add(Figure(f"{FIGURE_DIR}/{path.name}", caption))
    rho_rows = []
    for col in (PRIMARY_METRIC, "rho_adv"):
        if col in summary.columns and "erank" in summary.columns:
            rho, p, n = fig.spearman(summary["erank"], summary[col])
            rho_rows.append({"robustness": col, "vs": "mean normalized erank", "spearman_rho": rho,
                             "p_value": p, "n_runs": n})
    if rho_rows:
        doc.add(Table(pd.DataFrame(rho_rows), "spearman-table", "Spearman's ρ across all runs."))

    doc.add(Heading("Evaluation sanity checks"))
    notes = sanity_warnings(done.runs)
    if notes:
        doc.add(Paragraph("Warnings of the gradient-masking checks (Carlini et al. 2019), per run:"))
        doc.add(Bullets(notes))
    else:
        doc.add(Paragraph("No run stored a sanity-check warning (the checks run where the study "
                          "enables `evaluation.sanity_checks`; the full preset does)."))

    doc.add(Heading("Runs"))
    labels = ", ".join(f"`{k}` = {method_label(k)}" for k in method_order())
    doc.add(Paragraph(f"Every run in the database (failed ones included). Methods: {labels}."))
    doc.add(Table(run_table(tables), "run-table", "Runs: configuration, clean accuracy, timings (s).",
                  {"clean_accuracy": _pct}))
    doc.add(Heading("Our choices"))
    doc.add(Paragraph(
        "Where the paper's setup is not known to us the choices are ours: conv kernels are read "
        "as (out, in·kh·kw) matrices; normalized measures average layers of different size; the "
        "primary robustness measure is the PGD ℓ∞ fooling ratio averaged over the ε grid; "
        f"the statements tested are: {'; '.join(f'{k}: {v}' for k, v in CLAIM_TEXT.items())}."
    ))
    return doc, claims


def build_report(db_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Write report.html, report.md, figures/*.png and claims.csv; return report.html's path."""
    tables = load_tables(db_path)
    out = Path(out_dir)
    figure_dir = out / FIGURE_DIR
    figure_dir.mkdir(parents=True, exist_ok=True)
    for stale in figure_dir.glob("*.png"):
        stale.unlink()
    doc, claims = build_document(tables, figure_dir, source=str(db_path))
    (out / "report.md").write_text(render_markdown(doc), encoding="utf-8")
    claims.to_csv(out / "claims.csv", index=False)
    html_path = out / "report.html"
    html_path.write_text(render_html(doc), encoding="utf-8")
    return html_path
