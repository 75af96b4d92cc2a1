"""``build_report(db_path, out_dir)``: read a results database, write report.html, report.md, PNGs.

Reads only the database (rebuildable without training). Writes ``out_dir/report.html``,
``out_dir/report.md``, ``out_dir/figures/*.png`` and ``out_dir/claims.csv``. The document is the
table of sections :data:`~rankrobust.report.sections.SECTIONS`, rendered in order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib import rc_context

from rankrobust.experiments.margins import Margins
from rankrobust.report.context import Context, make_context
from rankrobust.report.document import Block, Document, Figure, Group, Heading, Paragraph
from rankrobust.report.html import render_html
from rankrobust.report.markdown import render_markdown
from rankrobust.report.scoring import read_margins
from rankrobust.report.sections import FIGURE_NAMES, SECTIONS, Section
from rankrobust.report.tables import StudyTables, load_tables

FIGURE_DIR = "figures"
TITLE = "Low-rank weights and adversarial robustness: the reproduction"
# Stored names (models, methods, layers) are drawn as they are: "$" is no mathtext delimiter.
PLAIN_TEXT: Any = {"text.parse_math": False}
__all__ = ["FIGURE_DIR", "FIGURE_NAMES", "build_document", "build_report"]


def _figure(section: Section, ctx: Context) -> Block:
    """The section's figure, drawn into the context's figure folder, or a note saying why not."""
    assert section.figure is not None and section.plot is not None
    with rc_context(PLAIN_TEXT):
        path = section.plot(ctx, ctx.figure_dir / section.figure)
    if path is None:
        return Paragraph(section.missing or f"(No data for this figure: {section.caption})")
    return Figure(f"{FIGURE_DIR}/{path.name}", section.caption)


def section_blocks(section: Section, ctx: Context) -> list[Block]:
    """One row of the table of sections as blocks: heading, prose, figure, what follows it."""
    if not section.applies(ctx):
        return []
    blocks: list[Block] = [Heading(section.title)] if section.title else []
    blocks += section.prose(ctx)
    shown = [_figure(section, ctx)] if section.figure is not None else []
    if section.beside:
        return [*blocks, Group([*shown, *section.after(ctx)])]
    return blocks + shown + section.after(ctx)


def build_document(tables: StudyTables, figure_dir: Path, source: str = "",
                   margins: Margins | None = None) -> tuple[Document, pd.DataFrame]:
    """The report and its claims rows, drawing figures into ``figure_dir``; ``margins``: the
    study's declared equivalence margins (the defaults when None)."""
    ctx = make_context(tables, figure_dir, source, margins)
    doc = Document(TITLE)
    for section in SECTIONS:
        doc.add(*section_blocks(section, ctx))
    return doc, ctx.claims


def build_report(db_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Write report.html, report.md, figures/*.png and claims.csv; return report.html's path."""
    tables = load_tables(db_path)
    out = Path(out_dir)
    figure_dir = out / FIGURE_DIR
    figure_dir.mkdir(parents=True, exist_ok=True)
    for name in FIGURE_NAMES:  # ours only: a figure a rebuild no longer draws must not linger
        (figure_dir / name).unlink(missing_ok=True)
    doc, claims = build_document(tables, figure_dir, source=str(db_path),
                                 margins=read_margins(str(db_path)))
    (out / "report.md").write_text(render_markdown(doc), encoding="utf-8")
    claims.to_csv(out / "claims.csv", index=False)
    html_path = out / "report.html"
    html_path.write_text(render_html(doc), encoding="utf-8")
    return html_path
