r"""The continuous categorical distribution on the simplex: normalizer, mean, density, draws.

The continuous categorical (Gordon-Rodriguez, Loaiza-Ganem & Cunningham, ICML 2020) has the
density :math:`p(x \mid \eta) = C(\eta)\, e^{\eta \cdot x}` on the simplex
:math:`\{x_k \ge 0, \sum_k x_k = 1\}` (Lebesgue measure on the first :math:`K - 1`
coordinates). By the Hermite-Genocchi formula

.. math::

    \frac{1}{C(\eta)} = \int_{\Delta} e^{\eta \cdot x}\, dx = \exp[\eta_0, \dots, \eta_{K-1}],

the divided difference of :math:`\exp` at the nodes :math:`\eta`. Its gradient is the mean:
:math:`\partial_i \exp[\eta] = \exp[\eta_0..\eta_i, \eta_i..\eta_{K-1}]` (node ``i``
repeated), so :math:`E[x_i] = -\partial_i \log C`.

Numerical design
----------------
The textbook formulas (the recurrence of divided differences, or the partial-fraction sum of
the papers) cancel catastrophically when two logits are close. Here, per row:

* the logits are shifted so that the largest is 0 (all nodes :math:`z_k \le 0`; the
  density is invariant under a common shift and :math:`\exp[\eta + c] = e^c \exp[\eta]`);
* :math:`\exp[z]` is the top-right entry of :math:`\exp(A)`, :math:`A` the upper bidiagonal
  matrix with diagonal :math:`z` and unit superdiagonal (Opitz; McCurdy, Ng & Parlett,
  Math. Comp. 1984). It is computed by scaling and squaring: :math:`B = A / 2^s` with
  :math:`\max|z| / 2^s \le 1`, :math:`\exp(B)` by its Taylor series about the centre of its
  diagonal (terms of one sign up to a factor :math:`e^{1/2}`; bidiagonal products cost
  :math:`O(K^2)`), then :math:`s` squarings. Every matrix in the squarings is entrywise
  non-negative, so each product is componentwise forward stable: the relative error grows
  at most like :math:`2^s K \epsilon \approx \text{spread} \cdot K \epsilon`,
  whatever the gaps between the nodes. After each squaring the diagonal is reset to its
  closed form :math:`e^{t z_i}` (as Al-Mohy & Higham, SIAM J. Matrix Anal. Appl. 2009, do),
  so that errors add up instead of doubling: against mpmath every ``K`` up to 20 stays
  within a few ulps for spreads up to 1400;
* the gradient is the reverse-mode derivative of the same computation (adjoints of the
  squarings are again non-negative matrices; at the base, the Taylor sum differentiated
  term by term), so the mean is as accurate as the value and sums to one up to rounding.

The kernels are numba functions: rows are grouped by their number of squarings and processed
in blocks with the row index innermost, so that every loop runs in SIMD lanes (no Python loop
per row). Everything is computed and returned in float64.

Exact draws are in :mod:`softbayes.math.continuous_categorical_draws`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "BLOCK",
    "as_rows",
    "cc_log_normalizer",
    "cc_log_normalizer_and_mean",
    "cc_logp",
    "cc_mean",
    "cc_rows_kernel",
]

_KERNEL = {"error_model": "numpy", "cache": True}
# The scaled diagonal spans at most _RADIUS (|b| <= 1/2 about its centre). The Taylor series
# then needs K - 1 terms to reach the top-right entry and _EXTRA_TERMS more: the relative
# truncation error of every entry is below e^(1/2) (1/2)^17 / 17! < 1e-19.
_RADIUS = 1.0
_EXTRA_TERMS = 16
# More squarings than this (spread > 2**60) gives NaN rather than a meaningless number.
_MAX_SQUARINGS = 60
#: Rows per block of the kernels (the SIMD dimension).
BLOCK = 32


@njit(**_KERNEL)
def _n_squarings(spread):
    s = 0
    scale = 1.0
    while spread > _RADIUS * scale and s <= _MAX_SQUARINGS:
        s += 1
        scale *= 2.0
    return s


@njit(**_KERNEL)
def _exp_base(z, scale, nb, n_terms, b, ec, Ts, X):
    """X = exp(B) per row r < nb (upper triangles), B = bidiag(z/scale, 1/scale).

    Taylor series about the centre c of the scaled diagonal: X = e^c sum_m T_m with
    T_m = (B - cI)^m / m!, ``n_terms`` terms. With ``n_terms`` slots in ``Ts`` every term
    is kept for the reverse pass; with two slots they alternate (value only, O(K^2) memory).
    Row index last (SIMD over rows).
    """
    k = z.shape[0]
    h = 1.0 / scale
    for r in range(nb):
        c = 0.0
        for i in range(k):
            c = min(c, z[i, r])
        c = 0.5 * c / scale  # centre of the scaled diagonal (its maximum is 0)
        ec[r] = math.exp(c)
        for i in range(k):
            b[i, r] = z[i, r] / scale - c
    Ts[0] = 0.0
    for i in range(k):
        Ts[0, i, i] = 1.0
    X[:] = Ts[0]
    slots = Ts.shape[0]
    for m in range(1, n_terms):
        inv = 1.0 / m
        cur = m % slots
        prev = (m - 1) % slots
        for i in range(k):
            for r in range(nb):
                Ts[cur, i, i, r] = b[i, r] * Ts[prev, i, i, r] * inv
                X[i, i, r] += Ts[cur, i, i, r]
            for j in range(i + 1, k):
                for r in range(nb):
                    v = (b[i, r] * Ts[prev, i, j, r] + h * Ts[prev, i + 1, j, r]) * inv
                    Ts[cur, i, j, r] = v
                    X[i, j, r] += v
    for i in range(k):
        for j in range(i, k):
            for r in range(nb):
                X[i, j, r] *= ec[r]


@njit(**_KERNEL)
def _square_upper(X, nb, out):
    k = X.shape[0]
    for i in range(k):
        for j in range(i, k):
            for r in range(nb):
                out[i, j, r] = 0.0
            for q in range(i, j + 1):
                for r in range(nb):
                    out[i, j, r] += X[i, q, r] * X[q, j, r]


@njit(**_KERNEL)
def _exact_diagonal(z, t, nb, X):
    """Overwrite the diagonal of X = exp(t A) by ``exp(t z_i)``.

    Squaring would double the relative error of the diagonal at every level; with it exact,
    the farther entries (sums of non-negative products) accumulate errors only additively,
    a few ulps per level (Al-Mohy & Higham, 2009, recompute the diagonal the same way).
    """
    k = z.shape[0]
    for i in range(k):
        for r in range(nb):
            X[i, i, r] = math.exp(t * z[i, r])


@njit(**_KERNEL)
def _adjoint_square(G, X, nb, out):
    """triu(G X^T + X^T G) for upper-triangular G and X."""
    k = X.shape[0]
    for i in range(k):
        for j in range(i, k):
            for r in range(nb):
                out[i, j, r] = 0.0
            for q in range(j, k):  # (G X^T)[i, j] = sum_q G[i, q] X[j, q]
                for r in range(nb):
                    out[i, j, r] += G[i, q, r] * X[j, q, r]
            for q in range(0, i + 1):  # (X^T G)[i, j] = sum_q X[q, i] G[q, j]
                for r in range(nb):
                    out[i, j, r] += X[q, i, r] * G[q, j, r]


@njit(**_KERNEL)
def _exp_base_adjoint(b, h, ec, Ts, G, nb, A, An, out):
    """out[i] = d<G, exp(B)>/d b_i: reverse mode through the Taylor sum of ``_exp_base``."""
    k = b.shape[0]
    A[:] = 0.0
    out[:] = 0.0
    for m in range(Ts.shape[0] - 1, 0, -1):
        inv = 1.0 / (m + 1)
        # A_m = ec G + (B - cI)^T A_{m+1} / (m + 1)
        for j in range(k):
            for r in range(nb):
                An[0, j, r] = ec[r] * G[0, j, r] + b[0, r] * A[0, j, r] * inv
        for i in range(1, k):
            for j in range(i, k):
                for r in range(nb):
                    v = b[i, r] * A[i, j, r] + h * A[i - 1, j, r]
                    An[i, j, r] = ec[r] * G[i, j, r] + v * inv
        A, An = An, A
        # Ts[m][i, j] = (b_i Ts[m-1][i, j] + h Ts[m-1][i+1, j]) / m
        inv = 1.0 / m
        for i in range(k):
            for j in range(i, k):
                for r in range(nb):
                    out[i, r] += A[i, j, r] * Ts[m - 1, i, j, r] * inv


@njit(**_KERNEL)
def _n_terms(k, radius):
    """Taylor terms for a scaled diagonal within ``radius`` of its centre: K - 1 to reach the
    top-right entry, then until the relative truncation error is below 2**-55."""
    extra = 0
    bound = math.exp(radius) * radius
    while bound >= 2.0**-55 and extra < _EXTRA_TERMS:
        extra += 1
        bound *= radius / (extra + 1)
    return k + extra


@njit(**_KERNEL)
def _block(eta, rows, s, want_mean, logdd, mean, work):
    """One block of rows (indices ``rows``, at most the block size) sharing ``s`` squarings."""
    z, b, ec, Xs, Ts_all, G, Gn, A, An, out = work
    k = eta.shape[1]
    nb = rows.shape[0]
    top = np.empty(nb)
    scale = 2.0**s
    radius = 0.0
    for r in range(nb):
        top[r] = eta[rows[r]].max()
        for i in range(k):
            z[i, r] = eta[rows[r], i] - top[r]
            radius = max(radius, -0.5 * z[i, r] / scale)
    # The gradient is a divided difference on K + 1 nodes (one repeated): one more term.
    n_terms = _n_terms(k + 1, radius)
    Ts = Ts_all[:n_terms] if want_mean else Ts_all
    h = 1.0 / scale
    _exp_base(z, scale, nb, n_terms, b, ec, Ts, Xs[0])
    for lev in range(1, s + 1):
        _square_upper(Xs[lev - 1], nb, Xs[lev])
        _exact_diagonal(z, 2.0**lev / scale, nb, Xs[lev])
    for r in range(nb):
        logdd[rows[r]] = math.log(Xs[s, 0, k - 1, r]) + top[r]
    if not want_mean:
        return
    G[:] = 0.0
    G[0, k - 1, :] = 1.0
    for lev in range(s, 0, -1):
        _adjoint_square(G, Xs[lev - 1], nb, Gn)
        G[:] = Gn
    _exp_base_adjoint(b, h, ec, Ts, G, nb, A, An, out)
    for r in range(nb):
        mult = 1.0 / (scale * Xs[s, 0, k - 1, r])
        for i in range(k):
            mean[rows[r], i] = out[i, r] * mult


@njit(**_KERNEL)
def cc_rows_kernel(eta, want_mean):
    """Numba kernel: ``(log exp[eta_r], mean_r)`` for each row of a float64 ``(n, K)`` array.

    The mean is ``(n, K)`` when ``want_mean``, else an empty ``(0, K)`` array. Rows are
    grouped by their number of squarings (a counting sort) and processed in blocks of
    :data:`BLOCK` rows (fewer for large ``K``), the row index innermost so that the loops
    run in SIMD lanes. Non-finite rows and spreads beyond ``2**60`` give NaN.
    """
    n, k = eta.shape
    logdd = np.full(n, np.nan)
    mean = np.full((n if want_mean else 0, k), np.nan)
    if k == 1:
        for r in range(n):
            if np.isfinite(eta[r, 0]):
                logdd[r] = eta[r, 0]
                if want_mean:
                    mean[r, 0] = 1.0
        return logdd, mean
    svals = np.empty(n, np.int64)
    counts = np.zeros(_MAX_SQUARINGS + 2, np.int64)
    for r in range(n):
        lo, hi = eta[r].min(), eta[r].max()
        sr = _n_squarings(hi - lo) if np.isfinite(lo) and np.isfinite(hi) else _MAX_SQUARINGS + 1
        svals[r] = sr
        counts[sr] += 1
    starts = np.zeros(_MAX_SQUARINGS + 3, np.int64)
    for q in range(_MAX_SQUARINGS + 2):
        starts[q + 1] = starts[q] + counts[q]
    order = np.empty(n, np.int64)
    fill = starts[:-1].copy()
    for r in range(n):
        order[fill[svals[r]]] = r
        fill[svals[r]] += 1
    s_max = 0
    for q in range(_MAX_SQUARINGS + 1):
        if counts[q] > 0:
            s_max = q
    n_terms = k + 1 + _EXTRA_TERMS
    slots = n_terms if want_mean else 2
    # Fewer rows per block for large K keep the stored Taylor terms within ~4 MB.
    nblk = max(1, min(BLOCK, (1 << 19) // (slots * k * k)))
    # Workspaces (entries are written before they are read).
    work = (
        np.empty((k, nblk)),
        np.empty((k, nblk)),
        np.empty(nblk),
        np.empty((s_max + 1, k, k, nblk)),
        np.empty((slots, k, k, nblk)),
        np.zeros((k, k, nblk)),
        np.zeros((k, k, nblk)),
        np.zeros((k, k, nblk)),
        np.zeros((k, k, nblk)),
        np.empty((k, nblk)),
    )
    for q in range(_MAX_SQUARINGS + 1):
        for lo in range(starts[q], starts[q + 1], nblk):
            hi = min(lo + nblk, starts[q + 1])
            _block(eta, order[lo:hi], q, want_mean, logdd, mean, work)
    return logdd, mean


def as_rows(eta):
    """``eta`` as a float64 ``(n, K)`` array of rows, and its original shape."""
    eta = np.asarray(eta, dtype=np.float64)
    if eta.ndim == 0:
        raise ValueError("continuous categorical: logits need a last axis of length K >= 1.")
    return eta.reshape(-1, eta.shape[-1]), eta.shape


def cc_log_normalizer_and_mean(eta):
    r"""``(log C(eta), E[x])`` of the continuous categorical, in one pass.

    Parameters
    ----------
    eta : array_like, shape (..., K)
        Logits (natural parameters); any real numbers.

    Returns
    -------
    log_c : ndarray, shape (...)
        :math:`\log C(\eta) = -\log \exp[\eta_0, \dots, \eta_{K-1}]` (float64).
    mean : ndarray, shape (..., K)
        :math:`E[x] = -\nabla \log C(\eta)` (float64). Non-finite logits give NaN.
    """
    rows, shape = as_rows(eta)
    logdd, mean = cc_rows_kernel(rows, True)
    return (-logdd).reshape(shape[:-1]), mean.reshape(shape)


def cc_log_normalizer(eta):
    r"""Log normalizer :math:`\log C(\eta) = -\log \exp[\eta]`, shape ``(...)`` from ``(..., K)``.

    :math:`\log C = \log (K-1)!` for equal logits; for ``K = 2`` it is
    :math:`-A(\eta_1 - \eta_0) - \eta_0` with :math:`A` the continuous Bernoulli's
    log-partition (:math:`\log C(\eta + c) = \log C(\eta) - c`).
    """
    rows, shape = as_rows(eta)
    logdd, _ = cc_rows_kernel(rows, False)
    return (-logdd).reshape(shape[:-1])


def cc_mean(eta):
    r"""Mean :math:`E[x] = -\nabla_\eta \log C(\eta)`, shape ``(..., K)`` (not softmax(eta))."""
    return cc_log_normalizer_and_mean(eta)[1]


def cc_logp(x, eta, atol=1e-6):
    r"""Log density :math:`\eta \cdot x + \log C(\eta)`; ``-inf`` off the simplex.

    ``x`` is on the simplex when every entry is :math:`\ge 0` and the row sums to 1 within
    ``atol``. Evaluated as :math:`(\eta - \max\eta) \cdot x + \log C(\eta - \max\eta)`, so
    large logits lose nothing.
    """
    x = np.asarray(x, dtype=np.float64)
    eta = np.asarray(eta, dtype=np.float64)
    z = eta - eta.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        lin = np.sum(z * x, axis=-1)
        inside = np.all(x >= 0.0, axis=-1) & (np.abs(np.sum(x, axis=-1) - 1.0) <= atol)
    # One normalizer per row of the logits; shared logits broadcast against the values.
    return np.where(inside, lin + cc_log_normalizer(z), -np.inf)
