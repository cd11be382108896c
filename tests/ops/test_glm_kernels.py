"""The fused GLM kernels agree with the reference elementwise expressions."""

from __future__ import annotations

import importlib.util

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from numba import njit
from scipy.special import expit

import softbayes as sb
from softbayes.data.aggregation import aggregate_rows
from softbayes.data.duplication import expand_soft_labels
from softbayes.distributions.glm import ContinuousBernoulliGLM, WeightedBernoulliGLM
from softbayes.math import glm_kernels as gk
from softbayes.math.continuous_bernoulli import cb_icdf, cb_logp, cb_mean
from softbayes.math.soft_labels import soft_bernoulli_logp
from softbayes.ops import (
    FAMILY_CODES,
    SUFFICIENT_STATISTICS_MIN_SIZE,
    glm_logp,
    glm_rows,
    soft_logistic_glm_logp,
)

FAMILIES = ["weighted_bernoulli", "continuous_bernoulli"]
HAS_JAX = importlib.util.find_spec("jax") is not None


def _reference(family, X, labels, beta, weights=None):
    """NumPy reference: summed log-likelihood, gradient, rows."""
    eta = X @ beta
    if family == "weighted_bernoulli":
        rows, mean = soft_bernoulli_logp(labels, eta), expit(eta)
    else:
        rows, mean = cb_logp(labels, eta), cb_mean(eta)
    w = np.ones_like(eta) if weights is None else weights
    return np.sum(w * rows), X.T @ (w * (labels - mean)), w * rows


def _data(rng, n=600, d=5, scale=1.0, extreme=True):
    X = rng.normal(size=(n, d))
    beta = rng.normal(size=d) * scale
    labels = rng.random(n)
    labels[: n // 10] = 0.0
    labels[n // 10 : n // 5] = 1.0
    if extreme:  # rows with |eta| from 0 to 700, both signs
        k = n // 6
        X[-k:] = 0.0
        X[-k:, 0] = np.linspace(-700, 700, k) / beta[0]
        X[-1, 0] = 0.0
    return X, labels, beta, rng.random(n) * 3


def _close(a, b, scale):
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * float(np.max(scale)))


# -------------------------------------------------------------------------------------------
# The vectorized elementary functions
# -------------------------------------------------------------------------------------------
@njit
def _apply(fn_id, x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        if fn_id == 0:
            out[i] = gk.vexp_neg(x[i])
        elif fn_id == 1:
            out[i] = gk.vlog1p(x[i])
        else:
            out[i] = gk.vlog(x[i])
    return out


def test_vector_math_is_accurate():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(0, 708, 20000), rng.exponential(1, 20000), [0.0, 1e-300]])
    np.testing.assert_allclose(_apply(0, a), np.exp(-a), rtol=4e-16, atol=0)
    assert _apply(0, np.array([708.5, 1e4, np.inf]))[0] == 0.0
    u = np.concatenate([rng.uniform(-0.25, 1, 20000), [0.0, 1e-300, 1.0, -0.25]])
    np.testing.assert_allclose(_apply(1, u), np.log1p(u), rtol=1e-15, atol=0)
    x = np.concatenate([10 ** rng.uniform(-300, 300, 20000), [1.0, 2.0, np.sqrt(2)]])
    np.testing.assert_allclose(_apply(2, x), np.log(x), rtol=4e-16, atol=1e-300)


# -------------------------------------------------------------------------------------------
# Raw numba kernels
# -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("weighted", [False, True])
def test_kernel_matches_reference(family, weighted):
    rng = np.random.default_rng(1)
    X, labels, beta, w = _data(rng)
    w = w if weighted else None
    code = FAMILY_CODES[family]
    val, grad, rows = _reference(family, X, labels, beta, w)
    assert np.abs(X @ beta).max() >= 699.0
    ww = np.empty(0) if w is None else w
    v, g = gk.glm_logp_dlogp(code, beta, X, labels, ww)
    scale = np.sum(np.abs(rows))
    _close(v, val, scale)
    _close(g, grad, np.abs(X).T @ np.abs(ww if weighted else np.ones_like(labels)))
    _close(gk.glm_rows(code, beta, X, labels, ww), rows, 1.0)
    cot = rng.normal(size=labels.size)
    eta = X @ beta
    mean = expit(eta) if family == "weighted_bernoulli" else cb_mean(eta)
    vjp = X.T @ (cot * (ww if weighted else 1.0) * (labels - mean))
    _close(gk.glm_vjp(code, beta, X, labels, ww, cot), vjp, np.abs(X).T @ np.abs(cot) * 3)


@pytest.mark.parametrize("family", FAMILIES)
def test_kernel_sufficient_statistics_form(family):
    rng = np.random.default_rng(2)
    X, labels, beta, w = _data(rng)
    code = FAMILY_CODES[family]
    v, g = gk.glm_logp_dlogp(code, beta, X, labels, w)
    v0, g0 = gk.glm_logp_dlogp(code, beta, X, np.empty(0), w)
    s = X.T @ (w * labels)
    scale = np.sum(np.abs(w * (X @ beta))) + 1.0
    _close(v0 + s @ beta, v, scale)
    _close(g0 + s, g, np.abs(X).T @ w)


def test_kernel_float32_design():
    rng = np.random.default_rng(3)
    X, labels, beta, w = _data(rng, extreme=False)
    X32 = X.astype(np.float32)
    for family, code in FAMILY_CODES.items():
        v, g = gk.glm_logp_dlogp(code, beta, X32, labels, w)
        val, grad, rows = _reference(family, X32.astype(np.float64), labels, beta, w)
        _close(v, val, np.sum(np.abs(rows)))
        _close(g, grad, np.abs(X).T @ w)


def test_kernel_result_independent_of_block_split():
    # More rows than one block; results are added in block order.
    rng = np.random.default_rng(4)
    X, labels, beta, w = _data(rng, n=3 * gk.BLOCK + 17, extreme=False)
    a = gk.glm_logp_dlogp(0, beta, X, labels, w)
    b = gk.glm_logp_dlogp(0, beta, X, labels, w)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    val, _, rows = _reference("weighted_bernoulli", X, labels, beta, w)
    _close(a[0], val, np.sum(np.abs(rows)))


# -------------------------------------------------------------------------------------------
# PyTensor Ops, rewrites, gradients
# -------------------------------------------------------------------------------------------
def _graph(family, X, labels, beta, w):
    fast = glm_logp(family, X, labels, beta, w)
    eta = pt.dot(X, beta)
    rows = soft_bernoulli_logp(labels, eta) if family == "weighted_bernoulli" else cb_logp(
        labels, eta
    )
    ref = pt.sum(rows if w is None else w * rows)
    return fast, ref


def _op_names(fn):
    return [type(node.op).__name__ for node in fn.maker.fgraph.toposort()]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_logp_dlogp_is_one_fused_node(family, weighted):
    rng = np.random.default_rng(5)
    X, labels, beta0, w = _data(rng)
    w = w if weighted else None
    b = pt.vector("b", shape=beta0.shape)
    fast, ref = _graph(family, X, labels, b, w)
    f = pytensor.function([b], [fast, pt.grad(fast, b)])
    f_ref = pytensor.function([b], [ref, pt.grad(ref, b)])
    names = _op_names(f)
    assert names.count("GLMLogpDlogp") == 1
    assert "GLMRows" not in names and "GLMVJP" not in names
    v, g = f(beta0)
    vr, gr = f_ref(beta0)
    _close(v, vr, abs(vr))
    _close(g, gr, np.abs(gr).max() + np.abs(X).sum())


@pytest.mark.parametrize("family", FAMILIES)
def test_sufficient_statistics_rewrite(family):
    rng = np.random.default_rng(6)
    n = SUFFICIENT_STATISTICS_MIN_SIZE // 4 + 10
    X, labels, beta0, w = _data(rng, n=n, d=4, extreme=False)
    b = pt.vector("b", shape=(4,))
    fast, ref = _graph(family, X, labels, b, w)
    f = pytensor.function([b], [fast, pt.grad(fast, b)])
    consts = [v for v in pytensor.graph.traversal.graph_inputs(f.maker.fgraph.outputs)
              if getattr(v, "name", None) == "glm_sufficient_statistic"]
    assert consts, "the sufficient-statistics rewrite did not fire"
    f_ref = pytensor.function([b], [ref, pt.grad(ref, b)])
    v, g = f(beta0)
    vr, gr = f_ref(beta0)
    _close(v, vr, np.sum(np.abs(w * (X @ beta0))) + 1)
    _close(g, gr, np.abs(X).T @ w)


@pytest.mark.parametrize("family", FAMILIES)
def test_rows_and_general_cotangent(family):
    rng = np.random.default_rng(7)
    X, labels, beta0, w = _data(rng, n=300, extreme=False)
    b = pt.vector("b", shape=beta0.shape)
    rows = glm_rows(family, X, labels, b, w)
    c = rng.normal(size=300)
    cost = pt.dot(c, rows)
    f = pytensor.function([b], [rows, pt.grad(cost, b)])
    assert "GLMVJP" in _op_names(f)
    r, g = f(beta0)
    _, _, rows_ref = _reference(family, X, labels, beta0, w)
    eta = X @ beta0
    mean = expit(eta) if family == "weighted_bernoulli" else cb_mean(eta)
    _close(r, rows_ref, 1.0)
    _close(g, X.T @ (c * w * (labels - mean)), np.abs(X).T @ np.abs(c * w))


@pytest.mark.parametrize("family", FAMILIES)
def test_second_order_and_data_gradients(family):
    rng = np.random.default_rng(8)
    n, d = 200, 3
    X, labels, beta0, w = _data(rng, n=n, d=d, extreme=False)
    b = pt.vector("b", shape=(d,))
    Xs, ls, ws = pt.matrix("X", shape=(n, d)), pt.vector("l", shape=(n,)), pt.vector("w")
    fast, ref = _graph(family, Xs, ls, b, ws)
    wrt = [b, Xs, ls, ws]
    f = pytensor.function([b, Xs, ls, ws], [pt.hessian(fast, b), *pt.grad(fast, wrt)])
    f_ref = pytensor.function([b, Xs, ls, ws], [pt.hessian(ref, b), *pt.grad(ref, wrt)])
    for a, r in zip(f(beta0, X, labels, w), f_ref(beta0, X, labels, w), strict=True):
        _close(a, r, np.abs(r).max() + 1)


@pytest.mark.skipif(not HAS_JAX, reason="jax not installed")
@pytest.mark.parametrize("family", FAMILIES)
def test_jax_backend(family):
    rng = np.random.default_rng(9)
    X, labels, beta0, w = _data(rng, n=400, extreme=False)
    b = pt.vector("b", shape=beta0.shape)
    fast, ref = _graph(family, X, labels, b, w)
    f = pytensor.function([b], [fast, pt.grad(fast, b)], mode="JAX")
    f_ref = pytensor.function([b], [ref, pt.grad(ref, b)])
    for a, r in zip(f(beta0), f_ref(beta0), strict=True):
        _close(np.asarray(a), r, np.abs(r).max() + 1)


@pytest.mark.skipif(not HAS_JAX, reason="jax not installed")
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("x_dtype", ["float64", "float32"])
def test_jax_conversion_of_every_op_with_extremes(family, x_dtype):
    # |eta| up to 700, labels exactly 0 and 1, weights; rows, summed logp + gradient and a
    # general cotangent, against the NumPy reference on the (rounded) design.
    rng = np.random.default_rng(13)
    X, labels, beta0, w = _data(rng, n=300, extreme=True)
    Xd = X.astype(x_dtype)
    Xr = Xd.astype(np.float64)
    b = pt.vector("b", shape=beta0.shape)
    rows = glm_rows(family, Xd, labels, b, w, dtype=x_dtype)
    c = rng.normal(size=300)
    f = pytensor.function([b], [rows, pt.sum(rows), pt.grad(pt.sum(rows), b),
                                pt.grad(pt.dot(c, rows), b)], mode="JAX")
    r, v, g, gc = (np.asarray(a) for a in f(beta0))
    val, grad, rows_ref = _reference(family, Xr, labels, beta0, w)
    eta = Xr @ beta0
    mean = expit(eta) if family == "weighted_bernoulli" else cb_mean(eta)
    _close(r, rows_ref, 1.0)
    _close(v, val, np.sum(np.abs(rows_ref)))
    _close(g, grad, np.abs(Xr).T @ w)
    _close(gc, Xr.T @ (c * w * (labels - mean)), np.abs(Xr).T @ np.abs(c * w))


def test_float32_option():
    rng = np.random.default_rng(10)
    X, labels, beta0, w = _data(rng, n=300, extreme=False)
    b = pt.vector("b", shape=beta0.shape)
    fast = soft_logistic_glm_logp(X, labels, b, w, dtype="float32")
    assert fast.dtype == "float64"
    v = pytensor.function([b], fast)(beta0)
    val, _, rows = _reference("weighted_bernoulli", X.astype(np.float32).astype(float), labels,
                              beta0, w)
    _close(v, val, np.sum(np.abs(rows)))


# -------------------------------------------------------------------------------------------
# Exact aggregation
# -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_aggregate_rows_is_exact(family):
    rng = np.random.default_rng(11)
    base = rng.normal(size=(40, 3))
    pick = rng.integers(0, 40, size=500)
    X = base[pick]
    labels = rng.random(500)
    labels[:30] = 0.0
    labels[30:60] = 1.0
    w = rng.random(500) * 2
    w[5] = 0.0
    Xa, la, wa, index = aggregate_rows(X, labels, w)
    assert Xa.shape[0] == np.unique(pick).size
    np.testing.assert_array_equal(Xa[index], X)
    assert np.all((la >= 0) & (la <= 1))
    np.testing.assert_allclose(wa.sum(), w.sum(), rtol=1e-14)
    for scale in (0.3, 5.0, 200.0):
        beta = rng.normal(size=3) * scale
        v, g, rows = _reference(family, X, labels, beta, w)
        va, ga, _ = _reference(family, Xa, la, beta, wa)
        _close(va, v, np.sum(np.abs(rows)))
        _close(ga, g, np.abs(X).T @ w)


def test_aggregate_duplicated_data_set_recovers_soft_labels():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(50, 2))
    labels = rng.random(50)
    X_dup, y_dup, w_dup, _ = expand_soft_labels(X, labels)
    Xa, la, wa, index = aggregate_rows(X_dup, y_dup, w_dup)
    np.testing.assert_array_equal(Xa, X)
    np.testing.assert_allclose(la, labels, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(wa, 1.0, rtol=1e-15)
    np.testing.assert_array_equal(index, np.tile(np.arange(50), 2))


def test_aggregate_rows_signed_zero_and_zero_weights():
    X = np.array([[0.0, 1.0], [-0.0, 1.0], [2.0, 3.0]])
    Xa, la, wa, index = aggregate_rows(X, [0.2, 0.6, 1.0], [0.0, 0.0, 1.0])
    assert Xa.shape == (2, 2) and list(index) == [0, 0, 1]
    assert wa[0] == 0.0 and la[0] == pytest.approx(0.4)


# -------------------------------------------------------------------------------------------
# PyMC model level
# -------------------------------------------------------------------------------------------
def test_weighted_bernoulli_glm_potential_matches_weighted_bernoulli():
    rng = np.random.default_rng(13)
    n, d = 300, 3
    X = rng.normal(size=(n, d))
    labels = rng.random(n)
    w = rng.random(n)
    models = []
    for fast in (True, False):
        with pm.Model() as m:
            b = pm.Normal("b", 0, 2.5, shape=d)
            lab = pm.Data("lab", labels)
            if fast:
                WeightedBernoulliGLM("ll", X=X, labels=lab, beta=b, weights=w)
            else:
                sb.WeightedBernoulli("ll", labels=lab, logit_p=pt.dot(X, b), weights=w)
        models.append(m)
    point = {"b": rng.normal(size=d)}
    fns = [m.logp_dlogp_function(ravel_inputs=True) for m in models]
    for f in fns:
        f.set_extra_values({})
    (v1, g1), (v2, g2) = (f(point["b"]) for f in fns)
    _close(v1, v2, abs(v2))
    _close(g1, g2, np.abs(g2).max() + 1)
    names = _op_names(fns[0]._pytensor_function)
    assert names.count("GLMLogpDlogp") == 1

    draws = rng.normal(size=(2, 5, d))
    idatas = []
    import xarray as xr

    for m in models:
        post = xr.Dataset({"b": (("chain", "draw", "b_dim_0"), draws)},
                          coords={"chain": [0, 1], "draw": np.arange(5)})
        idatas.append(sb.compute_log_likelihood(xr.DataTree.from_dict({"posterior": post}),
                                                model=m, extend_inferencedata=False))
    np.testing.assert_allclose(idatas[0]["ll"].values, idatas[1]["ll"].values, rtol=1e-12,
                               atol=1e-12)

    # Labels as pm.Data stay replaceable.
    with models[0]:
        pm.set_data({"lab": 1.0 - labels})
    f = models[0].logp_dlogp_function(ravel_inputs=True)
    f.set_extra_values({})
    val, _, _ = _reference("weighted_bernoulli", X, 1.0 - labels, point["b"], w)
    prior = pm.logp(pm.Normal.dist(0, 2.5), point["b"]).eval().sum()
    _close(f(point["b"])[0], val + prior, abs(val))


def test_continuous_bernoulli_glm_matches_distribution():
    rng = np.random.default_rng(14)
    n, d = 300, 3
    X = rng.normal(size=(n, d))
    y = cb_icdf(rng.random(n), X @ rng.normal(size=d))
    with pm.Model() as fast:
        b = pm.Normal("b", 0, 2.5, shape=d)
        ContinuousBernoulliGLM("y", X=X, beta=b, observed=y)
    with pm.Model() as ref:
        b = pm.Normal("b", 0, 2.5, shape=d)
        sb.ContinuousBernoulli("y", logit_p=pt.dot(X, b), observed=y)
    point = {"b": rng.normal(size=d)}
    f_fast, f_ref = (m.logp_dlogp_function(ravel_inputs=True) for m in (fast, ref))
    for f in (f_fast, f_ref):
        f.set_extra_values({})
    (v1, g1), (v2, g2) = f_fast(point["b"]), f_ref(point["b"])
    _close(v1, v2, abs(v2))
    _close(g1, g2, np.abs(g2).max() + 1)
    assert _op_names(f_fast._pytensor_function).count("GLMLogpDlogp") == 1
    pw = fast.compile_logp(sum=False, jacobian=False)
    pw_ref = ref.compile_logp(sum=False, jacobian=False)
    _close(pw(point)[1], pw_ref(point)[1], 1.0)
