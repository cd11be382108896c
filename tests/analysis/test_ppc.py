"""Predictive checks for soft labels and conditional effects, on data from known parameters.

References: scikit-learn's IsotonicRegression (PAVA), bin means by pandas, LOO-PIT by plain
importance weights, and E[y | x] computed by hand from the posterior draws.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy import special as sp
from scipy import stats
from sklearn.isotonic import IsotonicRegression

import softbayes as sb
from softbayes.analysis.predict import predictive_draws
from softbayes.terms.families import FAMILIES

N = 400
FIT = dict(draws=250, tune=300, chains=2, random_seed=11, progressbar=False, warn=False)
LEVELS = ["lo", "mid", "hi"]


def _data(seed=0, n=N, quadratic=0.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    c = rng.choice(LEVELS, size=n)
    g = rng.choice(list("abcde"), size=n)
    eta = -0.2 + 1.1 * x + quadratic * x**2 + 0.8 * (c == "hi")
    mu = sp.expit(eta)
    return pd.DataFrame({"y": rng.beta(8 * mu, 8 * (1 - mu)), "x": x, "c": c, "g": g})


def _fit(formula, data, likelihood, **kw):
    model = sb.Model(formula, data, likelihood=likelihood, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model, model.fit(**FIT)


@pytest.fixture(scope="module")
def wb():
    return _fit("y ~ x + c", _data(0), "weighted_bernoulli")


@pytest.fixture(scope="module")
def wb_wrong():
    # the truth bends (a quadratic term) that the linear formula cannot follow
    return _fit("y ~ x + c", _data(1, quadratic=1.5), "weighted_bernoulli")


@pytest.fixture(scope="module")
def beta():
    return _fit("y ~ x + c", _data(0), "beta")


def _simplex_data():
    rng = np.random.default_rng(4)
    x = rng.normal(size=N)
    logits = np.stack([np.zeros(N), 0.5 + x, -0.5 - x], axis=1)
    lab = np.stack([rng.dirichlet(6 * p) for p in sp.softmax(logits, axis=1)])
    return pd.DataFrame({"a": lab[:, 0], "b": lab[:, 1], "k": lab[:, 2], "x": x})


@pytest.fixture(scope="module")
def sc():
    return _fit("c(a, b, k) ~ x", _simplex_data(), "soft_categorical")


def _draws(fit, var):
    arr = fit["posterior"][var].transpose("chain", "draw", ...).values
    return arr.reshape(-1, *arr.shape[2:])


def _replicates(fit):
    """The replicated labels the checks should use: the fit's own group, else the family's
    draws through predict."""
    if "posterior_predictive" in fit.children:
        pp = fit["posterior_predictive"].to_dataset()
        arr = next(iter(pp.data_vars.values())).transpose("chain", "draw", ...).values
    else:
        arr = predictive_draws(fit, random_seed=0).values
    return arr.reshape(-1, *arr.shape[2:])


def _wb_mean(model, fit):
    """Posterior mean of sigmoid(eta) per row, by hand from the coefficients."""
    d = model.description.data
    eta = _draws(fit, "Intercept")[:, None] + _draws(fit, "x")[:, None] * d["x"].to_numpy()
    cdraws = _draws(fit, "c")  # columns: the non-reference levels, in the posterior's order
    names = [str(v) for v in fit["posterior"]["c"].coords[fit["posterior"]["c"].dims[-1]].values]
    for j, name in enumerate(names):
        level = name.split("[", 1)[1].rstrip("]")
        eta = eta + cdraws[:, j][:, None] * (d["c"].to_numpy() == level)
    return sp.expit(eta).mean(axis=0)


# --------------------------------------------------------------------------- family attribute
def test_predictive_check_follows_what_the_family_draws(wb, beta, sc):
    for (model, fit), kind in ((wb, "reliability"), (beta, "density"), (sc, "reliability")):
        assert model.description.family.predictive_check == kind
        reps = predictive_draws(fit, random_seed=1, model=model).values
        hard = bool(np.isin(reps, (0.0, 1.0)).all())
        assert hard == (kind == "reliability")
    assert {c.predictive_check for c in FAMILIES.values()} == {"reliability", "density"}


# --------------------------------------------------------------------------- reliability
def test_reliability_curve_is_sklearn_isotonic_regression(wb):
    model, fit = wb
    table = sb.reliability_curve(fit, model=model, n_draws=None, prob=0.8)
    pred = _wb_mean(model, fit)
    labels = model.description.labels
    order = np.argsort(pred)
    np.testing.assert_allclose(table["predicted"], pred[order], rtol=1e-10)
    iso = IsotonicRegression(increasing=True).fit(pred, labels)
    np.testing.assert_allclose(table["observed"], iso.predict(pred[order]), atol=1e-12)
    # the band: the same regression on every replicated label set, central 80%
    curves = np.stack([IsotonicRegression().fit(pred, r).predict(pred[order])
                       for r in _replicates(fit)])
    lo, hi = np.quantile(curves, [0.1, 0.9], axis=0)
    np.testing.assert_allclose(table["lower"], lo, atol=1e-10)
    np.testing.assert_allclose(table["upper"], hi, atol=1e-10)


def test_reliability_band_holds_a_correct_model_not_a_wrong_one(wb, wb_wrong):
    inside = {}
    for key, (model, fit) in {"right": wb, "wrong": wb_wrong}.items():
        t = sb.reliability_curve(fit, model=model, prob=0.9)
        inside[key] = ((t["observed"] >= t["lower"]) & (t["observed"] <= t["upper"])).mean()
    # pointwise bands of a PAVA curve: the wrong model leaves them, though not everywhere
    # (binned_mean_ppc below is the sharper test)
    assert inside["right"] >= 0.95
    assert inside["wrong"] <= 0.93


def test_reliability_curve_is_one_against_rest_per_class(sc):
    model, fit = sc
    table = sb.reliability_curve(fit, model=model, n_draws=20)
    assert list(dict.fromkeys(table["class"])) == ["a vs rest", "b vs rest", "k vs rest"]
    mean = sb.predict(fit, kind="mean", model=model).values.reshape(-1, N, 3).mean(axis=0)
    lab = model.description.labels
    for k, name in enumerate(["a", "b", "k"]):
        t = table[table["class"] == f"{name} vs rest"]
        iso = IsotonicRegression().fit(mean[:, k], lab[:, k])
        np.testing.assert_allclose(t["observed"], iso.predict(np.sort(mean[:, k])), atol=1e-12)


def test_stored_posterior_predictive_is_used_when_present(wb):
    model, fit = wb
    tree = fit.copy()
    if "posterior_predictive" in tree.children:
        del tree["posterior_predictive"]
    table = sb.reliability_curve(tree, model=model, n_draws=None)
    # without the group: one family draw per posterior draw, as predict(kind="pp")
    reps = predictive_draws(tree, random_seed=0, model=model).values.reshape(-1, N)
    pred = np.sort(_wb_mean(model, fit))
    mean = _wb_mean(model, fit)
    curves = np.stack([IsotonicRegression().fit(mean, r).predict(pred) for r in reps])
    np.testing.assert_allclose(table["upper"], np.quantile(curves, 0.95, axis=0), atol=1e-10)
    # with a group of all-zero replicates, the band is zero
    zeros = predictive_draws(tree, random_seed=0, model=model).rename("y") * 0.0
    tree["posterior_predictive"] = zeros.to_dataset()
    table = sb.reliability_curve(tree, model=model)
    assert (table["upper"] == 0).all()


# --------------------------------------------------------------------------- binned means
def test_binned_means_match_pandas_bins(wb):
    model, fit = wb
    t = sb.binned_mean_ppc(fit, bins=8, model=model, prob=0.9)
    pred = _wb_mean(model, fit)
    bins = pd.qcut(pred, 8, labels=False)
    ref = pd.DataFrame({"b": bins, "l": model.description.labels, "p": pred}).groupby("b")
    np.testing.assert_allclose(t["observed"], ref["l"].mean(), rtol=1e-12)
    np.testing.assert_allclose(t["predicted"], ref["p"].mean(), rtol=1e-12)
    assert t["n"].tolist() == ref.size().tolist()
    reps = _replicates(fit)
    for b, row in t.iterrows():
        means = reps[:, bins == b].mean(axis=1)
        assert row["lower"] == pytest.approx(np.quantile(means, 0.05))
        assert row["upper"] == pytest.approx(np.quantile(means, 0.95))


def test_binned_means_pass_a_correct_model_and_fail_a_wrong_one(wb, wb_wrong):
    right = sb.binned_mean_ppc(wb[1], bins=10, model=wb[0])
    wrong = sb.binned_mean_ppc(wb_wrong[1], bins=10, model=wb_wrong[0])
    assert right["inside"].sum() >= 9 and right["p_value"].min() > 0.01
    assert (~wrong["inside"]).sum() >= 3 and wrong["p_value"].min() < 0.01


def test_binned_means_take_edges_and_reject_bad_bins(wb):
    model, fit = wb
    t = sb.binned_mean_ppc(fit, bins=[0.0, 0.5, 1.0], model=model)
    assert t["left"].tolist() == [0.0, 0.5] and t["n"].sum() == N
    with pytest.raises(ValueError, match="increasing"):
        sb.binned_mean_ppc(fit, bins=[0.5, 0.2], model=model)
    with pytest.raises(ValueError, match="prob"):
        sb.binned_mean_ppc(fit, model=model, prob=1.5)


# --------------------------------------------------------------------------- density checks
def test_loo_pit_matches_importance_weights_and_is_uniform(beta):
    model, fit = beta
    pit = sb.loo_pit(fit, model=model)["y"].values
    assert pit.shape == (N,) and ((pit >= 0) & (pit <= 1)).all()
    ll = fit["log_likelihood"]["y"].transpose("chain", "draw", "obs").values.reshape(-1, N)
    w = np.exp(-ll - (-ll).max(axis=0))
    w /= w.sum(axis=0)
    reps = _replicates(fit)
    raw = (w * (reps <= model.description.labels)).sum(axis=0)
    assert np.abs(pit - raw).mean() < 0.01
    assert stats.kstest(pit, "uniform").pvalue > 0.01


def test_loo_pit_per_class_of_a_simplex_density():
    model, fit = _fit("c(a, b, k) ~ x", _simplex_data(), "dirichlet")
    pit = sb.loo_pit(fit, model=model)
    assert list(pit.data_vars) == ["a", "b", "k"]
    for v in pit.data_vars.values():  # the Dirichlet generated the labels: uniform marginals
        assert stats.kstest(v.values, "uniform").pvalue > 0.01
    assert len(sb.plot_ppc(fit, model=model).axes) == 3
    table = sb.binned_mean_ppc(fit, bins=4, model=model)
    assert len(table) == 12 and table["inside"].mean() >= 0.75


@pytest.mark.parametrize("which", ["wb", "sc"])
def test_label_scale_checks_refuse_hard_outcome_families(which, request):
    model, fit = request.getfixturevalue(which)
    with pytest.raises(ValueError, match=r"hard outcomes.*reliability_curve"):
        sb.loo_pit(fit, model=model)
    for kind in ("ecdf", "kde", "loo_pit"):
        with pytest.raises(ValueError, match="not soft labels"):
            sb.plot_ppc(fit, model=model, kind=kind)


# --------------------------------------------------------------------------- figures
def test_plot_ppc_draws_the_family_check(wb, beta, sc):
    fig = sb.plot_ppc(wb[1], model=wb[0], title="wb")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert fig.axes[0].get_xlabel() == "posterior mean prediction"
    assert len(sb.plot_ppc(sc[1], model=sc[0]).axes) == 3
    fig = sb.plot_ppc(beta[1], model=beta[0])
    assert len(fig.axes[0].lines) >= 50  # 50 replicated ECDFs and the observed one
    assert isinstance(sb.plot_ppc(beta[1], model=beta[0], kind="loo_pit"), Figure)
    fig = sb.plot_ppc(wb[1], model=wb[0], kind="binned_means", bins=5)
    assert len(fig.axes[0].collections[1].get_offsets()) == 5
    with pytest.raises(ValueError, match="kind must be"):
        sb.plot_ppc(wb[1], model=wb[0], kind="hist")


# --------------------------------------------------------------------------- conditional effects
def test_conditional_effects_match_the_posterior_by_hand(wb):
    model, fit = wb
    d = model.description.data
    t = sb.conditional_effects(model, fit, n_points=7, prob=0.8)
    assert list(dict.fromkeys(t["predictor"])) == ["x", "c"]
    b0, bx, bc = _draws(fit, "Intercept"), _draws(fit, "x"), _draws(fit, "c")
    levels = [str(v).split("[", 1)[1].rstrip("]")
              for v in fit["posterior"]["c"].coords[fit["posterior"]["c"].dims[-1]].values]
    reference = next(v for v in sorted(LEVELS) if v not in levels)
    grid = np.linspace(d["x"].min(), d["x"].max(), 7)
    eta = b0[:, None] + bx[:, None] * grid  # c at its reference level: no c term
    ex = sp.expit(eta)
    tx = t[t["predictor"] == "x"]
    np.testing.assert_allclose(tx["value"].astype(float), grid)
    np.testing.assert_allclose(tx["estimate"], ex.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(tx["lower"], np.quantile(ex, 0.1, axis=0), rtol=1e-10)
    tc = t[t["predictor"] == "c"].set_index("value")
    eta_c = {reference: b0 + bx * d["x"].mean()}
    eta_c |= {lev: b0 + bx * d["x"].mean() + bc[:, j] for j, lev in enumerate(levels)}
    for lev, e in eta_c.items():
        assert tc.loc[lev, "estimate"] == pytest.approx(sp.expit(e).mean(), rel=1e-10)
        assert tc.loc[lev, "upper"] == pytest.approx(np.quantile(sp.expit(e), 0.9), rel=1e-10)


def test_conditional_effects_leave_group_effects_out():
    df = _data(2, n=150)
    model, fit = _fit("y ~ x + (1|g)", df, "continuous_bernoulli")
    t = sb.conditional_effects(model, fit, "x", n_points=5)
    eta = (_draws(fit, "Intercept")[:, None]
           + _draws(fit, "x")[:, None] * np.linspace(df["x"].min(), df["x"].max(), 5))
    cb_mean = 1 / (1 - np.exp(-eta)) - 1 / eta  # the Continuous Bernoulli mean (eta != 0)
    np.testing.assert_allclose(t["estimate"], cb_mean.mean(axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="not a population-level predictor"):
        sb.conditional_effects(model, fit, "g")
    fig = sb.plot_conditional_effects(model, fit)
    assert isinstance(fig, Figure) and [a.get_xlabel() for a in fig.axes] == ["x"]


def test_conditional_effects_per_class(sc):
    model, fit = sc
    t = sb.conditional_effects(model, fit, "x", n_points=4)
    assert t["class"].tolist() == ["a"] * 4 + ["b"] * 4 + ["k"] * 4
    np.testing.assert_allclose(t.groupby("value", sort=False)["estimate"].sum(), 1.0,
                               rtol=0.05)
    assert len(sb.plot_conditional_effects(model, fit).axes[0].lines) == 3


# --------------------------------------------------------------------------- coverage
@pytest.mark.slow
def test_binned_mean_coverage_over_replications():
    """Over data sets from known parameters, a correct model's observed bin means fall
    inside the 90% bands at least 90% of the time (hard labels: near the nominal rate;
    soft labels: more, the 0/1 replicates being noisier), a misspecified model's far less."""
    rates = {}
    for key, quadratic, hard in (("hard", 0.0, True), ("soft", 0.0, False),
                                 ("wrong", 1.5, False)):
        base = _data(10, quadratic=quadratic)
        model = sb.Model("y ~ x + c", base, likelihood="weighted_bernoulli")
        inside = []
        for r in range(8):
            df = _data(100 + r, quadratic=quadratic)
            labels = (np.random.default_rng(r).random(N) < df["y"]).astype(float) \
                if hard else df["y"].to_numpy()
            model.set_data(df.assign(y=labels))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = model.fit(**{**FIT, "random_seed": r})
            inside += sb.binned_mean_ppc(fit, bins=10, model=model)["inside"].tolist()
        rates[key] = float(np.mean(inside))
    assert 0.85 <= rates["hard"] <= 1.0, rates
    assert rates["soft"] >= 0.95, rates
    assert rates["wrong"] < 0.8, rates
