r"""The continuous Bernoulli distribution, in its natural parameter.

Every function here takes the natural parameter :math:`\eta = \operatorname{logit}\lambda`
(``eta``) and works unchanged on NumPy arrays and on PyTensor tensors (see
:mod:`softbayes.math.xp`). The density is the exponential family

.. math::

    p(x \mid \eta) = \exp\{\eta x - A(\eta)\}, \qquad
    A(\eta) = \log\frac{e^\eta - 1}{\eta}, \qquad x \in [0, 1],

see Loaiza-Ganem & Cunningham (NeurIPS 2019, arXiv:1907.06845).

Numerical design
----------------
Everything is built from

.. math::

    g(\eta) = \log\frac{\sinh(\eta/2)}{\eta/2}
            = \sum_{n \ge 1} \frac{B_{2n}}{2n\,(2n)!}\,\eta^{2n},
    \qquad A(\eta) = \eta/2 + g(\eta),

so that the mean is :math:`A' = 1/2 + g'` and the variance :math:`A'' = g''`.

* For :math:`|\eta| < 1` the Bernoulli series (12 terms; radius of convergence
  :math:`2\pi`) gives :math:`g`, :math:`g'`, :math:`g''` and the entropy; at :math:`|\eta| = 1`
  the truncation error is below :math:`10^{-18}` relative (:math:`10^{-22}` for :math:`g`).
  The series is smooth through :math:`\eta = 0` in value and in every derivative, so
  autodiff gradients do not cancel. (A wider window needs more terms, and the graph size is
  what numba compilation time scales with.)
* For :math:`|\eta| \ge 1` closed forms in :math:`s = |\eta|` that only ever evaluate
  :math:`e^{-s}`, ``expm1(-s)``, ``log1mexp(-s)`` and ``log(s)``: nothing overflows for any
  finite :math:`\eta` (``1e300`` included), and the cancellation just past the switch costs
  a few ulps (both sides agree to ~1e-16 at the switch; the variance, the worst case, is
  within ~1e-15 relative, float32 within ~2e-6).
* Both sides of every switch are evaluated (``numpy.where``, ``pytensor.switch``), so each
  side gets a *safe* argument where it is not selected ("double where"): the unused side can
  neither emit NaN/inf nor feed NaN into a gradient.
* :math:`\lambda` is never clamped. :math:`\eta = \pm\infty` (:math:`\lambda \in \{0, 1\}`)
  is the weak limit, a point mass at :math:`1` (:math:`+\infty`) or :math:`0`
  (:math:`-\infty`): ``cb_logp`` is :math:`+\infty` at the atom and :math:`-\infty` elsewhere
  (the limit of the log density), ``cb_logcdf`` is the step function (``log 1 = 0`` from the
  atom on), ``cb_icdf`` returns the atom, the mean is the atom, the variance 0, the entropy
  :math:`-\infty`, :math:`\log C = +\infty` and :math:`A(\pm\infty) = \pm\infty`.
* A NaN ``eta`` gives NaN. Values outside :math:`[0, 1]` give ``logp = -inf`` (NaN values
  too, as for PyMC's ``Beta``), ``logcdf = -inf`` below 0 and ``0`` above 1 (NaN for NaN),
  and ``icdf = nan``.
* float32 works the same way (the dtype of the inputs is kept): :math:`e^{-|\eta|}`
  underflowing to 0 is harmless, so :math:`|\eta|` up to the float32 maximum is fine; only
  results that are themselves below float32's range (e.g. ``logcdf`` :math:`\approx
  -e^{-210}`) come out as 0.
"""

from __future__ import annotations

import contextlib
import math
from fractions import Fraction

import numpy as np
import pytensor.tensor as pt

from softbayes.math.xp import ops

__all__ = [
    "SERIES_SWITCH",
    "cb_entropy",
    "cb_icdf",
    "cb_log_norm",
    "cb_log_partition",
    "cb_logcdf",
    "cb_logp",
    "cb_mean",
    "cb_mean_inverse",
    "cb_variance",
    "log_sinhc_series",
]

#: ``|eta|`` below this uses the Bernoulli series; at or above it, the closed forms.
SERIES_SWITCH = 1.0
_N_TERMS = 12
# log1p(w)/w: series below this |w|.
_W_SWITCH = 1e-3


def _bernoulli_numbers(n_max: int) -> list[Fraction]:
    """B_0 .. B_n_max exactly (Akiyama-Tanigawa; B_1 = +1/2, unused here)."""
    out = []
    a = [Fraction(0)] * (n_max + 1)
    for m in range(n_max + 1):
        a[m] = Fraction(1, m + 1)
        for j in range(m, 0, -1):
            a[j - 1] = j * (a[j - 1] - a[j])
        out.append(a[0])
    return out


def log_sinhc_series(n_terms: int) -> list[Fraction]:
    r"""Exact coefficients :math:`C_n = B_{2n} / (2n\,(2n)!)`, ``n = 1 .. n_terms``.

    :math:`g(\eta) = \log(\sinh(\eta/2) / (\eta/2)) = \sum_n C_n \eta^{2n}`, the part of the
    log-partition :math:`A(\eta) = \eta/2 + g(\eta)` that the series side evaluates (also in
    the fused kernels of :mod:`softbayes.math.glm_kernels`).
    """
    bern = _bernoulli_numbers(2 * n_terms)
    return [bern[2 * n] / (2 * n * math.factorial(2 * n)) for n in range(1, n_terms + 1)]


# g(eta) = sum_n C[n] eta^(2n), n = 1.._N_TERMS
_C = log_sinhc_series(_N_TERMS)
_G = tuple(float(c) for c in _C)  # g / v, in powers of v = eta^2
_G1 = tuple(float(2 * n * c) for n, c in enumerate(_C, 1))  # g' / eta
_G2 = tuple(float(2 * n * (2 * n - 1) * c) for n, c in enumerate(_C, 1))  # g''
_H = tuple(float(-(2 * n - 1) * c) for n, c in enumerate(_C, 1))  # (g - eta g') / v
_LOG2 = math.log(2.0)


def _horner(v, coeffs):
    """sum_k coeffs[k] v^k."""
    acc = coeffs[-1]
    for c in reversed(coeffs[:-1]):
        acc = acc * v + c
    return acc


def _isinf(xp, x):
    return pt.isinf(x) if xp.symbolic else np.isinf(x)


def _logaddexp(xp, a, b):
    # log(e^a + e^b); never called with a = b = -inf.
    return xp.maximum(a, b) + xp.log1p(xp.exp(-xp.abs(a - b)))


def _quiet(xp):
    return contextlib.nullcontext() if xp.symbolic else np.errstate(all="ignore")


def _as_float(xp, x):
    """NumPy: an array of a float dtype (ints become float64). PyTensor: a tensor."""
    if xp.symbolic:
        x = pt.as_tensor_variable(x)
        return x if x.dtype.startswith("float") else pt.cast(x, "float64")
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)


class _Split:
    """Masks and safe arguments for the three regimes of eta."""

    def __init__(self, xp, eta):
        self.small = xp.abs(eta) < SERIES_SWITCH
        self.inf = _isinf(xp, eta)
        # Series side: eta where small, else 0.
        self.eta_s = xp.where(self.small, eta, 0.0)
        self.v = self.eta_s * self.eta_s
        # Closed-form side: eta where |eta| >= SERIES_SWITCH and finite (NaN kept), else the switch.
        self.eta_b = xp.where(self.small | self.inf, SERIES_SWITCH, eta)
        self.s_b = xp.abs(self.eta_b)
        self.pos = eta > 0

    def pick(self, xp, small, big, at_pos_inf, at_neg_inf):
        # Nested, so that Python-scalar limits never upcast a float32 result.
        big = xp.where(self.inf, at_neg_inf, big)
        big = xp.where(self.inf & self.pos, at_pos_inf, big)
        return xp.where(self.small, small, big)


def _g_series(v):
    return v * _horner(v, _G)


def cb_log_partition(eta):
    r"""Log-partition :math:`A(\eta) = \log(\operatorname{expm1}(\eta)/\eta)`, ``A(0) = 0``."""
    xp = ops(eta)
    with _quiet(xp):
        eta = _as_float(xp, eta)
        sp = _Split(xp, eta)
        small = 0.5 * sp.eta_s + _g_series(sp.v)
        big = xp.maximum(sp.eta_b, 0.0) + xp.log1mexp(-sp.s_b) - xp.log(sp.s_b)
        return sp.pick(xp, small, big, np.inf, -np.inf)


def cb_log_norm(eta):
    r"""Log normalizing constant :math:`\log C = \operatorname{softplus}(\eta) - A(\eta)`.

    Even in ``eta``; ``log C(0) = log 2``, :math:`\log C \approx \log|\eta|` for large
    :math:`|\eta|`.
    """
    xp = ops(eta)
    with _quiet(xp):
        eta = _as_float(xp, eta)
        sp = _Split(xp, eta)
        small = xp.softplus(sp.eta_s) - 0.5 * sp.eta_s - _g_series(sp.v)
        big = xp.log(sp.s_b) + xp.softplus(-sp.s_b) - xp.log1mexp(-sp.s_b)
        return sp.pick(xp, small, big, np.inf, np.inf)


def cb_logp(value, eta):
    r"""Log density :math:`\eta x - A(\eta)` on :math:`[0, 1]`, ``-inf`` outside."""
    xp = ops(value, eta)
    with _quiet(xp):
        x = _as_float(xp, value)
        eta = _as_float(xp, eta)
        in_support = (x >= 0.0) & (x <= 1.0)
        sp = _Split(xp, eta)
        small = sp.eta_s * (x - 0.5) - _g_series(sp.v)
        # eta x - max(eta, 0), written so that x near 1 loses nothing for eta > 0.
        lin = xp.where(sp.eta_b > 0, sp.eta_b * (x - 1.0), sp.eta_b * x)
        big = lin + xp.log(sp.s_b) - xp.log1mexp(-sp.s_b)
        res = sp.pick(xp, small, big, -np.inf, -np.inf)
        at_atom = sp.inf & xp.where(sp.pos, x >= 1.0, x <= 0.0)
        res = xp.where(at_atom, np.inf, res)
        return xp.where(in_support, res, -np.inf)


def _log_cdf_core(xp, x, sp, sign):
    """log F(x) for x in [0, 1], for the parameter sign * eta (sign = +-1)."""
    eta_s = sign * sp.eta_s
    small = xp.log(x) + 0.5 * eta_s * (x - 1.0) + (_g_series(sp.v * x * x) - _g_series(sp.v))
    pos = (sign * sp.eta_b) > 0
    s = sp.s_b
    big = xp.log1mexp(-s * x) - xp.log1mexp(-s) - xp.where(pos, s * (1.0 - x), 0.0)
    return xp.where(sp.small, small, big)


def cb_logcdf(value, eta):
    r"""Log CDF, :math:`\log\frac{\operatorname{expm1}(\eta x)}{\operatorname{expm1}(\eta)}`.

    Computed as :math:`\log F` where :math:`F \le 1/2` and as :math:`\log(1 - S)` with the
    survival function :math:`S(x;\eta) = F(1 - x; -\eta)` where :math:`F > 1/2`, so it is
    accurate relative to its value on both tails. ``-inf`` below 0, ``0`` from 1 on.
    """
    xp = ops(value, eta)
    with _quiet(xp):
        x = _as_float(xp, value)
        eta = _as_float(xp, eta)
        inside = (x > 0.0) & (x < 1.0)
        xc = xp.where(inside, x, 0.5)  # the edges are set below, exactly
        sp = _Split(xp, eta)
        log_f = _log_cdf_core(xp, xc, sp, 1.0)
        log_s = _log_cdf_core(xp, 1.0 - xc, sp, -1.0)
        use_s = log_s < log_f
        log_s_safe = xp.where(use_s, log_s, -1.0)
        finite = xp.where(use_s, xp.log1mexp(log_s_safe), log_f)
        finite = xp.where(inside, finite, np.nan)  # stays nan only for x = nan
        finite = xp.where(x >= 1.0, 0.0, finite)
        finite = xp.where(x <= 0.0, -np.inf, finite)
        # Point masses (step CDFs): at 1 for eta = +inf, at 0 for eta = -inf.
        past_atom = xp.where(sp.pos, x >= 1.0, x >= 0.0)
        res = xp.where(sp.inf, -np.inf, finite)
        return xp.where(sp.inf & past_atom, 0.0, res)


def _log1p_over(xp, w):
    """log1p(w) / w, with its series near w = 0."""
    near = xp.abs(w) < _W_SWITCH
    w_s = xp.where(near, w, 0.0)
    w_b = xp.where(near, 1.0, w)
    series = 1.0 + w_s * (
        -1.0 / 2 + w_s * (1.0 / 3 + w_s * (-1.0 / 4 + w_s * (1.0 / 5 + w_s * (-1.0 / 6))))
    )
    return xp.where(near, series, xp.log1p(w_b) / w_b)


def cb_icdf(u, eta):
    r"""Quantile :math:`\log(1 + u\,\operatorname{expm1}(\eta))/\eta` (``u`` at ``eta = 0``).

    ``nan`` for ``u`` outside :math:`[0, 1]`; the result is clipped to :math:`[0, 1]`.
    """
    xp = ops(u, eta)
    with _quiet(xp):
        u = _as_float(xp, u)
        eta = _as_float(xp, eta)
        sp = _Split(xp, eta)
        valid = (u >= 0.0) & (u <= 1.0)
        uc = xp.where(valid, u, 0.5)
        # Series side: u * [log1p(w)/w] * [expm1(eta)/eta], w = u expm1(eta).
        w = uc * xp.expm1(sp.eta_s)
        small = uc * _log1p_over(xp, w) * xp.exp(0.5 * sp.eta_s + _g_series(sp.v))
        # Closed side: log((1 - u) + u e^eta) / eta, in log space (no overflow).
        big = _logaddexp(xp, xp.log1p(-uc), xp.log(uc) + sp.eta_b) / sp.eta_b
        q = sp.pick(xp, small, big, 1.0, 0.0)
        q = xp.minimum(xp.maximum(q, 0.0), 1.0)
        return xp.where(valid, q, np.nan)


def cb_mean(eta):
    r"""Mean :math:`A'(\eta) = 1/(1 - e^{-\eta}) - 1/\eta` (``1/2`` at 0). Not :math:`\lambda`."""
    xp = ops(eta)
    with _quiet(xp):
        eta = _as_float(xp, eta)
        sp = _Split(xp, eta)
        small = 0.5 + sp.eta_s * _horner(sp.v, _G1)
        num = xp.where(sp.eta_b > 0, 1.0, -xp.exp(-sp.s_b))
        big = num / (-xp.expm1(-sp.s_b)) - 1.0 / sp.eta_b
        return sp.pick(xp, small, big, 1.0, 0.0)


def cb_variance(eta):
    r"""Variance :math:`A''(\eta) = 1/\eta^2 - 1/(4\sinh^2(\eta/2))` (``1/12`` at 0)."""
    xp = ops(eta)
    with _quiet(xp):
        eta = _as_float(xp, eta)
        sp = _Split(xp, eta)
        small = _horner(sp.v, _G2)
        em1 = xp.expm1(-sp.s_b)
        big = 1.0 / (sp.eta_b * sp.eta_b) - xp.exp(-sp.s_b) / (em1 * em1)
        return sp.pick(xp, small, big, 0.0, 0.0)


def cb_entropy(eta):
    r"""Differential entropy :math:`A(\eta) - \eta A'(\eta)` (even in ``eta``, ``0`` at 0)."""
    xp = ops(eta)
    with _quiet(xp):
        eta = _as_float(xp, eta)
        sp = _Split(xp, eta)
        small = sp.v * _horner(sp.v, _H)
        s = sp.s_b
        big = 1.0 - xp.log(s) + xp.log1mexp(-s) - s * xp.exp(-s) / (-xp.expm1(-s))
        return sp.pick(xp, small, big, -np.inf, -np.inf)


#: Newton steps of :func:`cb_mean_inverse` at most (it converges in well under 20).
_INVERSE_MAX_STEPS = 100


def cb_mean_inverse(mu):
    r"""The natural parameter :math:`\eta` whose Continuous Bernoulli mean is ``mu``.

    Solves :math:`1/(1 - e^{-\eta}) - 1/\eta = \mu` by Newton's method (the derivative of
    the mean is the CB variance) safeguarded by bisection in the bracket
    :math:`[-1/\mu, 1/(1 - \mu)]`, which holds the root because the mean lies within
    :math:`1/\eta` of 1 for :math:`\eta > 0` (and symmetrically below 0).

    Parameters
    ----------
    mu : array_like of float
        Means in ``[0, 1]``.

    Returns
    -------
    ndarray
        :math:`\eta`: ``-inf`` at 0, ``+inf`` at 1, NaN outside ``[0, 1]`` or for NaN.
    """
    mu = np.asarray(mu, dtype=float)
    out = np.full(mu.shape, np.nan)
    out[mu == 0.0] = -np.inf
    out[mu == 1.0] = np.inf
    inside = (mu > 0.0) & (mu < 1.0)
    m = mu[inside]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lo, hi = -1.0 / m, 1.0 / (1.0 - m)
        eta = np.clip((2.0 * m - 1.0) / (m * (1.0 - m)) * 1.5, lo, hi)
        for _ in range(_INVERSE_MAX_STEPS):
            f = cb_mean(eta) - m
            lo = np.where(f < 0.0, eta, lo)
            hi = np.where(f > 0.0, eta, hi)
            step = eta - f / cb_variance(eta)
            bad = ~((step > lo) & (step < hi))
            new = np.where(bad, 0.5 * (lo + hi), step)
            done = np.abs(new - eta) <= 4 * np.finfo(float).eps * np.maximum(1.0, np.abs(eta))
            eta = new
            if done.all():
                break
    out[inside] = eta
    return out
