"""The NumPy GLM math of the calibration: modes, scores, dispersion, sandwich covariance.

Analytic and compilation-free, on a design matrix ``X`` and labels, for the calibratable
families (:attr:`softbayes.terms.families.Family.calibratable`), whose classes give the
linear predictor, mean, variance function, scores and curvature. What it is for and how it
is used on a fit: :mod:`softbayes.backend.calibration`.
"""

from __future__ import annotations

import numpy as np

from softbayes.terms.families import FAMILIES, get_family

__all__ = [
    "CALIBRATIONS",
    "DISPERSION_WARN_RANGE",
    "NOISELESS_DISPERSION",
    "NoiselessLabelsError",
    "adjust_draws",
    "adjustment_matrix",
    "calibratable",
    "calibratable_families",
    "check_noise",
    "dispersion_message",
    "dispersion_warning",
    "estimate_dispersion",
    "find_mode",
    "glm_quantities",
    "newton",
    "pearson_statistic",
    "sandwich_covariance",
]

CALIBRATIONS = (None, "dispersion", "sandwich")
#: Below this the labels are treated as noiseless (no noise to calibrate on).
NOISELESS_DISPERSION = 1e-5
#: A dispersion outside this range triggers a warning on every fit.
DISPERSION_WARN_RANGE = (0.5, 2.0)


class NoiselessLabelsError(ValueError):
    """The labels equal the fitted mean: there is no noise to calibrate the spread on."""


def calibratable_families() -> list[str]:
    """The families calibration applies to (:attr:`Family.calibratable`), in registry order."""
    return [name for name, cls in FAMILIES.items() if cls.calibratable]


def calibratable(family, what="Calibration covers"):
    """The family (a name or a Family); a ValueError saying ``what`` families calibration
    applies to if it is not one of them."""
    fam = get_family(family)
    if not fam.calibratable:
        raise ValueError(f"{what} the {', '.join(calibratable_families())} families, not the "
                         f"{fam.name} family ({fam.name!r}).")
    return fam


# -- GLM math (NumPy) ------------------------------------------------------------------------
def glm_quantities(family, labels, X, theta, weights=None):
    r"""Log-likelihood, scores and curvature of a family at ``theta`` (NumPy, analytic).

    Parameters
    ----------
    family : str or Family
        A calibratable family (:func:`calibratable_families`).
    labels : ndarray, (n,) or (n, K)
    X : ndarray (n, p)
        Design matrix of the coefficients (``eta = X @ theta``; for a multiclass family
        ``theta`` is ``(p, K-1)`` flattened row-major and the first class is the reference).
    theta : ndarray
    weights : ndarray (n,), optional
        Per-observation multipliers of the log-likelihood (row weights, learning rate).

    Returns
    -------
    dict
        ``eta``, ``mean``, ``loglik`` (scalar), ``scores`` (n, P) per-observation gradients
        of the log-likelihood, ``grad`` (P,), ``info`` (P, P) = minus the Hessian of the
        log-likelihood.
    """
    fam = calibratable(family)
    X = np.asarray(X, float)
    lab = np.asarray(labels, float)
    w = np.ones(X.shape[0]) if weights is None else np.asarray(weights, float)
    eta = fam.glm_eta(X, theta)
    scores, info = fam.glm_scores_information(lab, X, eta, w)
    return {
        "eta": eta,
        "mean": fam.mean(eta=eta),
        "loglik": float(np.sum(w * fam.logp(lab, eta=eta))),
        "scores": scores,
        "grad": scores.sum(axis=0),
        "info": info,
    }


def newton(objective, grad_hess, theta, *, tol, maxiter):
    """Maximize ``objective`` by Newton's method with step halving from ``theta``;
    ``grad_hess(theta)`` gives the gradient and minus the Hessian there."""
    f = objective(theta)
    for _ in range(maxiter):
        g, h = grad_hess(theta)
        try:
            step = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(h, g, rcond=None)[0]
        t = 1.0
        for _ in range(50):
            f_new = objective(theta + t * step)
            if np.isfinite(f_new) and f_new >= f - 1e-12 * abs(f):
                break
            t *= 0.5
        theta = theta + t * step
        f = f_new
        if float(g @ step) < tol:
            break
    return theta


def find_mode(family, labels, X, weights=None, *, prior_precision=None, prior_mean=None,
              theta0=None, tol=1e-10, maxiter=100):
    r"""Posterior mode by Newton's method with step halving (log-concave GLMs).

    The log posterior is ``loglik(theta; weights) - 0.5 (theta - m)' P (theta - m)`` with
    ``P = prior_precision`` (a matrix or a vector of diagonal precisions; ``None``: flat,
    the MLE). Returns the mode (P,).
    """
    fam = calibratable(family)
    X = np.asarray(X, float)
    k = np.shape(labels)[1] - 1 if fam.multiclass else 1
    dim = X.shape[1] * k
    prec = np.zeros((dim, dim)) if prior_precision is None else np.asarray(prior_precision, float)
    if prec.ndim == 1:
        prec = np.diag(prec)
    m = np.zeros(dim) if prior_mean is None else np.broadcast_to(prior_mean, (dim,)).astype(float)
    theta = np.zeros(dim) if theta0 is None else np.array(theta0, float).ravel()
    cache = {}

    def quantities(th):
        key = th.tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = glm_quantities(fam, labels, X, th, weights)
        return cache[key]

    def objective(th):
        d = th - m
        return quantities(th)["loglik"] - 0.5 * d @ prec @ d

    def grad_hess(th):
        q = quantities(th)
        return q["grad"] - prec @ (th - m), q["info"] + prec

    return newton(objective, grad_hess, theta, tol=tol, maxiter=maxiter)


# -- dispersion -----------------------------------------------------------------------------
def pearson_statistic(family, labels, mean, variance=None, weights=None):
    r"""Pearson :math:`X^2 = \sum_i w_i (l_i - \mu_i)^2 / V_i` (summed over classes for a
    multiclass family, where :math:`V_{ik} = \pi_{ik}` by default; else
    :math:`\mu_i (1 - \mu_i)` by default)."""
    fam = calibratable(family)
    lab = np.asarray(labels, float)
    mu = np.asarray(mean, float)
    if variance is None:
        variance = mu if fam.multiclass else mu * (1.0 - mu)
    terms = (lab - mu) ** 2 / np.asarray(variance, float)
    if terms.ndim == 2:
        terms = terms.sum(axis=1)
    w = 1.0 if weights is None else np.asarray(weights, float)
    return float(np.sum(w * terms))


def estimate_dispersion(family, labels, *, weights=None, eta=None, X=None, theta=None,
                        n_params=None, prior_precision=None):
    r"""Pearson dispersion :math:`\hat\phi = X^2 / \mathrm{df}` around the fitted mean.

    Parameters
    ----------
    family : str or Family
        A calibratable family (:func:`calibratable_families`).
    labels : ndarray (n,) or (n, K)
    weights : ndarray (n,), optional
        Row weights of the family (variance ``phi V(mu) / w``).
    eta : ndarray, optional
        Linear predictor at the mode ((n, K) logits with a zero reference column for a
        multiclass family). If omitted, computed from ``X`` and ``theta``; if ``theta``
        is omitted too, the mode is found (:func:`find_mode`, flat prior unless
        ``prior_precision``).
    X : ndarray (n, p), optional
    theta : ndarray, optional
    n_params : int, optional
        Number of fitted coefficients :math:`p` (default: the size of ``theta`` / the
        columns of ``X`` times ``K - 1``).

    Returns
    -------
    float
        :math:`\hat\phi`; 1 for labels as noisy as coin flips (multinomial draws), below 1
        for less noisy labels. Degrees of freedom ``n - p`` (``n(K-1) - p`` for K classes).
    """
    fam = calibratable(family)
    lab = np.asarray(labels, float)
    n = lab.shape[0]
    k = lab.shape[1] - 1 if fam.multiclass else 1
    if eta is None:
        if X is None:
            raise ValueError("estimate_dispersion needs eta, or X (and optionally theta).")
        if theta is None:
            theta = find_mode(fam, lab, X, weights, prior_precision=prior_precision)
        eta = fam.glm_eta(X, theta)
        if n_params is None:
            n_params = np.size(theta)
    if n_params is None:
        raise ValueError("estimate_dispersion: pass n_params with eta.")
    eta = np.asarray(eta, float)
    df = n * k - int(n_params)
    if df <= 0:
        raise ValueError(f"No residual degrees of freedom: n(K-1) = {n * k}, p = {n_params}.")
    return pearson_statistic(fam, lab, fam.mean(eta=eta), fam.variance(eta=eta), weights) / df


def dispersion_message(phi, family="weighted_bernoulli") -> str:
    """Plain-words reading of a dispersion estimate (what it means, what to do)."""
    name = getattr(family, "name", family)
    unit = FAMILIES[name].dispersion_unit if name in FAMILIES else "the family assumes"
    if not np.isfinite(phi):
        return f"The dispersion of the labels could not be estimated (phi = {phi})."
    if phi < NOISELESS_DISPERSION:
        return (
            f"Dispersion phi = {phi:.3g}: the labels equal the fitted mean (no noise). The "
            f"{name} posterior's spread then comes only from the assumed variance, and there "
            "is no noise to calibrate it on: calibrate= is refused. Report the fit as a "
            "deterministic curve fit, or check whether the labels were produced by a model."
        )
    advice = ("fit with calibrate='sandwich' (robust) or calibrate='dispersion' (rescales the "
              "likelihood by 1/phi) for calibrated intervals.")
    if phi < 1:
        return (
            f"Dispersion phi = {phi:.3g}: the labels vary {1.0 / phi:.3g}x less (in variance) "
            f"than {unit}. The uncalibrated {name} intervals are about "
            f"{np.sqrt(1.0 / phi):.2g}x too wide (sqrt(1/phi)); {advice}"
        )
    return (
        f"Dispersion phi = {phi:.3g}: the labels vary {phi:.3g}x more (in variance) than "
        f"{unit}. The uncalibrated {name} intervals are about {np.sqrt(phi):.2g}x too narrow "
        f"(sqrt(phi)); {advice}"
    )


def check_noise(phi, family="weighted_bernoulli"):
    """Raise :class:`NoiselessLabelsError` if the labels carry no noise to calibrate on."""
    if not np.isfinite(phi) or phi < NOISELESS_DISPERSION:
        raise NoiselessLabelsError(dispersion_message(phi, family))
    return phi


def dispersion_warning(phi, family="weighted_bernoulli"):
    """The warning text when ``phi`` is outside :data:`DISPERSION_WARN_RANGE`, else None."""
    lo, hi = DISPERSION_WARN_RANGE
    if np.isfinite(phi) and lo <= phi <= hi:
        return None
    return dispersion_message(phi, family)


# -- sandwich -------------------------------------------------------------------------------
def sandwich_covariance(family, labels, X, theta, weights=None, *, prior_precision=None,
                        hessian=None):
    r"""Sandwich covariance :math:`H^{-1} J H^{-1}` at ``theta`` (the mode).

    ``H`` is minus the Hessian of the log posterior (``info + prior_precision``; pass
    ``hessian`` to use another, e.g. PyMC's), ``J = sum_i s_i s_i'`` of the per-observation
    scores. Returns ``(cov, H, J)``. With a flat prior at the MLE this is the HC0 sandwich
    (statsmodels ``GLM(...).fit(cov_type="HC0")`` for ``weighted_bernoulli``).
    """
    q = glm_quantities(family, labels, X, theta, weights)
    if hessian is None:
        h = q["info"].copy()
        if prior_precision is not None:
            pp = np.asarray(prior_precision, float)
            h = h + (np.diag(pp) if pp.ndim == 1 else pp)
    else:
        h = np.asarray(hessian, float)
    s = q["scores"]
    j = s.T @ s
    hinv = np.linalg.inv(h)
    cov = hinv @ j @ hinv
    return 0.5 * (cov + cov.T), h, j


def adjustment_matrix(cov_post, cov_target, method="cholesky"):
    r"""``A`` with ``A cov_post A' = cov_target``.

    ``"cholesky"``: :math:`A = L_t L_p^{-1}`; ``"symmetric"``: :math:`A = \Sigma_p^{-1/2}
    (\Sigma_p^{1/2}\Sigma_t\Sigma_p^{1/2})^{1/2}\Sigma_p^{-1/2}`, the symmetric positive
    definite solution.
    """
    cp = np.atleast_2d(np.asarray(cov_post, float))
    ct = np.atleast_2d(np.asarray(cov_target, float))
    if method == "cholesky":
        return np.linalg.cholesky(ct) @ np.linalg.inv(np.linalg.cholesky(cp))
    if method == "symmetric":
        def sqrtm(m, inv=False):
            vals, vecs = np.linalg.eigh(0.5 * (m + m.T))
            vals = np.clip(vals, 0.0, None)
            return (vecs * vals ** (-0.5 if inv else 0.5)) @ vecs.T

        ph, ph_inv = sqrtm(cp), sqrtm(cp, inv=True)
        return ph_inv @ sqrtm(ph @ ct @ ph) @ ph_inv
    raise ValueError(f"method must be 'cholesky' or 'symmetric', got {method!r}.")


def adjust_draws(draws, mode, A):
    r"""``mode + (draws - mode) A'`` for draws ``(S, P)`` (rows are draws)."""
    draws = np.asarray(draws, float)
    mode = np.asarray(mode, float)
    return mode + (draws - mode) @ np.asarray(A, float).T
