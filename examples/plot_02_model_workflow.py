"""
The ``Model`` workflow: fit, summary, predictions, diagnostics
==============================================================

:class:`softbayes.Model` builds the PyMC model from a formula: ``labels ~ predictors``, a
likelihood family and weakly informative default priors. Here a Continuous Bernoulli
regression of a real proportion: the share of each California county's students above the
national median in math (STAR98, built in; nothing is downloaded).
"""

# %%
import tempfile
from pathlib import Path

import arviz as az
import matplotlib.pyplot as plt
import numpy as np

import softbayes as sb

df = sb.load_dataset("star98")
model = sb.Model(
    "share_above ~ scale(LOWINC) + scale(PERMINTE) + scale(PCTAF)",
    df,
    likelihood="continuous_bernoulli",
)
print(model)

# %%
# The priors in use, one row per term (``priors={...}`` overrides them):
print(model.priors.to_string())

# %%
# Fit
# ---
# NUTS (nutpie) by default; the model is compiled once and reused by later fits. The fit is
# an ArviZ ``DataTree`` with the posterior, the sampler statistics, the pointwise
# log-likelihood, the observed labels and the training data.
fit = model.fit(draws=300, tune=300, chains=2, random_seed=1)
print(az.summary(fit, kind="stats"))

# %%
# Diagnostics
# -----------
# :func:`softbayes.diagnose_fit` checks R-hat, bulk and tail ESS, divergences and E-BFMI
# against ArviZ's thresholds, and says in words what is wrong (``Model.fit`` also warns,
# as PyMC does).
diagnostics = sb.diagnose_fit(fit, name="Continuous Bernoulli")
print(diagnostics.as_series())
print("ok" if diagnostics.ok else "\n".join(diagnostics.warnings))

# %%
# Predictions
# -----------
# ``kind="mean"`` gives :math:`E[y \mid x]` per posterior draw, on the mean scale for every
# family (for the Continuous Bernoulli its mean, not :math:`\lambda`). New rows,
# ``model.predict(fit, new_rows)``, go through the stored formula state: ``scale()`` uses the
# training mean and sd.
mean = model.predict(fit, kind="mean")
point = mean.mean(("chain", "draw")).to_numpy()
fig, ax = plt.subplots(figsize=(4.5, 4.5), layout="constrained")
ax.scatter(point, model.labels, s=10, alpha=0.6)
ax.plot([0, 1], [0, 1], color="k", lw=0.8)
ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted E[share | x]", ylabel="observed share")

# %%
# Conditional effects: the predicted share along each predictor with the others at their
# training means, with 90 % posterior bands (as brms' ``conditional_effects`` and Bambi's
# ``plot_predictions``), on the mean scale.
fig = sb.plot_conditional_effects(model, fit)

# %%
# A posterior predictive check that fits the family. The Continuous Bernoulli is a density
# of the label, so labels replicated from the fit are soft labels like the observed ones and
# their distributions can be compared directly (``kind="ecdf"``, the default for density
# families; ``kind="loo_pit"`` checks the leave-one-out predictive distributions).
fig = sb.plot_ppc(fit)

# %%
# Average marginal effects on the mean scale (comparable across families):
print(sb.marginal_effects(fit))

# %%
# Saving and loading
# ------------------
# A fit file carries what is needed to predict again: :func:`softbayes.load_fit` checks it
# (it is untrusted input) and :meth:`softbayes.Model.from_fit` rebuilds the model.
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "cb.nc"
    fit.to_netcdf(path)
    loaded = sb.load_fit(path)
    again = sb.predict(loaded, df.head(), kind="mean").mean(("chain", "draw"))
print(np.allclose(again, point[:5]))
