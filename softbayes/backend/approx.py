"""Posterior approximations for large n: Laplace, ADVI (minibatch) and Pathfinder.

``Model.fit(method=...)`` with

* ``"laplace"`` -- the mode of the log posterior in the *unconstrained* space (log of the
  Jacobian included, the space NUTS samples in), found by L-BFGS on the compiled logp and
  gradient, and the Hessian there by central differences of the analytic gradient
  (``2 d`` gradient evaluations); draws from ``N(mode, (-H)^{-1})`` are mapped back through
  the transforms and the deterministics. Exact as ``n -> infinity`` for these GLMs.
* ``"advi"`` -- mean-field ADVI (``pm.fit(method="advi")``) started at the Laplace mode with
  the Laplace marginal sds (so that a short, small-step run refines rather than searches).
  For ``weighted_bernoulli`` / ``soft_categorical`` with ``n > minibatch_threshold`` (or
  ``batch_size=`` given) the data containers are replaced by ``pm.Minibatch`` views; the
  likelihood is a ``pm.Potential``, which PyMC does *not* scale by ``total_size``, so the
  rows' weights are replaced by ``weights * n / batch_size``: the minibatch log-likelihood
  is then an unbiased estimate of the full one (tested). Other families fit full-batch.
* ``"pathfinder"`` -- single-path Pathfinder (Zhang, Carpenter, Gelman and Vehtari 2022),
  implemented here (pymc-extras' version pins an older PyMC): the L-BFGS path from the
  initial point to the mode, at each iterate the normal approximation ``N(x - H g, H)`` with
  ``H`` the L-BFGS inverse-Hessian estimate from the last ``history`` pairs, its ELBO by
  Monte Carlo (``elbo_draws`` draws), and draws from the approximation of largest ELBO. The
  Pareto k-hat of the importance ratios ``p / q`` (PSIS) is recorded
  (``softbayes_pathfinder_khat``; above 0.7 the approximation is poor and a warning says so);
  ``psis_resample=True`` resamples the draws by their PSIS weights.

For Laplace and Pathfinder (without resampling) the draws come from a known normal ``q``:
``sample_stats`` then holds ``lp`` (the log posterior density, Jacobian included) and
``log_q`` (the normal's log density) of every draw, the inputs of ArviZ's
``loo_approximate_posterior`` (PSIS-LOO of approximate draws, Magnusson et al. 2019), which
:func:`softbayes.compare` uses for these fits. They are stored only when the pointwise
log-likelihood covers every draw.

The posterior group has dims ``(chain, draw)`` like MCMC (``chains`` x ``draws``
independent draws), so ``predict`` and ``compare`` work. The attrs record
``softbayes_method`` (and ``softbayes_sampler`` = the method). The pointwise
log-likelihood is computed as for MCMC; when ``chains * draws * n`` exceeds
``max_log_likelihood_values`` (default 2**27, 1 GiB) it is computed on the first
``draws`` of each chain that fit (attr ``softbayes_log_likelihood_draws``): the
``log_likelihood`` group then has fewer draws than the posterior.

Memory at n = 1e7, d = 10: the data frame, the formula's design matrix and its centred copy
in the graph are ~0.8 GB each; the Laplace fit itself needs O(d^2).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pymc.pytensorf import compile as pm_compile
from scipy import optimize
from scipy.linalg import solve_triangular

from softbayes.backend.build import data_containers
from softbayes.backend.result import complete_fit, fit_attrs
from softbayes.backend.sample import new_seed
from softbayes.terms.families import FAMILIES
from softbayes.terms.predictor import ParameterLayout

__all__ = [
    "METHODS",
    "bfgs_inverse_hessian",
    "fit_approx",
    "laplace_mode",
    "minibatch_replacements",
    "pathfinder",
]

METHODS = ("nuts", "laplace", "advi", "pathfinder")


# -- unconstrained space -------------------------------------------------------------------
def _flat(pm_model, point) -> ParameterLayout:
    """The layout of the model's value variables (unconstrained space) in ``point``."""
    return ParameterLayout.of_point(point, [v.name for v in pm_model.value_vars])


def _logp_grad_fn(pm_model):
    logp = pm_model.logp(jacobian=True)
    grads = pt.grad(logp, pm_model.value_vars)
    grad = pt.concatenate([pt.flatten(g) for g in grads])
    return pm_compile(pm_model.value_vars, [logp, grad], on_unused_input="ignore")


def laplace_mode(pm_model, *, random_seed=None, maxiter=1000, start=None):
    """Mode (L-BFGS) and Hessian (central differences of the gradient), unconstrained.

    Returns ``(flat, mode, hessian, info)``: the :class:`ParameterLayout` of the value
    variables, the mode, the Hessian of the log posterior (negative definite at a proper
    mode) and facts for the attrs.
    """
    point = pm_model.initial_point(random_seed=random_seed)
    if start is not None:
        point.update(start)
    flat = _flat(pm_model, point)
    fn = _logp_grad_fn(pm_model)

    def args(x):
        p = flat.unravel(x)
        return [p[n] for n in flat.names]

    def neg(x):
        lp, g = fn(*args(x))
        lp = float(lp)
        if not np.isfinite(lp):
            return np.inf, np.zeros_like(x)
        return -lp, -np.asarray(g, dtype=float)

    t0 = time.time()
    res = optimize.minimize(neg, flat.ravel(point), jac=True, method="L-BFGS-B",
                            options={"maxiter": maxiter, "maxcor": 20, "ftol": 1e-13,
                                     "gtol": 1e-8})
    mode = res.x
    grad_at = lambda x: np.asarray(fn(*args(x))[1], dtype=float)  # noqa: E731
    hess = np.empty((flat.size, flat.size))
    for j in range(flat.size):
        h = 1e-5 * max(1.0, abs(mode[j]))
        e = np.zeros(flat.size)
        e[j] = h
        hess[:, j] = (grad_at(mode + e) - grad_at(mode - e)) / (2 * h)
    hess = 0.5 * (hess + hess.T)
    # one Newton step from the L-BFGS solution (its stopping rule is loose for large n)
    try:
        step = np.linalg.solve(hess, grad_at(mode))
        if np.isfinite(step).all() and neg(mode - step)[0] <= neg(mode)[0]:
            mode = mode - step
    except np.linalg.LinAlgError:
        pass
    info = {"optimizer_iterations": int(res.nit), "optimizer_success": int(res.success),
            "optimizer_message": str(res.message), "mode_seconds": time.time() - t0}
    return flat, mode, hess, info


def _log_density(pm_model, flat, xs) -> np.ndarray:
    """The log posterior density (unconstrained space, Jacobian included) of each draw."""
    fn = pm_compile(pm_model.value_vars, pm_model.logp(jacobian=True), on_unused_input="ignore")
    out = []
    for x in xs:
        p = flat.unravel(x)
        out.append(float(fn(*[p[n] for n in flat.names])))
    return np.asarray(out)


def _normal_log_q(z, log_det_a) -> np.ndarray:
    """Log density of the draws ``x = m + A z`` (``z`` standard normal, rows) under their
    normal ``N(m, A A^T)``; ``log_det_a`` is ``log |det A|``."""
    return -0.5 * np.sum(z**2, axis=1) - log_det_a - 0.5 * z.shape[1] * np.log(2 * np.pi)


def _normal_draws(mode, hess, n_draws, rng):
    """Draws from ``N(mode, (-hess)^{-1})`` and their log density under it."""
    try:
        chol = np.linalg.cholesky(-hess)
    except np.linalg.LinAlgError as err:
        raise ValueError(
            "method='laplace': the Hessian of the log posterior at the mode is not negative "
            "definite (the mode was not found or the posterior is improper/flat in some "
            "direction). Check the priors or use method='nuts'."
        ) from err
    z = rng.standard_normal((n_draws, mode.size))
    # x = mode + L^{-T} z has covariance (L L^T)^{-1} = (-H)^{-1}
    xs = mode + solve_triangular(chol, z.T, lower=True, trans="T").T
    return xs, _normal_log_q(z, -np.sum(np.log(np.diag(chol))))


# -- draws -> posterior group ----------------------------------------------------------------
def _posterior(pm_model, flat, xs, chains, draws):
    """DataTree with a posterior group from unconstrained draws ``xs`` (chains*draws, d)."""
    keep = [v.name for v in pm_model.free_RVs] + [v.name for v in pm_model.deterministics]
    outs = [v for v in pm_model.unobserved_value_vars if v.name in keep]
    fn = pm_compile(pm_model.value_vars, outs, on_unused_input="ignore")
    values = {v.name: [] for v in outs}
    for x in xs:
        p = flat.unravel(x)
        for v, val in zip(outs, fn(*[p[n] for n in flat.names]), strict=True):
            values[v.name].append(np.asarray(val))
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    data_vars = {}
    for name, vals in values.items():
        arr = np.stack(vals).reshape(chains, draws, *np.shape(vals[0]))
        dims = list(pm_model.named_vars_to_dims.get(name) or ())
        if len(dims) != arr.ndim - 2:
            dims = [f"{name}_dim_{i}" for i in range(arr.ndim - 2)]
        for d in dims:
            if d in pm_model.coords and pm_model.coords[d] is not None:
                coords[d] = np.asarray(pm_model.coords[d])
        data_vars[name] = (("chain", "draw", *dims), arr)
    used = {d for v in data_vars.values() for d in v[0]}
    ds = xr.Dataset(data_vars, coords={k: v for k, v in coords.items() if k in used})
    return xr.DataTree.from_dict({"posterior": ds})


def _sample_stats(chains, draws):
    return xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool))},
                      coords={"chain": np.arange(chains), "draw": np.arange(draws)})


# -- ADVI --------------------------------------------------------------------------------------
def minibatch_replacements(description, pymc_model, batch_size):
    """``{shared data: minibatch view}`` of ``pymc_model`` (the model of ``description``)
    with the weights scaled by ``n / batch_size``.

    Only for families whose likelihood carries row weights: the scaled minibatch
    log-likelihood is an unbiased estimate of the full-data one.
    """
    family = description.family
    if not family.supports_weights:
        weighted = ", ".join(n for n, c in FAMILIES.items() if c.supports_weights)
        raise ValueError(
            f"Minibatch ADVI needs a weighted likelihood ({weighted}), not {family.name!r}: "
            "use batch_size=None (full batch)."
        )
    data, w = data_containers(description, pymc_model)
    n = description.n_obs
    batch_size = int(batch_size)
    if not 0 < batch_size <= n:
        raise ValueError(f"batch_size must be in [1, n={n}], got {batch_size}.")
    shared = [*data.values(), w]
    views = pm.Minibatch(*shared, batch_size=batch_size)
    repl = dict(zip(shared, views, strict=True))
    repl[w] = views[-1] * (n / batch_size)
    return repl


def _to_flat(vec, ordering, flat):
    """Re-order ADVI's flat vector (its ``ordering``) into the layout ``flat``."""
    vec = np.asarray(vec, dtype=float)
    return flat.ravel({name: vec[sl] for name, (_, sl, _, _) in ordering.items()})


def _advi(description, pm_model, flat, *, seed, mode_point, sd_point, n_iter, batch_size,
          learning_rate, progressbar, minibatch_threshold):
    n = description.n_obs
    if batch_size is None and description.family.supports_weights and n > minibatch_threshold:
        batch_size = min(n, 10_000)
    repl = minibatch_replacements(description, pm_model, batch_size) if batch_size else None
    approx = pm.fit(
        n=n_iter, method="advi", model=pm_model, random_seed=seed, start=mode_point,
        start_sigma=sd_point, progressbar=progressbar,
        obj_optimizer=pm.adam(learning_rate=learning_rate),
        more_replacements=repl,
    )
    mu = _to_flat(approx.mean.eval(), approx.groups[0].ordering, flat)
    sd = _to_flat(approx.std.eval(), approx.groups[0].ordering, flat)
    return mu, sd, {"advi_iterations": int(n_iter), "advi_batch_size": int(batch_size or n),
                    "advi_final_loss": float(np.mean(approx.hist[-100:]))}


# -- entry point -------------------------------------------------------------------------------
def _laplace_or_advi(description, pm_model, method, *, draws, chains, random_seed, rng,
                     maxiter, n_iter, batch_size, learning_rate, progressbar,
                     minibatch_threshold):
    """``(flat, draws, info, log_q)`` of the Laplace approximation (``log_q``: the draws'
    log density under it) or ADVI started from it (``log_q`` None)."""
    flat, mode, hess, info = laplace_mode(pm_model, random_seed=random_seed, maxiter=maxiter)
    if method == "laplace":
        xs, log_q = _normal_draws(mode, hess, draws * chains, rng)
        return flat, xs, info, log_q
    cov_diag = np.diag(np.linalg.inv(-hess))
    sd0 = np.sqrt(np.clip(cov_diag, 1e-12, None))
    if learning_rate is None:
        learning_rate = float(min(1e-3, 0.1 * sd0.min()))
    info["advi_learning_rate"] = learning_rate
    mu, sd, advi_info = _advi(
        description, pm_model, flat, seed=random_seed, mode_point=flat.unravel(mode),
        sd_point=flat.unravel(sd0), n_iter=n_iter, batch_size=batch_size,
        learning_rate=learning_rate, progressbar=progressbar,
        minibatch_threshold=minibatch_threshold,
    )
    info.update(advi_info)
    return flat, mu + sd * rng.standard_normal((draws * chains, flat.size)), info, None


def fit_approx(description, pymc_model, method, *, draws=1000, chains=4, random_seed=None,
               log_likelihood=True, calibrate=None, progressbar=False, maxiter=1000,
               n_iter=5000, batch_size=None, learning_rate=None, minibatch_threshold=100_000,
               max_log_likelihood_values=2**27, predictive=None, **kwargs):
    """Fit a model description with an approximation; see the module doc.

    Parameters
    ----------
    description : ModelDescription
    pymc_model : pm.Model
        Its PyMC model (:func:`softbayes.backend.build.build_pymc_model`).
    method : {"laplace", "advi", "pathfinder"}
    draws, chains : int
        The approximate posterior is stored as ``chains`` x ``draws`` independent draws.
    maxiter : int
        L-BFGS iterations for the mode.
    n_iter, batch_size, learning_rate, minibatch_threshold : ADVI settings
        ``batch_size=None``: minibatches of 10 000 rows when ``n > minibatch_threshold`` (and
        the family is weighted), else full batch. Adam with ``learning_rate`` (default
        ``min(1e-3, 0.1 * smallest Laplace sd)``: Adam's steps are about ``learning_rate``
        whatever the gradient, so a larger one leaves the means jittering by more than the
        posterior sd when n is large).
    max_log_likelihood_values : int
        Cap on ``chains * draws * n`` values of the pointwise log-likelihood.
    predictive : bool, optional
        The predictive groups (see :meth:`softbayes.Model.fit`).
    **kwargs
        ``pathfinder``: ``history`` (L-BFGS pairs, default 6), ``elbo_draws`` (default 50),
        ``psis_resample`` (default False); see :func:`pathfinder`.
    """
    method = str(method).lower()
    if method not in METHODS[1:]:
        raise ValueError(f"Unknown method {method!r}; choose one of {list(METHODS)}.")
    if calibrate is not None:
        raise ValueError(
            f"calibrate={calibrate!r} is implemented for method='nuts' only; fit with "
            "method='nuts' or calibrate=None."
        )
    allowed = {"history", "elbo_draws", "psis_resample"} if method == "pathfinder" else set()
    if set(kwargs) - allowed:
        raise TypeError(f"method={method!r}: unexpected argument(s) "
                        f"{sorted(set(kwargs) - allowed)}.")
    random_seed = new_seed() if random_seed is None else int(random_seed)
    rng = np.random.default_rng(random_seed)
    t0 = time.time()
    log_p = None
    if method == "pathfinder":
        flat, xs, info, densities = pathfinder(pymc_model, draws * chains,
                                               random_seed=random_seed, maxiter=maxiter,
                                               **kwargs)
        log_p, log_q = densities if densities is not None else (None, None)
    else:
        flat, xs, info, log_q = _laplace_or_advi(
            description, pymc_model, method, draws=draws, chains=chains,
            random_seed=random_seed, rng=rng, maxiter=maxiter, n_iter=n_iter,
            batch_size=batch_size, learning_rate=learning_rate, progressbar=progressbar,
            minibatch_threshold=minibatch_threshold)
    idata = _posterior(pymc_model, flat, xs, chains, draws)
    idata["sample_stats"] = _sample_stats(chains, draws)
    elapsed = time.time() - t0
    idata["posterior"].attrs["sampling_time"] = elapsed
    attrs = fit_attrs(description, sampler=method, random_seed=random_seed, draws=draws,
                      tune=0, chains=chains, method=method)
    ll_draws = complete_fit(idata, description, pymc_model, attrs,
                            log_likelihood=log_likelihood,
                            max_log_likelihood_values=max_log_likelihood_values,
                            predictive=predictive)
    if log_q is not None and ll_draws == draws:
        if log_p is None:
            log_p = _log_density(pymc_model, flat, xs)
        if np.all(np.isfinite(log_p)):
            stats = idata["sample_stats"].to_dataset()
            idata["sample_stats"] = stats.assign(
                lp=(("chain", "draw"), log_p.reshape(chains, draws)),
                log_q=(("chain", "draw"), log_q.reshape(chains, draws)))
    attrs.replace(log_likelihood_draws=ll_draws, approx_seconds=float(elapsed),
                  **info).write(idata)
    return idata


def bfgs_inverse_hessian(pairs, d):
    """Dense inverse-Hessian estimate from (s, y) pairs, oldest first (BFGS recursion from
    ``(s'y / y'y) I`` of the newest pair)."""
    s_new, y_new = pairs[-1]
    h = np.eye(d) * (s_new @ y_new) / (y_new @ y_new)
    eye = np.eye(d)
    for s_k, y_k in pairs:
        rho = 1.0 / (y_k @ s_k)
        left = eye - rho * np.outer(s_k, y_k)
        h = left @ h @ left.T + rho * np.outer(s_k, s_k)
    return 0.5 * (h + h.T)


def _best_normal(path, grads, logp, history, elbo_draws, rng):
    """``(elbo, iterate, mean, Cholesky factor)`` of the normal approximation of largest
    ELBO along the L-BFGS ``path`` (``grads``: the gradients of ``-logp`` there)."""
    d = path[0].size
    best = (-np.inf, None, None, None)
    pairs = []
    for i in range(1, len(path)):
        s_k, y_k = path[i] - path[i - 1], grads[i] - grads[i - 1]
        # keep pairs of positive curvature (the BFGS estimate stays positive definite)
        if s_k @ y_k > 1e-12 * (y_k @ y_k) and np.isfinite(s_k @ y_k):
            pairs = [*pairs, (s_k, y_k)][-history:]
        if not pairs:
            continue
        h = bfgs_inverse_hessian(pairs, d)
        try:
            chol = np.linalg.cholesky(h)
        except np.linalg.LinAlgError:
            continue
        mu = path[i] - h @ grads[i]
        z = rng.standard_normal((elbo_draws, d))
        phi = mu + z @ chol.T
        log_q = -0.5 * np.sum(z**2, axis=1) - np.sum(np.log(np.diag(chol))) \
            - 0.5 * d * np.log(2 * np.pi)
        log_p = np.array([logp(x) for x in phi])
        elbo = float(np.mean(log_p - log_q)) if np.all(np.isfinite(log_p)) else -np.inf
        if elbo > best[0]:
            best = (elbo, i, mu, chol)
    return best


def pathfinder(pm_model, n_draws, *, random_seed=None, maxiter=1000, history=6,
               elbo_draws=50, psis_resample=False, start=None):
    """Single-path Pathfinder in the unconstrained space of ``pm_model``.

    Returns ``(flat, draws, info, densities)``: the :class:`ParameterLayout` of the value
    variables, ``(n_draws, d)`` unconstrained draws, facts for the attrs (iterations, the
    chosen iterate, its ELBO, the PSIS Pareto k-hat) and ``(log p, log q)`` of the draws
    (None with ``psis_resample``: resampled draws no longer come from ``q``). Dense
    ``d x d`` algebra: meant for regression models (d up to a few hundred), not for
    high-dimensional latent fields.

    Reference: L. Zhang, B. Carpenter, A. Gelman, A. Vehtari (2022), Pathfinder: Parallel
    quasi-Newton variational inference, JMLR 23(306).
    """
    from arviz_stats.base import array_stats  # arviz's stats: loaded on first use

    rng = np.random.default_rng(random_seed)
    point = pm_model.initial_point(random_seed=random_seed)
    if start is not None:
        point.update(start)
    flat = _flat(pm_model, point)
    fn = _logp_grad_fn(pm_model)
    cache = {}

    def logp_grad(x):
        key = x.tobytes()
        if key not in cache:
            p = flat.unravel(x)
            lp, g = fn(*[p[n] for n in flat.names])
            cache[key] = (float(lp), np.asarray(g, dtype=float))
        return cache[key]

    def neg(x):
        lp, g = logp_grad(x)
        if not np.isfinite(lp):
            return np.inf, np.zeros_like(x)
        return -lp, -g

    t0 = time.time()
    x0 = flat.ravel(point)
    path = [x0.copy()]
    res = optimize.minimize(neg, x0, jac=True, method="L-BFGS-B",
                            callback=lambda xk: path.append(np.array(xk, dtype=float)),
                            options={"maxiter": maxiter, "maxcor": history, "ftol": 1e-13,
                                     "gtol": 1e-8})
    grads = [-logp_grad(x)[1] for x in path]  # gradients of -logp
    d = flat.size
    elbo, i_best, mu, chol = _best_normal(path, grads, lambda x: logp_grad(x)[0], history,
                                          elbo_draws, rng)
    n_q = max(n_draws, 1000) if psis_resample else n_draws
    z = rng.standard_normal((n_q, d))
    xs = mu + z @ chol.T
    log_q = _normal_log_q(z, np.sum(np.log(np.diag(chol))))
    log_p = np.array([logp_grad(x)[0] for x in xs])
    log_ratio = log_p - log_q
    finite = np.isfinite(log_ratio)
    if finite.sum() < 0.9 * n_q:
        raise ValueError(
            f"method='pathfinder': the log density is not finite at {n_q - finite.sum()} of "
            f"{n_q} draws of the approximation; use method='nuts'."
        )
    # arviz-stats' psislw takes log-likelihood-like values (it smooths the tail of their
    # negatives, as PSIS-LOO's ratios are 1 / p(y_i | theta)): pass -log(p / q).
    lw = np.full(n_q, -np.inf)
    lw_f, khat = array_stats.psislw(-log_ratio[finite])
    lw[finite] = lw_f
    khat = float(khat)
    if psis_resample:
        w = np.exp(lw - np.max(lw))
        idx = rng.choice(n_q, size=n_draws, replace=True, p=w / w.sum())
        xs = xs[idx]
    if khat > 0.7:
        warnings.warn(
            f"method='pathfinder': Pareto k-hat of the importance ratios is {khat:.2f} "
            "(> 0.7): the normal approximation is poor here; use method='nuts'.",
            UserWarning, stacklevel=3,
        )
    info = {"optimizer_iterations": int(res.nit), "optimizer_success": int(res.success),
            "pathfinder_iterate": int(i_best), "pathfinder_path_length": len(path),
            "pathfinder_elbo": float(elbo), "pathfinder_khat": khat,
            "pathfinder_psis_resample": int(bool(psis_resample)),
            "pathfinder_seconds": time.time() - t0}
    return flat, xs, info, (None if psis_resample else (log_p, log_q))
