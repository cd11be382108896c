"""softbayes.compare on softbayes.Model fits.

References are independent of the code under test: ``arviz.compare`` on the same fits, and
brute-force exact leave-one-out / K-fold posteriors computed by 2-D quadrature on a grid
(one posterior per left-out point or fold), from the priors recorded in the fit and
closed-form likelihoods written out here.
"""

import io
import json
import warnings

import matplotlib

matplotlib.use("Agg")

import arviz_stats as azs
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy import special as sp

import softbayes as sb
from softbayes.analysis.diagnostics import diagnose_fit
from softbayes.io.fits import INTERNAL_GROUP, posterior_dataset
from softbayes.math.continuous_bernoulli import cb_icdf

FIT = {"sampler": "pymc", "cores": 1, "progressbar": False}


def _fit(formula, df, family, *, draws=500, tune=500, seed=1, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bernoulli's thresholding warning, sampler chatter
        return sb.Model(formula, df, likelihood=family, **kw).fit(
            draws=draws, tune=tune, chains=2, random_seed=seed, **FIT
        )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cb_data():
    """n = 300 labels drawn from a Continuous Bernoulli regression."""
    rng = np.random.default_rng(11)
    n = 300
    x = rng.normal(size=n)
    labels = cb_icdf(rng.random(n), 0.3 + 5.0 * x)
    return pd.DataFrame({"y": labels, "x": x})


@pytest.fixture(scope="module")
def big_fits(cb_data):
    return {
        "cb": _fit("y ~ x", cb_data, "continuous_bernoulli"),
        "beta": _fit("y ~ x", cb_data, "beta"),
        "wb": _fit("y ~ x", cb_data, "weighted_bernoulli"),
        "bern": _fit("y ~ x", cb_data, "bernoulli"),
    }


@pytest.fixture(scope="module")
def big_cmp(big_fits):
    return sb.compare(big_fits, kfold_fallback=None)


@pytest.fixture(scope="module")
def tiny_data():
    rng = np.random.default_rng(3)
    n = 15
    x = rng.normal(size=n)
    labels = np.clip(sp.expit(0.4 + 1.2 * x) + rng.normal(0, 0.2, n), 0, 1)
    labels[0], labels[1] = 1.0, 0.0
    return pd.DataFrame({"y": labels, "x": x})


@pytest.fixture(scope="module")
def tiny_fits(tiny_data):
    return {
        fam: _fit("y ~ x", tiny_data, fam, draws=1000, tune=1000, seed=5)
        for fam in ("weighted_bernoulli", "continuous_bernoulli")
    }


# --------------------------------------------------------------------------- references


def _cb_log_norm(eta):
    """log C(eta)^-1 = log((e^eta - 1) / eta), the Continuous Bernoulli log-normalizer."""
    small = np.abs(eta) < 1e-4
    e = np.where(small, 1.0, eta)
    return np.where(small, eta / 2 + eta**2 / 24, np.log(np.expm1(e) / e))


def _cb_mean(eta):
    small = np.abs(eta) < 1e-4
    e = np.where(small, 1.0, eta)
    return np.where(small, 0.5 + eta / 12, 1 / -np.expm1(-e) - 1 / e)


LOGLIK = {
    "weighted_bernoulli": lambda lab, eta: lab * eta - np.logaddexp(0.0, eta),
    "continuous_bernoulli": lambda lab, eta: lab * eta - _cb_log_norm(eta),
}
MEAN = {"weighted_bernoulli": sp.expit, "continuous_bernoulli": _cb_mean}


def _grid(fit, x_train, half_width=8.0, size=301):
    """Grid over (Intercept_centered, slope) wide enough for any leave-out posterior."""
    a = posterior_dataset(fit)["Intercept_centered"].values.ravel()
    b = fit.posterior["x"].values.ravel()
    ga = np.linspace(a.mean() - half_width * a.std(), a.mean() + half_width * a.std(), size)
    gb = np.linspace(b.mean() - half_width * b.std(), b.mean() + half_width * b.std(), size)
    return np.meshgrid(ga, gb, indexing="ij")


def _log_prior(fit, aa, bb):
    pri = json.loads(fit.attrs["softbayes_priors"])
    assert pri["Intercept"]["dist"] == "Normal" and pri["x"]["dist"] == "Normal"
    pa, pb = pri["Intercept"]["kwargs"], pri["x"]["kwargs"]
    return -0.5 * ((aa - pa["mu"]) / pa["sigma"]) ** 2 - 0.5 * ((bb - pb["mu"]) / pb["sigma"]) ** 2


def _exact_cv(fit, family, x, labels, folds):
    """Exact cross-validated predictive means / sds of E[y|x] and elpd, by quadrature.

    Each fold's posterior is computed on the grid from the prior and the training points
    only, with the predictor centred at the training mean (as the model does).
    """
    aa, bb = _grid(fit, x)
    n = len(x)
    means, sds, elpd = np.empty(n), np.empty(n), np.empty(n)
    for j in np.unique(folds):
        test, train = folds == j, folds != j
        xbar = x[train].mean()
        eta = aa[..., None] + bb[..., None] * (x - xbar)
        ll = LOGLIK[family](labels, eta)
        lp = _log_prior(fit, aa, bb) + ll[..., train].sum(-1)
        w = np.exp(lp - lp.max())
        w /= w.sum()
        mu = MEAN[family](eta[..., test])
        m = np.tensordot(w, mu, axes=2)
        means[test] = m
        sds[test] = np.sqrt(np.tensordot(w, mu**2, axes=2) - m**2)
        elpd[test] = np.log(np.tensordot(w, np.exp(ll[..., test]), axes=2))
    return means, sds, elpd


# --------------------------------------------------------------------------- ELPD tables


def test_elpd_tables_equal_arviz_compare(big_fits, big_cmp):
    assert big_cmp.groups == {
        "density": ["cb", "beta"],
        "weighted_bernoulli": ["wb"],
        "bernoulli": ["bern"],
    }
    for group, names in big_cmp.groups.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = azs.compare({n: big_fits[n] for n in names}, var_name="y", round_to="none")
        pd.testing.assert_frame_equal(big_cmp.elpd_tables[group], ref)


def test_cross_group_elpd_is_refused_and_override_is_flagged(big_fits):
    pair = {"cb": big_fits["cb"], "wb": big_fits["wb"]}
    with pytest.raises(ValueError, match="Refusing to rank") as err:
        sb.compare(pair, elpd="all", kfold_fallback=None)
    msg = str(err.value)
    assert "'cb'" in msg and "'wb'" in msg and "0.69" in msg
    with pytest.warns(UserWarning, match="Cross-group ELPD ranking"):
        cmp = sb.compare(pair, elpd="all", allow_cross_group_elpd=True, kfold_fallback=None)
    assert cmp.cross_group_elpd
    table = cmp.elpd_tables["all (cross-group)"]
    assert table.attrs["cross_group"] is True
    assert set(table["group"]) == {"density", "weighted_bernoulli"}
    # the naive ranking puts the density first by >= log 2 per observation: why it's refused
    assert table.index[0] == "cb"
    assert table.loc["cb", "elpd"] - table.loc["wb", "elpd"] > 300 * np.log(2)
    assert any("allow_cross_group_elpd=True" in w for w in cmp.warnings)
    assert "NOT a valid comparison" in str(cmp)
    # one group: elpd="all" is allowed without the override
    one = sb.compare(
        {"cb": big_fits["cb"], "beta": big_fits["beta"]}, elpd="all", kfold_fallback=None
    )
    assert not one.cross_group_elpd


# --------------------------------------------------------------------------- guards


def test_different_labels_raise_naming_the_fits(big_fits, tiny_fits):
    with pytest.raises(ValueError, match="different numbers of observations") as err:
        sb.compare({"big": big_fits["wb"], "tiny": tiny_fits["weighted_bernoulli"]})
    assert "'big'" in str(err.value) and "'tiny'" in str(err.value)

    other = big_fits["wb"].copy()
    other.attrs = {**other.attrs, "softbayes_labels_hash": "0" * 64}
    with pytest.raises(ValueError, match="different labels") as err:
        sb.compare({"cb": big_fits["cb"], "wb": big_fits["wb"], "relabelled": other})
    msg = str(err.value)
    assert "'relabelled'" in msg and "'cb', 'wb'" in msg


def test_different_observations_raise(big_fits):
    shuffled = big_fits["wb"].copy(deep=True)
    x = shuffled["training_data"]["x"].values
    x[:] = x[::-1].copy()
    with pytest.raises(ValueError, match="different observations") as err:
        sb.compare({"cb": big_fits["cb"], "shuffled": shuffled})
    assert "'cb'" in str(err.value) and "'shuffled'" in str(err.value)


def test_not_a_softbayes_fit_raises(big_fits):
    plain = big_fits["wb"].copy()
    plain.attrs = {}
    with pytest.raises(ValueError, match="'plain' is not a softbayes fit"):
        sb.compare({"plain": plain})


# --------------------------------------------------------------------------- common scale


def test_common_scale_prefers_the_true_family(big_cmp):
    s = big_cmp.scores
    assert s.index[0] == "cb"
    assert set(big_cmp.cv.values()) == {"psis-loo"}
    # log score: the hard-label fit is worse by more than 2 SE of the paired difference
    assert s.loc["bern", "log_diff"] < -2 * s.loc["bern", "log_dse"]
    # Brier score (lower is better): worse by more than 2 SE as well
    brier = big_cmp.score_tables["brier"]
    assert brier.index[0] == "cb"
    assert s.loc["bern", "brier_diff"] > 2 * s.loc["bern", "brier_dse"]
    assert s.loc["cb", "ece"] < s.loc["bern", "ece"]
    # totals and SEs are those of the pointwise scores
    pw = big_cmp.pointwise["log"]
    assert s.loc["wb", "log"] == pytest.approx(pw["wb"].sum())
    assert s.loc["wb", "log_se"] == pytest.approx(np.sqrt(300) * pw["wb"].std(ddof=0))
    d = pw["bern"] - pw["cb"]
    assert s.loc["bern", "log_dse"] == pytest.approx(np.sqrt(300) * d.std(ddof=0))


@pytest.mark.parametrize("family", ["weighted_bernoulli", "continuous_bernoulli"])
def test_psis_loo_scores_match_brute_force_exact_loo(tiny_fits, tiny_data, family):
    """PSIS-LOO predictive means and scores vs exact LOO (one posterior per left-out point).

    Tolerance: PSIS is self-normalized importance sampling, so the Monte Carlo SE of the
    LOO mean of point i is se_i = sqrt(sum_s w_is^2 (mu_is - p_i)^2 / r_eff) (r_eff = bulk
    ESS / S). By the delta method a score total moves by sum_i |dS_i/dp_i| se_i at most
    (errors of different points share the draws, so they are not assumed independent).
    The totals must agree within 3 times that; each point within 4 se_i.
    """
    fit = tiny_fits[family]
    x, labels = tiny_data["x"].to_numpy(), tiny_data["y"].to_numpy()
    n = len(x)
    cmp = sb.compare({"m": fit})
    assert cmp.cv["m"] == "psis-loo"
    exact_mean, _, exact_elpd = _exact_cv(fit, family, x, labels, np.arange(n))
    psis = cmp.loo_means["m"]

    lw = cmp.elpd_data["m"].log_weights.transpose("obs", "chain", "draw").values.reshape(n, -1)
    w = np.exp(lw - sp.logsumexp(lw, axis=1, keepdims=True))
    mu = sb.predict(fit, kind="mean").transpose("obs", "chain", "draw").values.reshape(n, -1)
    d = diagnose_fit(fit)
    r_eff = min(1.0, d.ess_bulk_min / (d.n_chains * d.n_draws))
    se = np.sqrt((w**2 * (mu - psis[:, None]) ** 2).sum(axis=1) / r_eff)
    assert np.all(np.abs(psis - exact_mean) < 4 * se + 1e-6)

    dlog = np.abs(labels / psis - (1 - labels) / (1 - psis))
    dbrier = np.abs(2 * (psis - labels))
    exact_log = (sp.xlogy(labels, exact_mean) + sp.xlogy(1 - labels, 1 - exact_mean)).sum()
    exact_brier = ((exact_mean - labels) ** 2 + labels * (1 - labels)).sum()
    assert cmp.scores.loc["m", "log"] == pytest.approx(exact_log, abs=3 * (dlog * se).sum())
    assert cmp.scores.loc["m", "brier"] == pytest.approx(exact_brier, abs=3 * (dbrier * se).sum())
    # the ELPD (ArviZ's PSIS-LOO) against the exact elpd_loo, loosely
    assert cmp.elpd_data["m"].elpd == pytest.approx(exact_elpd.sum(), abs=0.25)


def test_kfold_fallback_on_high_pareto_k_matches_exact_kfold(tiny_fits, tiny_data):
    fit = tiny_fits["weighted_bernoulli"]
    bad = fit.copy(deep=True)
    # five draws that make observation 0 very unlikely: heavy-tailed importance ratios
    bad["log_likelihood"]["y"].values[0, :5, 0] = -40.0

    with pytest.warns(UserWarning, match="unreliable"):
        kept = sb.compare({"wb": bad}, kfold_fallback=None)
    assert kept.cv == {"wb": "psis-loo"}
    assert kept.diagnostics.loc["wb", "n_k_very_bad"] == 1
    assert any("unreliable" in w and "loo='kfold'" in w for w in kept.warnings)

    with pytest.warns(UserWarning, match="3-fold"):
        cmp = sb.compare(
            {"wb": bad},
            k=3,
            seed=4,
            refit_kwargs={"draws": 1000, "tune": 500, "chains": 2, **FIT},
        )
    assert cmp.cv == {"wb": "kfold(k=3)"}
    assert any("3-fold" in w for w in cmp.warnings)
    assert cmp.elpd_data["wb"].kind == "loo_kfold"
    assert sorted(np.bincount(cmp.folds)) == [5, 5, 5]
    x, labels = tiny_data["x"].to_numpy(), tiny_data["y"].to_numpy()
    exact_mean, exact_sd, exact_elpd = _exact_cv(fit, "weighted_bernoulli", x, labels, cmp.folds)
    # refit posterior means from 2000 draws; NUTS ESS on this 2-parameter posterior is
    # near S, allow ESS >= 500: se_i = sd_i / sqrt(500), 4 se_i per point
    se = exact_sd / np.sqrt(500)
    assert np.all(np.abs(cmp.loo_means["wb"] - exact_mean) < 4 * se)
    assert cmp.elpd_data["wb"].elpd == pytest.approx(exact_elpd.sum(), abs=0.1)


# --------------------------------------------------------------------------- diagnostics


def test_diagnostic_warnings_fire_on_a_bad_fit(tiny_fits):
    bad = tiny_fits["weighted_bernoulli"].copy(deep=True)
    for var in ("Intercept", "x"):
        bad["posterior"][var].values[1] += 3.0  # second chain stuck elsewhere
    bad[INTERNAL_GROUP]["Intercept_centered"].values[1] += 3.0
    with pytest.warns(UserWarning, match="bad: R-hat"):
        cmp = sb.compare({"bad": bad}, kfold_fallback=None)
    assert cmp.diagnostics.loc["bad", "rhat_max"] > 1.1
    assert any(w.startswith("bad: R-hat") for w in cmp.warnings)
    assert cmp.diagnostics.loc["bad", "n_warnings"] >= 1


def test_clean_fit_diagnostics(big_cmp):
    diag = big_cmp.diagnostics
    assert list(diag.index) == ["cb", "beta", "wb", "bern"]
    for col in (
        "rhat_max",
        "ess_bulk_min",
        "ess_tail_min",
        "n_divergent",
        "bfmi_min",
        "pareto_k_max",
        "n_k_good",
    ):
        assert col in diag
    assert (diag["rhat_max"] < 1.05).all()


# --------------------------------------------------------------------------- output


def test_text_and_tables(big_cmp):
    text = str(big_cmp)
    for piece in (
        "group 'density'",
        "group 'weighted_bernoulli'",
        "group 'bernoulli'",
        "not comparable",
        "Common scale",
        "Diagnostics",
    ):
        assert piece in text
    assert isinstance(big_cmp.scores, pd.DataFrame)
    assert isinstance(big_cmp.elpd_tables["density"], pd.DataFrame)
    assert isinstance(big_cmp.warnings, list)
    assert big_cmp.loo_means["cb"].shape == (300,)


def test_figures_are_produced(big_cmp):
    figs = big_cmp.figures()
    assert set(figs) == {
        "elpd_density",
        "elpd_weighted_bernoulli",
        "elpd_bernoulli",
        "calibration",
        *(f"ppc_{name}" for name in big_cmp.names),
        "marginal_effects",
    }
    for name, fig in figs.items():
        assert isinstance(fig, Figure), name
        assert any(ax.has_data() for ax in fig.axes), name
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=40)
        assert buf.tell() > 1000, name


@pytest.mark.slow
def test_psis_loo_matches_mcmc_refit_loo(tiny_fits, tiny_data):
    """Brute force by MCMC: K-fold with K = n is exact LOO, one NUTS refit per point.

    Both estimates carry Monte Carlo error: PSIS (se_i as in the quadrature test) and the
    refits (posterior mean from 2000 draws, sd_i from quadrature, ESS >= 500 allowed).
    Points must agree within 4 sqrt(se_psis^2 + se_refit^2); totals within
    3 sum_i |dS_i/dp_i| se_i.
    """
    fit = tiny_fits["weighted_bernoulli"]
    x, labels = tiny_data["x"].to_numpy(), tiny_data["y"].to_numpy()
    n = len(x)
    psis = sb.compare({"m": fit})
    refit = sb.compare(
        {"m": fit},
        loo="kfold",
        k=n,
        refit_kwargs={"draws": 1000, "tune": 500, "chains": 2, **FIT},
    )
    assert refit.cv == {"m": f"kfold(k={n})"}
    _, sd, _ = _exact_cv(fit, "weighted_bernoulli", x, labels, np.arange(n))
    p_psis, p_refit = psis.loo_means["m"], refit.loo_means["m"]
    lw = psis.elpd_data["m"].log_weights.transpose("obs", "chain", "draw").values.reshape(n, -1)
    w = np.exp(lw - sp.logsumexp(lw, axis=1, keepdims=True))
    mu = sb.predict(fit, kind="mean").transpose("obs", "chain", "draw").values.reshape(n, -1)
    d = diagnose_fit(fit)
    r_eff = min(1.0, d.ess_bulk_min / (d.n_chains * d.n_draws))
    se_psis = np.sqrt((w**2 * (mu - p_psis[:, None]) ** 2).sum(axis=1) / r_eff)
    se = np.sqrt(se_psis**2 + sd**2 / 500)
    assert np.all(np.abs(p_psis - p_refit) < 4 * se)
    dlog = np.abs(labels / p_psis - (1 - labels) / (1 - p_psis))
    assert psis.scores.loc["m", "log"] == pytest.approx(
        refit.scores.loc["m", "log"], abs=3 * (dlog * se).sum()
    )
    dbrier = np.abs(2 * (p_psis - labels))
    assert psis.scores.loc["m", "brier"] == pytest.approx(
        refit.scores.loc["m", "brier"], abs=3 * (dbrier * se).sum()
    )


def test_squeezed_beta_elpd_gets_the_log_jacobian(tiny_fits, tiny_data):
    beta = _fit("y ~ x", tiny_data, "beta", squeeze=True, draws=300, tune=300)
    n = len(tiny_data)
    # (the squeezed 0 and 1 are influential: a high Pareto k is expected, warnings off)
    cmp = sb.compare(
        {"beta": beta, "cb": tiny_fits["continuous_bernoulli"]}, kfold_fallback=None, warn=False
    )
    assert cmp.groups == {"density": ["beta", "cb"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = azs.loo(beta, pointwise=True, var_name="y")
    # z = (y(n-1) + 1/2)/n  =>  log p(y) = log p(z) + log((n-1)/n) per observation
    assert cmp.elpd_data["beta"].elpd - raw.elpd == pytest.approx(n * np.log((n - 1) / n))
    assert any("squeezed" in note for note in cmp.notes)
    # the common-scale scores use the original labels, exactly 0 and 1 included
    np.testing.assert_array_equal(cmp.labels, tiny_data["y"].to_numpy())


def test_soft_categorical_fit():
    rng = np.random.default_rng(7)
    n = 40
    x = rng.normal(size=n)
    eta = np.column_stack([np.zeros(n), 0.5 + x, -0.3 - x])
    p = sp.softmax(eta, axis=1)
    lab = 0.7 * p + 0.3 * rng.dirichlet(np.ones(3), size=n)
    df = pd.DataFrame({"a": lab[:, 0], "b": lab[:, 1], "c": lab[:, 2], "x": x})
    fit = _fit("c(a, b, c) ~ x", df, "soft_categorical", draws=300, tune=300)
    cmp = sb.compare({"cat": fit}, kfold_fallback=None, warn=False)  # short chains
    assert cmp.groups == {"soft_categorical": ["cat"]}
    q = cmp.loo_means["cat"]
    assert q.shape == (n, 3)
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    assert cmp.scores.loc["cat", "log"] == pytest.approx((lab * np.log(q)).sum())
    brier = ((q - lab) ** 2).sum() + (lab * (1 - lab)).sum()
    assert cmp.scores.loc["cat", "brier"] == pytest.approx(brier)
    for fig in (cmp.plot_calibration(), cmp.plot_ppc()["cat"]):
        assert isinstance(fig, Figure) and fig.axes[0].has_data()
