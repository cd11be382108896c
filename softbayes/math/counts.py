r"""Log-probabilities of counts: binomial and beta-binomial, for NumPy arrays and PyTensor tensors.

For ``k`` successes of ``m`` trials with mean ``mu = sigmoid(eta)``:

.. math::

    \log \mathrm{Binomial}(k \mid m, \mu) = \log\binom{m}{k} + k\,\eta - m\,\mathrm{softplus}(\eta),

    \log \mathrm{BetaBinomial}(k \mid m, a, b) = \log\binom{m}{k} + \log B(k + a, m - k + b)
    - \log B(a, b), \qquad a = \mu\phi,\ b = (1 - \mu)\phi,

with :math:`\log B(x, y) = \log\Gamma(x) + \log\Gamma(y) - \log\Gamma(x + y)`. The
beta-binomial is the binomial whose probability is ``Beta(a, b)``: mean ``m mu``, variance
``m mu (1 - mu) (phi + m) / (phi + 1)`` (overdispersion ``(phi + m) / (phi + 1)``); as
``phi -> infinity`` it tends to the binomial. ``b`` is computed as ``sigmoid(-eta) phi``
(``1 - sigmoid(eta)`` is 0 for ``eta > 37``).

The ratios of log-gammas are rising factorials, :math:`\log\Gamma(x + k) - \log\Gamma(x)`
(:func:`log_rising_factorial`). Taken as a difference of log-gammas they lose all digits
when ``x`` is large (``phi = 1e22``: both terms are about ``5e23``), and a sampler that
wanders to a large ``phi`` then sees a garbage gradient and sticks there. For ``x >= 30`` the
difference is written with Stirling's series instead, which has no cancellation:
``(x - 1/2) log1p(k / x) + k log(x + k) - k + d(x + k) - d(x)``, ``d`` the Stirling
correction ``1/(12x) - 1/(360x^3) + 1/(1260x^5) - 1/(1680x^7)`` (truncation below
``1/(1188 x^9) < 5e-17``).

Every function dispatches through :func:`softbayes.math.xp.ops`: NumPy in, NumPy out;
PyTensor in, PyTensor graph out.
"""

from __future__ import annotations

from softbayes.math.xp import ops

__all__ = ["beta_binomial_logp", "binomial_logp", "log_binomial_coefficient",
           "log_rising_factorial"]

#: From here on log_rising_factorial uses Stirling's series.
STIRLING_FROM = 30.0


def _stirling_correction(x):
    """``log Gamma(x) - [(x - 1/2) log x - x + log(2 pi) / 2]`` for ``x >= 30``."""
    r = 1.0 / x
    r2 = r * r
    return r * (1.0 / 12 - r2 * (1.0 / 360 - r2 * (1.0 / 1260 - r2 / 1680)))


def log_rising_factorial(x, k):
    r""":math:`\log\Gamma(x + k) - \log\Gamma(x)` for ``x > 0``, ``k >= 0``, accurate for
    every ``x`` (Stirling's series from :data:`STIRLING_FROM` on, see the module)."""
    xp = ops(x, k)
    small = xp.gammaln(x + k) - xp.gammaln(x)
    # both branches are evaluated: each gets arguments where it is finite, so that the
    # gradient of the branch not taken is 0, never nan
    xs = xp.maximum(x, STIRLING_FROM)
    large = ((xs - 0.5) * xp.log1p(k / xs) + k * xp.log(xs + k) - k
             + _stirling_correction(xs + k) - _stirling_correction(xs))
    return xp.where(x < STIRLING_FROM, small, large)


def log_binomial_coefficient(k, m):
    r""":math:`\log\binom{m}{k}` elementwise (``0 <= k <= m``)."""
    xp = ops(k, m)
    return xp.gammaln(m + 1.0) - xp.gammaln(k + 1.0) - xp.gammaln(m - k + 1.0)


def binomial_logp(k, m, eta):
    """Log-probability of ``k`` successes of ``m`` trials with logit mean ``eta``."""
    xp = ops(k, m, eta)
    return log_binomial_coefficient(k, m) + k * eta - m * xp.softplus(eta)


def beta_binomial_logp(k, m, eta, phi):
    """Log-probability of ``k`` of ``m`` under the beta-binomial with logit mean ``eta`` and
    precision ``phi``."""
    xp = ops(k, m, eta, phi)
    a = xp.sigmoid(eta) * phi
    b = xp.sigmoid(-eta) * phi
    return (
        log_binomial_coefficient(k, m)
        + log_rising_factorial(a, k) + log_rising_factorial(b, m - k)
        - log_rising_factorial(phi, m)
    )
