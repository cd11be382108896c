r"""Calibrated uncertainty for soft-label posteriors (issue 9).

Why
---
The ``weighted_bernoulli`` and ``soft_categorical`` likelihoods count every soft label as one
coin flip (one multinomial draw): their curvature, and so the posterior spread, is Bernoulli
information, whatever the actual noise of the labels around their mean. The Continuous
Bernoulli has a fixed variance function :math:`A''(\eta)` and no dispersion parameter either.
When the labels are less noisy than that (an average of many annotators, a model's output)
the posterior is too wide -- several times too wide for precise labels; when they are noisier
it is too narrow. (The Beta family has its own precision and is left alone.)

What this module gives
----------------------
* :func:`estimate_dispersion` -- the Pearson dispersion
  :math:`\hat\phi = X^2 / (n - p)` at the mode, with the family's variance function
  (``weighted_bernoulli``: :math:`\mu(1-\mu)`; ``continuous_bernoulli``: :math:`A''(\eta)`;
  ``soft_categorical``: the multinomial Pearson statistic
  :math:`\sum_i\sum_k (l_{ik} - \pi_{ik})^2 / \pi_{ik}` on :math:`n(K-1) - p` degrees of
  freedom). Observation weights :math:`w_i` multiply the squared residuals (variance
  :math:`\phi V(\mu)/w_i`). :func:`dispersion_message` says in words what it means.
* Two calibrations (``Model.fit(calibrate=...)``):

  ``"dispersion"``
      the quasi-likelihood posterior: the log-likelihood is multiplied by the learning
      rate :math:`w = 1/\hat\phi` (the family's weights scaled by :math:`w`; for the
      Continuous Bernoulli a potential :math:`(w - 1)\sum_i \log p(l_i)` is added), with
      :math:`\hat\phi` from a pilot fit at the posterior mode. Exact for the Bernoulli-type
      families when the labels' variance is proportional to the variance function
      (Beta noise, annotator averages); the spread shrinks by :math:`\sqrt{\hat\phi}`.
  ``"sandwich"``
      the curvature adjustment of Ribatet, Cooley & Davison (2012) / the "open-faced
      sandwich" of Shaby (2014): draws :math:`\theta` of the ordinary posterior are mapped to
      :math:`\hat\theta + A(\theta - \hat\theta)` with :math:`A\,\Sigma_{post}A^\top =
      \Sigma_{sand} = H^{-1} J H^{-1}`, :math:`\hat\theta` the posterior mode, :math:`H` the
      Hessian of the *negative log posterior* at the mode (prior curvature included; with a
      flat prior it is the observed information, and :math:`\Sigma_{sand}` is the HC0
      sandwich of statsmodels), :math:`J = \sum_i s_i s_i^\top` with the per-observation
      scores of the log-likelihood (analytic: ``weighted_bernoulli``
      :math:`s_i = w_i(l_i - \sigma(\eta_i))x_i`; ``continuous_bernoulli``
      :math:`s_i = w_i(l_i - A'(\eta_i))x_i`; ``soft_categorical``
      :math:`s_i = w_i (l_i - \pi_i)_{2..K} \otimes x_i`). :math:`\Sigma_{post}` is the
      sample covariance of the draws, so the adjusted draws have exactly the sandwich
      covariance; :math:`A = L_{sand} L_{post}^{-1}` (Cholesky factors, the default) or the
      symmetric choice. The mode stays in place. Robust to any variance misspecification
      (heteroscedastic noise included), so it is the safer of the two.

Default
-------
``calibrate=None`` stays the default. Evidence (``validation/coverage.md``, 400 replications
per cell): the uncalibrated ``weighted_bernoulli`` posterior never under-covers soft labels
(labels are at most as noisy as coin flips, phi <= 1: coverage ~100 %, intervals
sqrt(1/phi) too wide) and is right for hard labels; both calibrations give 0.885-0.914 in
every noisy setting. A default calibration would silently change what every existing fit
means (the posterior of the seed's weighted likelihood) and refuse noiseless labels, so it
stays an explicit choice; instead every fit of the three families records
``softbayes_dispersion`` and warns (with :func:`dispersion_message`) when it is outside
``[0.5, 2]``. Between the two, ``"sandwich"`` is the robust one (any variance function,
no refit: :func:`calibrate_fit` applies it to an existing fit) and ``"dispersion"`` the
one with a proper (tempered) posterior, slightly better coverage when the labels' variance
is proportional to the family's (Beta noise, annotator averages). For the Continuous
Bernoulli note that its mean curve A'(x theta) is not logistic: with precise labels from a
logistic mean, calibrated intervals are right for the CB's best approximation but miss the
true E[l | x] (the uncalibrated CB only covers it by being 3.5-9x too wide).

Scope
-----
Calibration applies to population-level coefficients: models with group-level terms
``(1|g)`` are refused (the mode of a hierarchical posterior is degenerate at
:math:`\sigma \to 0`, and adjusting the offsets would need the group-level sandwich). Their
dispersion is still recorded (at the posterior mean, with :math:`p` counting the group
columns too). Priors must be untransformed (Normal, StudentT, ... on the real line).

Calibrated draws downstream
---------------------------
The adjusted (or tempered) draws *are* the ``posterior`` group, so :func:`softbayes.predict`,
:func:`softbayes.marginal_effects` and everything built on the posterior use them unchanged.
The pointwise ``log_likelihood`` group is recomputed on the calibrated draws with the
*untempered* family log-likelihood (:func:`recompute_log_likelihood`), so LOO predictive
densities stay densities of the same observation model; note that PSIS-LOO's importance
ratios then assume the ordinary likelihood, an approximation for calibrated draws (K-fold is
exact). Noiseless labels (:math:`\hat\phi < 10^{-5}`) have no noise to calibrate on:
calibration raises :class:`NoiselessLabelsError` rather than return a zero-width posterior.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import special as _sp

from softbayes.math.continuous_bernoulli import cb_log_partition, cb_mean, cb_variance

__all__ = [
    "CALIBRATED_FAMILIES",
    "CALIBRATIONS",
    "DISPERSION_WARN_RANGE",
    "NOISELESS_DISPERSION",
    "NoiselessLabelsError",
    "adjust_draws",
    "adjustment_matrix",
    "calibrate_fit",
    "check_noise",
    "dispersion_message",
    "dispersion_warning",
    "estimate_dispersion",
    "find_mode",
    "glm_quantities",
    "pearson_statistic",
    "plan_fit",
    "recompute_log_likelihood",
    "sandwich_covariance",
]

CALIBRATIONS = (None, "dispersion", "sandwich")
CALIBRATED_FAMILIES = ("weighted_bernoulli", "continuous_bernoulli", "soft_categorical")
#: Below this the labels are treated as noiseless (no noise to calibrate on).
NOISELESS_DISPERSION = 1e-5
#: A dispersion outside this range triggers a warning on every fit.
DISPERSION_WARN_RANGE = (0.5, 2.0)


class NoiselessLabelsError(ValueError):
    """The labels equal the fitted mean: there is no noise to calibrate the spread on."""


def _family_name(family) -> str:
    name = getattr(family, "name", family)
    if name not in CALIBRATED_FAMILIES:
        raise ValueError(
            f"Calibration covers the {', '.join(CALIBRATED_FAMILIES)} families, not {name!r} "
            "(the beta family estimates its own precision; bernoulli labels are hard 0/1)."
        )
    return name


# -- GLM math (NumPy) ------------------------------------------------------------------------
def _eta(name, X, theta):
    X = np.asarray(X, float)
    theta = np.asarray(theta, float)
    if name == "soft_categorical":
        p = X.shape[1]
        b = theta.reshape(p, -1)
        eta = X @ b
        return np.concatenate([np.zeros((X.shape[0], 1)), eta], axis=1)
    return X @ theta


def _mean_var(name, eta):
    """(mean, variance function) at eta."""
    if name == "weighted_bernoulli":
        mu = _sp.expit(eta)
        return mu, mu * (1.0 - mu)
    if name == "continuous_bernoulli":
        return cb_mean(eta), cb_variance(eta)
    pi = _sp.softmax(eta, axis=-1)
    return pi, pi


def glm_quantities(family, labels, X, theta, weights=None):
    r"""Log-likelihood, scores and curvature of a family at ``theta`` (NumPy, analytic).

    Parameters
    ----------
    family : str or Family
        ``"weighted_bernoulli"``, ``"continuous_bernoulli"`` or ``"soft_categorical"``.
    labels : ndarray, (n,) or (n, K)
    X : ndarray (n, p)
        Design matrix of the coefficients (``eta = X @ theta``; for ``soft_categorical``
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
    name = _family_name(family)
    X = np.asarray(X, float)
    lab = np.asarray(labels, float)
    n, p = X.shape
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    eta = _eta(name, X, theta)
    if name == "weighted_bernoulli":
        mu = _sp.expit(eta)
        ll = -lab * np.logaddexp(0.0, -eta) - (1.0 - lab) * np.logaddexp(0.0, eta)
        resid = lab - mu
        scores = (w * resid)[:, None] * X
        info = (X * (w * mu * (1.0 - mu))[:, None]).T @ X
    elif name == "continuous_bernoulli":
        mu = cb_mean(eta)
        ll = eta * lab - cb_log_partition(eta)
        scores = (w * (lab - mu))[:, None] * X
        info = (X * (w * cb_variance(eta))[:, None]).T @ X
    else:
        mu = _sp.softmax(eta, axis=-1)
        logpi = _sp.log_softmax(eta, axis=-1)
        ll = np.sum(np.where(lab > 0, lab * logpi, 0.0), axis=-1)
        r = (lab - mu)[:, 1:]
        scores = (w[:, None, None] * X[:, :, None] * r[:, None, :]).reshape(n, -1)
        pt_ = mu[:, 1:]
        m = np.einsum("ik,kl->ikl", pt_, np.eye(pt_.shape[1])) - pt_[:, :, None] * pt_[:, None, :]
        info = np.einsum("i,ij,il,ikm->jklm", w, X, X, m).reshape(p * r.shape[1], -1)
    return {
        "eta": eta,
        "mean": mu,
        "loglik": float(np.sum(w * ll)),
        "scores": scores,
        "grad": scores.sum(axis=0),
        "info": info,
    }


def find_mode(family, labels, X, weights=None, *, prior_precision=None, prior_mean=None,
              theta0=None, tol=1e-10, maxiter=100):
    r"""Posterior mode by Newton's method with step halving (log-concave GLMs).

    The log posterior is ``loglik(theta; weights) - 0.5 (theta - m)' P (theta - m)`` with
    ``P = prior_precision`` (a matrix or a vector of diagonal precisions; ``None``: flat,
    the MLE). Returns the mode (P,).
    """
    name = _family_name(family)
    X = np.asarray(X, float)
    k = 1 if name != "soft_categorical" else np.shape(labels)[1] - 1
    dim = X.shape[1] * k
    prec = np.zeros((dim, dim)) if prior_precision is None else np.asarray(prior_precision, float)
    if prec.ndim == 1:
        prec = np.diag(prec)
    m = np.zeros(dim) if prior_mean is None else np.broadcast_to(prior_mean, (dim,)).astype(float)
    theta = np.zeros(dim) if theta0 is None else np.array(theta0, float).ravel()

    def objective(th):
        q = glm_quantities(name, labels, X, th, weights)
        d = th - m
        return q["loglik"] - 0.5 * d @ prec @ d, q

    f, q = objective(theta)
    for _ in range(maxiter):
        g = q["grad"] - prec @ (theta - m)
        h = q["info"] + prec
        try:
            step = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(h, g, rcond=None)[0]
        t = 1.0
        for _ in range(50):
            f_new, q_new = objective(theta + t * step)
            if np.isfinite(f_new) and f_new >= f - 1e-12 * abs(f):
                break
            t *= 0.5
        theta = theta + t * step
        decrement = float(g @ step)
        f, q = f_new, q_new
        if decrement < tol:
            break
    return theta


# -- dispersion -----------------------------------------------------------------------------
def pearson_statistic(family, labels, mean, variance=None, weights=None):
    r"""Pearson :math:`X^2 = \sum_i w_i (l_i - \mu_i)^2 / V_i` (summed over classes for
    ``soft_categorical``, where :math:`V_{ik} = \pi_{ik}`)."""
    name = _family_name(family)
    lab = np.asarray(labels, float)
    mu = np.asarray(mean, float)
    v = mu * (1.0 - mu) if variance is None and name != "soft_categorical" else (
        mu if variance is None else np.asarray(variance, float))
    terms = (lab - mu) ** 2 / v
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
        ``"weighted_bernoulli"``, ``"continuous_bernoulli"`` or ``"soft_categorical"``.
    labels : ndarray (n,) or (n, K)
    weights : ndarray (n,), optional
        Row weights of the family (variance ``phi V(mu) / w``).
    eta : ndarray, optional
        Linear predictor at the mode ((n, K) logits with a zero reference column for
        ``soft_categorical``). If omitted, computed from ``X`` and ``theta``; if ``theta``
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
    name = _family_name(family)
    lab = np.asarray(labels, float)
    n = lab.shape[0]
    k = lab.shape[1] - 1 if name == "soft_categorical" else 1
    if eta is None:
        if X is None:
            raise ValueError("estimate_dispersion needs eta, or X (and optionally theta).")
        if theta is None:
            theta = find_mode(name, lab, X, weights, prior_precision=prior_precision)
        eta = _eta(name, X, theta)
        if n_params is None:
            n_params = np.size(theta)
    if n_params is None:
        raise ValueError("estimate_dispersion: pass n_params with eta.")
    mu, v = _mean_var(name, np.asarray(eta, float))
    df = n * k - int(n_params)
    if df <= 0:
        raise ValueError(f"No residual degrees of freedom: n(K-1) = {n * k}, p = {n_params}.")
    return pearson_statistic(name, lab, mu, v, weights) / df


def dispersion_message(phi, family="weighted_bernoulli") -> str:
    """Plain-words reading of a dispersion estimate (what it means, what to do)."""
    name = getattr(family, "name", family)
    unit = {
        "weighted_bernoulli": "Bernoulli coin flips with the same mean",
        "soft_categorical": "single multinomial draws with the same class probabilities",
        "continuous_bernoulli": "the Continuous Bernoulli variance A''(eta) assumes",
    }.get(name, "the family assumes")
    if not np.isfinite(phi):
        return f"The dispersion of the labels could not be estimated (phi = {phi})."
    if phi < NOISELESS_DISPERSION:
        return (
            f"Dispersion phi = {phi:.3g}: the labels equal the fitted mean (no noise). The "
            f"{name} posterior's spread then comes only from the assumed variance, and there "
            "is no noise to calibrate it on: calibrate= is refused. Report the fit as a "
            "deterministic curve fit, or check whether the labels were produced by a model."
        )
    ratio = 1.0 / phi
    width = np.sqrt(ratio)
    if phi < 1:
        return (
            f"Dispersion phi = {phi:.3g}: the labels vary {ratio:.3g}x less (in variance) "
            f"than {unit}. The uncalibrated {name} intervals are about {width:.2g}x too wide "
            "(sqrt(1/phi)); fit with calibrate='sandwich' (robust) or calibrate='dispersion' "
            "(rescales the likelihood by 1/phi) for calibrated intervals."
        )
    return (
        f"Dispersion phi = {phi:.3g}: the labels vary {phi:.3g}x more (in variance) than "
        f"{unit}. The uncalibrated {name} intervals are about {np.sqrt(phi):.2g}x too narrow "
        "(sqrt(phi)); fit with calibrate='sandwich' (robust) or calibrate='dispersion' "
        "(rescales the likelihood by 1/phi) for calibrated intervals."
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
        lp = np.linalg.cholesky(cp)
        lt = np.linalg.cholesky(ct)
        return lt @ np.linalg.inv(lp)
    if method == "symmetric":
        def sqrtm(m, inv=False):
            vals, vecs = np.linalg.eigh(0.5 * (m + m.T))
            vals = np.clip(vals, 0.0, None)
            d = vals ** (-0.5 if inv else 0.5)
            return (vecs * d) @ vecs.T

        ph = sqrtm(cp)
        phi_ = sqrtm(cp, inv=True)
        return phi_ @ sqrtm(ph @ ct @ ph) @ phi_
    raise ValueError(f"method must be 'cholesky' or 'symmetric', got {method!r}.")


def adjust_draws(draws, mode, A):
    r"""``mode + (draws - mode) A'`` for draws ``(S, P)`` (rows are draws)."""
    draws = np.asarray(draws, float)
    mode = np.asarray(mode, float)
    return mode + (draws - mode) @ np.asarray(A, float).T


# -- the Model layer ------------------------------------------------------------------------
@dataclass
class _Layout:
    """Where each population-level coefficient lives: posterior names, shapes, Z columns."""

    names: list
    shapes: list
    Z: np.ndarray
    k: int  # classes - 1 (1 for binary)
    info: dict = field(default_factory=dict)

    @property
    def size(self):
        return int(sum(int(np.prod(s)) for s in self.shapes))


def _layout(model):
    pred = model._main
    d = pred.design
    xc = d.X - d.means
    names, shapes, cols = [], [], []
    k = len(model.label_columns) - 1 if model.family.multiclass else 1
    cls = pred.cls
    if d.intercept:
        names.append(pred.var("Intercept_centered"))
        shapes.append(cls)
        cols.append(np.ones((d.n, 1)))
    for t in d.common_terms:
        p = t.columns.stop - t.columns.start
        names.append(pred.var(t.name))
        shapes.append(((p,) if p > 1 else ()) + cls)
        cols.append(xc[:, t.columns])
    Z = np.concatenate(cols, axis=1) if cols else np.zeros((d.n, 0))
    return _Layout(names, shapes, Z, k)


def _refuse_unsupported(model, calibrate):
    name = model.family.name
    if name not in CALIBRATED_FAMILIES:
        raise ValueError(
            f"calibrate={calibrate!r} applies to the {', '.join(CALIBRATED_FAMILIES)} families, "
            f"not {name!r}: the beta family estimates its own precision phi, and bernoulli "
            "labels are hard 0/1 (their Bernoulli variance is right)."
        )
    if model._main.design.group_terms:
        raise ValueError(
            f"calibrate={calibrate!r} is not supported for models with group-level terms "
            f"({[g.name for g in model._main.design.group_terms]}): the calibration adjusts "
            "population-level coefficients at the posterior mode, and a hierarchical "
            "posterior has no useful joint mode (sigma -> 0). Fit without calibrate= (the "
            "dispersion is still recorded), or model the groups as fixed effects."
        )
    m = model.pymc_model
    lay = _layout(model)
    free = [v.name for v in m.value_vars]
    if sorted(free) != sorted(lay.names):
        raise ValueError(
            f"calibrate={calibrate!r} needs untransformed real-valued priors on every "
            f"coefficient; the model's free variables are {free}, expected {lay.names}. Use "
            "Normal / StudentT / Laplace / Cauchy priors for the coefficients."
        )
    return lay


def _ravel(point, lay):
    return np.concatenate([np.asarray(point[nm], float).ravel() for nm in lay.names])


def _unravel(vec, lay):
    out, i = {}, 0
    for nm, sh in zip(lay.names, lay.shapes, strict=True):
        size = int(np.prod(sh))
        out[nm] = np.asarray(vec[i:i + size]).reshape(sh)
        i += size
    return out


def _normal_prior(model, lay):
    """(mean, precision) vectors of independent Normal priors on the coefficients, or None."""
    from softbayes.terms.priors import _broadcast_param

    rows = {param: (prior, key) for key, param, prior, _ in model._prior_rows}
    means, precs = [], []
    for nm, sh in zip(lay.names, lay.shapes, strict=True):
        prior, key = rows[nm]
        if prior.dist != "Normal" or not {"mu", "sigma"} >= set(prior.kwargs):
            return None
        mu = _broadcast_param(prior.kwargs.get("mu", 0.0), sh, key, "mu")
        sd = _broadcast_param(prior.kwargs.get("sigma", 1.0), sh, key, "sigma")
        means.append(np.broadcast_to(mu, sh).ravel())
        precs.append(np.broadcast_to(1.0 / np.asarray(sd, float) ** 2, sh).ravel())
    return np.concatenate(means), np.concatenate(precs)


def _posterior_mode(model, lay, theta0=None):
    """Mode of the model's posterior and minus the Hessian of the log posterior there.

    Normal priors (the defaults): Newton on the analytic NumPy math (no compilation), from
    ``theta0`` (layout order) if given. Other real-line priors: Newton on PyMC's compiled
    logp, gradient and Hessian.
    """
    fam = model.family.name
    w = _weights(model)
    normal = _normal_prior(model, lay)
    if normal is not None:
        mean, prec = normal
        theta = find_mode(fam, model.labels, lay.Z, w, prior_precision=prec, prior_mean=mean,
                          theta0=theta0)
        h = glm_quantities(fam, model.labels, lay.Z, theta, w)["info"] + np.diag(prec)
        return theta, h
    m = model.pymc_model
    vars_ = [m[nm] for nm in lay.names]
    logp = m.compile_logp(vars=None, jacobian=False)
    dlogp = m.compile_dlogp(vars=vars_, jacobian=False)
    d2 = m.compile_d2logp(vars=vars_, jacobian=False, negate_output=False)
    theta = np.zeros(lay.size)

    def pt(vec):
        return {m.rvs_to_values[m[nm]].name: v for nm, v in _unravel(vec, lay).items()}

    f = float(logp(pt(theta)))
    for _ in range(100):
        g = np.asarray(dlogp(pt(theta)), float)
        h = -np.asarray(d2(pt(theta)), float)
        step = np.linalg.solve(h, g)
        t = 1.0
        for _ in range(50):
            f_new = float(logp(pt(theta + t * step)))
            if np.isfinite(f_new) and f_new >= f - 1e-12 * abs(f):
                break
            t *= 0.5
        theta = theta + t * step
        dec = float(g @ step)
        f = f_new
        if dec < 1e-12:
            break
    h = -np.asarray(d2(pt(theta)), float)
    return theta, h


def _weights(model):
    return None if model.weights is None else np.asarray(model.weights, float)


@dataclass
class FitPlan:
    """What :meth:`softbayes.Model.fit` needs for ``calibrate=``: built by :func:`plan_fit`."""

    calibrate: str | None
    sampling_model: object = None  # a tempered PyMC model, or None: the model's own
    attrs: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)
    mode: np.ndarray | None = None
    hessian: np.ndarray | None = None
    layout: _Layout | None = None
    dispersion: float | None = None

    def adjust(self, model, idata):
        """Sandwich: adjust the posterior draws in place; other choices: unchanged."""
        if self.calibrate != "sandwich":
            return idata
        return _sandwich_adjust(model, idata, self)

    def finish(self, model, idata):
        """Attrs and warnings after sampling (records the dispersion of every fit)."""
        attrs = dict(self.attrs)
        if self.dispersion is None and model.family.name in CALIBRATED_FAMILIES:
            phi = fit_dispersion(model, idata)
            attrs["softbayes_dispersion"] = float(phi)
            msg = dispersion_warning(phi, model.family)
            if msg:
                self.messages.append(msg)
        return attrs


def plan_fit(model, calibrate=None) -> FitPlan:
    """Pilot work before sampling: mode, dispersion, tempered model (see the module doc).

    ``calibrate=None``: nothing before sampling (the dispersion is computed after sampling
    at the posterior mean by :meth:`FitPlan.finish`).
    """
    if calibrate not in CALIBRATIONS:
        raise ValueError(
            f"calibrate must be None, 'dispersion' or 'sandwich', got {calibrate!r}."
        )
    plan = FitPlan(calibrate, attrs={"softbayes_calibration": calibrate or "none"})
    if calibrate is None:
        return plan
    lay = _refuse_unsupported(model, calibrate)
    theta, h = _posterior_mode(model, lay)
    n_par = lay.size
    w = _weights(model)
    phi = estimate_dispersion(model.family, model.labels, weights=w,
                              eta=_eta(model.family.name, lay.Z, theta), n_params=n_par)
    check_noise(phi, model.family)
    plan.mode, plan.hessian, plan.layout, plan.dispersion = theta, h, lay, phi
    plan.attrs["softbayes_dispersion"] = float(phi)
    plan.attrs["softbayes_dispersion_df"] = int(
        model.n_obs * lay.k - n_par)
    if calibrate == "dispersion":
        rate = 1.0 / phi
        plan.attrs["softbayes_learning_rate"] = float(rate)
        plan.sampling_model = tempered_pymc_model(model, rate)
    return plan  # calibrated: phi is recorded, no warning


def tempered_pymc_model(model, rate):
    """The model's PyMC model with the log-likelihood multiplied by ``rate``.

    Weighted families: the same graph with ``weights * rate``; the Continuous Bernoulli: the
    observed variable plus a potential ``(rate - 1) * sum(logp)`` (see ``Model._build``).
    """
    return model._build(rate=rate)


def _draw_matrix(model, posterior, lay):
    """(chain, draw, P) matrix of the coefficients in layout order."""
    mats = []
    c, d = posterior.sizes["chain"], posterior.sizes["draw"]
    for nm in lay.names:
        da = posterior[nm]
        other = [dim for dim in da.dims if dim not in ("chain", "draw")]
        v = np.asarray(da.transpose("chain", "draw", *other).values, float)
        mats.append(v.reshape(c, d, -1))
    return np.concatenate(mats, axis=2)


def _write_draws(model, posterior, lay, mat):
    """Put the (chain, draw, P) matrix back into ``posterior`` (and recompute Intercept)."""
    import xarray as xr

    i = 0
    for nm in lay.names:
        da = posterior[nm]
        other = [dim for dim in da.dims if dim not in ("chain", "draw")]
        t = da.transpose("chain", "draw", *other)
        size = int(np.prod(t.shape[2:])) if other else 1
        vals = mat[:, :, i:i + size].reshape(t.shape)
        posterior[nm] = t.copy(data=vals).transpose(*da.dims)
        i += size
    pred = model._main
    d_ = pred.design
    if d_.intercept and pred.var("Intercept") in posterior:
        a = posterior[pred.var("Intercept_centered")]
        shift = xr.zeros_like(a)
        for t in d_.common_terms:
            p = t.columns.stop - t.columns.start
            beta = posterior[pred.var(t.name)]
            means = d_.means[t.columns]
            if p > 1:
                dim = pred.var(f"{t.name}_dim")
                shift = shift + (beta * xr.DataArray(means, dims=[dim],
                                                     coords={dim: beta[dim].values})).sum(dim)
            else:
                shift = shift + beta * float(means[0])
        posterior[pred.var("Intercept")] = (a - shift).transpose(
            *posterior[pred.var("Intercept")].dims)
    return posterior


def _sandwich_adjust(model, idata, plan, method="cholesky"):
    lay = plan.layout
    post = idata["posterior"]
    ds = post.to_dataset() if hasattr(post, "to_dataset") else post
    mat = _draw_matrix(model, ds, lay)
    c, d, p = mat.shape
    flat = mat.reshape(-1, p)
    cov_post = np.cov(flat, rowvar=False).reshape(p, p)
    cov_sand, _, _ = sandwich_covariance(model.family, model.labels, lay.Z, plan.mode,
                                         _weights(model), hessian=plan.hessian)
    A = adjustment_matrix(cov_post, cov_sand, method)
    adj = adjust_draws(flat, plan.mode, A).reshape(c, d, p)
    ds = _write_draws(model, ds.copy(), lay, adj)
    attrs = dict(post.attrs)
    idata["posterior"] = ds
    idata["posterior"].attrs.update(attrs)
    plan.attrs["softbayes_sandwich_adjustment"] = _json(A)
    plan.attrs["softbayes_sandwich_mode"] = _json(plan.mode)
    plan.attrs["softbayes_sandwich_covariance"] = _json(cov_sand)
    plan.attrs["softbayes_sandwich_parameters"] = _json(lay.names)
    return idata


def _json(x):
    import json

    return json.dumps(np.asarray(x).tolist() if not isinstance(x, list) else x)


def fit_dispersion(model, idata):
    """Dispersion of a fit's labels: at the posterior mode (Normal priors on
    population-level coefficients only, the default: NumPy Newton, no compilation), else at
    the posterior mean of the parameters, where ``p`` counts the population-level
    coefficients plus every group-level column (an upper bound on their effective number).
    """
    if not model._main.design.group_terms:
        lay = _layout(model)
        normal = _normal_prior(model, lay)
        if normal is not None:
            # Newton from the posterior mean (next to the mode for these GLMs): 2-3 steps
            # instead of ~8 from zero, each a pass over the data.
            post = idata["posterior"]
            draws = _draw_matrix(model, post.to_dataset() if hasattr(post, "to_dataset")
                                 else post, lay)
            start = draws.mean(axis=(0, 1))
            theta, _ = _posterior_mode(model, lay,
                                       theta0=start if np.all(np.isfinite(start)) else None)
            try:
                return estimate_dispersion(model.family, model.labels, weights=_weights(model),
                                           eta=_eta(model.family.name, lay.Z, theta),
                                           n_params=lay.size)
            except ValueError:
                return float("nan")
    post = idata["posterior"]
    ds = post.to_dataset() if hasattr(post, "to_dataset") else post
    mean = ds.mean(("chain", "draw")).expand_dims(chain=[0], draw=[0])
    eta = model._params(mean)["eta"][0, 0]
    d = model._main.design
    n_par = d.X.shape[1]
    for g, (xe, _, _) in zip(d.group_terms, d.group_parts_train, strict=True):
        n_par += len(g.groups) * xe.shape[1]
    n_par *= (len(model.label_columns) - 1) if model.family.multiclass else 1
    try:
        return estimate_dispersion(model.family, model.labels, weights=_weights(model),
                                   eta=eta, n_params=n_par)
    except ValueError:
        return float("nan")


def recompute_log_likelihood(fit, model=None):
    """Replace the fit's ``log_likelihood`` group by the family's pointwise log-likelihood
    evaluated on the (calibrated) posterior draws, untempered, with the fit's row weights."""
    import xarray as xr

    from softbayes.analysis.predict import predict

    if model is None:
        from softbayes.model import Model

        model = Model.from_fit(fit, check=False)
    da = predict(fit, None, "log_likelihood", model=model)
    from softbayes.io.fits import OBS_DIM
    from softbayes.model import LOGLIK_VAR

    da = da.rename({"obs": OBS_DIM}) if OBS_DIM != "obs" else da
    fit["log_likelihood"] = xr.Dataset({LOGLIK_VAR: da.drop_attrs() if hasattr(
        da, "drop_attrs") else da})
    return fit


def warn_messages(plan, stacklevel=3):
    for msg in plan.messages:
        warnings.warn(msg, UserWarning, stacklevel=stacklevel)


def calibrate_fit(fit, calibrate="sandwich", *, model=None):
    """Sandwich-adjust an existing (uncalibrated) fit without refitting.

    Returns a new DataTree whose posterior holds the adjusted draws, whose
    ``log_likelihood`` is recomputed on them, and whose attrs record the calibration. Only
    ``"sandwich"`` can be applied after the fact; ``"dispersion"`` changes the likelihood
    and needs ``Model.fit(calibrate="dispersion")``.
    """
    if calibrate != "sandwich":
        raise ValueError(
            f"calibrate_fit applies 'sandwich' to an existing fit; {calibrate!r} needs a refit: "
            "Model.fit(calibrate='dispersion')."
        )
    if fit.attrs.get("softbayes_calibration", "none") != "none":
        raise ValueError(f"The fit is already calibrated ({fit.attrs['softbayes_calibration']}).")
    if model is None:
        from softbayes.model import Model

        model = Model.from_fit(fit, check=False)
    plan = plan_fit(model, "sandwich")
    out = fit.copy()
    plan.adjust(model, out)
    if "log_likelihood" in out.children:
        recompute_log_likelihood(out, model)
    out.attrs.update(plan.attrs)
    warn_messages(plan)
    return out
