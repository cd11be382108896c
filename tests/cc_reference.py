"""Independent mpmath references for the continuous categorical (tests only).

The divided difference of exp at nodes z_0..z_n is evaluated as the series
exp(c) * sum_m h_m(z - c) / (m + n)!, with h_m the complete homogeneous symmetric polynomials
and c the centre of the nodes: no division by node gaps, so equal and nearly equal nodes
need no special case. The working precision grows with the spread (the terms reach
e^(spread/2)); everything is returned as mpmath numbers at that precision or as floats.
"""

from __future__ import annotations

import math

import mpmath as mp


def dd_exp(nodes):
    """exp[z_0, ..., z_n] as an mpmath number (at least 60 significant digits)."""
    xs = [mp.mpf(float(v)) for v in nodes]
    lo, hi = min(xs), max(xs)
    half = float(hi - lo) / 2.0
    n = len(xs) - 1
    with mp.workdps(int(80 + half / 2.3 + 5 * n)):
        c = (lo + hi) / 2
        z = [x - c for x in xs]
        n_terms = int(60 + math.e * half + 2 * n)
        h = [mp.mpf(1)] + [mp.mpf(0)] * n_terms
        for zj in z:
            for m in range(1, n_terms + 1):
                h[m] += zj * h[m - 1]
        total = mp.mpf(0)
        fact = mp.factorial(n)
        for m in range(n_terms + 1):
            total += h[m] / fact
            fact *= m + n + 1
        return +(mp.exp(c) * total)


def log_normalizer(eta):
    """log C(eta) = -log exp[eta] as a float."""
    with mp.workdps(60):
        return float(-mp.log(dd_exp(eta)))


def mean(eta):
    """E[x] (floats): exp[eta, eta_i] / exp[eta] for each i."""
    with mp.workdps(60):
        base = dd_exp(eta)
        return [float(dd_exp([*eta, e]) / base) for e in eta]


def second_moments(eta):
    """E[x_i x_j] (floats): (1 + [i == j]) exp[eta, eta_i, eta_j] / exp[eta]."""
    k = len(eta)
    out = [[0.0] * k for _ in range(k)]
    with mp.workdps(60):
        base = dd_exp(eta)
        for i in range(k):
            for j in range(i, k):
                v = (2 if i == j else 1) * dd_exp([*eta, eta[i], eta[j]]) / base
                out[i][j] = out[j][i] = float(v)
    return out


def logp(x, eta):
    """sum_k eta_k x_k + log C(eta), with the inputs taken as exact binary floats."""
    with mp.workdps(80):
        lin = mp.fsum(mp.mpf(float(a)) * mp.mpf(float(b)) for a, b in zip(x, eta, strict=True))
        return float(lin - mp.log(dd_exp(eta)))
