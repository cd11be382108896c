"""The report's figures as PNG bytes: the label histogram, marginal effects, and per model
its family's posterior predictive check and its conditional effects."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd

from softbayes.analysis.comparison.cross_validation import description_of
from softbayes.analysis.plots import plot_conditional_effects, plot_marginal_effects
from softbayes.analysis.ppc import plot_ppc
from softbayes.app.report.content import FigureItem
from softbayes.app.report.layout import fit_figure

__all__ = [
    "close_figure",
    "label_figure",
    "marginal_effects_figure",
    "model_figures",
    "png_bytes",
]

#: The caption of each kind of posterior predictive check (Family.predictive_check).
PPC_CAPTIONS = {
    "reliability": (
        "Reliability diagram (PAVA, arviz-plots' plot_ppc_pava): the isotonic regression of "
        "the labels the likelihood sees on the posterior mean prediction, over the band of "
        "the same curve fitted to replicated labels. This family draws hard 0/1 outcomes, "
        "whose mean, not whose distribution, matches soft labels; a correct model stays "
        "inside the band (conservative for soft labels)."),
    "density": (
        "ECDF of the observed labels (black) over the ECDFs of labels replicated from the "
        "posterior predictive (arviz-plots' plot_ppc_dist)."),
}


def close_figure(fig) -> None:
    """Release a matplotlib figure (pyplot keeps the figures it made until closed)."""
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # pragma: no cover - figures without pyplot
        pass


def png_bytes(fig, dpi=96) -> bytes:
    """``fig`` as PNG bytes, its text fitted inside it first (:func:`.layout.fit_figure`);
    the figure is closed. Whatever still lies outside widens the saved image rather than
    being cut off."""
    outside = fit_figure(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **({"bbox_inches": "tight"} if outside else {}))
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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_").lower() or "model"


def model_figures(cmp, warns: list) -> list[FigureItem]:
    """Per model of ``cmp``: the posterior predictive check its family calls for
    (:func:`softbayes.plot_ppc`) and its conditional effects on E[y | x] (when it has
    population-level predictors); a figure that fails becomes a warning."""
    items = []
    for i, name in enumerate(cmp.names):
        rec = cmp.records.get(name)
        if rec is None:  # left out of the comparison (its warning says why)
            continue
        slug = f"{i + 1}_{_slug(name)}"  # the number keeps names apart that slug alike
        desc = description_of(rec)
        check = desc.family.predictive_check
        specs = [(f"ppc_{slug}", f"Posterior predictive check: {name}",
                  PPC_CAPTIONS.get(check, ""),
                  lambda d=desc, r=rec, n=name: plot_ppc(r.fit, model=d, title=n))]
        if desc.main.design.common_terms:
            specs.append((
                f"conditional_effects_{slug}", f"Conditional effects: {name}",
                "Posterior mean of E[y | x] along each predictor, the others at their mean "
                "or reference level, group-level effects left out, with 90% intervals; grey "
                "dots: the labels.",
                lambda d=desc, r=rec, n=name: plot_conditional_effects(
                    d, r.fit, title=f"{n}: conditional effects on E[y | x]")))
        for fname, ftitle, caption, fn in specs:
            try:
                items.append(FigureItem(fname, ftitle, png_bytes(fn()), caption))
            except Exception as err:  # keep the report; say what failed
                warns.append(f"figure {fname} failed: {type(err).__name__}: {err}")
    return items
