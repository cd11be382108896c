"""
Calibrated intervals: ``calibrate="dispersion"`` and ``calibrate="sandwich"``
=============================================================================

The weighted-Bernoulli (cross-entropy) likelihood counts every soft label as one coin flip.
Labels that are averages of many annotators vary much less than that around their mean, so
the uncalibrated posterior is too wide; ``Model.fit`` measures the Pearson dispersion
:math:`\\hat\\phi` of every fit and warns when it is outside [0.5, 2]. Two calibrations:

* ``calibrate="dispersion"`` -- the quasi-likelihood posterior: the log-likelihood is
  multiplied by :math:`1/\\hat\\phi` (a tempered posterior, refitted);
* ``calibrate="sandwich"`` -- the draws are mapped to the sandwich covariance
  :math:`H^{-1} J H^{-1}` around the posterior mode (robust to any variance function).

Here each soft label is the share of 20 annotators who said "yes", with known coefficients;
statsmodels' quasi-binomial GLM (Pearson scale) gives an independent reference for the
standard errors.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import statsmodels.api as sm

import softbayes as sb

rng = np.random.default_rng(7)
n, annotators = 400, 20
data = pd.DataFrame({"x": rng.normal(size=n)})
p = 1 / (1 + np.exp(-(-0.3 + 0.8 * data["x"])))
data["share"] = rng.binomial(annotators, p) / annotators
model = sb.Model("share ~ x", data)

fits = {}
for calibrate in (None, "dispersion", "sandwich"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fits[str(calibrate)] = model.fit(draws=300, tune=300, chains=2, random_seed=1,
                                         calibrate=calibrate)
    for warning in caught:
        if calibrate is None and "Dispersion" in str(warning.message):
            print(warning.message)

# %%
# Posterior sd of the slope next to the quasi-likelihood standard error:
glm = sm.GLM(data["share"], sm.add_constant(data["x"]), family=sm.families.Binomial())
reference = glm.fit(scale="X2")
table = pd.DataFrame({
    calibrate: {"mean": float(fit.posterior["x"].mean()), "sd": float(fit.posterior["x"].std())}
    for calibrate, fit in fits.items()
}).T
table.loc["quasi-binomial GLM"] = [reference.params["x"], reference.bse["x"]]
print(table.round(4))

# %%
# 90 % intervals of the slope; the dashed line is the true value, 0.8.
fig, ax = plt.subplots(figsize=(6, 2.8), layout="constrained")
for row, fit in enumerate(fits.values()):
    low, high = np.quantile(fit.posterior["x"].to_numpy(), [0.05, 0.95])
    ax.plot([low, high], [row, row], lw=4)
ax.axvline(0.8, color="k", ls="--", lw=1)
ax.set_yticks(range(len(fits)), [f"calibrate={c}" for c in fits])
ax.set_xlabel("slope of x")
