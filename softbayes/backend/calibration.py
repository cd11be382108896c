r"""Calibrated uncertainty for soft-label posteriors and their diagnosis.

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
import xarray as xr

from softbayes.backend.build import build_pymc_model
from softbayes.backend.calibration_math import (
    CALIBRATIONS,
    DISPERSION_WARN_RANGE,
    NOISELESS_DISPERSION,
    NoiselessLabelsError,
    adjust_draws,
    adjustment_matrix,
    calibratable,
    calibratable_families,
    check_noise,
    dispersion_message,
    dispersion_warning,
    estimate_dispersion,
    find_mode,
    glm_quantities,
    newton,
    pearson_statistic,
    sandwich_covariance,
)
from softbayes.io.attrs import FitAttrs
from softbayes.io.fits import (
    OBS_DIM,
    description_from_fit,
    fit_likelihood_var,
    hide_internal,
    obs_coords,
    posterior_dataset,
)
from softbayes.terms.description import as_description
from softbayes.terms.families import FAMILIES
from softbayes.terms.predictor import SAMPLE_DIMS, ParameterLayout
from softbayes.terms.priors import broadcast_param

__all__ = [
    "CALIBRATIONS",
    "DISPERSION_WARN_RANGE",
    "NOISELESS_DISPERSION",
    "Coefficients",
    "FitPlan",
    "NoiselessLabelsError",
    "adjust_draws",
    "adjustment_matrix",
    "calibratable_families",
    "calibrate_fit",
    "check_noise",
    "coefficients",
    "dispersion_message",
    "dispersion_warning",
    "estimate_dispersion",
    "find_mode",
    "fit_dispersion",
    "glm_quantities",
    "normal_prior",
    "pearson_statistic",
    "plan_fit",
    "posterior_mode",
    "recompute_log_likelihood",
    "sandwich_covariance",
    "tempered_pymc_model",
]
# (the NumPy GLM math is in softbayes.backend.calibration_math; its names are part of this
# module's API)


# -- a model description and its PyMC model ---------------------------------------------------
@dataclass(frozen=True)
class Coefficients:
    """The population-level coefficients a calibration works on.

    ``layout`` names them in the posterior (centred intercept, then the terms) with their
    shapes; ``Z`` is their design (``eta = Z @ theta`` in the family's GLM form); ``k`` is
    ``K - 1`` for a multiclass family, else 1.
    """

    layout: ParameterLayout
    Z: np.ndarray
    k: int

    @property
    def names(self) -> tuple:
        return self.layout.names

    @property
    def size(self) -> int:
        return self.layout.size


def coefficients(description) -> Coefficients:
    """The :class:`Coefficients` of a model description's linear predictor."""
    layout, Z = description.main.population_layout()
    k = len(description.label_columns) - 1 if description.family.multiclass else 1
    return Coefficients(layout, Z, k)


#: Where calibration is refused: the families whose likelihood models the labels' noise itself.
_COUNTS_HINT = "".join(
    f" If the labels are votes, k of m annotators, model their noise instead: "
    f"likelihood={name!r} with the response p(k, m) needs no calibration and takes "
    "group-level terms." for name, cls in FAMILIES.items()
    if cls.takes_trials and "phi" in cls.parameters)


def _refuse_unsupported(description, pymc_model, calibrate):
    calibratable(description.family, f"calibrate={calibrate!r} applies to")
    groups = description.main.design.group_terms
    if groups:
        raise ValueError(
            f"calibrate={calibrate!r} is not supported for models with group-level terms "
            f"({[g.name for g in groups]}): the calibration adjusts "
            "population-level coefficients at the posterior mode, and a hierarchical "
            "posterior has no useful joint mode (sigma -> 0). Fit without calibrate= (the "
            "dispersion is still recorded), or model the groups as fixed effects." + _COUNTS_HINT
        )
    coefs = coefficients(description)
    free = [v.name for v in pymc_model.value_vars]
    if sorted(free) != sorted(coefs.names):
        raise ValueError(
            f"calibrate={calibrate!r} needs untransformed real-valued priors on every "
            f"coefficient; the model's free variables are {free}, expected "
            f"{list(coefs.names)}. Use Normal / StudentT / Laplace / Cauchy priors for the "
            "coefficients."
        )
    return coefs


def normal_prior(description, coefs):
    """(mean, precision) vectors of independent Normal priors on the coefficients, or None
    if a prior is not Normal."""
    rows = {param: (prior, key) for key, param, prior, _ in description.prior_rows}
    means, precs = [], []
    for nm, sh in zip(coefs.layout.names, coefs.layout.shapes, strict=True):
        prior, key = rows[nm]
        if prior.dist != "Normal" or not {"mu", "sigma"} >= set(prior.kwargs):
            return None
        mu = broadcast_param(prior.kwargs.get("mu", 0.0), sh, key, "mu")
        sd = broadcast_param(prior.kwargs.get("sigma", 1.0), sh, key, "sigma")
        means.append(np.broadcast_to(mu, sh).ravel())
        precs.append(np.broadcast_to(1.0 / np.asarray(sd, float) ** 2, sh).ravel())
    return np.concatenate(means), np.concatenate(precs)


def posterior_mode(description, pymc_model, coefs, theta0=None):
    """Mode of the posterior and minus the Hessian of the log posterior there.

    Normal priors (the defaults): Newton on the analytic NumPy math (no compilation), from
    ``theta0`` (layout order) if given. Other real-line priors: Newton on PyMC's compiled
    logp, gradient and Hessian.
    """
    fam, w = description.family, description.weights
    normal = normal_prior(description, coefs)
    if normal is not None:
        mean, prec = normal
        theta = find_mode(fam, description.labels, coefs.Z, w, prior_precision=prec,
                          prior_mean=mean, theta0=theta0)
        info = glm_quantities(fam, description.labels, coefs.Z, theta, w)["info"]
        return theta, info + np.diag(prec)
    m = pymc_model
    vars_ = [m[nm] for nm in coefs.names]
    logp = m.compile_logp(vars=None, jacobian=False)
    dlogp = m.compile_dlogp(vars=vars_, jacobian=False)
    d2 = m.compile_d2logp(vars=vars_, jacobian=False, negate_output=False)

    def point(vec):
        return {m.rvs_to_values[m[nm]].name: v for nm, v in coefs.layout.unravel(vec).items()}

    def grad_hess(vec):
        return np.asarray(dlogp(point(vec)), float), -np.asarray(d2(point(vec)), float)

    theta = newton(lambda vec: float(logp(point(vec))), grad_hess, np.zeros(coefs.size),
                    tol=1e-12, maxiter=100)
    return theta, grad_hess(theta)[1]


def tempered_pymc_model(description, rate):
    """The PyMC model of ``description`` with the log-likelihood multiplied by ``rate``
    (:func:`softbayes.backend.build.build_pymc_model` with ``rate``)."""
    return build_pymc_model(description, rate=rate)


@dataclass
class FitPlan:
    """What a fit needs for ``calibrate=``: built by :func:`plan_fit`.

    ``attrs`` holds :class:`~softbayes.io.attrs.FitAttrs` fields for the fit.
    """

    calibrate: str | None
    sampling_model: object = None  # a tempered PyMC model, or None: the model's own
    attrs: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)
    mode: np.ndarray | None = None
    hessian: np.ndarray | None = None
    coefficients: Coefficients | None = None
    dispersion: float | None = None

    def adjust(self, description, idata):
        """Sandwich: adjust the posterior draws in place; other choices: unchanged."""
        if self.calibrate != "sandwich":
            return idata
        return _sandwich_adjust(description, idata, self)

    def finish(self, description, idata, pymc_model) -> dict:
        """Attrs after sampling (records the dispersion of every fit of a calibratable
        family, with a warning message when it is far from 1)."""
        attrs = dict(self.attrs)
        if self.dispersion is None and description.family.calibratable:
            phi = fit_dispersion(description, idata, pymc_model)
            attrs["dispersion"] = float(phi)
            msg = dispersion_warning(phi, description.family)
            if msg:
                self.messages.append(msg)
        return attrs

    def warn(self, stacklevel=2):
        """Issue the plan's messages as warnings (``stacklevel`` as seen from the caller)."""
        for msg in self.messages:
            warnings.warn(msg, UserWarning, stacklevel=stacklevel + 1)


def plan_fit(description, pymc_model, calibrate=None) -> FitPlan:
    """Pilot work before sampling: mode, dispersion, tempered model (see the module doc).

    ``calibrate=None``: nothing before sampling (the dispersion is computed after sampling
    at the posterior mean by :meth:`FitPlan.finish`).
    """
    if calibrate not in CALIBRATIONS:
        raise ValueError(
            f"calibrate must be None, 'dispersion' or 'sandwich', got {calibrate!r}."
        )
    plan = FitPlan(calibrate, attrs={"calibration": calibrate or "none"})
    if calibrate is None:
        return plan
    coefs = _refuse_unsupported(description, pymc_model, calibrate)
    theta, h = posterior_mode(description, pymc_model, coefs)
    fam = description.family
    phi = estimate_dispersion(fam, description.labels, weights=description.weights,
                              eta=fam.glm_eta(coefs.Z, theta), n_params=coefs.size)
    check_noise(phi, fam)
    plan.mode, plan.hessian, plan.coefficients, plan.dispersion = theta, h, coefs, phi
    plan.attrs["dispersion"] = float(phi)
    plan.attrs["dispersion_df"] = int(description.n_obs * coefs.k - coefs.size)
    if calibrate == "dispersion":
        rate = 1.0 / phi
        plan.attrs["learning_rate"] = float(rate)
        plan.sampling_model = tempered_pymc_model(description, rate)
    return plan  # calibrated: phi is recorded, no warning


def _posterior_dataset(idata):
    return posterior_dataset(idata)  # the centred intercepts included


def _sandwich_adjust(description, idata, plan, method="cholesky"):
    coefs = plan.coefficients
    post = idata["posterior"]
    ds = _posterior_dataset(idata)
    mat = coefs.layout.stack(ds)
    c, d, p = mat.shape
    flat = mat.reshape(-1, p)
    cov_post = np.cov(flat, rowvar=False).reshape(p, p)
    cov_sand, _, _ = sandwich_covariance(description.family, description.labels, coefs.Z,
                                         plan.mode, description.weights, hessian=plan.hessian)
    A = adjustment_matrix(cov_post, cov_sand, method)
    adj = adjust_draws(flat, plan.mode, A).reshape(c, d, p)
    ds = description.main.uncentre(coefs.layout.unstack(ds, adj))
    attrs = dict(post.attrs)
    idata["posterior"] = ds
    idata["posterior"].attrs.update(attrs)
    plan.attrs.update(sandwich_adjustment=A, sandwich_mode=plan.mode,
                      sandwich_covariance=cov_sand, sandwich_parameters=list(coefs.names))
    return idata


def fit_dispersion(description, idata, pymc_model):
    """Dispersion of a fit's labels: at the posterior mode (Normal priors on
    population-level coefficients only, the default: NumPy Newton, no compilation), else at
    the posterior mean of the parameters, where ``p`` counts the population-level
    coefficients plus every group-level column (an upper bound on their effective number).
    """
    fam, w = description.family, description.weights
    d = description.main.design
    post = _posterior_dataset(idata)
    if not d.group_terms:
        coefs = coefficients(description)
        if normal_prior(description, coefs) is not None:
            # Newton from the posterior mean (next to the mode for these GLMs): 2-3 steps
            # instead of ~8 from zero, each a pass over the data.
            start = coefs.layout.stack(post).mean(axis=(0, 1))
            theta, _ = posterior_mode(description, pymc_model, coefs,
                                      theta0=start if np.all(np.isfinite(start)) else None)
            try:
                return estimate_dispersion(fam, description.labels, weights=w,
                                           eta=fam.glm_eta(coefs.Z, theta),
                                           n_params=coefs.size)
            except ValueError:
                return float("nan")
    mean = post.mean(SAMPLE_DIMS).expand_dims(chain=[0], draw=[0])
    eta = description.params(mean)["eta"][0, 0]
    n_par = d.X.shape[1]
    for g, (xe, _, _) in zip(d.group_terms, d.group_parts_train, strict=True):
        n_par += len(g.groups) * xe.shape[1]
    n_par *= (len(description.label_columns) - 1) if fam.multiclass else 1
    try:
        return estimate_dispersion(fam, description.labels, weights=w, eta=eta, n_params=n_par)
    except ValueError:
        return float("nan")


def recompute_log_likelihood(fit, model=None):
    """Replace the fit's ``log_likelihood`` group by the family's pointwise log-likelihood
    evaluated on the (calibrated) posterior draws, untempered, with the fit's row weights.

    ``model``: a :class:`softbayes.Model` or a model description (default: rebuilt from
    the fit)."""
    desc = description_from_fit(fit, check=False) if model is None else as_description(model)
    post = _posterior_dataset(fit)
    values = np.asarray(desc.log_likelihood(post), dtype=float)
    coords = {"chain": post["chain"].values, "draw": post["draw"].values,
              OBS_DIM: obs_coords(desc.data)}
    fit["log_likelihood"] = xr.Dataset({fit_likelihood_var(fit): xr.DataArray(
        values, dims=(*SAMPLE_DIMS, OBS_DIM), coords=coords)})
    return fit


def calibrate_fit(fit, calibrate="sandwich", *, model=None):
    """Sandwich-adjust an existing (uncalibrated) fit without refitting.

    Returns a new DataTree whose posterior holds the adjusted draws, whose
    ``log_likelihood`` is recomputed on them, and whose attrs record the calibration. Only
    ``"sandwich"`` can be applied after the fact; ``"dispersion"`` changes the likelihood
    and needs ``Model.fit(calibrate="dispersion")``. ``model``: a :class:`softbayes.Model`
    or a model description (default: rebuilt from the fit).
    """
    if calibrate != "sandwich":
        raise ValueError(
            f"calibrate_fit applies 'sandwich' to an existing fit; {calibrate!r} needs a refit: "
            "Model.fit(calibrate='dispersion')."
        )
    done = FitAttrs.from_attrs(fit.attrs, warn_unknown=False).calibration or "none"
    if done != "none":
        raise ValueError(f"The fit is already calibrated ({done}).")
    desc = description_from_fit(fit, check=False) if model is None else as_description(model)
    plan = plan_fit(desc, build_pymc_model(desc), "sandwich")
    out = fit.copy()
    plan.adjust(desc, out)
    hide_internal(out, desc)
    if "log_likelihood" in out.children:
        recompute_log_likelihood(out, desc)
    FitAttrs(**plan.attrs).write(out)
    plan.warn(stacklevel=2)
    return out
