"""Rendering a report: HTML and Markdown through the jinja2 templates, CSV tables, PNG files.

All user-supplied text (model names, column names, formulas, descriptions) is escaped:
jinja2's autoescape in HTML, and in Markdown a finalize hook escapes every value that is not
explicitly marked safe (:func:`md_escape`). Every CSV cell a spreadsheet would run as a
formula is neutralized (:func:`csv_safe`).
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

from softbayes.app.report.content import Report, Table

__all__ = [
    "CSV_FORMULA_START",
    "csv_escape",
    "csv_safe",
    "md_escape",
    "render_html",
    "render_markdown",
    "write_report",
]

_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
_MD_LINE_START = re.compile(
    r"^(\s*)(#{1,6}(?=\s|$)|>|[+*-](?=\s|$)|\d+[.)](?=\s|$)|=+(?=\s*$))", re.MULTILINE
)


def _escape_line_start(m) -> str:
    mark = m.group(2)
    if mark[0].isdigit():  # "1." -> "1\\."
        return m.group(1) + mark[:-1] + "\\" + mark[-1]
    return m.group(1) + "\\" + mark


def md_escape(text) -> str:
    """Escape text for Markdown so that it renders literally (no markup, no HTML)."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_INLINE.sub(r"\\\1", s)
    s = _MD_LINE_START.sub(_escape_line_start, s)
    return s


def _md_finalize(value):
    if isinstance(value, Markup):
        return str(value)
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return md_escape(value)


def _md_cell(value) -> str:
    return md_escape(str(value).replace("\r", " ").replace("\n", " "))


def _md_table(table: Table) -> Markup:
    if not table.columns:
        return Markup("")
    head = "| " + " | ".join(_md_cell(c) for c in table.columns) + " |"
    sep = "|" + "|".join(" --- " for _ in table.columns) + "|"
    body = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in table.rows]
    return Markup("\n".join([head, sep, *body]))


def _env(markdown: bool):
    loader = jinja2.PackageLoader("softbayes.app", "templates")
    if markdown:
        env = jinja2.Environment(loader=loader, autoescape=False, finalize=_md_finalize,
                                 keep_trailing_newline=True, trim_blocks=True,
                                 lstrip_blocks=True, undefined=jinja2.StrictUndefined)
        env.filters["mdtable"] = _md_table
    else:
        env = jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True,
                                 lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env


def render_html(report: Report) -> str:
    """``index.html`` (self-contained: inline CSS, figures as data URIs, no scripts)."""
    return _env(False).get_template("report.html.j2").render(r=report)


def render_markdown(report: Report) -> str:
    """``report.md`` (figures linked from ``figures/``)."""
    return _env(True).get_template("report.md.j2").render(r=report)


#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV injection").
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A text that is just a decimal number ("-1.5", "+3e-4") is a number to a spreadsheet, not a
# formula, and stays as written so that the table still reads back as numbers.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def csv_escape(value):
    """A text cell that a spreadsheet would run as a formula, prefixed with ``'``.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (OWASP's list)
    gets a leading single quote, which spreadsheets show as text; other values, numbers
    included (also ``-1.5`` written as text), are returned unchanged.
    """
    if (isinstance(value, str) and value.startswith(CSV_FORMULA_START)
            and not _PLAIN_NUMBER.fullmatch(value)):
        return "'" + value
    return value


def _csv_safe_index(index: pd.Index) -> pd.Index:
    if len(index) == 0:
        return index
    if isinstance(index, pd.MultiIndex):
        return pd.MultiIndex.from_tuples(
            [tuple(csv_escape(v) for v in t) for t in index],
            names=[csv_escape(n) for n in index.names])
    if index.dtype.kind in "biufcmM":
        return index.rename(csv_escape(index.name))
    return pd.Index([csv_escape(v) for v in index], dtype=object, name=csv_escape(index.name))


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell, column name and index label passed through
    :func:`csv_escape`; numeric columns are left as they are. Every CSV that softbayes
    writes goes through this: names of terms, models and columns come from the user."""
    out = frame.copy()
    for j in range(out.shape[1]):
        col = out.iloc[:, j]
        if col.dtype.kind in "biufcmM":
            continue
        out.isetitem(j, pd.Series([csv_escape(v) for v in col], index=out.index,
                                  dtype=object))
    out.columns = _csv_safe_index(out.columns)
    out.index = _csv_safe_index(out.index)
    return out


def write_report(report: Report, folder) -> Path:
    """Write ``index.html``, ``report.md``, ``figures/*.png`` and ``tables/*.csv``."""
    folder = Path(folder)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    (folder / "tables").mkdir(parents=True, exist_ok=True)
    for fig in report.all_figures():
        (folder / fig.path).write_bytes(fig.png)
    for table in report.all_tables():
        frame = table.frame
        if frame is None:
            frame = pd.DataFrame(table.rows, columns=table.columns)
        keep_index = not isinstance(frame.index, pd.RangeIndex)
        # CRLF (RFC 4180) also makes the writer quote a text cell holding a bare carriage
        # return, which a spreadsheet would otherwise read as the start of a new row.
        csv_safe(frame).to_csv(folder / "tables" / f"{table.name}.csv", index=keep_index,
                               lineterminator="\r\n")
    (folder / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (folder / "index.html").write_text(render_html(report), encoding="utf-8")
    return folder
