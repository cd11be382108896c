"""softbayes.ContinuousBernoulli and softbayes.math.continuous_bernoulli.

Every reference here is independent of the code under test: mpmath at high precision
(definitions in eta, or the paper's closed forms in lambda), numerical differentiation
(mpmath.diff) and quadrature (scipy.integrate.quad) -- never earlier output of the code.
"""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

import mpmath as mp
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.logprob.transforms import LogOddsTransform
from pymc.logprob.utils import ParameterValueError
from pymc.testing import (
    BaseTestDistributionRandom,
    Domain,
    R,
    Unit,
    assert_support_point_is_expected,
    check_icdf,
    check_logcdf,
    check_logp,
)
from scipy import integrate, stats

import softbayes as sb
from softbayes import ContinuousBernoulli
from softbayes.math import continuous_bernoulli as cbm

# --------------------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------------------

HI_DPS = 400  # enough for the cancellation 1 - e^{-700} in the CDF near x = 1
DIFF_DPS = 60


def _mpf(v):
    return mp.mpf(float(v))


def ref_log_partition(eta):
    """A(eta) = log(expm1(eta) / eta), A(0) = 0 (definition)."""
    eta = mp.mpf(eta)
    return mp.mpf(0) if eta == 0 else mp.log(mp.expm1(eta) / eta)


def ref_logp(x, eta):
    with mp.workdps(HI_DPS):
        return +(_mpf(eta) * _mpf(x) - ref_log_partition(_mpf(eta)))


def ref_logcdf(x, eta):
    with mp.workdps(HI_DPS):
        x, eta = _mpf(x), _mpf(eta)
        if x == 0:
            return mp.mpf("-inf")
        if eta == 0:
            return mp.log(x)
        return +mp.log(mp.expm1(eta * x) / mp.expm1(eta))


def ref_icdf(u, eta):
    with mp.workdps(HI_DPS):
        u, eta = _mpf(u), _mpf(eta)
        if eta == 0:
            return u
        return +(mp.log((1 - u) + u * mp.exp(eta)) / eta)


def ref_mean(eta):
    """A'(eta) by numerical differentiation at high precision."""
    with mp.workdps(DIFF_DPS):
        return +mp.diff(ref_log_partition, _mpf(eta))


def ref_variance(eta):
    """A''(eta) by numerical differentiation at high precision."""
    with mp.workdps(DIFF_DPS):
        return +mp.diff(ref_log_partition, _mpf(eta), 2)


def ref_entropy(eta):
    with mp.workdps(DIFF_DPS):
        return +(ref_log_partition(_mpf(eta)) - _mpf(eta) * ref_mean(eta))


def ref_dlogp_deta(x, eta):
    with mp.workdps(DIFF_DPS):
        return +mp.diff(lambda e: _mpf(x) * e - ref_log_partition(e), _mpf(eta))


def ref_dlogp_dx(x, eta):
    with mp.workdps(DIFF_DPS):
        return +mp.diff(lambda t: t * _mpf(eta) - ref_log_partition(_mpf(eta)), _mpf(x))


# The paper's closed forms in lambda (Loaiza-Ganem & Cunningham 2019), for pymc.testing.
def _lam(p=None, logit_p=None):
    if p is not None:
        return mp.mpf(float(p))
    return 1 / (1 + mp.exp(-mp.mpf(float(logit_p))))


def lam_logp(value, p=None, logit_p=None):
    with mp.workdps(50):
        lam, x = _lam(p, logit_p), mp.mpf(float(value))
        if lam == mp.mpf(1) / 2:
            log_c = mp.log(2)
        else:
            log_c = mp.log(2 * mp.atanh(1 - 2 * lam) / (1 - 2 * lam))
        return float(log_c + x * mp.log(lam) + (1 - x) * mp.log(1 - lam))


def lam_logcdf(value, p=None, logit_p=None):
    with mp.workdps(50):
        lam, x = _lam(p, logit_p), mp.mpf(float(value))
        if lam == mp.mpf(1) / 2:
            return float(mp.log(x))
        cdf = (lam**x * (1 - lam) ** (1 - x) + lam - 1) / (2 * lam - 1)
        return float(mp.log(cdf))


def lam_icdf(q, p=None, logit_p=None):
    with mp.workdps(50):
        lam, u = _lam(p, logit_p), mp.mpf(float(q))
        if lam == mp.mpf(1) / 2:
            return float(u)
        return float(mp.log((u * (2 * lam - 1) + 1 - lam) / (1 - lam)) / mp.log(lam / (1 - lam)))


def np_lam_cdf(x, lam):
    """NumPy closed form of the CDF in lambda (for the KS test)."""
    return (lam**x * (1 - lam) ** (1 - x) + lam - 1) / (2 * lam - 1)


def np_lam_icdf(u, lam):
    """NumPy closed form of the quantile in lambda (reference draws)."""
    return np.log((u * (2 * lam - 1) + 1 - lam) / (1 - lam)) / np.log(lam / (1 - lam))


# --------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------

# eta from 1e-8 to 1e4 in both signs: the series/closed-form switch at |eta| = 1 and its
# neighbours, and "beyond 700".
ETAS = [0.0] + [
    s * a
    for a in (1e-8, 1e-3, 0.5, 0.999, 1.0, 1.001, 2.0, 5.0, 40.0, 100.0, 700.0, 1e4)
    for s in (1.0, -1.0)
]
XS = [0.0, 1e-12, 0.3, 0.5, 1 - 1e-12, 1.0]
GRID_E, GRID_X = (a.ravel() for a in np.meshgrid(ETAS, XS, indexing="ij"))


def _err(got, ref, *, mixed):
    """|got - ref| / max(1, |ref|) (mixed) or / |ref| (relative); inf matched exactly."""
    got = float(got)
    if mp.isinf(ref) or not math.isfinite(got):
        return 0.0 if got == float(ref) else math.inf
    d = abs(mp.mpf(got) - ref)
    den = max(abs(ref), 1) if mixed else abs(ref)
    return float(d / den) if den != 0 else float(d)


def _worst(gots, refs, *, mixed):
    return max(_err(g, r, mixed=mixed) for g, r in zip(gots, refs, strict=True))


@pytest.fixture(scope="module")
def refs():
    e, x = GRID_E, GRID_X
    return {
        "logp": [ref_logp(xi, ei) for xi, ei in zip(x, e, strict=True)],
        "logcdf": [ref_logcdf(xi, ei) for xi, ei in zip(x, e, strict=True)],
        "icdf": [ref_icdf(xi, ei) for xi, ei in zip(x, e, strict=True)],
        "dlogp_deta": [ref_dlogp_deta(xi, ei) for xi, ei in zip(x, e, strict=True)],
        "dlogp_dx": [ref_dlogp_dx(xi, ei) for xi, ei in zip(x, e, strict=True)],
        "mean": [ref_mean(ei) for ei in e],
        "variance": [ref_variance(ei) for ei in e],
        "entropy": [ref_entropy(ei) for ei in e],
    }


def _compile_grid(dtype, which):
    """The distribution's logp and its gradients, or its logcdf / icdf and the moments."""
    e = pt.vector("e", dtype=dtype)
    x = pt.vector("x", dtype=dtype)
    rv = ContinuousBernoulli.dist(logit_p=e)
    if which == "logp":
        logp = pm.logp(rv, x)
        d_e, d_x = pytensor.grad(logp.sum(), [e, x])
        outs = {"logp": logp, "dlogp_deta": d_e, "dlogp_dx": d_x}
        mode = None  # the default (numba) backend: what sampling runs
    else:
        outs = {
            "logcdf": pm.logcdf(rv, x),
            "icdf": pm.icdf(rv, x),
            "mean": sb.continuous_bernoulli_mean(logit_p=e),
            "variance": sb.continuous_bernoulli_variance(logit_p=e),
            "entropy": sb.continuous_bernoulli_entropy(logit_p=e),
        }
        # Cold numba compilation of this graph costs ~30 s; the numba backend runs
        # logcdf / icdf in check_logcdf / check_icdf below.
        mode = "FAST_COMPILE"
    fn = pytensor.function([x, e], list(outs.values()), mode=mode, on_unused_input="ignore")
    return lambda xv, ev: dict(zip(outs, fn(xv, ev), strict=True))


@pytest.fixture(scope="module")
def grid64():
    out = _compile_grid("float64", "logp")(GRID_X, GRID_E)
    out.update(_compile_grid("float64", "rest")(GRID_X, GRID_E))
    return out


@pytest.fixture(scope="module")
def grid32():
    with pytensor.config.change_flags(floatX="float32"):
        x32, e32 = GRID_X.astype(np.float32), GRID_E.astype(np.float32)
        out = _compile_grid("float32", "logp")(x32, e32)
        out.update(_compile_grid("float32", "rest")(x32, e32))
    return x32, e32, out


# Mixed = relative, absolute where |ref| < 1. Relative-only for the quantities that are
# relatively accurate over the whole grid.
TOL64 = {
    "logp": (1e-12, True),
    "logcdf": (1e-12, True),
    "icdf": (1e-12, False),
    "mean": (1e-12, False),
    "variance": (1e-12, False),
    "entropy": (1e-12, True),
    "dlogp_deta": (1e-9, True),
    "dlogp_dx": (1e-9, True),
}


@pytest.mark.parametrize("name", list(TOL64))
def test_pytensor_float64_against_mpmath(grid64, refs, name):
    tol, mixed = TOL64[name]
    assert grid64[name].dtype == np.float64
    assert _worst(grid64[name], refs[name], mixed=mixed) <= tol


def test_logcdf_relative_on_both_tails(grid64, refs):
    # Relative accuracy of log F, also where F is within 1e-12 of 1 (tiny log F), as long
    # as the value is a normal float64 (subnormal results carry fewer digits).
    pairs = [
        (g, r)
        for g, r in zip(grid64["logcdf"], refs["logcdf"], strict=True)
        if mp.isfinite(r) and (r == 0 or abs(r) > 1e-300)
    ]
    assert len(pairs) > 100
    assert max(_err(g, r, mixed=False) for g, r in pairs) <= 1e-12


NUMPY_FUNCS = {
    "logp": lambda x, e: cbm.cb_logp(x, e),
    "logcdf": lambda x, e: cbm.cb_logcdf(x, e),
    "icdf": lambda x, e: cbm.cb_icdf(x, e),
    "mean": lambda x, e: cbm.cb_mean(e),
    "variance": lambda x, e: cbm.cb_variance(e),
    "entropy": lambda x, e: cbm.cb_entropy(e),
}


@pytest.mark.parametrize("name", list(NUMPY_FUNCS))
def test_numpy_backend_against_mpmath(refs, name):
    with np.errstate(all="raise"):  # the NumPy path must not leak warnings
        got = NUMPY_FUNCS[name](GRID_X, GRID_E)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    tol, mixed = TOL64[name]
    assert _worst(got, refs[name], mixed=mixed) <= tol


def test_log_norm_and_partition_against_mpmath():
    etas = np.array(ETAS)
    with mp.workdps(HI_DPS):
        ref_a = [ref_log_partition(_mpf(e)) for e in etas]
        ref_c = [mp.log1p(mp.exp(_mpf(e))) - ref_log_partition(_mpf(e)) for e in etas]
    assert _worst(cbm.cb_log_partition(etas), ref_a, mixed=True) <= 1e-14
    assert _worst(cbm.cb_log_norm(etas), ref_c, mixed=False) <= 1e-14
    e = pt.dvector("e")
    fn = pytensor.function([e], [cbm.cb_log_partition(e), cbm.cb_log_norm(e)], mode="FAST_COMPILE")
    got_a, got_c = fn(etas)
    assert _worst(got_a, ref_a, mixed=True) <= 1e-14
    assert _worst(got_c, ref_c, mixed=False) <= 1e-14


def test_series_switch_is_smooth():
    # Both sides of the switch agree in value and slope (no jump at the switch).
    t = cbm.SERIES_SWITCH
    eta = np.array([np.nextafter(t, 0.0), t, np.nextafter(-t, 0.0), -t])
    for f in (cbm.cb_log_partition, cbm.cb_log_norm, cbm.cb_mean, cbm.cb_variance):
        v = f(eta)
        assert abs(v[0] - v[1]) <= 4e-16 * max(1.0, abs(v[1]))
        assert abs(v[2] - v[3]) <= 4e-16 * max(1.0, abs(v[3]))


# --------------------------------------------------------------------------------------
# The notes' reference values
# --------------------------------------------------------------------------------------

NOTES_LOG_C = {
    0.01: 1.5451975455128973,
    0.1: 1.0103385594908541,
    0.2: 0.83745988374427167,
    0.3: 0.75058775088045875,
    0.4: 0.70671745671622039,
    0.5: math.log(2.0),
}


def test_notes_reference_values():
    for lam, val in NOTES_LOG_C.items():
        for lam_ in (lam, 1 - lam):
            eta = math.log(lam_) - math.log1p(-lam_)
            np.testing.assert_allclose(cbm.cb_log_norm(eta), val, rtol=1e-14)
    eta = math.log(0.2) - math.log(0.8)
    xs = np.array([0, 0.1, 0.5, 0.9, 1])
    logp = [0.614316332430062, 0.475686896318073, -0.0788308481298834, -0.633348592577840]
    logp += [-0.771978028689829]
    np.testing.assert_allclose(cbm.cb_logp(xs, eta), logp, rtol=1e-13)
    np.testing.assert_allclose(sb.continuous_bernoulli_mean(p=0.2), 0.38801418711114837, 1e-14)
    np.testing.assert_allclose(
        sb.continuous_bernoulli_variance(p=0.2), 0.075897800806957505, rtol=1e-14
    )
    np.testing.assert_allclose(
        sb.continuous_bernoulli_entropy(p=0.2), -0.076414452803358783, rtol=1e-14
    )
    cdf = np.exp(cbm.cb_logcdf(np.array([0.1, 0.3, 0.5, 0.9]), eta))
    np.testing.assert_allclose(
        cdf, [0.172599248938501, 0.45366139281807, 0.666666666666667, 0.950433881667655], 1e-13
    )


def test_float32_variance_near_half():
    # PyTorch (notes) returns 0.2461 here in float32; the truth is 1/12 - tiny.
    with pytensor.config.change_flags(floatX="float32"):
        p = pt.fscalar("p")
        var = sb.continuous_bernoulli_variance(p=p)
        assert var.dtype == "float32"
        got = pytensor.function([p], var, mode="FAST_COMPILE")(np.float32(0.4989))
    np.testing.assert_allclose(got, float(ref_variance(math.log(0.4989 / 0.5011))), rtol=1e-5)
    np.testing.assert_allclose(
        cbm.cb_variance(np.float32(np.log(0.4989 / 0.5011))), 1 / 12, rtol=1e-5
    )


# --------------------------------------------------------------------------------------
# float32
# --------------------------------------------------------------------------------------

# Inputs are rounded to float32 first (1 - 1e-12 becomes 1.0); the reference is mpmath at
# the rounded inputs. |eta| = 700 and 1e4 are representable, and nothing in the
# computation overflows float32 (only e^{-|eta|} is formed), so they are tested as is.


@pytest.mark.parametrize("name", ["logp", "dlogp_deta", "dlogp_dx", "mean", "variance", "icdf"])
def test_pytensor_float32(grid32, name):
    x32, e32, out = grid32
    got = out[name]
    assert got.dtype == np.float32
    assert np.all(np.isfinite(got))
    if name == "logp":
        refs = [ref_logp(x, e) for x, e in zip(x32, e32, strict=True)]
    elif name == "dlogp_deta":
        refs = [ref_dlogp_deta(x, e) for x, e in zip(x32, e32, strict=True)]
    elif name == "dlogp_dx":
        refs = [ref_dlogp_dx(x, e) for x, e in zip(x32, e32, strict=True)]
    elif name == "icdf":
        refs = [ref_icdf(x, e) for x, e in zip(x32, e32, strict=True)]
    else:
        ref_fn = {"mean": ref_mean, "variance": ref_variance}[name]
        refs = [ref_fn(e) for e in e32]
    mixed = name in ("logp", "dlogp_deta", "dlogp_dx")
    assert _worst(got, refs, mixed=mixed) <= 1e-5


def test_numpy_float32_keeps_dtype():
    e = np.array(ETAS, dtype=np.float32)
    for f in (cbm.cb_mean, cbm.cb_variance, cbm.cb_entropy, cbm.cb_log_norm):
        assert f(e).dtype == np.float32
    assert cbm.cb_logp(np.float32(0.3), e).dtype == np.float32


# --------------------------------------------------------------------------------------
# Normalization and moments by quadrature
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def p_functions():
    p, x = pt.dscalar("p"), pt.dscalar("x")
    rv = ContinuousBernoulli.dist(p=p)
    fns = {
        "logp": pytensor.function([x, p], pm.logp(rv, x)),
        "logcdf": pytensor.function([x, p], pm.logcdf(rv, x)),
        "icdf": pytensor.function([x, p], pm.icdf(rv, x)),
    }
    return fns


LAMBDAS = [1e-6, 1e-3, 0.01, 0.1, 0.3, 0.4999, 0.5, 0.5001, 0.7, 0.9, 0.99, 0.999, 1 - 1e-6]


@pytest.fixture(scope="module")
def density(p_functions):
    logp = p_functions["logp"]
    return lambda xv, pv: math.exp(logp(xv, pv))


@pytest.mark.parametrize("lam", LAMBDAS)
def test_density_integrates_to_one(density, lam):
    kw = {"epsabs": 1e-14, "epsrel": 1e-13, "limit": 200}
    # |eta| up to ~14: the mass sits within ~1/|eta| of an edge; split there.
    pts = [0.0, 0.02, 0.1, 0.5, 0.9, 0.98, 1.0]

    def quad(f):
        return sum(integrate.quad(f, a, b, **kw)[0] for a, b in itertools.pairwise(pts))

    total = quad(lambda t: density(t, lam))
    assert abs(total - 1.0) <= 1e-10
    mean = quad(lambda t: t * density(t, lam))
    second = quad(lambda t: t * t * density(t, lam))
    np.testing.assert_allclose(sb.continuous_bernoulli_mean(p=lam), mean, rtol=1e-9)
    np.testing.assert_allclose(sb.continuous_bernoulli_variance(p=lam), second - mean**2, 1e-7)


# --------------------------------------------------------------------------------------
# pymc.testing
# --------------------------------------------------------------------------------------

LOGIT_DOMAIN = Domain([-np.inf, -12.0, -2.1, -1.0, -0.01, 0.0, 0.01, 1.0, 2.1, 12.0, np.inf])


# The p-parametrization runs in the default (numba) backend; the logit_p one, whose graph
# only differs by the missing log(p) - log1p(-p), in FAST_COMPILE to save compile time.


def test_check_logp():
    check_logp(ContinuousBernoulli, Unit, {"p": Unit}, lam_logp, decimal=10, n_samples=-1)
    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        check_logp(
            ContinuousBernoulli, Unit, {"logit_p": LOGIT_DOMAIN}, lam_logp, decimal=10, n_samples=-1
        )


def test_check_logcdf():
    check_logcdf(ContinuousBernoulli, Unit, {"p": Unit}, lam_logcdf, decimal=10, n_samples=-1)
    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        check_logcdf(
            ContinuousBernoulli,
            Unit,
            {"logit_p": LOGIT_DOMAIN},
            lam_logcdf,
            decimal=10,
            n_samples=-1,
        )


def test_check_icdf():
    check_icdf(ContinuousBernoulli, {"p": Unit}, lam_icdf, decimal=10, n_samples=-1)
    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        check_icdf(ContinuousBernoulli, {"logit_p": R}, lam_icdf, decimal=10, n_samples=-1)


class TestContinuousBernoulliRandomP(BaseTestDistributionRandom):
    pymc_dist = ContinuousBernoulli
    pymc_dist_params: ClassVar = {"p": 0.3}
    expected_rv_op_params: ClassVar = {"logit_p": math.log(0.3 / 0.7)}
    reference_dist_params: ClassVar = {"lam": 0.3}
    checks_to_run: ClassVar = [
        "check_pymc_params_match_rv_op",
        "check_pymc_draws_match_reference",
        "check_rv_size",
    ]
    # Fewer sizes than the default seven: each one is a compilation.
    sizes_to_check: ClassVar = [None, (), 5, (4, 5)]
    sizes_expected: ClassVar = [(), (), (5,), (4, 5)]

    def reference_dist(self):
        # Independent quantile (the paper's closed form in lambda) at the same uniforms.
        rng = self.get_random_state()
        return lambda size, lam: np_lam_icdf(rng.random(size=size), lam)


class TestContinuousBernoulliRandomLogit(BaseTestDistributionRandom):
    pymc_dist = ContinuousBernoulli
    pymc_dist_params: ClassVar = {"logit_p": -1.7}
    expected_rv_op_params: ClassVar = {"logit_p": -1.7}
    reference_dist_params: ClassVar = {"lam": 1 / (1 + math.exp(1.7))}
    checks_to_run: ClassVar = ["check_pymc_params_match_rv_op", "check_pymc_draws_match_reference"]

    def reference_dist(self):
        rng = self.get_random_state()
        return lambda size, lam: np_lam_icdf(rng.random(size=size), lam)


KS_LAMBDAS = np.array([1e-3, 0.2, 0.5, 0.8, 0.999])


def test_draws_ks_against_cdf():
    draws = pm.draw(ContinuousBernoulli.dist(p=KS_LAMBDAS, size=(4000, 5)), random_seed=20240611)
    assert draws.shape == (4000, 5)
    assert np.all((draws >= 0) & (draws <= 1))
    for j, lam in enumerate(KS_LAMBDAS):
        if lam == 0.5:
            cdf = stats.uniform.cdf
        else:
            cdf = lambda t, lam=lam: np_lam_cdf(t, lam)  # noqa: E731
        assert stats.kstest(draws[:, j], cdf).pvalue > 1e-3, lam


@pytest.mark.parametrize(
    ("kwargs", "size", "expected"),
    [
        ({"p": 0.2}, None, 0.38801418711114837),
        (
            {"p": np.array([0.2, 0.5, 0.8])},
            (2, 3),
            np.full((2, 3), [0.388014187111148, 0.5, 0.611985812888852]),
        ),
    ],
)
def test_support_point(kwargs, size, expected):
    with pm.Model() as model:
        ContinuousBernoulli("x", **kwargs, size=size)
    assert_support_point_is_expected(model, expected)


# --------------------------------------------------------------------------------------
# Parameters, support, degenerate limits
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_p", [-0.1, 1.5, -np.inf, np.nan])
@pytest.mark.parametrize("which", ["logp", "logcdf", "icdf"])
def test_invalid_p_raises(p_functions, bad_p, which):
    with pytest.raises(ParameterValueError, match="0 <= p <= 1"):
        p_functions[which](0.3, bad_p)


def test_invalid_logit_p_raises():
    with pytest.raises(ParameterValueError):
        pm.logp(ContinuousBernoulli.dist(logit_p=np.nan), 0.3).eval()


@pytest.mark.parametrize("value", [-1e-12, -0.5, 1 + 1e-12, 2.0, np.inf, -np.inf])
def test_value_outside_support(p_functions, value):
    assert p_functions["logp"](value, 0.3) == -np.inf
    assert p_functions["logcdf"](value, 0.3) == (-np.inf if value < 0 else 0.0)


def test_icdf_outside_unit_is_nan(p_functions):
    assert np.isnan(p_functions["icdf"](-0.1, 0.3))
    assert np.isnan(p_functions["icdf"](1.1, 0.3))


@pytest.mark.parametrize("kwargs", [{}, {"p": 0.3, "logit_p": 0.1}, {"p": None, "logit_p": None}])
def test_needs_exactly_one_parameter(kwargs):
    with pytest.raises(ValueError, match="ContinuousBernoulli"):
        ContinuousBernoulli.dist(**kwargs)
    with pytest.raises(ValueError, match="ContinuousBernoulli"):
        sb.continuous_bernoulli_mean(**kwargs)
    with pytest.raises(ValueError, match="ContinuousBernoulli"), pm.Model():
        ContinuousBernoulli("y", **kwargs)


def test_degenerate_p_zero_and_one(p_functions):
    logp, logcdf, icdf = p_functions["logp"], p_functions["logcdf"], p_functions["icdf"]
    # p = 1: point mass at 1 (limit of the density); p = 0: point mass at 0.
    assert logp(1.0, 1.0) == np.inf and logp(0.0, 0.0) == np.inf
    for x in (0.0, 1e-12, 0.5, 1 - 1e-12):
        assert logp(x, 1.0) == -np.inf
        assert logcdf(x, 1.0) == -np.inf
        assert logp(1 - x, 0.0) == -np.inf
        assert logcdf(1 - x, 0.0) == 0.0
    assert logcdf(1.0, 1.0) == 0.0
    for u in (0.0, 0.3, 1.0):
        assert icdf(u, 1.0) == 1.0 and icdf(u, 0.0) == 0.0
    np.testing.assert_array_equal(
        pm.draw(ContinuousBernoulli.dist(p=[0.0, 1.0], size=(7, 2)), random_seed=1),
        np.tile([0.0, 1.0], (7, 1)),
    )
    for fn, expect in [
        (sb.continuous_bernoulli_mean, [0.0, 1.0]),
        (sb.continuous_bernoulli_variance, [0.0, 0.0]),
        (sb.continuous_bernoulli_entropy, [-np.inf, -np.inf]),
    ]:
        np.testing.assert_array_equal(fn(p=np.array([0.0, 1.0])), expect)
        np.testing.assert_array_equal(fn(logit_p=np.array([-np.inf, np.inf])), expect)
    np.testing.assert_array_equal(cbm.cb_log_norm(np.array([-np.inf, np.inf])), [np.inf] * 2)
    np.testing.assert_array_equal(
        cbm.cb_log_partition(np.array([-np.inf, np.inf])), [-np.inf, np.inf]
    )


def test_huge_finite_logit_is_exact():
    # Nothing overflows for finite eta far beyond 700: log C ~ log|eta|.
    for eta in (1e5, 1e150):
        np.testing.assert_allclose(cbm.cb_log_norm(eta), math.log(eta), rtol=1e-15)
        np.testing.assert_allclose(cbm.cb_logp(1.0, eta), math.log(eta), rtol=1e-15)
        np.testing.assert_allclose(cbm.cb_logp(0.0, -eta), math.log(eta), rtol=1e-15)
        np.testing.assert_allclose(cbm.cb_mean(eta), 1 - 1 / eta, rtol=1e-15)
        np.testing.assert_allclose(cbm.cb_variance(-eta), 1 / eta**2, rtol=1e-15)


def test_moment_functions_on_tensors_and_arrays():
    p = np.array([0.05, 0.3, 0.5, 0.9])
    lp = np.log(p / (1 - p))
    ref = [float(ref_mean(e)) for e in lp]
    np.testing.assert_allclose(sb.continuous_bernoulli_mean(p=p), ref, rtol=1e-14)
    np.testing.assert_allclose(sb.continuous_bernoulli_mean(logit_p=lp), ref, rtol=1e-14)
    sym = sb.continuous_bernoulli_mean(p=pt.as_tensor_variable(p))
    assert isinstance(sym, pt.TensorVariable)
    np.testing.assert_allclose(pytensor.function([], sym, mode="FAST_COMPILE")(), ref, rtol=1e-14)
    # E[y] is not lambda.
    assert not np.allclose(ref, p)
    # The mean's gradient wrt logit_p is the variance (exponential family).
    e = pt.dvector("e")
    g = pytensor.grad(sb.continuous_bernoulli_mean(logit_p=e).sum(), e)
    ev = np.array([0.0, 1e-9, -0.7, 0.999, 1.0, 1.001, 2.0, 30.0, -700.0])
    got = pytensor.function([e], g, mode="FAST_COMPILE")(ev)
    np.testing.assert_allclose(got, [float(ref_variance(v)) for v in ev], rtol=1e-12)


# --------------------------------------------------------------------------------------
# In models: draw, logp, prior / posterior predictive, latent, regression
# --------------------------------------------------------------------------------------

N_OBS = 400
TRUE_BETA = np.array([0.4, -1.3])


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(7)
    X = np.column_stack([np.ones(N_OBS), rng.normal(size=N_OBS)])
    y = pm.draw(ContinuousBernoulli.dist(logit_p=X @ TRUE_BETA), random_seed=11)
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, 3.0, shape=2)
        ContinuousBernoulli("y", logit_p=pt.as_tensor(X) @ beta, observed=y)
        # A latent continuous Bernoulli (no data): its posterior is its prior.
        ContinuousBernoulli("x", p=0.3)
        idata = pm.sample(draws=300, tune=300, chains=2, random_seed=3, progressbar=False)
    return model, X, y, idata


def test_pm_draw_and_logp():
    rv = ContinuousBernoulli.dist(p=0.3, size=5)
    draws = pm.draw(rv, draws=3, random_seed=1)
    assert draws.shape == (3, 5) and np.all((draws >= 0) & (draws <= 1))
    values = np.array([0.0, 0.25, 1.0])
    got = pm.logp(ContinuousBernoulli.dist(p=0.3), values).eval()
    np.testing.assert_allclose(got, [lam_logp(v, p=0.3) for v in values], rtol=1e-13)


def test_latent_variable(regression):
    model, _, _, idata = regression
    assert isinstance(model.rvs_to_transforms[model["x"]], LogOddsTransform)
    x = idata.posterior["x"].values
    assert x.shape == (2, 300)
    assert np.all((x > 0) & (x < 1))
    # posterior = prior; the mean is not p = 0.3
    assert abs(x.mean() - float(ref_mean(math.log(0.3 / 0.7)))) < 0.06


def test_regression_recovers_coefficients(regression):
    _, _, _, idata = regression
    beta = idata.posterior["beta"].values.reshape(-1, 2)
    lo, hi = np.quantile(beta, [0.03, 0.97], axis=0)
    assert np.all((lo < TRUE_BETA) & (TRUE_BETA < hi)), (lo, hi)


def test_prior_and_posterior_predictive(regression):
    model, _, y, idata = regression
    with model:
        prior = pm.sample_prior_predictive(draws=100, random_seed=5)
        post = pm.sample_posterior_predictive(idata, random_seed=5, progressbar=False)
    y_prior = prior.prior_predictive["y"].values
    assert y_prior.shape == (1, 100, N_OBS)
    assert np.all((y_prior >= 0) & (y_prior <= 1))
    y_post = post.posterior_predictive["y"].values
    assert y_post.shape == (2, 300, N_OBS)
    assert np.all((y_post >= 0) & (y_post <= 1))
    # Replicated data look like the data: E[y] goes through the CB mean, not p.
    assert abs(y_post.mean() - y.mean()) < 0.02
