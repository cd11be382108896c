"""
Soft labels in a hand-written PyMC model
========================================

softbayes' distributions are ordinary PyMC distributions: write your own ``pm.Model`` and
give them soft labels as ``observed``. Three likelihoods, each fitted here to data simulated
from known parameters:

* :class:`softbayes.ContinuousBernoulli` -- a proper density of a label in [0, 1];
* :class:`softbayes.SoftBernoulli` -- the soft-label cross-entropy (the weighted Bernoulli
  likelihood) as an observed variable;
* :class:`softbayes.ContinuousCategorical` -- a density of probability vectors (K classes).

Chains are short to keep the example quick; use PyMC's defaults for real work.
"""

# %%
import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pymc as pm
import statsmodels.api as sm

import softbayes as sb

rng = np.random.default_rng(20261126)
n = 300
x = rng.normal(size=n)
X = np.column_stack([np.ones(n), x])  # intercept + one predictor
short = dict(draws=300, tune=300, chains=2, progressbar=False)

# %%
# The Continuous Bernoulli
# ------------------------
# Labels drawn from the model itself by its inverse CDF,
# :math:`Q(u) = \operatorname{log1p}(u\,\operatorname{expm1}(\eta)) / \eta`, so the true
# coefficients are known.
beta_true = np.array([-0.5, 2.0])
eta = X @ beta_true
y = np.log1p(rng.uniform(size=n) * np.expm1(eta)) / eta

with pm.Model(coords={"coef": ["Intercept", "x"]}):
    beta = pm.Normal("beta", 0.0, 2.5, dims="coef")
    sb.ContinuousBernoulli("y", logit_p=X @ beta, observed=y)
    cb_fit = pm.sample(random_seed=1, **short)

cb_table = az.summary(cb_fit, var_names=["beta"], kind="stats")
cb_table.insert(0, "truth", beta_true)
print(cb_table)

# %%
# The coefficients act on :math:`\eta = \operatorname{logit}\lambda`, and :math:`\lambda` is
# *not* the mean of the label: :func:`softbayes.continuous_bernoulli_mean` is
# :math:`E[y \mid x]`, pulled toward 1/2. Predictions go through the mean.
beta_hat = cb_fit.posterior["beta"].mean(("chain", "draw")).to_numpy()
grid = np.linspace(x.min(), x.max(), 200)
eta_grid = beta_hat[0] + beta_hat[1] * grid
fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
ax.scatter(x, y, s=8, alpha=0.4, color="0.4", label="labels")
ax.plot(grid, sb.continuous_bernoulli_mean(logit_p=eta_grid), lw=2, label="E[y | x] (CB mean)")
ax.plot(grid, 1 / (1 + np.exp(-eta_grid)), lw=2, ls="--", label="λ(x) (not the mean)")
ax.set_xlabel("x")
ax.set_ylabel("label")
ax.legend(loc="upper left")

# %%
# The soft-label Bernoulli
# ------------------------
# Soft labels that are probabilities with noise around the logistic curve. The
# cross-entropy of soft labels is the weighted Bernoulli likelihood of the duplicated data
# (each point once with label 1 and weight :math:`l`, once with label 0 and weight
# :math:`1 - l`). Its posterior mode is statsmodels' fractional logit, an independent check.
labels = 1 / (1 + np.exp(-(0.3 + 1.5 * x + rng.normal(0.0, 0.5, n))))

with pm.Model(coords={"coef": ["Intercept", "x"]}):
    beta = pm.Normal("beta", 0.0, 2.5, dims="coef")
    sb.SoftBernoulli("l", logit_p=X @ beta, observed=labels)
    sbern_fit = pm.sample(random_seed=2, **short)

glm = sm.GLM(labels, X, family=sm.families.Binomial()).fit()
sbern_table = az.summary(sbern_fit, var_names=["beta"], kind="stats")
sbern_table.insert(0, "fractional logit", glm.params)
print(sbern_table)

# %%
# ``SoftBernoulli`` is not a density of the label: its draws are hard 0/1 labels and its
# log-likelihood can be compared only with other cross-entropies of the same labels (see
# the user guide's :doc:`/user_guide/comparison`).
#
# The continuous categorical
# --------------------------
# Probability vectors over K = 3 classes (e.g. the shares of raters' votes), drawn from
# :class:`softbayes.ContinuousCategorical` with logits :math:`(0, b_2 x, b_3 x)`: the first
# class is the reference.
slopes_true = np.array([1.0, -1.0])
logits_true = np.column_stack([np.zeros(n), np.outer(x, slopes_true)])
shares = pm.draw(sb.ContinuousCategorical.dist(logits=logits_true), random_seed=3)

with pm.Model(coords={"class": ["b", "c"]}):
    slope = pm.Normal("slope", 0.0, 2.5, dims="class")
    logits = pm.math.concatenate([np.zeros((n, 1)), x[:, None] * slope[None, :]], axis=1)
    sb.ContinuousCategorical("shares", logits=logits, observed=shares)
    cc_fit = pm.sample(random_seed=4, **short)

cc_table = az.summary(cc_fit, var_names=["slope"], kind="stats")
cc_table.insert(0, "truth", slopes_true)
print(cc_table)
