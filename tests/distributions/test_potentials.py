"""Weighted potentials, soft distributions and their pointwise log-likelihood.

References are independent of the code under test: plain NumPy/SciPy formulas, mpmath,
statsmodels, scikit-learn, and PyMC's own ``pm.compute_log_likelihood``.
"""

import warnings

import arviz as az
import mpmath as mp
import numpy as np
import pymc as pm
import pytest
import xarray as xr
from pymc.model.fgraph import clone_model
from scipy.special import expit, log_softmax

import softbayes as sb
import softbayes.backend.log_likelihood as sb_ll

N, P_COV, K = 60, 3, 3


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20240611)
    X = np.column_stack([np.ones(N), rng.normal(size=(N, P_COV - 1))])
    beta = np.array([0.3, 1.0, -0.8])
    l = expit(X @ beta + rng.normal(scale=0.7, size=N))
    l[:4] = [0.0, 1.0, 0.0, 1.0]  # hard labels in the mix
    w = rng.uniform(0.5, 2.0, size=N)
    B = np.column_stack([np.zeros(P_COV), rng.normal(size=(P_COV, K - 1))])
    L = np.exp(log_softmax(X @ B + rng.normal(scale=0.5, size=(N, K)), axis=1))
    L[0] = [1.0, 0.0, 0.0]
    L /= L.sum(1, keepdims=True)  # exact rows (test data, not library behaviour)
    return {"X": X, "l": l, "w": w, "L": L, "rng": rng}


def np_bernoulli(l, eta):
    """Direct NumPy: l log q + (1 - l) log(1 - q), q = sigmoid(eta), 0 log 0 = 0."""
    q = expit(eta)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(l > 0, l * np.log(q), 0.0)
        b = np.where(l < 1, (1 - l) * np.log1p(-q), 0.0)
    return a + b


def np_categorical(L, eta):
    return (L * log_softmax(eta, axis=-1)).sum(-1)


# --------------------------------------------------------------------------- logp identities


def _binary_models(d, weights=None):
    X, l = d["X"], d["l"]
    X_dup, y_dup, w_dup, obs = sb.expand_soft_labels(X, l, weights)
    y_dup = y_dup.astype(float)
    models = {}

    def make(key, build):
        with pm.Model() as m:
            b = pm.Flat("b", shape=P_COV)
            build(b)
        models[key] = m

    make("direct", lambda b: sb.WeightedBernoulli("y", labels=l, logit_p=X @ b, weights=weights))
    make(
        "dup",
        lambda b: sb.WeightedBernoulli(
            "y", labels=y_dup, logit_p=X_dup @ b, weights=w_dup, obs_index=obs
        ),
    )
    make("soft", lambda b: sb.SoftBernoulli("y", logit_p=X @ b, observed=l, weights=weights))
    make(
        "soft_dup",
        lambda b: sb.SoftBernoulli("y", logit_p=X_dup @ b, observed=y_dup, weights=w_dup),
    )
    make(
        "direct_p",
        lambda b: sb.WeightedBernoulli("y", labels=l, p=pm.math.sigmoid(X @ b), weights=weights),
    )
    make(
        "dup_p",
        lambda b: sb.WeightedBernoulli(
            "y", labels=y_dup, p=pm.math.sigmoid(X_dup @ b), weights=w_dup, obs_index=obs
        ),
    )
    make("soft_p", lambda b: sb.SoftBernoulli("y", p=pm.math.sigmoid(X @ b), observed=l))
    return models


@pytest.mark.parametrize("weighted", [False, True])
def test_eq7_binary_logp_identity(data, weighted):
    weights = data["w"] if weighted else None
    models = _binary_models(data, weights)
    if weighted:
        models.pop("soft_p")  # built without weights above
    fns = {k: m.compile_logp() for k, m in models.items()}
    grads = {k: m.compile_dlogp() for k, m in models.items()}
    rng = np.random.default_rng(7)
    w = np.ones(N) if weights is None else weights
    for _ in range(5):
        b = rng.normal(scale=1.5, size=P_COV)
        ref = float(np.sum(w * np_bernoulli(data["l"], data["X"] @ b)))
        ref_grad = data["X"].T @ (w * (data["l"] - expit(data["X"] @ b)))
        for key, fn in fns.items():
            assert fn({"b": b}) == pytest.approx(ref, abs=1e-10, rel=0), key
            np.testing.assert_allclose(grads[key]({"b": b}), ref_grad, atol=1e-10, err_msg=key)


def test_logit_form_exact_at_700():
    """|eta| = 700 with labels exactly 0 and 1, against mpmath."""
    mp.mp.dps = 50
    l = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 0.25])
    c = np.array([700.0, 700.0, -700.0, -700.0, 700.0, -700.0])

    def mp_term(li, eta):
        li, eta = mp.mpf(li), mp.mpf(eta)
        return li * -mp.log1p(mp.exp(-eta)) + (1 - li) * -mp.log1p(mp.exp(eta))

    ref = float(mp.fsum(mp_term(a, b) for a, b in zip(l, c, strict=True)))
    with pm.Model() as m1:
        s = pm.Flat("s")
        sb.WeightedBernoulli("y", labels=l, logit_p=s * c)
    with pm.Model() as m2:
        s = pm.Flat("s")
        sb.SoftBernoulli("y", logit_p=s * c, observed=l)
    for m in (m1, m2):
        val = m.compile_logp()({"s": np.array(1.0)})
        assert np.isfinite(val)
        assert val == pytest.approx(ref, rel=1e-15)
        np.testing.assert_allclose(
            m.compile_dlogp()({"s": np.array(1.0)}), np.sum(c * (l - expit(c))), rtol=1e-15
        )


def test_eq7_multiclass_logp_identity(data):
    X, L, w = data["X"], data["L"], data["w"]
    X_dup, y_dup, w_dup, obs = sb.expand_soft_labels(X, L, w)
    onehot = np.eye(K)[y_dup]
    builds = {
        "direct": lambda B: sb.WeightedCategorical("c", labels=L, logits=X @ B, weights=w),
        "dup": lambda B: sb.WeightedCategorical(
            "c", labels=onehot, logits=X_dup @ B, weights=w_dup, obs_index=obs
        ),
        "soft": lambda B: sb.SoftCategorical("c", logits=X @ B, observed=L, weights=w),
        "soft_dup": lambda B: sb.SoftCategorical(
            "c", logits=X_dup @ B, observed=onehot, weights=w_dup
        ),
        "direct_p": lambda B: sb.WeightedCategorical(
            "c", labels=L, p=pm.math.softmax(X @ B, axis=-1), weights=w
        ),
        "soft_p": lambda B: sb.SoftCategorical(
            "c", p=pm.math.softmax(X @ B, axis=-1), observed=L, weights=w
        ),
    }
    fns = {}
    for key, build in builds.items():
        with pm.Model() as m:
            build(pm.Flat("B", shape=(P_COV, K)))
        fns[key] = m.compile_logp()
    rng = np.random.default_rng(8)
    for _ in range(5):
        B = rng.normal(size=(P_COV, K))
        ref = float(np.sum(w * np_categorical(L, X @ B)))
        for key, fn in fns.items():
            assert fn({"B": B}) == pytest.approx(ref, abs=1e-10, rel=0), key


# --------------------------------------------------------------------------- point estimates


def test_flat_prior_map_matches_statsmodels_and_sklearn(data):
    import statsmodels.api as sm
    from sklearn.linear_model import LogisticRegression

    X, l = data["X"], data["l"]
    with pm.Model() as m:
        b = pm.Flat("b", shape=P_COV)
        sb.WeightedBernoulli("y", labels=l, logit_p=X @ b)
    dlogp, d2logp = m.compile_dlogp(), m.compile_d2logp(negate_output=False)
    # Newton's method on the compiled gradient and Hessian of the model logp: exact to
    # rounding at convergence (the objective is strictly concave here).
    b_map = np.zeros(P_COV)
    for _ in range(100):
        step = np.linalg.solve(d2logp({"b": b_map}), dlogp({"b": b_map}))
        b_map = b_map - step
        if np.abs(step).max() < 1e-14:
            break
    assert np.abs(dlogp({"b": b_map})).max() < 1e-10

    glm = sm.GLM(l, X, family=sm.families.Binomial()).fit(tol=1e-14, maxiter=200)
    X_dup, y_dup, w_dup, _ = sb.expand_soft_labels(X, l)
    clf = LogisticRegression(
        C=np.inf, fit_intercept=False, solver="newton-cholesky", tol=1e-12, max_iter=1000
    ).fit(X_dup, y_dup, sample_weight=w_dup)
    d_sm = np.abs(b_map - glm.params).max()
    d_sk = np.abs(b_map - clf.coef_[0]).max()
    print(f"MAP vs statsmodels {d_sm:.2e}, vs scikit-learn {d_sk:.2e}")
    assert d_sm < 1e-5
    assert d_sk < 1e-5
    # and PyMC's own optimizer lands on the same point
    with m:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b_pm = pm.find_MAP(progressbar=False, start={"b": np.zeros(P_COV)})["b"]
    assert np.abs(b_pm - b_map).max() < 1e-4


# --------------------------------------------------------------------------- pointwise / LOO


@pytest.fixture(scope="module")
def sampled(data):
    """One posterior of the Potential-only model, reused by every LOO test."""
    X, l = data["X"], data["l"]
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 2.5, shape=P_COV)
        sb.WeightedBernoulli("y", labels=l, logit_p=X @ b)
        idata = pm.sample(draws=200, tune=200, chains=2, random_seed=11, progressbar=False)
    return model, idata


def _posterior_only(idata):
    return xr.DataTree.from_dict({"posterior": idata["posterior"].to_dataset()})


def _np_pointwise(data, b_draws):
    eta = np.einsum("cdp,np->cdn", b_draws, data["X"])
    return np_bernoulli(data["l"], eta)


def test_potential_loo_matches_softbernoulli(data, sampled):
    model, idata = sampled
    X, l = data["X"], data["l"]
    ours = sb.compute_log_likelihood(_posterior_only(idata), model)
    assert list(ours["log_likelihood"]["y"].dims) == ["chain", "draw", "y_dim_0"]
    assert ours["log_likelihood"]["y"].shape == (2, 200, N)

    with pm.Model() as soft_model:
        b = pm.Normal("b", 0.0, 2.5, shape=P_COV)
        sb.SoftBernoulli("y", logit_p=X @ b, observed=l)
    theirs = pm.compute_log_likelihood(_posterior_only(idata), model=soft_model, progressbar=False)

    ref = _np_pointwise(data, idata["posterior"]["b"].values)
    np.testing.assert_allclose(ours["log_likelihood"]["y"].values, ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(
        theirs["log_likelihood"]["y"].values, ours["log_likelihood"]["y"].values, atol=1e-12
    )
    loo_ours, loo_theirs = az.loo(ours, pointwise=True), az.loo(theirs, pointwise=True)
    print(f"elpd_loo: potential {loo_ours.elpd!r}, SoftBernoulli {loo_theirs.elpd!r}")
    assert loo_ours.elpd == pytest.approx(loo_theirs.elpd, abs=1e-9)
    np.testing.assert_allclose(loo_ours.elpd_i.values, loo_theirs.elpd_i.values, atol=1e-10)
    np.testing.assert_allclose(loo_ours.pareto_k.values, loo_theirs.pareto_k.values, atol=1e-8)
    cmp = az.compare({"potential": ours, "soft": theirs}, round_to="none")
    assert cmp["elpd"].to_numpy() == pytest.approx(loo_ours.elpd, abs=1e-9)


def test_duplicated_form_gives_per_observation_terms(data, sampled):
    _, idata = sampled
    X, l = data["X"], data["l"]
    X_dup, y_dup, w_dup, obs = sb.expand_soft_labels(X, l)
    with pm.Model() as dup_model:
        b = pm.Normal("b", 0.0, 2.5, shape=P_COV)
        sb.WeightedBernoulli(
            "y", labels=y_dup.astype(float), logit_p=X_dup @ b, weights=w_dup, obs_index=obs
        )
    out = sb.compute_log_likelihood(_posterior_only(idata), dup_model)
    got = out["log_likelihood"]["y"]
    assert got.shape == (2, 200, N)  # one term per ORIGINAL observation, not 2N
    ref = _np_pointwise(data, idata["posterior"]["b"].values)
    np.testing.assert_allclose(got.values, ref, rtol=1e-12, atol=1e-13)


def test_compiled_once_and_chunking_is_invisible(data, sampled, monkeypatch):
    model, idata = sampled
    calls = []
    real = sb_ll.pm_compile

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sb_ll, "pm_compile", counting)
    chunked = sb.compute_log_likelihood(
        _posterior_only(idata), model, chunk_size=7, extend_inferencedata=False
    )
    assert len(calls) == 1
    ref = _np_pointwise(data, idata["posterior"]["b"].values)
    np.testing.assert_allclose(chunked["y"].values, ref, rtol=1e-12, atol=1e-13)


def test_softbernoulli_posterior_predictive_draws_hard_labels(data, sampled):
    _, idata = sampled
    X, l = data["X"], data["l"]
    with pm.Model():
        b = pm.Normal("b", 0.0, 2.5, shape=P_COV)
        sb.SoftBernoulli("y", logit_p=X @ b, observed=l)
        pp = pm.sample_posterior_predictive(idata, progressbar=False, random_seed=3)
    y = pp["posterior_predictive"]["y"].values
    assert y.shape == (2, 200, N)
    assert set(np.unique(y)) == {0.0, 1.0}
    q = expit(np.einsum("cdp,np->cdn", idata["posterior"]["b"].values, X))
    # 400 Bernoulli draws per point: the overall mean matches the predicted q tightly
    assert abs(y.mean() - q.mean()) < 0.02


# --------------------------------------------------------------------------- no sampling needed


def _fake_posterior(rng, **shapes):
    return xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset(
                {
                    k: (("chain", "draw", *[f"{k}_dim_{i}" for i in range(len(s))]), v)
                    for k, (s, v) in {
                        k: (s, f(rng, (2, 25, *s))) for k, (s, f) in shapes.items()
                    }.items()
                },
                coords={"chain": [0, 1], "draw": np.arange(25)},
            )
        }
    )


def _normal(rng, size):
    return rng.normal(size=size)


def test_multiclass_pointwise(data):
    X, L, w = data["X"], data["L"], data["w"]
    X_dup, y_dup, w_dup, obs = sb.expand_soft_labels(X, L, w)
    idata = _fake_posterior(data["rng"], B=((P_COV, K), _normal))
    B = idata["posterior"]["B"].values
    ref = w * np_categorical(L, np.einsum("np,cdpk->cdnk", X, B))
    with pm.Model() as direct:
        Bv = pm.Normal("B", shape=(P_COV, K))
        sb.WeightedCategorical("c", labels=L, logits=X @ Bv, weights=w)
    with pm.Model() as dup:
        Bv = pm.Normal("B", shape=(P_COV, K))
        sb.WeightedCategorical(
            "c", labels=np.eye(K)[y_dup], logits=X_dup @ Bv, weights=w_dup, obs_index=obs
        )
    with pm.Model() as soft:
        Bv = pm.Normal("B", shape=(P_COV, K))
        sb.SoftCategorical("c", logits=X @ Bv, observed=L, weights=w)
    a = sb.compute_log_likelihood(idata.copy(), direct)["log_likelihood"]["c"].values
    b = sb.compute_log_likelihood(idata.copy(), dup)["log_likelihood"]["c"].values
    c = pm.compute_log_likelihood(idata.copy(), model=soft, progressbar=False)
    c = c["log_likelihood"]["c"].values
    for got in (a, b, c):
        assert got.shape == (2, 25, N)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_transformed_parameters_p_form_dims_and_observed_mix(data):
    """Posterior holds constrained values; mixed observed + potential; named obs dim."""
    X, l = data["X"], data["l"]
    rng = data["rng"]
    idata = _fake_posterior(
        rng,
        b=((P_COV,), _normal),
        s=((), lambda r, size: r.gamma(2.0, 0.25, size=size)),  # moderate logits
    )
    z = rng.normal(size=5)
    with pm.Model(coords={"obs": [f"o{i}" for i in range(N)]}) as model:
        b = pm.Normal("b", shape=P_COV)
        s = pm.HalfNormal("s")
        pm.Normal("z", 0.0, s, observed=z)
        sb.WeightedBernoulli("y", labels=l, p=pm.math.sigmoid(s * (X @ b)), dims="obs")
    out = sb.compute_log_likelihood(idata, model)
    assert out is idata  # extended in place and returned, like PyMC
    ll = idata["log_likelihood"]
    assert set(ll.data_vars) == {"y", "z"}
    assert ll["y"].dims == ("chain", "draw", "obs")
    assert list(ll["y"]["obs"].values[:2]) == ["o0", "o1"]
    bs, ss = idata["posterior"]["b"].values, idata["posterior"]["s"].values
    eta = ss[..., None] * np.einsum("cdp,np->cdn", bs, X)
    np.testing.assert_allclose(ll["y"].values, np_bernoulli(l, eta), rtol=1e-10, atol=1e-12)
    z_ref = -0.5 * (z / ss[..., None]) ** 2 - np.log(ss[..., None]) - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(ll["z"].values, z_ref, rtol=1e-12)
    only_y = sb.compute_log_likelihood(idata, model, var_names=["y"], extend_inferencedata=False)
    assert set(only_y.data_vars) == {"y"}


def test_registration_survives_model_cloning(data):
    X, l = data["X"], data["l"]
    with pm.Model() as model:
        b = pm.Normal("b", shape=P_COV)
        pot = sb.WeightedBernoulli("y", labels=l, logit_p=X @ b)
    assert pot in model.potentials
    idata = _fake_posterior(data["rng"], b=((P_COV,), _normal))
    ref = _np_pointwise(data, idata["posterior"]["b"].values)
    for clone in (clone_model(model), pm.do(model, {}), model):
        out = sb.compute_log_likelihood(idata.copy(), clone, extend_inferencedata=False)
        np.testing.assert_allclose(out["y"].values, ref, rtol=1e-12, atol=1e-13)


def test_plain_potential_is_not_a_likelihood():
    with pm.Model() as model:
        x = pm.Normal("x")
        pm.Potential("pen", -(x**2))
    idata = _fake_posterior(np.random.default_rng(0), x=((), _normal))
    with pytest.raises(ValueError, match="no observed variables and no softbayes"):
        sb.compute_log_likelihood(idata, model)
    with pytest.raises(ValueError, match="unknown: \\['pen'\\]"):
        sb.compute_log_likelihood(idata, model, var_names=["pen"])


def test_per_draw_fallback_when_graph_cannot_be_batched(data, monkeypatch):
    X, l = data["X"], data["l"]
    with pm.Model() as model:
        b = pm.Normal("b", shape=P_COV)
        sb.WeightedBernoulli("y", labels=l, logit_p=X @ b)
    idata = _fake_posterior(data["rng"], b=((P_COV,), _normal))

    def refuse(*args, **kwargs):
        raise NotImplementedError("no batched form")

    monkeypatch.setattr(sb_ll, "vectorize_graph", refuse)
    out = sb.compute_log_likelihood(idata, model, extend_inferencedata=False)
    ref = _np_pointwise(data, idata["posterior"]["b"].values)
    np.testing.assert_allclose(out["y"].values, ref, rtol=1e-12, atol=1e-13)
