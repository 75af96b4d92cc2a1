"""Render a :class:`~rankrobust.report.document.Document` as GitHub-flavoured Markdown.

Block text is already markup (see :mod:`.document`); table cells come escaped from
:func:`~rankrobust.report.document.cell_rows`, and only their pipes are escaped here (GFM
reads ``\\|`` as a pipe inside a cell, code spans included).
"""

from __future__ import annotations

from rankrobust.report.document import (
    Bullets,
    Document,
    Figure,
    Heading,
    Paragraph,
    Table,
    cell_rows,
    plain,
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def table_markdown(table: Table) -> str:
    """A pipe table (header, separator, rows); numbers right-aligned."""
    cols = [str(c) for c in table.frame.columns]
    rows = cell_rows(table)
    numeric = [table.frame[c].dtype.kind in "fiu" for c in table.frame.columns]
    lines = ["| " + " | ".join(_cell(plain(c)) for c in cols) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(doc: Document) -> str:
    """The whole document as Markdown text (images referenced by relative path)."""
    parts = [f"# {doc.title}"]
    for block in doc.blocks:
        if isinstance(block, Heading):
            parts.append("#" * max(2, min(block.level, 6)) + " " + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Figure):
            parts.append(f"![{block.caption}]({block.src})\n\n*{block.caption}*")
        elif isinstance(block, Table):
            text = table_markdown(block)
            parts.append(f"{text}\n\n*{block.caption}*" if block.caption else text)
    return "\n\n".join(parts) + "\n"
