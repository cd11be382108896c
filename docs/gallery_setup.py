"""The examples gallery's order of examples, and its scraper of softbayes' pyplot-free figures.

The executed examples (``plot_*.py``) come first, in file-name order; scripts that are only
shown (``large_n.py``, the full-size run) follow.

softbayes' plotting functions build ``matplotlib.figure.Figure`` objects without pyplot (no
window, no global state), so sphinx-gallery's matplotlib scraper, which reads pyplot's list
of open figures, never sees them. :func:`scrape_figures` shows every such figure that a code
block leaves in the example's variables, once.
"""

from __future__ import annotations

import weakref
from pathlib import PurePosixPath

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from sphinx_gallery.scrapers import figure_rst

# figures already shown, so a figure kept in a variable is not shown again by later blocks
_SHOWN: weakref.WeakSet = weakref.WeakSet()


def scrape_figures(block, block_vars, gallery_conf):
    """Save the pyplot-free figures of the example's variables; return their reST."""
    # pyplot's open figures are the matplotlib scraper's (it runs next); mark them as shown,
    # since once it closes them they look like pyplot-free figures to later blocks
    _SHOWN.update(plt.figure(num) for num in plt.get_fignums())
    paths = []
    for value in list(block_vars["example_globals"].values()):
        if not isinstance(value, Figure) or value in _SHOWN:
            continue
        _SHOWN.add(value)
        path = PurePosixPath(next(block_vars["image_path_iterator"]))
        value.savefig(path, bbox_inches="tight")
        paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"]) if paths else ""


class ExampleOrder:
    """Sort key of sphinx-gallery's ``within_subsection_order``: executed examples first."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        return (not filename.startswith("plot_"), filename)
