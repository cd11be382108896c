"""
Large n: Laplace and Pathfinder on fused kernels
================================================

For large data sets NUTS is often more than the question needs. ``Model.fit(method=...)``
offers approximations (:mod:`softbayes.backend.approx`):

* ``"laplace"`` -- the posterior mode and the Hessian there, in the unconstrained space;
  exact as :math:`n \\to \\infty` for these regressions;
* ``"pathfinder"`` -- single-path Pathfinder, which records the Pareto :math:`\\hat k` of
  its importance ratios and warns when the approximation is poor;
* ``"advi"`` -- mean-field ADVI, on minibatches for the cross-entropy families at very
  large n.

Weighted-Bernoulli and Continuous-Bernoulli models without group-level terms are evaluated
with fused kernels (one pass over the design matrix per log-density and gradient). The
reference is statsmodels' fractional logit, whose point estimate is the soft-label maximum
likelihood. :doc:`large_n` (``examples/large_n.py``) compares Laplace and ADVI with it at 10
million rows.
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import statsmodels.api as sm

import softbayes as sb

rng = np.random.default_rng(11)
n, d = 50_000, 5
X = rng.standard_normal((n, d))
beta_true = np.array([0.8, -0.5, 0.3, 0.4, -0.9])
p = 1 / (1 + np.exp(-(0.3 + X @ beta_true)))
data = pd.DataFrame(X, columns=[f"x{j}" for j in range(d)])
data["l"] = np.clip(p + rng.normal(0.0, 0.15, n), 0.0, 1.0)

model = sb.Model("l ~ " + " + ".join(data.columns[:d]), data)
print(model.likelihood_kernel)

# %%
names = ["Intercept", *data.columns[:d]]
reference = sm.GLM(data["l"], sm.add_constant(X), family=sm.families.Binomial()).fit()
rows = {"statsmodels (fractional logit)": reference.params.to_numpy()}
sds, seconds = {}, {}
for method in ("laplace", "pathfinder"):
    start = time.perf_counter()
    fit = model.fit(method=method, draws=200, chains=2, random_seed=1)
    seconds[method] = time.perf_counter() - start
    rows[method] = np.array([float(fit.posterior[name].mean()) for name in names])
    sds[method] = np.array([float(fit.posterior[name].std()) for name in names])
estimates = pd.DataFrame(rows, index=names)
print({method: f"{s:.1f} s" for method, s in seconds.items()})
print(estimates.round(4))

# %%
# Both approximations agree with the fractional logit to a fraction of the posterior sd
# (with 400 draws the Monte Carlo error of a posterior mean is about 0.05 sd):
gap = pd.DataFrame({method: np.abs(rows[method] - rows["statsmodels (fractional logit)"])
                    / sds[method] for method in sds}, index=names)
fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
gap.plot.bar(ax=ax, rot=0)
ax.set_ylabel("|mean - fractional logit| / sd")
