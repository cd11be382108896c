"""The inverse of the Continuous Bernoulli mean against a 60-digit mpmath bisection."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from softbayes.math.continuous_bernoulli import cb_mean_inverse


def _cb_mean_mp(eta):
    with mpmath.workdps(60):
        eta = mpmath.mpf(eta)
        if abs(eta) < mpmath.mpf(10) ** -25:  # 1/2 + eta/12 - eta^3/720: exact to 60 digits
            return mpmath.mpf(0.5) + eta / 12
        return 1 / (1 - mpmath.exp(-eta)) - 1 / eta


def test_cb_mean_inverse_inverts_the_mean_against_mpmath():
    etas = [-700.0, -40.0, -3.0, -1e-3, 0.0, 2e-9, 0.5, 2.0, 25.0, 300.0]
    means = [float(_cb_mean_mp(e)) for e in etas]
    got = cb_mean_inverse(np.array(means))
    with mpmath.workdps(60):
        for e, m, g in zip(etas, means, got, strict=True):
            mm = mpmath.mpf(m)  # the float mean, exactly
            lo, hi = -1 / mm, 1 / (1 - mm)  # the mean is within 1/|eta| of 0 or 1
            for _ in range(250):  # bisection: the mean increases with eta
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if _cb_mean_mp(mid) < mm else (lo, mid)
            ref = float((lo + hi) / 2)
            assert g == pytest.approx(ref, rel=1e-9, abs=1e-12), (e, m)


def test_cb_mean_inverse_edges():
    edge = cb_mean_inverse(np.array([0.0, 1.0, -0.1, 1.5, np.nan]))
    assert edge[0] == -np.inf and edge[1] == np.inf and np.isnan(edge[2:]).all()
