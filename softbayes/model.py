"""``softbayes.Model``: a formula, a likelihood family and priors; ``fit`` returns a DataTree.

Example
-------
>>> import softbayes as sb
>>> model = sb.Model("share ~ lowinc + scale(perasian) + (1|district)", data,
...                  likelihood="continuous_bernoulli")                    # doctest: +SKIP
>>> model.priors                                                           # doctest: +SKIP
>>> fit = model.fit(draws=1000, chains=4, random_seed=1)                   # doctest: +SKIP
>>> sb.predict(fit, new_data)                                              # doctest: +SKIP

What a fit holds
----------------
``posterior`` (what users read: the centred intercepts sit in ``posterior_internal``, out of
``az.summary(fit)``'s default view; hand PyMC :func:`softbayes.io.fits.posterior_dataset`,
which has them, e.g. for ``pm.sample_posterior_predictive``), ``sample_stats`` (from the
sampler), ``log_likelihood`` (one pointwise term per observation, for every family, with dims
``(chain, draw, obs)``),
``observed_data`` (the labels as the likelihood saw them -- thresholded for ``bernoulli``,
squeezed for ``beta`` with ``squeeze=True``), ``posterior_predictive``, ``prior`` and
``prior_predictive`` (below a size, see ``fit(predictive=...)``; their attrs say whether the
draws are labels or hard outcomes), ``constant_data`` (design matrix ``X``, ``X_phi``,
``weights``) and ``training_data`` (the used columns of the data frame, to rebuild the model;
see :mod:`softbayes.io.fits`). The observed, predictive and log-likelihood variables are named
after the label column (``"share ~ x"``: ``"share"``; ``"c(a, b, c) ~ x"``: ``"a__b__c"``;
``"labels"`` when that name could clash, see :func:`softbayes.io.fits.likelihood_var`), and
``obs`` holds the data's index where it is unique integers or strings (else ``0 .. n-1``).
Root attrs, all strings or numbers so netCDF and zarr store them:

``softbayes_version``, ``softbayes_family``, ``softbayes_formula``, ``softbayes_phi_formula``
(``""`` if none), ``softbayes_label_columns`` (JSON list), ``softbayes_options`` (JSON: family
options, weights column), ``softbayes_priors`` (JSON: ``{term: {"dist", "kwargs",
"source"}}``), ``softbayes_data_hash`` (SHA-256 of the used predictor / group / weight
columns), ``softbayes_labels_hash`` (SHA-256 of the label values as given, before any
thresholding or squeezing), ``softbayes_n_obs``, ``softbayes_log_likelihood_var``
(the name of the likelihood variable), ``softbayes_log_likelihood_kind``
(``"cross_entropy"``, ``"density"`` or ``"probability"``), ``softbayes_sampler``,
``softbayes_backend`` (nutpie's compilation backend, ``"jax"`` or ``"numba"``; nutpie fits
only), ``softbayes_random_seed``, ``softbayes_draws``, ``softbayes_tune``,
``softbayes_chains``; for ``bernoulli`` ``softbayes_threshold`` and
``softbayes_n_thresholded``; for ``beta`` ``softbayes_squeeze`` (0/1) and
``softbayes_n_squeezed``.

Parameters in the posterior (Bambi's names)
-------------------------------------------
``Intercept_centered`` (sampled; the linear predictor at the training means of the
columns, where the intercept prior sits), ``Intercept`` (deterministic, the usual uncentred
intercept), one variable per population-level term named after it (``x``, ``log(x)``,
``g`` with dim ``g_dim`` for the dummy columns, ``x:z``), per group-level term ``1|g_sigma``,
``1|g_offset`` (sampled, non-centred) and ``1|g`` (deterministic, ``sigma * offset``), and
for the families with a precision ``phi`` or, with ``phi_formula``, the same set prefixed
``phi_``; ``ordered_beta`` adds its cut-points ``cutzero`` and ``cutone``. For the multiclass
families every coefficient has a trailing ``class_reduced`` dim (classes 2..K; the first is
the reference, all its coefficients fixed at 0).
"""

from __future__ import annotations

import copy

import pandas as pd
import pymc as pm

from softbayes.analysis.comparison.cross_validation import kfold_fit
from softbayes.analysis.predict import predict
from softbayes.backend.refit import Refitter
from softbayes.io.fits import LOGLIK_VAR, description_from_fit
from softbayes.terms.description import ModelDescription, describe_model

__all__ = ["LOGLIK_VAR", "Model"]


def _described(name, doc):
    """A read-only attribute of :class:`Model` read from its description."""
    return property(lambda self: getattr(self.description, name), doc=doc)


class Model:
    """A soft-label regression: formula, likelihood family, priors.

    Parameters
    ----------
    formula : str
        ``"labels ~ predictors"``; see :mod:`softbayes.terms.design`. For the multiclass
        families (``soft_categorical``, ``continuous_categorical``, ``dirichlet``) the
        response names the K probability columns, ``"c(p_a, p_b, p_c) ~ x"``, the first
        being the reference class; ``"p(k, m) ~ x"`` gives counts ``k`` of ``m`` trials
        (the count families model the counts, the others see ``k / m``). Group-level terms
        ``(1|g)``, ``(x|g)`` get non-centred partial pooling, one sd per column of the term
        (no correlations between terms).
    data : pandas.DataFrame
        One row per observation. Used columns must have no missing values.
    likelihood : str, default "weighted_bernoulli"
        The name of a family of :data:`softbayes.terms.families.FAMILIES`:
        ``"weighted_bernoulli"``, ``"continuous_bernoulli"``, ``"beta"``, ``"bernoulli"``,
        ``"ordered_beta"``, ``"beta_binomial"``, ``"binomial"``, ``"soft_categorical"``,
        ``"continuous_categorical"`` or ``"dirichlet"``.
    priors : dict, optional
        Overrides per term, ``{"x": {"dist": "Normal", "mu": 0, "sigma": 1}, ...}``; see
        :mod:`softbayes.terms.priors` for keys and the default rule. ``model.priors`` shows them.
    phi_formula : str, optional
        Families with a precision ``phi`` (``beta``, ``ordered_beta``, ``dirichlet``,
        ``beta_binomial``): formula of ``log phi``, e.g. ``"~ x"`` (default: a constant).
    weights : str or array_like, optional
        Row weights (a column name or an array), for ``weighted_bernoulli`` and
        ``soft_categorical`` (e.g. the number of raters behind each soft label).
    threshold : float, optional
        ``bernoulli`` only: the cut (default 0.5); a label ``>= threshold`` becomes 1.
    squeeze : bool, optional
        ``beta``: apply the Smithson--Verkuilen squeeze ``(y(n-1)+1/2)/n`` so labels of
        exactly 0 or 1 can be fitted; ``dirichlet``: its simplex form ``(y(n-1)+1/K)/n`` for
        shares of exactly 0 (default False: such labels are an error).
    extra_namespace : dict, optional
        More functions for the formula (they are not stored in a saved fit: pass them
        again to :meth:`from_fit`). A formula typed in Python may also call their
        attributes (``extra_namespace={"np": np}`` makes every ``np.<f>`` available); every
        formula passes :func:`softbayes.terms.sandbox.check_formula` first.
    fused : bool, default True
        Evaluate the likelihood of ``weighted_bernoulli`` and ``continuous_bernoulli``
        models without group-level terms with the fused kernels of
        :mod:`softbayes.ops` (one pass over the design matrix per log-density and
        gradient evaluation). The same function up to rounding (tested to 1e-10); False
        builds the reference elementwise graph, e.g. to inspect or transform it.
    untrusted : bool, default False
        The formulas come from a file or the command line (specs, fit files, CLI options),
        not from the caller's own code: they may call only the sandbox's allow-list and the
        ``extra_namespace`` functions by name, never attributes of those.
    dtype : {"float64", "float32"}, default "float64"
        Storage dtype of the design matrix and the labels in the sampled model.
        ``"float32"`` (for likelihoods on a fused kernel, ``likelihood_kernel == "fused"``)
        halves the bytes read per gradient; the kernels accumulate in float64, so the
        model is the exact likelihood of the rounded design and labels. Measured on
        simulated soft-label logistic data (n = 1e5, d = 10, 20 points near the mode): logp
        within 4e-10 and the gradient within 2e-9 (relative, max norm) of float64, both
        families; a fit (n = 2e4, d = 5, 2 x (500 + 1000) draws, same seed): posterior
        means within 1e-4 posterior sd of float64 (MCSE 0.02 sd). Tested to 1e-5. Kept by
        refits, K-fold and :meth:`from_fit` (recorded in the attr ``softbayes_dtype``).

    Raises
    ------
    ValueError
        Unknown or missing-valued columns, labels outside [0, 1] (or rows of a probability
        vector not summing to 1), Beta labels at exactly 0 or 1, fewer rows than
        population-level coefficients, bad priors, options for another family.
    """

    def __init__(self, formula, data, likelihood="weighted_bernoulli", priors=None, *,
                 phi_formula=None, weights=None, threshold=None, squeeze=None,
                 extra_namespace=None, fused=True, untrusted=False, dtype="float64"):
        self._refitter = Refitter(describe_model(
            formula, data, likelihood, priors, phi_formula=phi_formula, weights=weights,
            options={"threshold": threshold, "squeeze": squeeze},
            extra_namespace=extra_namespace, fused=fused, untrusted=untrusted, dtype=dtype,
        ))

    @classmethod
    def from_description(cls, description: ModelDescription) -> Model:
        """The model of a :class:`~softbayes.terms.description.ModelDescription`."""
        model = cls.__new__(cls)
        model._refitter = Refitter(description)
        return model

    def __copy__(self):
        # a copy refits on its own: set_data / set_labels rebind, never share, its state
        model = type(self).__new__(type(self))
        model._refitter = copy.copy(self._refitter)
        return model

    # -- what the model is ------------------------------------------------------------------
    @property
    def description(self) -> ModelDescription:
        """The model as plain data (formula state, family, priors, rows, labels)."""
        return self._refitter.description

    formula = _described("formula", "The formula as given.")
    family = _described("family", "The likelihood family (softbayes.terms.families).")
    data = _described("data", "The rows: the used columns of the data frame.")
    labels = _described("labels", "The labels as the likelihood sees them.")
    labels_info = _described("labels_info", "Facts about the labels' preparation.")
    weights = _described("weights", "Row weights, or None.")
    weights_column = _described("weights_column", "The column of the row weights, or None.")
    n_obs = _described("n_obs", "The number of rows.")
    phi_formula = _described("phi_formula", "The formula of log phi, or None.")
    rhs = _described("rhs", "The right-hand side of the formula.")
    class_labels = _described("class_labels", "The label columns as text.")
    namespace = _described("namespace", "The functions the formulas may call.")
    extra_namespace = _described("extra_namespace", "Functions given beyond the defaults.")
    fused = _described("fused", "Whether fused likelihood kernels are used where possible.")
    dtype = _described("dtype", "Storage dtype of the design matrix and the labels.")
    likelihood_kernel = _described(
        "likelihood_kernel", '``"fused"`` if the likelihood runs on a fused kernel of '
        ':mod:`softbayes.ops`, else ``"graph"`` (the elementwise PyTensor graph).')

    @property
    def label_columns(self) -> list:
        """The label column(s)."""
        return list(self.description.label_columns)

    @property
    def predictor_columns(self) -> list:
        """The predictor, group and phi-formula columns."""
        return list(self.description.predictor_columns)

    @property
    def pymc_model(self) -> pm.Model:
        """The PyMC model (built on first use)."""
        return self._refitter.pymc_model

    @property
    def compiled(self):
        """nutpie's compiled model, reused across fits (None before the first nutpie fit)."""
        return self._refitter.compiled

    # -- priors -----------------------------------------------------------------------------
    @property
    def priors(self) -> pd.DataFrame:
        """The priors in use: one row per term (parameter, role, prior, source)."""
        return self.description.priors_table()

    def priors_dict(self) -> dict:
        """``{term: {"dist": ..., **parameters}}``, accepted back by ``priors=``."""
        return self.description.priors_dict()

    # -- other rows and labels --------------------------------------------------------------
    def set_labels(self, labels):
        """Replace the labels, keeping the predictors and the compiled model.

        The new labels go through the same checks and preparation (threshold, squeeze).
        The next :meth:`fit` reuses the compiled sampler (only the data changes), which is
        what simulation-based calibration and refits on resampled labels need.

        Parameters
        ----------
        labels : array_like, shape (n,) or (n, K)
            The labels as given: for a ``p(k, m)`` response the proportions ``k / m`` (what
            the families' ``draws`` return), turned back into counts of the same trials.
        """
        self._refitter.set_labels(labels)
        return self

    def set_data(self, data, *, weights=None):
        """Replace the rows by ``data`` (same formula), keeping the compiled sampler.

        New rows are evaluated with the stored formula state (levels, ``scale()``
        parameters, centring) and the priors are kept; the next :meth:`fit` reuses the
        compiled model (nutpie's ``with_data``). See :mod:`softbayes.backend.refit`.
        ``weights``: the row weights when the model's weights were given as an array.
        """
        self._refitter.set_data(data, weights=weights)
        return self

    def refit(self, data=None, labels=None, *, weights=None, **fit_kwargs):
        """:meth:`set_data` and/or :meth:`set_labels`, then :meth:`fit` without recompiling."""
        if data is not None:
            self.set_data(data, weights=weights)
        if labels is not None:
            self.set_labels(labels)
        return self.fit(**fit_kwargs)

    def check_new_data(self, data, *, labels=False):
        """Raise a ValueError if ``data`` lacks a used column or has missing values."""
        self.description.check_new_data(data, labels=labels)

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, draws=1000, tune=1000, chains=4, random_seed=None, sampler=None, *,
            cores=None, progressbar=None, log_likelihood=True, calibrate=None,
            method="nuts", warn=True, backend=None, predictive=None, **kwargs):
        """Sample the posterior and return an ArviZ DataTree (see the module docstring).

        Parameters
        ----------
        draws, tune, chains : int
            Posterior draws and tuning steps per chain, number of chains.
        random_seed : int, optional
            Seed (recorded in attrs; drawn at random if None). Same seed, same draws.
        sampler : {"nutpie", "pymc", "numpyro", "blackjax"}, optional
            NUTS implementation; default nutpie (compiled once per model and reused across
            fits). ``"numpyro"`` / ``"blackjax"`` need those packages installed.
        cores : int, optional
            Chains run in parallel (default ``min(chains, os.cpu_count())``).
        progressbar : bool, optional
            Show the sampler's progress bar; default: when standard output is a terminal.
        log_likelihood : bool, default True
            Add the pointwise ``log_likelihood`` group (through
            :func:`softbayes.compute_log_likelihood`).
        calibrate : {None, "dispersion", "sandwich"}, default None
            Calibrate the posterior spread to the noise of the labels
            (``weighted_bernoulli``, ``continuous_bernoulli``, ``soft_categorical``; see
            :mod:`softbayes.backend.calibration`): ``"dispersion"`` multiplies the
            log-likelihood by ``1/phi_hat`` (Pearson dispersion at the posterior mode),
            ``"sandwich"`` maps the draws to the sandwich covariance around the mode.
            Recorded in the attrs ``softbayes_calibration``; every fit of those families records
            ``softbayes_dispersion`` and warns when it is outside [0.5, 2].
        method : {"nuts", "laplace", "advi", "pathfinder"}, default "nuts"
            ``"nuts"`` samples with ``sampler``; the others are approximations for large n
            (``chains`` x ``draws`` draws of the approximate posterior; ``tune`` and
            ``sampler`` unused): see :mod:`softbayes.backend.approx`. Recorded in the attrs
            ``softbayes_method``.
        warn : bool, default True
            After a NUTS fit, issue one ``UserWarning`` per problem, as PyMC does: R-hat
            above 1.01, bulk or tail ESS below 100 per chain, divergent transitions, maximum
            tree depth hits (:mod:`softbayes.backend.convergence`) and the dispersion
            warning. ``False``: silent (refits of folds and replications).
        backend : {None, "jax", "numba"}, default None
            nutpie's compilation backend: ``"jax"`` compiles in well under a second (and
            keeps XLA's programs on disk for the next process), ``"numba"`` compiles for
            seconds into the fused kernels, fastest per draw for large designs. None: JAX
            for designs of at most :data:`softbayes.backend.sample.JAX_MAX_CELLS` cells
            (rows x coefficients), else numba -- and numba for a model JAX cannot compile;
            chosen at the first fit and kept for refits. Recorded in the attrs
            ``softbayes_backend``. Other samplers ignore it.
        predictive : bool, optional
            Add the ``posterior_predictive`` (one draw of the labels per posterior draw),
            ``prior`` and ``prior_predictive`` groups (500 prior draws), so that ArviZ's
            predictive checks (``az.plot_ppc_dist(fit)``) work on the fit. None (default):
            when rows x (chains x draws + 500) (x classes) is at most
            :data:`softbayes.backend.result.PREDICTIVE_MAX_VALUES` (10 million: e.g. 2 222
            rows at 4 x 1 000 draws), else left out (``predictive=True`` forces them,
            ``False`` leaves them out). The draws are those of
            :func:`softbayes.predict` ``kind="pp"``; the groups' attrs say what they are
            (labels on the label scale, or hard outcomes for the cross-entropy families).
        **kwargs
            Passed to ``nutpie.sample`` or ``pm.sample`` (e.g. ``target_accept``), or to the
            approximation (see :func:`softbayes.backend.approx.fit_approx`).

        Returns
        -------
        xarray.DataTree
        """
        return self._refitter.fit(draws, tune, chains, random_seed, sampler, cores=cores,
                                  progressbar=progressbar, log_likelihood=log_likelihood,
                                  calibrate=calibrate, method=method, warn=warn,
                                  backend=backend, predictive=predictive, **kwargs)

    def kfold(self, fit, k=None, *, seed=0, group_by=None, client=None, workers=None,
              progress=None, **fit_kwargs):
        """Exact K-fold cross-validation of ``fit`` (a fit of this model on its current
        rows): refit without each of ``k`` (default 10) random folds, score each held-out
        fold. ``group_by`` (a column of the rows): hold out whole groups instead, each group
        alone when ``k`` is None (leave-one-group-out), else spread over ``k`` folds.

        ``client`` (a ``distributed.Client``) or ``workers`` (a local Dask cluster of that
        many processes) runs the folds in parallel, with the same numbers as serially;
        ``fit_kwargs`` are the refits' options of :meth:`fit` (default: those ``fit``
        recorded); ``progress(name, folds done, k)``. Returns ArviZ's K-fold ELPD object
        (see :func:`softbayes.analysis.comparison.cross_validation.kfold_fit`).
        """
        return kfold_fit(fit, k, seed=seed, group_by=group_by, description=self.description,
                         refit_kwargs=fit_kwargs, client=client, workers=workers,
                         progress=progress)

    # -- rebuilding -------------------------------------------------------------------------
    @classmethod
    def from_fit(cls, fit, *, extra_namespace=None, check=True):
        """Rebuild the model of a fit from its stored training data and attrs.

        The design (stateful transforms, categorical levels, group levels), priors and
        options are those of the fit; no original data frame is needed.

        Parameters
        ----------
        fit : xarray.DataTree
            A fit from :meth:`fit` (possibly read back with :func:`softbayes.load_fit`).
        extra_namespace : dict, optional
            Functions the formula used beyond the defaults (not stored in the fit). The
            stored formula may call them by name only, never their attributes.
        check : bool, default True
            Compare the stored data's hashes with the fit's attrs.

        Raises
        ------
        softbayes.io.fits.FitFileError
            (a ValueError) naming the attr, if one fails its check
            (:func:`softbayes.io.fits.description_from_fit`): the attrs of a fit are
            untrusted input, its formulas pass the sandbox before anything is evaluated.
        """
        return cls.from_description(
            description_from_fit(fit, extra_namespace=extra_namespace, check=check))

    # -- convenience ------------------------------------------------------------------------
    def predict(self, fit, data=None, kind="mean", **kwargs):
        """:func:`softbayes.analysis.predict` with this model (no rebuild from the fit)."""
        return predict(fit, data, kind, model=self, **kwargs)

    def __repr__(self):
        lines = [
            f"softbayes.Model: {self.formula}",
            f"  likelihood: {self.family.name} (link {self.family.link})",
            f"  observations: {self.n_obs}",
        ]
        if self.phi_formula:
            lines.append(f"  phi formula: ~ {self.phi_formula}")
        lines.append("  priors:")
        for key, _, prior, _ in self.description.prior_rows:
            lines.append(f"    {key}: {prior.describe()}")
        return "\n".join(lines)
