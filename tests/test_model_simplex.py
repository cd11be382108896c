"""softbayes.Model with the simplex-density families (dirichlet, continuous_categorical).

All slow: each fit compiles and samples for 20 s or more. Small fits of the built-in raters
data (compiled once per module) check the pointwise log-likelihood of the fit against scipy
and mpmath, predictions on the mean scale, group-level terms, ``phi_formula`` and the
comparison's ELPD groups; the Dirichlet-regression anchor checks the posterior means against
a maximum-likelihood fit computed here by scipy on a real composition (the shares of
consumption, investment and government spending in statsmodels' US macro data)."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize, stats
from scipy import special as sp

import softbayes as sb
from softbayes.io.attrs import attr_key
from softbayes.io.fits import fit_likelihood_var
from softbayes.terms.families.base import SIMPLEX_DENSITY_GROUP

LABELS = ["p_a", "p_b", "p_c"]
FORMULA = "c(p_a, p_b, p_c) ~ x1 + (1|region)"
SHORT = dict(draws=150, tune=200, chains=2)


@pytest.fixture(scope="module")
def raters():
    return sb.load_dataset("raters").iloc[:90].reset_index(drop=True)


@pytest.fixture(scope="module")
def dirichlet_fit(raters):
    model = sb.Model(FORMULA, raters, likelihood="dirichlet", squeeze=True, phi_formula="~ x2")
    return model, model.fit(random_seed=11, **SHORT)


@pytest.fixture(scope="module")
def soft_categorical_fit(raters):
    model = sb.Model(FORMULA, raters, likelihood="soft_categorical")
    return model, model.fit(random_seed=12, **SHORT)


@pytest.fixture(scope="module")
def cc_fit(raters):
    model = sb.Model(FORMULA, raters, likelihood="continuous_categorical")
    return model, model.fit(random_seed=13, **SHORT)


def _draws(fit, var):
    return fit.posterior[var].transpose("chain", "draw", ...).values


def _eta(fit, raters, c, d):
    """The (n, K) logits of draw (c, d), rebuilt from the posterior here."""
    eff = fit.posterior["1|region"]
    levels = list(eff.coords[eff.dims[-2]].values)
    g = np.array([levels.index(r) for r in raters["region"]])
    eta = (_draws(fit, "Intercept")[c, d] + np.outer(raters["x1"], _draws(fit, "x1")[c, d])
           + _draws(fit, "1|region")[c, d][g])
    return np.column_stack([np.zeros(len(raters)), eta])


@pytest.mark.slow
def test_dirichlet_fit_records_the_squeeze_and_its_loglik_is_scipys(raters, dirichlet_fit):
    model, fit = dirichlet_fit
    n, k = len(raters), 3
    assert int(fit.attrs[attr_key("squeeze")]) == 1
    zeros = int((raters[LABELS].to_numpy() == 0).any(axis=1).sum())
    assert zeros > 0 and int(fit.attrs[attr_key("n_squeezed")]) == zeros
    ll = fit.log_likelihood[fit_likelihood_var(fit)].transpose("chain", "draw", "obs").values
    assert ll.shape == (2, 150, n)
    # independent: scipy's Dirichlet at the squeezed labels, with eta rebuilt from the draws
    z = (raters[LABELS].to_numpy() * (n - 1) + 1 / k) / n
    for c, d in [(0, 0), (1, 77), (1, 149)]:
        # log phi = phi_Intercept + phi_x2 x2 (phi_formula, log link), one phi per row
        phi = np.exp(_draws(fit, "phi_Intercept")[c, d]
                     + _draws(fit, "phi_x2")[c, d] * raters["x2"].to_numpy())
        alpha = sp.softmax(_eta(fit, raters, c, d), axis=1) * phi[:, None]
        ref = [stats.dirichlet.logpdf(zi, ai) for zi, ai in zip(z, alpha, strict=True)]
        np.testing.assert_allclose(ll[c, d], ref, rtol=1e-9, atol=1e-9)
        mean = model.predict(fit).transpose("chain", "draw", ...).values[c, d]
        np.testing.assert_allclose(mean, alpha / phi[:, None], rtol=1e-10)
    held = model.predict(fit, raters.iloc[:5], kind="log_likelihood")
    np.testing.assert_allclose(held.transpose("chain", "draw", ...).values, ll[:, :, :5],
                               rtol=1e-10, atol=1e-10)


@pytest.mark.slow
def test_comparison_groups_and_refusal(dirichlet_fit, soft_categorical_fit):
    fits = {"dirichlet": dirichlet_fit[1], "soft_categorical": soft_categorical_fit[1]}
    cmp = sb.compare(fits, kfold_fallback=None, warn=False)
    assert cmp.groups[SIMPLEX_DENSITY_GROUP] == ["dirichlet"]
    assert "soft_categorical" not in cmp.groups[SIMPLEX_DENSITY_GROUP]
    assert set(cmp.scores.index) >= set(fits)
    with pytest.raises(ValueError, match="Refusing to rank these fits by ELPD"):
        sb.compare(fits, kfold_fallback=None, warn=False, elpd="all")
    # the Dirichlet's ELPD carries the squeeze's log-Jacobian (K - 1) log((n - 1) / n)
    n = dirichlet_fit[1].log_likelihood.sizes["obs"]
    jac = 2 * np.log((n - 1) / n)
    assert any("squeezed into the interior of the simplex" in s for s in cmp.notes)
    ll = dirichlet_fit[1].log_likelihood["p_a__p_b__p_c"].values.reshape(-1, n)
    lppd = (sp.logsumexp(ll, axis=0) - np.log(ll.shape[0])).sum() + n * jac
    elpd = cmp.elpd_tables[SIMPLEX_DENSITY_GROUP].loc["dirichlet", "elpd"]
    assert lppd - 30 < elpd < lppd  # the LOO penalty (a few effective parameters)


def _ref_cc_logp(x, eta):
    """Continuous categorical log density at 50 digits (distinct logits): eta . x minus the
    log of the divided difference of exp, sum_k e^eta_k / prod_{j != k} (eta_k - eta_j)."""
    with mp.workdps(50):
        e = [mp.mpf(float(v)) for v in eta]
        inv_c = mp.fsum(mp.exp(ek) / mp.fprod(ek - ej for j, ej in enumerate(e) if j != k)
                        for k, ek in enumerate(e))
        return float(mp.fsum(ek * mp.mpf(float(xk)) for ek, xk in zip(e, x, strict=True))
                     - mp.log(inv_c))


@pytest.mark.slow
def test_cc_fit_loglik_mean_scale_and_group_terms(raters, cc_fit):
    model, fit = cc_fit
    y = raters[LABELS].to_numpy()
    assert (y == 0).any()  # exact zeros are in the support: nothing squeezed
    ll = fit.log_likelihood[fit_likelihood_var(fit)].transpose("chain", "draw", "obs").values
    mean = model.predict(fit).transpose("chain", "draw", ...).values
    for c, d in [(0, 3), (1, 140)]:
        eta = _eta(fit, raters, c, d)
        rows = [0, 1, 2, 40, 89]
        np.testing.assert_allclose(ll[c, d, rows], [_ref_cc_logp(y[i], eta[i]) for i in rows],
                                   rtol=1e-9, atol=1e-9)
        # the CC mean: E[x_k] = d log(1/C) / d eta_k, by central differences of the mpmath
        # log normalizer (log(1/C) = eta . x - logp at any x)
        for i in rows[:2]:
            grad = []
            for k in range(3):
                up, dn = eta[i].copy(), eta[i].copy()
                up[k] += 1e-6
                dn[k] -= 1e-6
                grad.append(((up @ y[i] - _ref_cc_logp(y[i], up))
                             - (dn @ y[i] - _ref_cc_logp(y[i], dn))) / 2e-6)
            np.testing.assert_allclose(mean[c, d, i], grad, rtol=1e-6, atol=1e-8)
            assert np.abs(mean[c, d, i] - sp.softmax(eta[i])).max() > 1e-3
    assert fit.posterior["1|region_sigma"].sizes[fit.posterior["1|region_sigma"].dims[-1]] == 2


@pytest.mark.slow
def test_cc_and_dirichlet_share_a_group_apart_from_soft_categorical(
        dirichlet_fit, cc_fit, soft_categorical_fit):
    fits = {"dirichlet": dirichlet_fit[1], "continuous_categorical": cc_fit[1],
            "soft_categorical": soft_categorical_fit[1]}
    cmp = sb.compare(fits, kfold_fallback=None, warn=False)
    assert cmp.groups[SIMPLEX_DENSITY_GROUP] == ["dirichlet", "continuous_categorical"]
    assert set(cmp.elpd_tables[SIMPLEX_DENSITY_GROUP].index) == {
        "dirichlet", "continuous_categorical"}
    assert [g for g, names in cmp.groups.items() if "soft_categorical" in names] != [
        SIMPLEX_DENSITY_GROUP]
    with pytest.raises(ValueError, match="Refusing to rank these fits by ELPD"):
        sb.compare(fits, kfold_fallback=None, warn=False, elpd="all")
    # all three meet on the common-scale scores, computed from their own mean predictions
    assert set(cmp.scores.index) == set(fits)
    assert np.isfinite(cmp.scores.select_dtypes("number").to_numpy(float)).all()


@pytest.mark.slow
def test_k2_dirichlet_is_beta_regression():
    rng = np.random.default_rng(8)
    x = rng.normal(size=150)
    y = rng.beta(8 * sp.expit(0.3 + 0.8 * x), 8 * sp.expit(-0.3 - 0.8 * x))
    df = pd.DataFrame({"q": 1 - y, "p": y, "x": x})
    fits = {
        "beta": sb.Model("p ~ x", df, likelihood="beta").fit(
            draws=500, tune=400, chains=2, random_seed=1),
        "dirichlet": sb.Model("c(q, p) ~ x", df, likelihood="dirichlet").fit(
            draws=500, tune=400, chains=2, random_seed=2),
    }
    for var in ("Intercept", "x", "phi"):
        b, d = (np.ravel(_draws(fits[k], var)) for k in ("beta", "dirichlet"))
        # independent chains of the same posterior: means within Monte Carlo error
        assert abs(b.mean() - d.mean()) < 0.25 * b.std(), (var, b.mean(), d.mean(), b.std())


def _macro_shares():
    d = sm.datasets.macrodata.load_pandas().data
    s = d[["realcons", "realinv", "realgovt"]].to_numpy()
    s = s / s.sum(axis=1, keepdims=True)
    t = np.arange(len(d), dtype=float)
    u = d["unemp"].to_numpy()
    return pd.DataFrame({"cons": s[:, 0], "inv": s[:, 1], "gov": s[:, 2],
                         "t": (t - t.mean()) / t.std(), "u": (u - u.mean()) / u.std()})


def _nll(df):
    """Minus the Dirichlet log-likelihood of (intercepts, slopes of t, of u; log phi)."""
    y = df[["cons", "inv", "gov"]].to_numpy()
    X = np.column_stack([np.ones(len(df)), df["t"], df["u"]])

    def nll(b, log_phi):
        eta = np.column_stack([np.zeros(len(y)), X @ np.reshape(b, (3, 2))])
        a = sp.softmax(eta, axis=1) * np.exp(log_phi)
        return -(sp.gammaln(a.sum(1)) - sp.gammaln(a).sum(1)
                 + ((a - 1) * np.log(y)).sum(1)).sum()

    return nll


def _dirichlet_mle(nll):
    """The MLE by scipy (BFGS, polished by Nelder-Mead)."""
    def f(th):
        return nll(th[:6], th[6])

    res = optimize.minimize(f, np.r_[np.zeros(6), 3.0], method="BFGS",
                            options={"gtol": 1e-6, "maxiter": 2000})
    res = optimize.minimize(f, res.x, method="Nelder-Mead",
                            options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20000})
    assert np.abs(optimize.approx_fprime(res.x, f, 1e-7)).max() < 0.05
    return res.x


def _hessian(f, x, h=1e-4):
    p = len(x)
    H = np.empty((p, p))
    for i in range(p):
        for j in range(p):
            ei, ej = np.eye(p)[i] * h, np.eye(p)[j] * h
            H[i, j] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                4 * h * h)
    return H


def _marginal_log_phi_mode(nll, mle):
    """Mode of the Laplace approximation of the marginal likelihood of log phi (the
    coefficients integrated out under a flat prior): profile likelihood minus
    ``0.5 log det`` of the coefficients' information. Under a prior flat in log phi this is
    where the posterior of log phi peaks; it lies below the joint MLE by about
    ``p / 2`` times its variance (p = 6 coefficients), as REML lies below ML."""
    warm = {"b": mle[:6]}

    def minus_log_marginal(log_phi):
        r = optimize.minimize(nll, warm["b"], args=(log_phi,), method="BFGS",
                              options={"gtol": 1e-8})
        warm["b"] = r.x
        return r.fun + 0.5 * np.linalg.slogdet(_hessian(lambda b: nll(b, log_phi), r.x))[1]

    return optimize.minimize_scalar(minus_log_marginal, bounds=(mle[6] - 0.5, mle[6] + 0.5),
                                    method="bounded", options={"xatol": 1e-7}).x


@pytest.mark.slow
def test_dirichlet_regression_anchor_on_macro_shares():
    df = _macro_shares()
    nll = _nll(df)
    mle = _dirichlet_mle(nll)
    wide = {"dist": "Normal", "mu": 0, "sigma": 100}
    priors = {"Intercept": wide, "t": wide, "u": wide,
              "phi": {"dist": "LogNormal", "mu": 6, "sigma": 10}}
    model = sb.Model("c(cons, inv, gov) ~ t + u", df, likelihood="dirichlet", priors=priors)
    fit = model.fit(draws=1000, tune=1000, chains=2, random_seed=3)
    post = {v: _draws(fit, v).reshape(-1, *_draws(fit, v).shape[2:])
            for v in ("Intercept", "t", "u")}
    got = np.r_[post["Intercept"].mean(0), post["t"].mean(0), post["u"].mean(0)]
    sd = np.r_[post["Intercept"].std(0), post["t"].std(0), post["u"].std(0)]
    z = (got - mle[:6]) / sd
    log_phi = np.log(_draws(fit, "phi").ravel())
    z_phi = (log_phi.mean() - _marginal_log_phi_mode(nll, mle)) / log_phi.std()
    z_phi_mle = (log_phi.mean() - mle[6]) / log_phi.std()
    print(f"Dirichlet anchor, (posterior mean - MLE) / posterior sd of the coefficients: "
          f"{np.round(z, 3)}; of log phi: {z_phi:.3f} against the marginal mode, "
          f"{z_phi_mle:.3f} against the joint MLE")
    assert np.all(np.abs(z) < 0.1), z
    assert abs(z_phi) < 0.1, z_phi
