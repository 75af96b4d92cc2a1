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
    STRUCTURE_MARGIN,
    claim_verdicts,
    evaluate_c5,
    evaluate_claims,
    robustness_metrics,
)
from rankrobust.report.document import Bullets, Document, Figure, Heading, Paragraph, Table
from rankrobust.report.html import render_html
from rankrobust.report.markdown import render_markdown
from rankrobust.report.summary import (
    DEGENERATE_MARGIN,
    LAMBDA_TOLERANCE,
    chance_level,
    comparison_runs,
    final_structure,
    method_label,
    method_order,
    primary_attack,
    run_summary,
    select_lambdas,
    setting,
)
from rankrobust.report.tables import StudyTables, load_tables

FIGURE_DIR = "figures"
PIPELINE_VERDICT = "– (pipeline check)"
# The files a report writes into FIGURE_DIR: a rebuild replaces these and touches nothing else.
FIGURE_NAMES = ("lambda_selection.png", "structure_by_layer.png", "structure_epochs.png",
                "fooling_ratio.png", "spectra.png", "robustness_vs_rank.png", "interventions.png",
                "training_curves.png")


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
    if "clean_accuracy" in runs.columns and "dataset" in runs.columns:
        chance = runs["dataset"].map(chance_level)
        low = pd.to_numeric(runs["clean_accuracy"], errors="coerce") < chance + DEGENERATE_MARGIN
        out["flag"] = low.map({True: "degenerate", False: ""})
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


def claims_notes(attack: str) -> Bullets:
    """How the claims table is computed and judged (shown under it)."""
    fr, ra = (m for m, _ in robustness_metrics(attack))
    return Bullets([
        "**C1** effect: adversarial minus natural training, in the mean over layers of the "
        "normalized effective rank erank(W)/min(m, n) or effective sparsity esparsity(W)/(m·n) "
        "of the final weights (claimed < 0).",
        f"**C2–C4** metrics: `{fr}`, the {attack} ℓ∞ fooling ratio (share of inputs whose label "
        f"changes; the paper's metric, lower = more robust), and `{ra}`, the robust accuracy "
        "(share still classified correctly; higher = more robust), each as the normalized area "
        "under its curve over the ε grid: (1/(ε_max − ε_min))·∫ m(ε) dε by the trapezoid rule, "
        "the curve's average height, not the plain mean of the grid's values (for an attack "
        "stored at one ε, the value at that ε). C2: ℓ1+nuclear − "
        "natural (claimed more robust); C4: ℓ1+nuclear − adversarial (claimed less robust).",
        "**C3**: the C2 gain in robustness of the CNN minus that of the FC network (claimed > 0), "
        "Welch interval over the per-seed gains; a second row divides each gain by natural "
        "training's mean, since the two families start from different baselines.",
        "Intervals: paired Student-t over seeds (same seed, same model); effects and CIs are in "
        "the metric's own units, `relative` is the effect over the reference method's mean.",
        f"Verdict: **negligible** when the whole 95 % CI lies within ±{STRUCTURE_MARGIN} "
        f"(structure) or ±{FOOLING_MARGIN} (fooling ratio, robust accuracy), whatever its sign; "
        "otherwise **holds** when the CI lies wholly on the claimed side of 0, **does not hold** "
        "when it lies wholly on the other side, **inconclusive** otherwise (also with fewer "
        "than 2 seeds). A claim holds when all its rows hold.",
    ])


def _evaluation(config: Any) -> dict[str, Any]:
    try:
        data = json.loads(config) if isinstance(config, str) else dict(config or {})
        ev = data.get("evaluation", {})
        return ev if isinstance(ev, dict) else {}
    except (TypeError, ValueError):
        return {}


def attack_settings(runs: pd.DataFrame) -> pd.DataFrame:
    """The distinct evaluation settings of the runs: attack, norm, steps, restarts, points, ε grid."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for config in runs.get("config", pd.Series(dtype=object)):
        ev = _evaluation(config)
        for spec in ev.get("attacks", []) or []:
            opts = spec.get("options", {}) or {}
            rest = ", ".join(f"{k} {v}" for k, v in sorted(opts.items())
                             if k not in ("steps", "restarts", "seed"))
            row = {"attack": spec.get("attack"), "norm": spec.get("norm", "inf"),
                   "steps": opts.get("steps", "default"), "restarts": opts.get("restarts", "default"),
                   "points": spec.get("n") or ev.get("n"),
                   "epsilons": ", ".join(f"{e:g}" for e in spec.get("epsilons", [])),
                   "options": rest or "–"}
            rows.setdefault(tuple(row.values()), row)
        if ev.get("deepfool"):
            row = {"attack": "deepfool (ρ_adv)", "norm": "2",
                   "steps": (ev.get("deepfool_options") or {}).get("max_iter", "default"),
                   "restarts": "–", "points": ev.get("n"), "epsilons": "minimal perturbation",
                   "options": "–"}
            rows.setdefault(tuple(row.values()), row)
    return pd.DataFrame(list(rows.values()),
                        columns=["attack", "norm", "steps", "restarts", "points", "epsilons",
                                 "options"])


def sanity_statement(runs: pd.DataFrame) -> str:
    """Whether the gradient-masking checks ran, and in how many runs."""
    chosen = [_evaluation(c).get("sanity_checks") for c in runs.get("config", [])]
    ran = sum(bool(c) for c in chosen)
    if ran == 0:
        return ("The gradient-masking checks did **not** run (`evaluation.sanity_checks` is off "
                "in every run), so this report makes no statement about gradient masking.")
    listed = sorted({str(a) for c in chosen if isinstance(c, list) for a in c})
    which = (f" on the curves of {', '.join(listed)} (the other curves were not checked)"
             if listed and all(isinstance(c, list) for c in chosen if c) else "")
    return (f"The gradient-masking checks ran in {ran} of {len(runs)} runs{which}; "
            "no run stored a warning.")


def _duration(seconds: float) -> str:
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {sec:02d} s" if hours else f"{minutes} min {sec:02d} s"


def _span(runs: pd.DataFrame) -> float | None:
    """Seconds from the first run's start to the last run's finish (None if not stored)."""
    if not {"started_at", "finished_at"} <= set(runs.columns) or runs.empty:
        return None
    start = pd.to_datetime(runs["started_at"], errors="coerce", utc=True).min()
    end = pd.to_datetime(runs["finished_at"], errors="coerce", utc=True).max()
    return None if pd.isna(start) or pd.isna(end) else max(0.0, (end - start).total_seconds())


def provenance(tables: StudyTables) -> tuple[str, pd.DataFrame]:
    """What produced the results: a paragraph (wall time, versions) and the sweep sessions'
    table (start, wall time, runs, executor, git commit, command), empty when none is stored."""
    sessions = tables.sessions
    parts = []
    if len(sessions) and "seconds" in sessions:
        ended = sessions["seconds"].notna()
        if ended.any():
            total = float(sessions.loc[ended, "seconds"].sum())
            parts.append(f"Wall time **{_duration(total)}**, summed over {int(ended.sum())} sweep "
                         f"session(s) (table below; a study resumes across sessions).")
        if not ended.all():  # a session writes its wall time when it ends
            parts.append(f"{int((~ended).sum())} session(s) with no end recorded (still running, "
                         "or killed): their time is not in the sum.")
    span = _span(tables.runs)
    if span is not None:
        parts.append(f"First run start to last run finish: {_duration(span)}.")
    versions = {}
    if len(sessions) and "versions" in sessions:
        last = sessions["versions"].dropna()
        versions = dict(last.iloc[-1]) if len(last) and isinstance(last.iloc[-1], dict) else {}
    if not versions:
        for name in ("python", "torch", "numpy", "rankrobust"):
            col = f"{name}_version"
            if col in tables.runs and tables.runs[col].notna().any():
                versions[name] = ", ".join(sorted(map(str, tables.runs[col].dropna().unique())))
    if versions:
        parts.append("Versions: " + "; ".join(f"{k} {v}" for k, v in sorted(versions.items())) + ".")
    rows = []
    for rec in sessions.to_dict(orient="records") if len(sessions) else []:
        commit = rec.get("git_commit")
        rows.append({
            "started": str(rec.get("started_at") or "–"),
            "wall time": "–" if pd.isna(rec.get("seconds")) else _duration(float(rec["seconds"])),
            "runs run / failed": f"{rec.get('runs_executed', '–')} / {rec.get('runs_failed', '–')}",
            "executor": f"{rec.get('executor', '–')} × {rec.get('workers', '–')} on "
                        f"{rec.get('host', '–')} ({rec.get('cpus', '–')} CPUs)",
            "git commit": f"`{commit}`" if isinstance(commit, str) else "–",
            "command": f"`{rec.get('command', '–')}`",
        })
    columns = ["started", "wall time", "runs run / failed", "executor", "git commit", "command"]
    return " ".join(parts), pd.DataFrame(rows, columns=columns)


def is_pipeline_check(runs: pd.DataFrame) -> bool:
    """A study on synthetic data only (the smoke preset) checks the pipeline, not the paper."""
    return len(runs) > 0 and set(runs["dataset"].astype(str)) <= {"synthetic"}


def draw_figures(done: StudyTables, summary: pd.DataFrame, ids: set[str], figure_dir: Path,
                 attack: str = "pgd") -> list[tuple[Path | None, str]]:
    """The structure, robustness, spectra and rank-vs-robustness figures (None: no data)."""
    structure = _with_runs(done.structure, done.runs) if not done.structure.empty else done.structure
    final = final_structure(structure)
    final = final[final["run_id"].isin(ids)] if not final.empty else final
    robustness = _with_runs(done.robustness, done.runs) if not done.robustness.empty else done.robustness
    epochs = (_with_runs(done.epoch_metrics, done.runs) if not done.epoch_metrics.empty
              else done.epoch_metrics)
    epochs = epochs[epochs["run_id"].isin(ids)] if not epochs.empty else epochs
    robustness = robustness[robustness["run_id"].isin(ids)] if not robustness.empty else robustness
    spectra = _with_runs(done.spectra, done.runs) if not done.spectra.empty else done.spectra
    spectra = spectra[spectra["run_id"].isin(ids)] if not spectra.empty else spectra
    return [
        (fig.plot_structure_by_layer(final, figure_dir / "structure_by_layer.png"),
         "Normalized effective rank and effective sparsity per layer and method (error bars: 95 % CI)."),
        (fig.plot_structure_epochs(structure, figure_dir / "structure_epochs.png"),
         "Evolution over epochs, natural vs adversarial training (bands: 95 % CI)."),
        (fig.plot_training_curves(epochs, figure_dir / "training_curves.png"),
         "Training loss and clean test accuracy per epoch of the compared runs (the chosen λ "
         "per method; bands: 95 % CI over seeds): has each method converged?"),
        (fig.plot_fooling_curves(robustness, figure_dir / "fooling_ratio.png"),
         "Fooling ratio and robust accuracy vs ε per method and model (bands: 95 % CI, "
         "clipped to [0, 1])."),
        (fig.plot_spectra(spectra, figure_dir / "spectra.png"),
         "Singular value spectra σᵢ/σ₁ per layer: natural vs adversarial vs nuclear."),
        (fig.plot_robustness_vs_rank(summary, figure_dir / "robustness_vs_rank.png", attack),
         "Robustness vs mean normalized effective rank across all runs, with Spearman's ρ "
         "(hollow: degenerate runs, left out of ρ)."),
    ]


def study_claims(tables: StudyTables) -> pd.DataFrame:
    """The measured claims of the completed runs of ``tables``: the report's claims table and
    claims.csv (also what ``rankrobust export`` writes), without drawing anything."""
    done = tables.completed()
    summary = run_summary(done)
    chosen = comparison_runs(summary, select_lambdas(summary))
    attack = primary_attack(summary) or "pgd"
    interventions = (_with_runs(done.interventions, done.runs) if not done.interventions.empty
                     else done.interventions)
    claims = pd.concat([evaluate_claims(chosen, metrics=robustness_metrics(attack)),
                        evaluate_c5(interventions)], ignore_index=True)
    if is_pipeline_check(done.runs):  # no verdicts on the paper from synthetic data
        claims["verdict"] = PIPELINE_VERDICT
    return claims


def build_document(tables: StudyTables, figure_dir: Path, source: str = "") -> tuple[Document, pd.DataFrame]:
    """The report and its claims table, drawing figures into ``figure_dir``."""
    all_runs = tables.runs
    done = tables.completed()
    summary = run_summary(done)
    selection = select_lambdas(summary)
    chosen = comparison_runs(summary, selection)
    ids = set(chosen["run_id"])
    attack = primary_attack(summary) or "pgd"
    interventions = (_with_runs(done.interventions, done.runs) if not done.interventions.empty
                     else done.interventions)
    claims = study_claims(tables)
    verdicts = claim_verdicts(claims)
    pipeline = is_pipeline_check(done.runs)
    if pipeline:  # no verdicts on the paper from synthetic data
        verdicts["verdict"] = PIPELINE_VERDICT

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

    text, sessions = provenance(tables)
    if text or len(sessions):
        doc.add(Heading("Provenance"))
        if text:
            doc.add(Paragraph(text))
        if len(sessions):
            doc.add(Table(sessions, "provenance", "Sweep sessions that wrote this database: "
                          "repeat a study with its command at its commit."))

    doc.add(Heading("Claims"))
    if pipeline:
        doc.add(Paragraph(
            "**Pipeline check, not a result.** Every run of this study used the built-in "
            "synthetic data (the `smoke` preset): the tables below show that the pipeline "
            "computes every effect, and give no verdict on the paper's claims."))
    doc.add(Table(verdicts, "claims-summary", "The paper's claims and our verdicts."))
    doc.add(Table(claims, "claims-table", "Measured effects (95 % CI over seeds).",
                  {"effect": _signed, "ci_low": _signed, "ci_high": _signed, "relative": _pct}))
    doc.add(claims_notes(attack))
    settings = attack_settings(done.runs)
    if not settings.empty:
        doc.add(Table(settings, "attack-settings",
                      "Evaluation settings: attack, norm, steps, restarts, test points, ε grid."))
    flagged = summary[summary["degenerate"].astype(bool)] if "degenerate" in summary else summary.iloc[:0]
    if len(flagged):
        doc.add(Paragraph(
            f"**{len(flagged)} degenerate run(s)**: clean accuracy within "
            f"{100 * DEGENERATE_MARGIN:g} points of chance. Under the fooling ratio such a model "
            "looks robust by being constant; they are flagged in the run table, left out of the "
            "correlations and drawn hollow in the scatter plot."))

    doc.add(Heading("Choosing λ"))
    doc.add(Paragraph(
        "Rule: for each model and each method with a swept setting (a λ grid, or a rank budget), "
        "the settings are ordered from weakest to strongest (λ's in the method's declared order, "
        "e.g. (λ_*, λ₁); rank budgets downwards) and the comparisons use the **strongest setting "
        f"whose mean clean accuracy over seeds stays within {100 * LAMBDA_TOLERANCE:g} points of "
        "natural training**. Where none qualifies, the most accurate one is used and flagged "
        "(`fallback`). The accuracy compared is measured on validation examples held out from "
        "training (`train.validation_size`), never on the test points the attacks use, wherever "
        "the runs have one (`selected_on`)."
    ))
    if not selection.empty:
        doc.add(Table(selection, "lambda-table", "The λ grid and the chosen settings.",
                      {"clean_accuracy": _pct, "val_accuracy": _pct, "natural_accuracy": _pct}))
    figs: list[tuple[Path | None, str]] = []
    figs.append((fig.plot_lambda_selection(selection, figure_dir / "lambda_selection.png"),
                 "Clean accuracy over each regularizer's λ grid; circled: the chosen λ."))

    figs += draw_figures(done, summary, ids, figure_dir, attack)
    sections = ["Choosing λ", "Weight structure", "Weight structure", "Training curves",
                "Robustness", "Spectra", "Robustness vs effective rank"]
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
    healthy = summary[~summary["degenerate"].astype(bool)] if "degenerate" in summary else summary
    for col in (*(m for m, _ in robustness_metrics(attack)), "rho_adv"):
        if col in summary.columns and "erank" in summary.columns:
            rho, p, n = fig.spearman(healthy["erank"], healthy[col])
            rho_rows.append({"robustness": col, "vs": "mean normalized erank", "spearman_rho": rho,
                             "p_value": p, "n_runs": n})
    if rho_rows:
        doc.add(Table(pd.DataFrame(rho_rows), "spearman-table",
                      "Spearman's ρ across all runs (degenerate runs left out)."))

    doc.add(Heading("Interventions: is low rank sufficient?"))
    path = fig.plot_interventions(interventions, figure_dir / "interventions.png")
    if path is None:
        doc.add(Paragraph("(No intervention tables stored: add `evaluation.interventions` to the "
                          "study to cut each trained network's rank or prune it after training.)"))
    else:
        doc.add(Paragraph(
            "After training, with no retraining, each layer's SVD is truncated to a share of its "
            "rank (or its weights are magnitude-pruned) and the copy is attacked again. **C5** reads "
            "the natural network's robust accuracy off its truncation curve at the effective rank "
            "adversarial training reaches (interpolated over the keep levels) and compares it with "
            "the adversarially trained network under the same attack: if cutting rank alone made a "
            "network robust, the effect would be ≥ 0."))
        doc.add(Figure(f"{FIGURE_DIR}/{path.name}",
                       "Robust and clean accuracy vs kept share per method (bands: 95 % CI)."))
    doc.add(Heading("Evaluation sanity checks"))
    notes = sanity_warnings(done.runs)
    if notes:
        doc.add(Paragraph("Warnings of the gradient-masking checks (Carlini et al. 2019), per run:"))
        doc.add(Bullets(notes))
    else:
        doc.add(Paragraph(sanity_statement(done.runs)))

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
    for name in FIGURE_NAMES:  # ours only: a figure a rebuild no longer draws must not linger
        (figure_dir / name).unlink(missing_ok=True)
    doc, claims = build_document(tables, figure_dir, source=str(db_path))
    (out / "report.md").write_text(render_markdown(doc), encoding="utf-8")
    claims.to_csv(out / "claims.csv", index=False)
    html_path = out / "report.html"
    html_path.write_text(render_html(doc), encoding="utf-8")
    return html_path
