"""Frequentist anchors: with diffuse priors the posterior mean sits on the MLE.

* ``weighted_bernoulli`` on statsmodels' star98 (share of students above the national
  median) against ``GLM(share, X, family=Binomial())``: the soft-label cross-entropy is
  the binomial quasi-likelihood statsmodels maximizes.
* ``beta`` on simulated data in (0, 1) against ``statsmodels.othermod.betareg.BetaModel``.

Agreement is required within 0.1 posterior sd (Monte Carlo error of the mean with these
draws is about 0.015 sd).
"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit
from statsmodels.othermod.betareg import BetaModel

import softbayes as sb

DIFFUSE = {"dist": "Normal", "mu": 0, "sigma": 100}
FIT = {"chains": 4, "tune": 1000}


@pytest.fixture(scope="module")
def star98():
    d = sm.datasets.star98.load_pandas().data.copy()
    d["share"] = d.NABOVE / (d.NABOVE + d.NBELOW)
    d["students"] = (d.NABOVE + d.NBELOW).astype(float)
    return d


def _z_diffs(fit, names, mle):
    out = {}
    for name, value in zip(names, mle, strict=True):
        draws = fit.posterior[name].values.ravel()
        out[name] = (draws.mean() - value) / draws.std()
    return out


def test_weighted_bernoulli_matches_binomial_glm_star98(star98):
    # Unit weights. (With the heavily skewed PERASIAN / PERBLACK the posterior of this
    # 303-row quasi-likelihood is itself skewed and its mean sits 0.10-0.14 sd from the
    # mode; the count-weighted test below checks all five covariates.)
    covs = ["LOWINC", "PERHISP"]
    glm = sm.GLM(star98.share, sm.add_constant(star98[covs]),
                 family=sm.families.Binomial()).fit()
    model = sb.Model("share ~ " + " + ".join(covs), star98,
                     priors={k: DIFFUSE for k in ["Intercept", *covs]})
    fit = model.fit(draws=2000, random_seed=11, **FIT)
    z = _z_diffs(fit, ["Intercept", *covs], glm.params.values)
    print("posterior mean - MLE, in posterior sds:", {k: round(float(v), 3) for k, v in z.items()})
    assert max(abs(v) for v in z.values()) < 0.1, z


def test_weighted_bernoulli_with_counts_matches_binomial_glm_star98(star98):
    covs = ["LOWINC", "PERASIAN", "PERBLACK", "PERHISP", "PERMINTE"]
    glm = sm.GLM(star98.share, sm.add_constant(star98[covs]), family=sm.families.Binomial(),
                 var_weights=star98.students).fit()
    model = sb.Model("share ~ " + " + ".join(covs), star98, weights="students",
                     priors={k: DIFFUSE for k in ["Intercept", *covs]})
    fit = model.fit(draws=1000, random_seed=12, **FIT)
    z = _z_diffs(fit, ["Intercept", *covs], glm.params.values)
    print("posterior mean - MLE, in posterior sds:", {k: round(float(v), 3) for k, v in z.items()})
    assert max(abs(v) for v in z.values()) < 0.1, z


def test_beta_matches_statsmodels_betamodel():
    rng = np.random.default_rng(5)
    n = 2000
    df = pd.DataFrame({"x": rng.normal(size=n)})
    mu, phi = expit(-0.5 + 0.8 * df.x), 25.0
    df["y"] = rng.beta(mu * phi, (1 - mu) * phi)
    assert df.y.between(0, 1, inclusive="neither").all()
    mle = BetaModel(df.y, sm.add_constant(df[["x"]])).fit(disp=0)
    # phi_formula="~ 1": log(phi) has a flat-ish Normal(0, 100) prior, as the MLE's log link.
    names = ["Intercept", "x", "phi_Intercept"]
    model = sb.Model("y ~ x", df, likelihood="beta", phi_formula="~ 1",
                     priors={k: DIFFUSE for k in names})
    fit = model.fit(draws=1000, random_seed=13, **FIT)
    z = _z_diffs(fit, names, mle.params.values)  # const, x, precision (log link)
    print("posterior mean - MLE, in posterior sds:", {k: round(float(v), 3) for k, v in z.items()})
    assert max(abs(v) for v in z.values()) < 0.1, z
