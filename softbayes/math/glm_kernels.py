r"""Fused single-pass kernels for GLM-shaped soft-label log-likelihoods (numba).

Two likelihoods of a linear predictor :math:`\eta = X\beta` (one row of ``X`` per
observation, optional row weights ``w``):

* ``WEIGHTED_BERNOULLI`` (``family = 0``), the soft-label cross-entropy

  .. math:: \ell(\beta) = \sum_i w_i \left[ l_i \eta_i - \operatorname{softplus}(\eta_i) \right],
            \qquad \nabla\ell = X^\top \left[ w \odot (l - \sigma(\eta)) \right];

* ``CONTINUOUS_BERNOULLI`` (``family = 1``), the continuous Bernoulli GLM

  .. math:: \ell(\beta) = \sum_i w_i \left[ l_i \eta_i - A(\eta_i) \right],
            \qquad \nabla\ell = X^\top \left[ w \odot (l - A'(\eta)) \right],

  with :math:`A` = :func:`softbayes.math.continuous_bernoulli.cb_log_partition` and
  :math:`A'` = :func:`~softbayes.math.continuous_bernoulli.cb_mean`.

How the work is organized
-------------------------
Rows are processed in fixed-size blocks, in parallel over blocks (``numba.prange``). For
one block: ``eta`` of its rows (one read of those rows of ``X``), then the per-row terms in a
loop the compiler vectorizes (SIMD), then the block's gradient ``X_block^T dv`` (the same
rows, now in cache). Per row there is one ``exp(-|eta|)``, shared by the log-partition and its
derivative (softplus *and* sigmoid; for the continuous Bernoulli ``A``, ``A'`` plus one
``log|eta|``). ``exp``, ``log1p`` and ``log`` are written here as branch-free polynomial
kernels (Cody-Waite range reduction, near-minimax polynomials for ``exp`` and ``atanh``,
exponent handled through the
bits of the float), accurate to a few ulps, so that LLVM can vectorize them: numba would
otherwise call scalar libm functions one row at a time. Each block writes its own partial
sums, added in block order: the result does not depend on the number of threads.

Per row the value is evaluated in a cancellation-free form (both terms of the same sign, as
:func:`softbayes.math.soft_labels.soft_bernoulli_logp` and
:func:`softbayes.math.continuous_bernoulli.cb_logp`), exact for any finite ``eta`` (``|eta|``
of 700 included) and labels exactly 0 or 1. For ``|eta| > 708`` the term ``exp(-|eta|)``
(below ``1e-307``) is taken as 0.

*Sufficient statistics.* Passing an empty ``labels`` array drops the label term: the
functions then return :math:`-\sum_i w_i A(\eta_i)` and :math:`-X^\top[w \odot A'(\eta)]`,
and the caller adds :math:`s^\top\beta` and :math:`s` with :math:`s = X^\top (w \odot l)`
computed once. An empty ``weights`` array means unit weights.

Labels are not checked here (:mod:`softbayes.data.validation` does that): for the continuous
Bernoulli they must lie in [0, 1]. ``X`` may be float32 (half the memory traffic); sums and
the linear predictor are accumulated in float64.

Every function compiled into the kernels is defined in this one file: numba's on-disk cache
is checked against the source file of each cached function only.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import types
from numba.extending import intrinsic

from softbayes.math.continuous_bernoulli import SERIES_SWITCH, log_sinhc_series
from softbayes.math.kernel_threads import PARALLEL

__all__ = [
    "ATANH_COEFFICIENTS",
    "ATANH_SHORT_COEFFICIENTS",
    "BLOCK",
    "CONTINUOUS_BERNOULLI",
    "EXP_COEFFICIENTS",
    "PARALLEL_MIN_WORK",
    "TASK_BLOCKS",
    "WEIGHTED_BERNOULLI",
    "glm_logp_dlogp",
    "glm_rows",
    "glm_vjp",
    "vexp_neg",
    "vlog",
    "vlog1p",
]

WEIGHTED_BERNOULLI = 0
CONTINUOUS_BERNOULLI = 1

#: Rows per block. Fixed (not derived from the thread count) so that the order of the
#: floating-point additions, hence the result, is the same on every machine.
BLOCK = 1024


# The elementwise math keeps IEEE semantics except for fused multiply-add (the range
# reductions below rely on the exact order of operations). ``error_model="numpy"`` removes
# the division-by-zero checks that would stop vectorization.
_ELEM = {"fastmath": {"contract"}, "error_model": "numpy", "cache": True}
# Dot products and sums may be reassociated (vectorized).
_SUMS = {"fastmath": {"contract", "reassoc", "nsz"}, "error_model": "numpy", "cache": True}


# --------------------------------------------------------------------------------------------
# Vectorizable exp / log1p / log (float64)
# --------------------------------------------------------------------------------------------
@intrinsic
def _f64_bits(typingctx, x):
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _pow2_neg(typingctx, k):
    # 2.0 ** -k for an integer 0 <= k <= 1022: the float with bits (1023 - k) << 52.
    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        e = builder.sub(ir.Constant(i64, 1023), args[0])
        return builder.bitcast(builder.shl(e, ir.Constant(i64, 52)), ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _mantissa(typingctx, x):
    # Positive normal x -> its mantissa as a float in [1, 2).
    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        bits = builder.bitcast(args[0], i64)
        mant = builder.or_(
            builder.and_(bits, ir.Constant(i64, (1 << 52) - 1)), ir.Constant(i64, 1023 << 52)
        )
        return builder.bitcast(mant, ir.DoubleType())

    return types.float64(types.float64), codegen


@intrinsic
def _exponent(typingctx, x):
    # Positive normal x -> its unbiased binary exponent (int64).
    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        bits = builder.bitcast(args[0], i64)
        return builder.sub(builder.lshr(bits, ir.Constant(i64, 52)), ir.Constant(i64, 1023))

    return types.int64(types.float64), codegen


_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds a float to an integer
_MAGIC_BITS = 0x4338000000000000
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 with its low 21 bits zero (k * hi is exact)
_LN2_LO = 1.90821492927058770002e-10
_SQRT2 = 1.4142135623730951

#: Coefficients of the polynomials, highest power first: Chebyshev fits (near-minimax:
#: within a small factor of the best uniform error of their degree) computed with mpmath at
#: 40 digits and rounded to float64 (tests/math/test_glm_kernels_math.py recomputes them):
#:
#:     g = lambda v: mp.atanh(mp.sqrt(v)) / mp.sqrt(v) if v else mp.mpf(1)
#:     mp.chebyfit(mp.exp, [-mp.log(2) / 2, mp.log(2) / 2], 12)  # EXP_: error 3.2e-18
#:     mp.chebyfit(g, [0, mp.mpf(1) / 9], 11)                    # ATANH_: 1.3e-18
#:     mp.chebyfit(g, [0, (3 - 2 * mp.sqrt(2)) ** 2], 8)          # ATANH_SHORT_: 1.2e-18
#:
#: (``exp(r)`` on ``|r| <= ln2 / 2``; ``atanh(z) / z`` in ``v = z^2`` for ``|z| <= 1/3`` and
#: ``|z| <= 3 - 2 sqrt 2``.) Taylor series of the same accuracy need 14, 18 and 12 terms.
EXP_COEFFICIENTS = (
    2.5110037605963777e-08, 2.763263963904103e-07, 2.755724091857897e-06,
    2.4801485482328494e-05, 0.00019841269890047113, 0.0013888888952314775,
    0.008333333333319601, 0.0416666666664881, 0.1666666666666668, 0.5000000000000019,
    1.0, 1.0)
ATANH_COEFFICIENTS = (
    0.08522081781390699, 0.0416225325593041, 0.06055084364034609, 0.06650187016337313,
    0.07693307021152004, 0.09090870416252403, 0.11111112040373837, 0.14285714272727057,
    0.20000000000092874, 0.33333333333333076, 1.0)
ATANH_SHORT_COEFFICIENTS = (
    0.07404855180327638, 0.07656264074182095, 0.09091815840114664, 0.11111098528363024,
    0.1428571438032084, 0.1999999999965117, 0.33333333333333826, 1.0)
_E11, _E10, _E9, _E8, _E7, _E6, _E5, _E4, _E3, _E2, _E1, _E0 = EXP_COEFFICIENTS
_A10, _A9, _A8, _A7, _A6, _A5, _A4, _A3, _A2, _A1, _A0 = ATANH_COEFFICIENTS
_S7, _S6, _S5, _S4, _S3, _S2, _S1, _S0 = ATANH_SHORT_COEFFICIENTS


@njit(inline="always", **_ELEM)
def vexp_neg(a):
    """``exp(-a)`` for ``a >= 0`` (0 for ``a > 708``), in vectorizable operations."""
    big = a > 708.0
    a = min(a, 708.0)
    kd = a * _LOG2E + _MAGIC
    kf = kd - _MAGIC
    k = _f64_bits(kd) - _MAGIC_BITS
    r = (kf * _LN2_HI - a) + kf * _LN2_LO  # -a + k ln 2, |r| <= ln2 / 2
    p = _E11
    p = p * r + _E10
    p = p * r + _E9
    p = p * r + _E8
    p = p * r + _E7
    p = p * r + _E6
    p = p * r + _E5
    p = p * r + _E4
    p = p * r + _E3
    p = p * r + _E2
    p = p * r + _E1
    p = p * r + _E0
    out = p * _pow2_neg(k)
    return 0.0 if big else out


@njit(inline="always", **_ELEM)
def _atanh_series(z):
    # 2 atanh(z) = 2 z g(z^2), g(v) = atanh(sqrt v) / sqrt v, for |z| <= 1/3.
    v = z * z
    p = _A10
    p = p * v + _A9
    p = p * v + _A8
    p = p * v + _A7
    p = p * v + _A6
    p = p * v + _A5
    p = p * v + _A4
    p = p * v + _A3
    p = p * v + _A2
    p = p * v + _A1
    p = p * v + _A0
    return 2.0 * z * p


@njit(inline="always", **_ELEM)
def _atanh_series_short(z):
    # The same for |z| <= 3 - 2 sqrt(2) ~ 0.1716 (vlog's reduced range). Written out like
    # _atanh_series and vexp_neg's polynomial: the same Horner as a loop over a coefficient
    # tuple makes the weighted-Bernoulli row loop 2.5x slower (LLVM does not vectorize it).
    v = z * z
    p = _S7
    p = p * v + _S6
    p = p * v + _S5
    p = p * v + _S4
    p = p * v + _S3
    p = p * v + _S2
    p = p * v + _S1
    p = p * v + _S0
    return 2.0 * z * p


@njit(inline="always", **_ELEM)
def vlog1p(u):
    """``log1p(u)`` for ``-0.5 <= u <= 1``: ``2 atanh(u / (2 + u))``, vectorizable."""
    return _atanh_series(u / (2.0 + u))


@njit(inline="always", **_ELEM)
def vlog(x):
    """``log(x)`` for a positive normal float ``x``, vectorizable."""
    m = _mantissa(x)
    k = _exponent(x)
    hi = m > _SQRT2
    m = m * 0.5 if hi else m
    kf = float(k + 1) if hi else float(k)
    f = m - 1.0  # in [sqrt(1/2) - 1, sqrt(2) - 1]: exact (Sterbenz)
    return kf * _LN2_HI + (_atanh_series_short(f / (2.0 + f)) + kf * _LN2_LO)


# --------------------------------------------------------------------------------------------
# Per-row terms: value and d value / d eta
# --------------------------------------------------------------------------------------------
@njit(inline="always", **_ELEM)
def _wb_terms(eta, lab):
    # l eta - softplus(eta) and l - sigmoid(eta), from e = exp(-|eta|).
    e = vexp_neg(abs(eta))
    # softplus(-|eta|) = log1p(e) = 2 atanh(e / (2 + e)) and sigmoid(-|eta|) = e / (1 + e),
    # with one division for both: 1 / ((1 + e)(2 + e)).
    inv = 1.0 / ((1.0 + e) * (2.0 + e))
    t = _atanh_series(e * (1.0 + e) * inv)
    er = e * (2.0 + e) * inv
    pos = eta > 0.0
    v = (lab - 1.0) * eta - t if pos else lab * eta - t
    dv = (lab - 1.0) + er if pos else lab - er
    return v, dv


# The continuous Bernoulli log-partition A(eta) = eta / 2 + g(eta), g(eta) = log(sinh(eta/2) /
# (eta/2)) = sum_n C_n eta^(2n) (softbayes.math.continuous_bernoulli). The series is used for
# |eta| < SERIES_SWITCH (12 terms: truncation below 1e-19 there), closed forms beyond. The
# coefficients are exact constants of the series, compiled into the kernels as numbers.
_N_SERIES = 12


def _series_coefficients(n_terms):
    c = log_sinhc_series(n_terms)
    g = [float(x) for x in c]  # g / v in powers of v = eta^2
    g1 = [float(2 * n * x) for n, x in enumerate(c, 1)]  # g' / eta
    return tuple(g[::-1]), tuple(g1[::-1])  # highest power first


_G_REV, _G1_REV = _series_coefficients(_N_SERIES)
_G_HEAD, _G_TAIL = _G_REV[0], _G_REV[1:]
_G1_HEAD, _G1_TAIL = _G1_REV[0], _G1_REV[1:]


@njit(inline="always", **_ELEM)
def _cb_series(eta):
    # g(eta) = v * G(v) and g'(eta) = eta * H(v), v = eta^2 (Horner, unrolled over tuples).
    v = eta * eta
    g = _G_HEAD
    for c in _G_TAIL:
        g = g * v + c
    h = _G1_HEAD
    for c in _G1_TAIL:
        h = h * v + c
    return v * g, eta * h


@njit(inline="always", **_ELEM)
def _cb_terms(eta, lab):
    # l eta - A(eta) and l - A'(eta); both regimes computed on safe arguments, then picked.
    a = abs(eta)
    small = a < SERIES_SWITCH
    eta_s = eta if small else 0.0
    g, g1 = _cb_series(eta_s)
    v_small = eta_s * (lab - 0.5) - g
    d_small = lab - (0.5 + g1)
    a_b = SERIES_SWITCH if small else a
    pos = eta > 0.0
    eta_b = a_b if pos else -a_b
    e = vexp_neg(a_b)
    one_m_e = 1.0 - e  # in [1 - 1/e, 1): no cancellation for |eta| >= 1
    big = vlog(a_b / one_m_e)  # log|eta| - log1mexp(-|eta|), one log
    v_big = eta_b * (lab - 1.0) + big if pos else eta_b * lab + big
    mean_big = (1.0 if pos else -e) / one_m_e - 1.0 / eta_b
    d_big = lab - mean_big
    return (v_small, d_small) if small else (v_big, d_big)


@njit(**_ELEM)
def _terms_block(family, eta, labels, lo, m, v, dv):
    # v[:m], dv[:m] for rows lo .. lo + m; labels of length 0 means "no label term".
    if labels.shape[0] == 0:
        if family == WEIGHTED_BERNOULLI:
            for ii in range(m):
                v[ii], dv[ii] = _wb_terms(eta[ii], 0.0)
        else:
            for ii in range(m):
                v[ii], dv[ii] = _cb_terms(eta[ii], 0.0)
    elif family == WEIGHTED_BERNOULLI:
        for ii in range(m):
            v[ii], dv[ii] = _wb_terms(eta[ii], labels[lo + ii])
    else:
        for ii in range(m):
            v[ii], dv[ii] = _cb_terms(eta[ii], labels[lo + ii])


@njit(**_SUMS)
def _eta_block(X, b, lo, m, eta):
    # Four rows at a time: four independent accumulators hide the latency of the FMA chain
    # (one row's dot product alone is a chain of d dependent additions).
    d = X.shape[1]
    m4 = m - m % 4
    for ii in range(0, m4, 4):
        r = lo + ii
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        for j in range(d):
            bj = b[j]
            a0 += X[r, j] * bj
            a1 += X[r + 1, j] * bj
            a2 += X[r + 2, j] * bj
            a3 += X[r + 3, j] * bj
        eta[ii] = a0
        eta[ii + 1] = a1
        eta[ii + 2] = a2
        eta[ii + 3] = a3
    for ii in range(m4, m):
        acc = 0.0
        for j in range(d):
            acc += X[lo + ii, j] * b[j]
        eta[ii] = acc


@njit(**_SUMS)
def _weight_block(weights, lo, m, v, dv, cot):
    # v *= w, dv *= w (and dv *= cot when cot is given); returns sum(v).
    use_w = weights.shape[0] > 0
    use_c = cot.shape[0] > 0
    if use_w:
        for ii in range(m):
            v[ii] *= weights[lo + ii]
            dv[ii] *= weights[lo + ii]
    if use_c:
        for ii in range(m):
            dv[ii] *= cot[lo + ii]
    acc = 0.0
    for ii in range(m):
        acc += v[ii]
    return acc


_NARROW = 16  # designs up to this many columns keep the block gradient in registers


@njit(**_SUMS)
def _grad_block(X, lo, m, dv, out):
    # out[:] = X[lo:lo+m].T @ dv[:m]
    d = X.shape[1]
    if d <= _NARROW:
        acc = np.zeros(_NARROW)
        for ii in range(m):
            c = dv[ii]
            for j in range(_NARROW):
                if j < d:
                    acc[j] += c * X[lo + ii, j]
        for j in range(d):
            out[j] = acc[j]
        return
    for j in range(d):
        acc_j = 0.0
        for ii in range(m):
            acc_j += dv[ii] * X[lo + ii, j]
        out[j] = acc_j


@njit(**_ELEM)
def _block_logp_dlogp(family, X, b, labels, weights, cot, k, vals, grads, eta, v, dv):
    # Block k: its partial value into vals[k], its partial gradient into grads[k]; eta, v,
    # dv are scratch vectors of length BLOCK.
    n = X.shape[0]
    lo = k * BLOCK
    m = min(n, lo + BLOCK) - lo
    _eta_block(X, b, lo, m, eta)
    _terms_block(family, eta, labels, lo, m, v, dv)
    vals[k] = _weight_block(weights, lo, m, v, dv, cot)
    _grad_block(X, lo, m, dv, grads[k])


@njit(**_ELEM)
def _block_rows(family, X, b, labels, weights, k, out, eta, v, dv):
    n = X.shape[0]
    lo = k * BLOCK
    m = min(n, lo + BLOCK) - lo
    _eta_block(X, b, lo, m, eta)
    _terms_block(family, eta, labels, lo, m, v, dv)
    _weight_block(weights, lo, m, v, dv, np.empty(0))
    for ii in range(m):
        out[lo + ii] = v[ii]


@njit(**_ELEM)
def _setup(beta, X):
    n, d = X.shape
    nblocks = max(1, (n + BLOCK - 1) // BLOCK)
    b = np.empty(d)
    for j in range(d):
        b[j] = beta[j]
    return nblocks, b


@njit(**_ELEM)
def _reduce(vals, grads):
    # Partial sums added in block order: the same result for any number of threads.
    total = 0.0
    grad = np.zeros(grads.shape[1])
    for k in range(vals.shape[0]):
        total += vals[k]
        for j in range(grads.shape[1]):
            grad[j] += grads[k, j]
    return total, grad


#: Blocks per parallel task: each task allocates its scratch vectors once and runs its
#: blocks in order (numba splits the tasks evenly between the threads).
TASK_BLOCKS = 16


@njit(**_ELEM)
def _task_range(t, nblocks):
    return t * TASK_BLOCKS, min(nblocks, (t + 1) * TASK_BLOCKS)


# The serial and the parallel drivers are distinct functions on purpose: numba's on-disk
# cache is keyed by the Python function, not by the ``parallel`` flag, so one function
# compiled both ways would load the wrong variant.
@njit(parallel=PARALLEL, cache=True, nogil=True, error_model="numpy")
def _logp_dlogp_par(family, beta, X, labels, weights, cot):
    nblocks, b = _setup(beta, X)
    vals = np.zeros(nblocks)
    grads = np.zeros((nblocks, X.shape[1]))
    ntasks = (nblocks + TASK_BLOCKS - 1) // TASK_BLOCKS
    for t in prange(ntasks):
        eta = np.empty(BLOCK)
        v = np.empty(BLOCK)
        dv = np.empty(BLOCK)
        k0, k1 = _task_range(t, nblocks)
        for k in range(k0, k1):
            _block_logp_dlogp(family, X, b, labels, weights, cot, k, vals, grads, eta, v, dv)
    return _reduce(vals, grads)


@njit(cache=True, nogil=True, error_model="numpy")
def _logp_dlogp_ser(family, beta, X, labels, weights, cot):
    nblocks, b = _setup(beta, X)
    vals = np.zeros(nblocks)
    grads = np.zeros((nblocks, X.shape[1]))
    eta = np.empty(BLOCK)
    v = np.empty(BLOCK)
    dv = np.empty(BLOCK)
    for k in range(nblocks):
        _block_logp_dlogp(family, X, b, labels, weights, cot, k, vals, grads, eta, v, dv)
    return _reduce(vals, grads)


@njit(parallel=PARALLEL, cache=True, nogil=True, error_model="numpy")
def _rows_par(family, beta, X, labels, weights):
    nblocks, b = _setup(beta, X)
    out = np.empty(X.shape[0])
    ntasks = (nblocks + TASK_BLOCKS - 1) // TASK_BLOCKS
    for t in prange(ntasks):
        eta = np.empty(BLOCK)
        v = np.empty(BLOCK)
        dv = np.empty(BLOCK)
        k0, k1 = _task_range(t, nblocks)
        for k in range(k0, k1):
            _block_rows(family, X, b, labels, weights, k, out, eta, v, dv)
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _rows_ser(family, beta, X, labels, weights):
    nblocks, b = _setup(beta, X)
    out = np.empty(X.shape[0])
    eta = np.empty(BLOCK)
    v = np.empty(BLOCK)
    dv = np.empty(BLOCK)
    for k in range(nblocks):
        _block_rows(family, X, b, labels, weights, k, out, eta, v, dv)
    return out


#: Work (rows x columns) from which a call runs blocks on several threads. Below it the
#: fork/join costs more than it saves, and under a sampler that already runs one chain per
#: core extra threads only compete for the same cores.
PARALLEL_MIN_WORK = 1 << 21


@njit(cache=True, nogil=True)
def _threaded(X):
    return PARALLEL and X.shape[0] * X.shape[1] >= PARALLEL_MIN_WORK


@njit(cache=True, nogil=True)
def glm_logp_dlogp(family, beta, X, labels, weights):
    """``(logp, grad)``: summed log-likelihood and its gradient in ``beta``, one pass.

    ``family`` is ``WEIGHTED_BERNOULLI`` or ``CONTINUOUS_BERNOULLI``; ``labels`` and
    ``weights`` may be empty (no label term; unit weights).
    """
    if _threaded(X):
        return _logp_dlogp_par(family, beta, X, labels, weights, np.empty(0))
    return _logp_dlogp_ser(family, beta, X, labels, weights, np.empty(0))


@njit(cache=True, nogil=True)
def glm_rows(family, beta, X, labels, weights):
    """The weighted per-row terms (pointwise log-likelihood), shape ``(n,)``."""
    if _threaded(X):
        return _rows_par(family, beta, X, labels, weights)
    return _rows_ser(family, beta, X, labels, weights)


@njit(cache=True, nogil=True)
def glm_vjp(family, beta, X, labels, weights, cot):
    """``X^T [cot * w * (l - A'(eta))]``: the gradient of ``dot(cot, rows)`` in ``beta``."""
    if _threaded(X):
        return _logp_dlogp_par(family, beta, X, labels, weights, cot)[1]
    return _logp_dlogp_ser(family, beta, X, labels, weights, cot)[1]
