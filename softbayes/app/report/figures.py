"""The report's figures as PNG bytes: the label histogram and marginal effects."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from softbayes.analysis.plots import plot_marginal_effects
from softbayes.app.report.content import FigureItem

__all__ = ["close_figure", "label_figure", "marginal_effects_figure", "png_bytes"]


def close_figure(fig) -> None:
    """Release a matplotlib figure (pyplot keeps the figures it made until closed)."""
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # pragma: no cover - figures without pyplot
        pass


def png_bytes(fig, dpi=96) -> bytes:
    """``fig`` as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    close_figure(fig)
    return buf.getvalue()


def label_figure(labels: np.ndarray, columns: list[str]) -> FigureItem:
    """Histograms of the soft labels, one panel per label column."""
    from matplotlib.figure import Figure

    k = 1 if labels.ndim == 1 else labels.shape[1]
    fig = Figure(figsize=(min(3.4 * k, 10.5), 2.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, k, squeeze=False).ravel())
    for j, ax in enumerate(axes):
        v = labels if labels.ndim == 1 else labels[:, j]
        ax.hist(v, bins=np.linspace(0, 1, 21), color="C0", edgecolor="white")
        ax.set_xlim(0, 1)
        ax.set_xlabel(str(columns[j]) if j < len(columns) else f"class {j}")
        ax.set_ylabel("count" if j == 0 else "")
    fig.suptitle("Distribution of the soft labels")
    return FigureItem("labels", "Label distribution", png_bytes(fig),
                      "Histogram of the soft labels (20 bins on [0, 1]).")


def marginal_effects_figure(me_long: pd.DataFrame, names):
    """The marginal effects of every model in ``names`` (a long table with a ``model``
    column), as a matplotlib figure."""
    tables = {n: me_long[me_long["model"] == n] for n in names
              if (me_long["model"] == n).any()}
    return plot_marginal_effects(tables)
