"""Fitting a figure's text inside the figure before it is saved: bounded width, wrapped titles.

A report embeds its figures at their natural size (96 dpi) in a column about 1190 px wide.
:func:`fit_figure` narrows a wider figure, gives it matplotlib's constrained layout when it
has no layout engine, and wraps every axes title and the figure title that is wider than
its axes (or the figure), so that neighbouring titles neither overlap nor run off the
edge. :func:`layout_problems` says what still lies outside the figure or overlaps: the
tight bounding box of the figure against its own box, and the titles pairwise.
"""

from __future__ import annotations

import textwrap

__all__ = ["MAX_WIDTH_IN", "fit_figure", "layout_problems"]

#: The widest figure of a report, in inches (1104 px at 96 dpi: inside the report column).
MAX_WIDTH_IN = 11.5
_TOL_IN = 0.5 / 72  # half a point: rounding of the extents


def _titles(fig) -> list[tuple[object, float]]:
    """``(text artist, width it may take in pixels)`` of every non-empty title."""
    out = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        names = {ax.get_title(loc) for loc in ("left", "center", "right")} - {""}
        if not names:
            continue
        width = ax.get_window_extent().width
        # the titles are children of their axes; ax.texts holds only the annotations
        out += [(t, width) for t in ax.get_children()
                if t not in ax.texts and hasattr(t, "get_text") and t.get_text() in names]
    sup = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
    if sup:
        out += [(t, 0.96 * fig.bbox.width) for t in fig.get_children()
                if hasattr(t, "get_text") and t.get_text() == sup]
    return out


def _wrap(text: str, chars: int) -> str:
    lines = []
    for line in text.splitlines() or [""]:
        lines += textwrap.wrap(line, max(6, chars), break_long_words=True) or [""]
    return "\n".join(lines)


def _wrap_wide_titles(fig) -> bool:
    """Wrap the titles wider than their room; True if any changed."""
    changed = False
    for t, room in _titles(fig):
        for _ in range(6):
            width = t.get_window_extent().width
            if width <= room or room <= 0:
                break
            text = t.get_text()
            longest = max(len(s) for s in text.splitlines())
            wrapped = _wrap(text.replace("\n", " "), int(longest * room / width * 0.95))
            if wrapped == text:
                break
            t.set_text(wrapped)
            changed = True
    return changed


def fit_figure(fig, *, max_width: float = MAX_WIDTH_IN) -> list[str]:
    """Make ``fig`` fit its own box at a width of at most ``max_width`` inches.

    Narrows a wider figure (keeping its height), switches on the constrained layout where no
    layout engine is set, and wraps the titles wider than their axes (the figure title:
    than the figure), re-running the layout until nothing changes. Returns what still does
    not fit (:func:`layout_problems`).
    """
    w, h = fig.get_size_inches()
    if w > max_width:
        fig.set_size_inches(max_width, h)
    if fig.get_layout_engine() is None:
        fig.set_layout_engine("constrained")
    engine = fig.get_layout_engine()
    engine.execute(fig)  # the layout alone: cheaper than a draw, and enough to measure
    for _ in range(3):
        if not _wrap_wide_titles(fig):
            break
        engine.execute(fig)
    return _problems(fig)


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _problems(fig) -> list[str]:
    problems = []
    w, h = fig.get_size_inches()
    box = fig.get_tightbbox()
    if (box.x0 < -_TOL_IN or box.y0 < -_TOL_IN or box.x1 > w + _TOL_IN
            or box.y1 > h + _TOL_IN):
        problems.append(
            f"drawn area [{box.x0:.2f}, {box.x1:.2f}] x [{box.y0:.2f}, {box.y1:.2f}] in "
            f"exceeds the figure's {w:.2f} x {h:.2f} in")
    titles = [(t.get_text(), t.get_window_extent()) for t, _ in _titles(fig)]
    for i, (ta, ba) in enumerate(titles):
        for tb, bb in titles[i + 1:]:
            if _overlap(ba, bb):
                problems.append(f"titles {ta!r} and {tb!r} overlap")
    return problems


def layout_problems(fig) -> list[str]:
    """What of ``fig`` lies outside the figure or overlaps: an empty list when it fits.

    The tight bounding box of everything drawn (``fig.get_tightbbox``) must lie inside the
    figure's box, and no two titles may overlap.
    """
    fig.draw_without_rendering()
    return _problems(fig)
