"""Model comparison reports: dataclasses of tables and text, rendered with jinja2 templates.

:func:`build_report` turns a :class:`softbayes.Comparison` (and the fits' attrs) into a
:class:`Report` -- plain dataclasses holding formatted tables, figures (PNG bytes) and
sentences; :func:`write_report` renders it into a folder:

* ``index.html`` -- self-contained (figures embedded as base64 PNG, inline CSS, no scripts, a
  Content-Security-Policy that forbids fetching anything), opens from disk;
* ``report.md`` -- the same content in Markdown, figures linked from ``figures/``;
* ``figures/*.png`` and ``tables/*.csv`` (raw numbers, readable with pandas).

All user-supplied text (model names, column names, formulas, descriptions) is escaped:
jinja2's autoescape in HTML, and in Markdown a finalize hook escapes every value that is not
explicitly marked safe (:func:`md_escape`).

Modules: :mod:`.content` (the dataclasses), :mod:`.sections` (data and model sections),
:mod:`.tables`, :mod:`.figures`, :mod:`.layout` (fitting a figure's text inside it),
:mod:`.posterior` (posterior intervals, group-level effects, rank and Pareto k plots),
:mod:`.text` (conclusion, caveats, dispersion findings), :mod:`.build`
(:func:`build_report`) and :mod:`.render` (HTML, Markdown, CSV; :func:`write_report`).
"""

from softbayes.app.report.build import build_report
from softbayes.app.report.content import (
    DataSummary,
    ElpdSection,
    FigureItem,
    ModelPanel,
    ModelSection,
    PosteriorSection,
    Report,
    Table,
)
from softbayes.app.report.render import (
    CSV_FORMULA_START,
    csv_escape,
    csv_safe,
    md_escape,
    render_html,
    render_markdown,
    write_report,
)
from softbayes.app.report.sections import data_summary, model_section

__all__ = [
    "CSV_FORMULA_START",
    "DataSummary",
    "ElpdSection",
    "FigureItem",
    "ModelPanel",
    "ModelSection",
    "PosteriorSection",
    "Report",
    "Table",
    "build_report",
    "csv_escape",
    "csv_safe",
    "data_summary",
    "md_escape",
    "model_section",
    "render_html",
    "render_markdown",
    "write_report",
]
