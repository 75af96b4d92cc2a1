"""Render a :class:`~rankrobust.report.document.Document` as one self-contained HTML page.

Images are referenced by relative path (the PNGs sit beside the page). A small inline script
checks, once the page has loaded, that every image decoded (``complete`` and ``naturalWidth``
> 0); it shows a warning banner otherwise and records ``loaded/total`` in the ``data-images``
attribute of ``<html>``, and where the first side-by-side group (the summary) ends, in CSS pixels,
in ``data-summary-bottom`` (hooks for automated checks such as the headless-browser test).
"""

from __future__ import annotations

import html
import re

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
)

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 1.6em; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; }
code { background: #f5f5f5; padding: 0 0.2em; }
td[class^="verdict-holds"] { background: #d9f0d3; }
td[class^="verdict-does-not-hold"] { background: #f7d4d4; }
td[class^="verdict-inconclusive"] { background: #fdf3c8; }
td[class^="verdict-negligible"] { background: #e3ebf5; }
.group { display: flex; flex-wrap: wrap; gap: 0 1.5em; align-items: flex-start; }
.group > div { flex: 1 1 360px; min-width: 0; }
.group > div:first-child { flex: 1.5 1 480px; }
.group table { font-size: 0.82em; }
h1 { font-size: 1.7em; margin-bottom: 0.3em; }
.group figure { margin-top: 0.5em; }
#image-warning { display: none; background: #f7d4d4; padding: 0.5em; border: 1px solid #b2182b; }
"""

SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.documentElement.setAttribute('data-images', ok + '/' + imgs.length);
  var group = document.querySelector('.group');  // the summary: how far down the page it ends
  if (group) {
    var bottom = Math.round(group.getBoundingClientRect().bottom + window.scrollY);
    document.documentElement.setAttribute('data-summary-bottom', String(bottom));
  }
  if (ok < imgs.length) {
    var w = document.getElementById('image-warning');
    w.textContent = (imgs.length - ok) + ' of ' + imgs.length +
      ' figures failed to load: keep the PNG files beside report.html.';
    w.style.display = 'block';
  }
});
"""


# A code span (n backticks, content, exactly n backticks) or a backslash-escaped punctuation mark.
_TOKEN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)|\\([!-/:-@\[-`{-~])", re.S)


def _code_span(content: str) -> str:
    if content.startswith(" ") and content.endswith(" ") and content.strip(" "):
        content = content[1:-1]  # CommonMark strips one space on each side
    return f"<code>{html.escape(content)}</code>"


def inline(text: str) -> str:
    """The report's markup (see :mod:`.document`) as HTML: code spans, backslash escapes and
    ``**bold**``; everything else escaped."""
    tokens: list[str] = []

    def stash(match: re.Match[str]) -> str:
        tokens.append(_code_span(match.group(2)) if match.group(1) else html.escape(match.group(3)))
        return f"\x00{len(tokens) - 1}\x00"

    out = html.escape(_TOKEN.sub(stash, text.replace("\x00", "\ufffd")))
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub("\x00(\\d+)\x00", lambda m: tokens[int(m.group(1))], out)


def table_html(table: Table) -> str:
    """A <table> with a header row; numeric columns right-aligned, verdict cells coloured."""
    cols = [str(c) for c in table.frame.columns]
    numeric = [table.frame[c].dtype.kind in "fiu" for c in table.frame.columns]
    ident = f' id="{html.escape(table.element_id)}"' if table.element_id else ""
    lines = ['<div class="table-wrap">', f"<table{ident}>"]
    if table.caption:
        lines.append(f"<caption>{inline(table.caption)}</caption>")
    lines.append("<thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr></thead>")
    lines.append("<tbody>")
    for row in cell_rows(table):
        cells = []
        for col, value, num in zip(cols, row, numeric, strict=True):
            cls = "num" if num else ""
            if col == "verdict":
                cls = "verdict-" + re.sub(r"[^a-z]+", "-", value.lower()).strip("-")
            attr = f' class="{cls}"' if cls else ""
            cells.append(f"<td{attr}>{inline(value)}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def block_html(block: Block) -> str:
    """One block as HTML (a :class:`Group` as a wrapping flex row)."""
    if isinstance(block, Heading):
        level = max(2, min(block.level, 6))
        anchor = re.sub(r"[^a-z0-9]+", "-", block.text.lower()).strip("-")
        return f'<h{level} id="{anchor}">{inline(block.text)}</h{level}>'
    if isinstance(block, Paragraph):
        return f"<p>{inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{inline(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Figure):
        src = html.escape(block.src, quote=True)
        return (f'<figure><img src="{src}" alt="{html.escape(block.caption, quote=True)}">'
                f"<figcaption>{inline(block.caption)}</figcaption></figure>")
    if isinstance(block, Group):
        return ('<div class="group">' + "".join(f"<div>{block_html(b)}</div>" for b in block.blocks)
                + "</div>")
    return table_html(block)


def render_html(doc: Document) -> str:
    """The whole document as an HTML5 page."""
    body = [f"<h1>{inline(doc.title)}</h1>", '<div id="image-warning"></div>']
    body += [block_html(block) for block in doc.blocks]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(doc.title)}</title>\n<style>{STYLE}</style>\n"
        f"<script>{SCRIPT}</script>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
