"""A report as a list of blocks, rendered to Markdown (:mod:`.markdown`) and HTML (:mod:`.html`).

Inline text may use ``**bold**`` and ```code``` only; both renderers understand exactly that.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


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


Block = Heading | Paragraph | Bullets | Figure | Table


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    def figures(self) -> list[str]:
        return [b.src for b in self.blocks if isinstance(b, Figure)]


def format_cell(value: Any, formatter: Callable[[Any], str] | None = None) -> str:
    """Text for one table cell: numbers to 4 significant digits, NaN/None as '–'."""
    if formatter is not None:
        return formatter(value)
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def cell_rows(table: Table) -> list[list[str]]:
    """The table's cells as strings, row by row."""
    cols = list(table.frame.columns)
    return [[format_cell(row[c], table.formats.get(str(c))) for c in cols]
            for row in table.frame.to_dict(orient="records")]
