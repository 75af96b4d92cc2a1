"""Render a :class:`~rankrobust.report.document.Document` as GitHub-flavoured Markdown.

Block text is already markup (see :mod:`.document`); table cells come escaped from
:func:`~rankrobust.report.document.cell_rows`, and only their pipes are escaped here (GFM
reads ``\\|`` as a pipe inside a cell, code spans included).
"""

from __future__ import annotations

from rankrobust.report.document import (
    Block,
    Bullets,
    Document,
    Figure,
    Group,
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


def block_markdown(block: Block) -> str:
    """One block as Markdown (a :class:`Group`'s blocks one after another)."""
    if isinstance(block, Heading):
        return "#" * max(2, min(block.level, 6)) + " " + block.text
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Figure):
        return f"![{block.caption}]({block.src})\n\n*{block.caption}*"
    if isinstance(block, Group):
        return "\n\n".join(block_markdown(b) for b in block.blocks)
    text = table_markdown(block)
    return f"{text}\n\n*{block.caption}*" if block.caption else text


def render_markdown(doc: Document) -> str:
    """The whole document as Markdown text (images referenced by relative path)."""
    return "\n\n".join([f"# {doc.title}", *map(block_markdown, doc.blocks)]) + "\n"
