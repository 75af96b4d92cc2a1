"""A report as a list of blocks, rendered to Markdown (:mod:`.markdown`) and HTML (:mod:`.html`).

Text in headings, paragraphs, bullets and captions is *markup* written by the report's own
code: ``**bold**``, code spans (a run of n backticks closed by a run of exactly n, as in
CommonMark) and backslash escapes of ASCII punctuation; both renderers understand exactly that.
Anything read from a database is untrusted and enters markup only through :func:`plain` (every
ASCII punctuation character backslash-escaped) or :func:`code` (a code span whose fence is
longer than the longest backtick run of the value). Both replace line breaks by spaces, so a
value can never start a block (a heading, a fence, raw HTML) of its own. Table cells are
untrusted text unless they are :class:`Markup`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# Characters that start inline markup anywhere in a line (code, emphasis, HTML, entities,
# links, GFM strikethrough), and a line's first character when it could open a block. "|" is
# left to the Markdown renderer's table cells (a pipe escaped twice would end the cell).
_INLINE = re.compile(r"([\\`*_<>&\[\]~])")
_BLOCK_START = frozenset("!\"#$%'()+,-./:;=?@^{}")
_LIST_NUMBER = re.compile(r"\d{1,9}(?=[.)])")
_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")


class Markup(str):
    """Text already in the report's markup (from :func:`plain`, :func:`code` or our own code)."""


def _one_line(value: Any) -> str:
    return _LINE_BREAK.sub(" ", str(value)).replace("\x00", "\ufffd")


def plain(value: Any, block_start: bool = False) -> Markup:
    """``value`` as markup that shows exactly its text: punctuation escaped, one line; with
    ``block_start`` (text that may begin a paragraph or item, not a table cell) also a first
    character that would open a block."""
    text = _INLINE.sub(r"\\\1", _one_line(value))
    if not block_start:
        return Markup(text)
    number = _LIST_NUMBER.match(text)
    if number:  # "1. x" would open an ordered list
        text = text[:number.end()] + "\\" + text[number.end():]
    elif text[:1] in _BLOCK_START:
        text = "\\" + text
    return Markup(text)


def code(value: Any) -> Markup:
    """``value`` as one code span, fenced by more backticks than its longest backtick run."""
    text = _one_line(value)
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or (text.startswith(" ")
                                                                and text.endswith(" ")) else ""
    return Markup(f"{fence}{pad}{text}{pad}{fence}")


def markup_frame(data: Any, columns: list[str] | None = None,
                 index: Any = None) -> pd.DataFrame:
    """A DataFrame of object dtype, so that every cell keeps its type. pandas ≥ 3 stores a column
    of str values (a :class:`Markup` is one) in its string dtype and hands back plain str, which
    the renderers would then escape as untrusted text (a code span shown as \\`…\\`)."""
    return pd.DataFrame(data, columns=columns, index=index, dtype=object)


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Figure:
    """An image ``src`` relative to the report's folder, with a caption."""

    src: str
    caption: str


@dataclass
class Table:
    """A DataFrame shown as a table; ``element_id`` becomes the HTML table's id."""

    frame: pd.DataFrame
    element_id: str = ""
    caption: str = ""
    formats: dict[str, Callable[[Any], str]] = field(default_factory=dict)


@dataclass
class Group:
    """Blocks shown side by side where the page is wide enough (HTML), one after another in
    Markdown: e.g. a figure beside the table it summarizes."""

    blocks: list[Block]


Block = Heading | Paragraph | Bullets | Figure | Table | Group


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    def figures(self) -> list[str]:
        return [b.src for b in flatten(self.blocks) if isinstance(b, Figure)]


def flatten(blocks: list[Block]) -> list[Block]:
    """``blocks`` with every :class:`Group` replaced by its blocks."""
    return [b for block in blocks
            for b in (flatten(block.blocks) if isinstance(block, Group) else [block])]


def format_cell(value: Any, formatter: Callable[[Any], str] | None = None) -> str:
    """Text for one table cell: numbers to 4 significant digits, NaN/None as '–'."""
    if formatter is not None:
        return formatter(value)
    if isinstance(value, Markup):
        return value
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def cell_rows(table: Table) -> list[list[Markup]]:
    """The table's cells as markup, row by row: :class:`Markup` values and formatters' output
    (numbers, our own words) as they are, every other value through :func:`plain`."""
    cols = list(table.frame.columns)
    out = []
    for row in table.frame.to_dict(orient="records"):
        cells = []
        for c in cols:
            fmt = table.formats.get(str(c))
            text = format_cell(row[c], fmt)
            cells.append(Markup(text) if isinstance(row[c], Markup) or fmt is not None
                         else plain(text, block_start=False))
        out.append(cells)
    return out
