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
``posterior``, ``sample_stats`` (from the sampler), ``log_likelihood`` (one pointwise term per
observation, for every family, in the variable ``"labels"`` with dims ``(chain, draw,
obs)``), ``observed_data`` (``"labels"``: the labels as the likelihood saw them -- thresholded
for ``bernoulli``, squeezed for ``beta`` with ``squeeze=True``), ``constant_data`` (design
matrix ``X``, ``X_phi``, ``weights``) and ``training_data`` (the used columns of the data frame,
to rebuild the model; see :mod:`softbayes.io.fits`). Root attrs, all strings or numbers so
netCDF and zarr store them:

``softbayes_version``, ``softbayes_family``, ``softbayes_formula``, ``softbayes_phi_formula``
(``""`` if none), ``softbayes_label_columns`` (JSON list), ``softbayes_options`` (JSON: family
options, weights column), ``softbayes_priors`` (JSON: ``{term: {"dist", "kwargs",
"source"}}``), ``softbayes_data_hash`` (SHA-256 of the used predictor / group / weight
columns), ``softbayes_labels_hash`` (SHA-256 of the label values as given, before any
thresholding or squeezing), ``softbayes_n_obs``, ``softbayes_log_likelihood_var``
(``"labels"``), ``softbayes_log_likelihood_kind`` (``"cross_entropy"``, ``"density"`` or
``"probability"``), ``softbayes_sampler``, ``softbayes_random_seed``, ``softbayes_draws``,
``softbayes_tune``, ``softbayes_chains``; for ``bernoulli`` ``softbayes_threshold`` and
``softbayes_n_thresholded``; for ``beta`` ``softbayes_squeeze`` (0/1) and
``softbayes_n_squeezed``.

Parameters in the posterior (Bambi's names)
-------------------------------------------
``Intercept_centered`` (sampled; the linear predictor at the training means of the
columns, where the intercept prior sits), ``Intercept`` (deterministic, the usual uncentred
intercept), one variable per population-level term named after it (``x``, ``log(x)``,
``g`` with dim ``g_dim`` for the dummy columns, ``x:z``), per group-level term ``1|g_sigma``,
``1|g_offset`` (sampled, non-centred) and ``1|g`` (deterministic, ``sigma * offset``), and
for ``beta`` ``phi`` or, with ``phi_formula``, the same set prefixed ``phi_``. For
``soft_categorical`` every coefficient has a trailing ``class_reduced`` dim (classes 2..K;
the first is the reference, all its coefficients fixed at 0).
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from softbayes._version import __version__
from softbayes.io.fits import (
    OBS_DIM,
    TRAINING_GROUP,
    FitFileError,
    data_hash,
    dataset_to_frame,
    frame_to_dataset,
    labels_hash,
    validate_fit,
)
from softbayes.terms.design import (
    DEFAULT_NAMESPACE,
    LinearDesign,
    check_columns,
    check_predictor_types,
    parse_formula,
    rhs_variables,
    strip_tilde,
)
from softbayes.terms.families import Family, get_family
from softbayes.terms.priors import (
    DEFAULT_SCALE,
    PHI_LOG_MU,
    PHI_LOG_SCALE,
    Prior,
    group_sd_prior,
    intercept_prior,
    parse_prior,
    phi_prior,
    priors_table,
    slope_prior,
)
from softbayes.terms.sandbox import check_formula

__all__ = ["LOGLIK_VAR", "Model"]

#: Name of the likelihood term, its ``log_likelihood`` variable and ``observed_data`` entry.
LOGLIK_VAR = "labels"
LABELS_DATA = "labels_data"
WEIGHTS_DATA = "weights_data"
CLASS_DIM = "class"
CLASS_REDUCED_DIM = "class_reduced"
WEIGHTS_COLUMN = "__weights__"
SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")


def _safe(name: str) -> str:
    # '/' is the group separator of netCDF and zarr.
    return name.replace("/", "÷")


class _Predictor:
    """A linear predictor: one :class:`LinearDesign`, its parameters, priors and math."""

    def __init__(self, design: LinearDesign, prefix: str, n_classes_reduced, class_labels,
                 intercept_mu=0.0, scale=DEFAULT_SCALE):
        self.design = design
        self.prefix = prefix
        self.cls = () if n_classes_reduced is None else (n_classes_reduced,)
        self.class_labels = class_labels
        self.intercept_mu = intercept_mu
        self.scale = scale

    # -- names ------------------------------------------------------------------------------
    def key(self, term):
        return f"{self.prefix}{term}"

    def var(self, term):
        return _safe(f"{self.prefix}{term}")

    def entries(self):
        """(prior key, parameter name, default Prior, role, shape) for each prior."""
        d = self.design
        xc = d.X - d.means
        out = []
        if d.intercept:
            out.append((self.key("Intercept"), self.var("Intercept_centered"),
                        intercept_prior(self.intercept_mu, self.scale), "intercept (centred)",
                        self.cls))
        for t in d.common_terms:
            p = t.columns.stop - t.columns.start
            shape = ((p,) if p > 1 else ()) + self.cls
            out.append((self.key(t.name), self.var(t.name),
                        slope_prior(xc[:, t.columns], self.scale), "slope", shape))
        parts = d.group_parts_train
        for g, (xe, _, _) in zip(d.group_terms, parts, strict=True):
            q = xe.shape[1]
            shape = ((q,) if q > 1 else ()) + self.cls
            out.append((self.key(g.name), self.var(f"{g.name}_sigma"),
                        group_sd_prior(xe, self.scale), "group-level sd", shape))
        return out

    def coords(self):
        d = self.design
        coords = {}
        for t in d.common_terms:
            if t.columns.stop - t.columns.start > 1:
                coords[self.var(f"{t.name}_dim")] = list(map(str, t.labels))
        for g in d.group_terms:
            coords[self.var(f"{g.name}__factor_dim")] = list(map(str, g.groups))
            if len(g.expr_labels) > 1:
                coords[self.var(f"{g.name}__expr_dim")] = list(map(str, g.expr_labels))
        return coords

    def _dims(self, *dims):
        return tuple(dims) + ((CLASS_REDUCED_DIM,) if self.cls else ())

    # -- PyMC graph -------------------------------------------------------------------------
    def fusable(self):
        """Whether :meth:`build` can hand the likelihood a fused GLM kernel: a single linear
        predictor ``X @ theta`` (no group-level terms, not multiclass)."""
        d = self.design
        return not self.cls and not d.group_terms and d.X.shape[1] > 0

    def build(self, priors, *, fused=False):
        """The linear predictor as a PyTensor expression, and its GLM form.

        Returns ``(eta, glm)``: ``eta`` is (n,) or (n, K-1); ``glm`` is ``(X, theta)`` with
        ``eta = X @ theta`` when ``fused`` and :meth:`fusable` (else None), for the fused
        kernels of :mod:`softbayes.ops.glm` (the data container already holds the centred
        design with the intercept's column of ones: one contiguous matrix, read once per
        evaluation).
        """
        d = self.design
        fused = fused and self.fusable()
        # Data containers (pm.Data, flexible number of rows) so that a compiled model can be
        # refitted on new rows (softbayes.backend.refit); names from data_names().
        names = self.data_names()
        xc = pm.Data(names["X"], np.ascontiguousarray(d.X - d.means))
        n = xc.shape[0]
        eta = pt.zeros((n, *self.cls))
        theta = []
        if d.intercept:
            a = priors[self.key("Intercept")].build(
                self.var("Intercept_centered"), shape=self.cls, dims=self._dims()
            )
            eta = eta + a
            theta.append((0, pt.reshape(a, (1,))))
            shift = 0.0
        for t in d.common_terms:
            p = t.columns.stop - t.columns.start
            dims = self._dims(self.var(f"{t.name}_dim")) if p > 1 else self._dims()
            shape = ((p,) if p > 1 else ()) + self.cls
            beta = priors[self.key(t.name)].build(self.var(t.name), shape=shape, dims=dims)
            beta = pt.reshape(beta, (p, *self.cls))
            theta.append((t.columns.start, beta))
            eta = eta + pt.tensordot(xc[:, t.columns], beta, axes=[[1], [0]])
            if d.intercept:
                shift = shift + pt.tensordot(
                    pt.as_tensor(d.means[t.columns]), beta, axes=[[0], [0]]
                )
        if d.intercept:
            pm.Deterministic(self.var("Intercept"), a - shift, dims=self._dims())
        if fused:
            # theta in the column order of X (the terms' column blocks tile it)
            parts = [b for _, b in sorted(theta, key=lambda sb: sb[0])]
            theta = pt.concatenate(parts) if len(parts) > 1 else parts[0]
            # eta is then only evaluated by code that asks for it: the compiled logp reads
            # the fused node, and unused nodes are not computed.
            return pt.dot(xc, theta), (xc, theta)
        for g, (xe, idx, _) in zip(d.group_terms, d.group_parts_train, strict=True):
            q = xe.shape[1]
            fdim = self.var(f"{g.name}__factor_dim")
            edims = (self.var(f"{g.name}__expr_dim"),) if q > 1 else ()
            eshape = ((q,) if q > 1 else ()) + self.cls
            sigma = priors[self.key(g.name)].build(
                self.var(f"{g.name}_sigma"), shape=eshape, dims=self._dims(*edims)
            )
            n_groups = len(g.groups)
            offset = pm.Normal(
                self.var(f"{g.name}_offset"), 0.0, 1.0, shape=(n_groups, *eshape),
                dims=self._dims(fdim, *edims),
            )
            b = pm.Deterministic(self.var(g.name), sigma * offset,
                                 dims=self._dims(fdim, *edims))
            b = pt.reshape(b, (n_groups, q, *self.cls))
            xe_d = pm.Data(names[f"Z:{g.name}"], xe)
            idx_d = pm.Data(names[f"index:{g.name}"], np.asarray(idx, dtype=np.int64))
            xe_t = pt.reshape(xe_d, (n, q) + (1,) * len(self.cls))
            eta = eta + pt.sum(xe_t * b[idx_d], axis=1)
        return eta, None

    def data_names(self):
        """Names of this predictor's data containers: ``{"X": ..., "Z:<term>": ...,
        "index:<term>": ...}``."""
        out = {"X": self.var("X__data")}
        for g in self.design.group_terms:
            out[f"Z:{g.name}"] = self.var(f"{g.name}__Z_data")
            out[f"index:{g.name}"] = self.var(f"{g.name}__index_data")
        return out

    # -- NumPy on posterior draws -----------------------------------------------------------
    def _draws(self, posterior, name, dims, canonical):
        da = posterior[name]
        da = da.transpose("chain", "draw", *dims)
        v = np.asarray(da.values, dtype=float)
        return v.reshape(v.shape[:2] + canonical)

    def evaluate(self, posterior, data, *, new_groups="error", rng=None):
        """Linear predictor on ``data`` for every draw: (chain, draw, n[, K-1])."""
        d = self.design
        x = d.common_matrix(data)
        xc = x - d.means
        n = len(data)
        c, dr = posterior.sizes["chain"], posterior.sizes["draw"]
        eta = np.zeros((c, dr, n, *self.cls))
        if d.intercept:
            a = self._draws(posterior, self.var("Intercept_centered"), self._dims(), self.cls)
            eta += a[:, :, None]
        for t in d.common_terms:
            p = t.columns.stop - t.columns.start
            dims = self._dims(self.var(f"{t.name}_dim")) if p > 1 else self._dims()
            beta = self._draws(posterior, self.var(t.name), dims, (p, *self.cls))
            eta += np.einsum("np,cdp...->cdn...", xc[:, t.columns], beta)
        parts = d.group_parts(data) if d.group_terms else []
        for g, (xe, idx, new) in zip(d.group_terms, parts, strict=True):
            q = xe.shape[1]
            fdim = self.var(f"{g.name}__factor_dim")
            edims = (self.var(f"{g.name}__expr_dim"),) if q > 1 else ()
            n_groups = len(g.groups)
            b = self._draws(posterior, self.var(g.name), self._dims(fdim, *edims),
                            (n_groups, q, *self.cls))
            if new:
                if new_groups == "error":
                    raise ValueError(
                        f"Group-level term {g.name!r}: {len(new)} level(s) not seen in "
                        f"training ({new[:5]}). Pass new_groups='sample' to draw their "
                        "effects from the fitted group distribution, or new_groups='zero' "
                        "to predict them at the population level (effect 0)."
                    )
                extra = np.zeros((c, dr, len(new), q, *self.cls))
                if new_groups == "sample":
                    sigma = self._draws(posterior, self.var(f"{g.name}_sigma"),
                                        self._dims(*edims), (q, *self.cls))
                    extra = rng.standard_normal(extra.shape) * sigma[:, :, None]
                elif new_groups != "zero":
                    raise ValueError(
                        f"new_groups must be 'error', 'sample' or 'zero', got {new_groups!r}."
                    )
                b = np.concatenate([b, extra], axis=2)
            xe_b = xe.reshape((n, q) + (1,) * len(self.cls))
            eta += np.sum(xe_b * b[:, :, idx], axis=3)
        return eta


def _attr_json(obj):
    return json.dumps(obj, sort_keys=True)


class Model:
    """A soft-label regression: formula, likelihood family, priors.

    Parameters
    ----------
    formula : str
        ``"labels ~ predictors"``; see :mod:`softbayes.terms.design`. For ``soft_categorical``
        the response names the K probability columns, ``"c(p_a, p_b, p_c) ~ x"``, the first
        being the reference class. Group-level terms ``(1|g)``, ``(x|g)`` get non-centred
        partial pooling, one sd per column of the term (no correlations between terms).
    data : pandas.DataFrame
        One row per observation. Used columns must have no missing values.
    likelihood : str, default "weighted_bernoulli"
        ``"weighted_bernoulli"``, ``"continuous_bernoulli"``, ``"beta"``, ``"bernoulli"`` or
        ``"soft_categorical"`` (see :mod:`softbayes.terms.families`).
    priors : dict, optional
        Overrides per term, ``{"x": {"dist": "Normal", "mu": 0, "sigma": 1}, ...}``; see
        :mod:`softbayes.terms.priors` for keys and the default rule. ``model.priors`` shows them.
    phi_formula : str, optional
        ``beta`` only: formula of ``log phi``, e.g. ``"~ x"`` (default: a constant ``phi``).
    weights : str or array_like, optional
        Row weights (a column name or an array), for ``weighted_bernoulli`` and
        ``soft_categorical`` (e.g. the number of raters behind each soft label).
    threshold : float, optional
        ``bernoulli`` only: the cut (default 0.5); a label ``>= threshold`` becomes 1.
    squeeze : bool, optional
        ``beta`` only: apply the Smithson--Verkuilen squeeze ``(y(n-1)+1/2)/n`` so labels
        of exactly 0 or 1 can be fitted (default False: such labels are an error).
    extra_namespace : dict, optional
        More functions for the formula (they are not stored in a saved fit: pass them
        again to :meth:`from_fit`). A formula typed in Python may also call their
        attributes (``extra_namespace={"np": np}`` makes every ``np.<f>`` available); every
        formula passes :func:`softbayes.terms.sandbox.check_formula` first.
    fused : bool, default True
        Evaluate the likelihood of ``weighted_bernoulli`` and ``continuous_bernoulli``
        models without group-level terms with the fused kernels of
        :mod:`softbayes.ops.glm` (one pass over the design matrix per log-density and
        gradient evaluation). The same function up to rounding (tested to 1e-10); False
        builds the reference elementwise graph, e.g. to inspect or transform it.

    Raises
    ------
    ValueError
        Unknown or missing-valued columns, labels outside [0, 1] (or rows of a probability
        vector not summing to 1), Beta labels at exactly 0 or 1, fewer rows than
        population-level coefficients, bad priors, options for another family.
    """

    def __init__(self, formula, data, likelihood="weighted_bernoulli", priors=None, *,
                 phi_formula=None, weights=None, threshold=None, squeeze=None,
                 extra_namespace=None, fused=True, _quiet=False, _untrusted=False):
        # _untrusted: the formulas come from a file or the command line (specs, fits, CLI
        # options), so they may call only the allow-list and the extra_namespace functions
        # by name, never attributes of those
        name = likelihood.name if isinstance(likelihood, Family) else likelihood
        if threshold is not None and name != "bernoulli":
            raise ValueError(f"threshold= applies to likelihood='bernoulli', not {name!r}.")
        if squeeze is not None and name != "beta":
            raise ValueError(f"squeeze= applies to likelihood='beta', not {name!r}.")
        if phi_formula is not None and name != "beta":
            raise ValueError(f"phi_formula= applies to likelihood='beta', not {name!r}.")
        opts = {}
        if threshold is not None:
            opts["threshold"] = threshold
        if squeeze is not None:
            opts["squeeze"] = squeeze
        self.family = get_family(likelihood, **opts)
        if not isinstance(data, pd.DataFrame):
            raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
        if weights is not None and not self.family.supports_weights:
            raise ValueError(
                f"weights= is supported by the weighted_bernoulli and soft_categorical "
                f"likelihoods, not {self.family.name!r} (its likelihood is a density of the "
                "label; duplicate rows instead if weights are counts)."
            )
        self.formula = formula
        self.label_columns, rhs, multi = parse_formula(formula)
        extra_names = set(extra_namespace or {})
        sandbox = {"columns": [str(c) for c in data.columns], "extra_names": extra_names,
                   "attribute_roots": () if _untrusted else extra_names}
        check_formula(formula, **sandbox)
        if phi_formula is not None:
            check_formula(phi_formula, rhs_only=True, **sandbox)
        if self.family.multiclass and (not multi or len(self.label_columns) < 2):
            raise ValueError(
                f"likelihood='soft_categorical' needs K >= 2 label columns: write the "
                f"formula as 'c(p_a, p_b, p_c) ~ ...', got {formula!r}."
            )
        if not self.family.multiclass and (multi or len(self.label_columns) != 1):
            raise ValueError(
                f"likelihood={self.family.name!r} takes one label column ('share ~ x'); for "
                "probability vectors use likelihood='soft_categorical'."
            )
        self.phi_formula = None if phi_formula is None else strip_tilde(phi_formula)
        self.namespace = {**DEFAULT_NAMESPACE, **(extra_namespace or {})}
        self.extra_namespace = dict(extra_namespace or {})

        # -- columns ------------------------------------------------------------------------
        pred_cols = sorted(rhs_variables(rhs))
        if self.phi_formula is not None:
            pred_cols = sorted(set(pred_cols) | rhs_variables(self.phi_formula))
        overlap = set(pred_cols) & set(self.label_columns)
        if overlap:
            raise ValueError(f"Label column(s) {sorted(overlap)} also appear as predictors.")
        self.weights_column = None
        extra = {}
        if isinstance(weights, str):
            self.weights_column = weights
        elif weights is not None:
            w = np.asarray(weights)
            if w.shape != (len(data),):
                raise ValueError(
                    f"weights: expected one weight per row ({len(data)}), got shape {w.shape}."
                )
            self.weights_column = WEIGHTS_COLUMN
            extra[WEIGHTS_COLUMN] = w
        used = list(self.label_columns) + pred_cols
        check_columns(data, used + ([weights] if isinstance(weights, str) else []))
        check_predictor_types(data, pred_cols, rhs + " " + (self.phi_formula or ""))
        frame = data[used + ([weights] if isinstance(weights, str) else [])].copy()
        for k, v in extra.items():
            frame[k] = v
        if len(frame) == 0:
            raise ValueError("data has no rows.")
        self.data = frame
        self.predictor_columns = pred_cols
        self.n_obs = len(frame)

        # -- labels -------------------------------------------------------------------------
        self._set_labels_from_frame(quiet=_quiet)
        if self.weights_column is not None:
            from softbayes.data.validation import validate_weights

            self.weights = validate_weights(frame[self.weights_column].to_numpy(), self.n_obs,
                                            name=f"weights column {self.weights_column!r}")
        else:
            self.weights = None

        # -- designs ------------------------------------------------------------------------
        design = LinearDesign(rhs, frame, self.namespace)
        self.rhs = design.rhs
        k_red = len(self.label_columns) - 1 if self.family.multiclass else None
        self.class_labels = list(map(str, self.label_columns))
        self._main = _Predictor(design, "", k_red, self.class_labels)
        self._phi = None
        if self.phi_formula is not None:
            phi_design = LinearDesign(self.phi_formula, frame, self.namespace)
            self._phi = _Predictor(phi_design, "phi_", None, None, intercept_mu=PHI_LOG_MU,
                                   scale=PHI_LOG_SCALE)
        if design.intercept and not _quiet:
            const = [lab for j, lab in enumerate(design.common_labels)
                     if j > 0 and np.ptp(design.X[:, j]) == 0]
            if const:
                warnings.warn(
                    f"Design column(s) {const} are constant (the same value in every row): "
                    "next to the intercept their coefficients are not identified by the data, "
                    "only by their priors. Drop them from the formula unless that is intended.",
                    UserWarning, stacklevel=2,
                )
        n_coef = design.X.shape[1] + (
            (self._phi.design.X.shape[1] if self._phi else 1) if self.family.name == "beta"
            else 0
        )
        if self.n_obs <= n_coef:
            raise ValueError(
                f"Too few rows: {self.n_obs} observations for {n_coef} population-level "
                f"coefficients ({', '.join(design.common_labels)}"
                f"{', phi' if self.family.name == 'beta' else ''}). Use more data or a "
                "smaller formula (fewer predictors / levels)."
            )
        self._set_priors(priors or {})
        self.fused = bool(fused)
        self._pymc_model = None
        self._compiled = None

    # -- labels -----------------------------------------------------------------------------
    def _label_name(self):
        if self.family.multiclass:
            return "label columns c(" + ", ".join(map(str, self.label_columns)) + ")"
        return f"label column {self.label_columns[0]!r}"

    def _raw_labels(self, frame):
        if self.family.multiclass:
            return frame[self.label_columns].to_numpy()
        return frame[self.label_columns[0]].to_numpy()

    def _set_labels_from_frame(self, quiet=False):
        raw = self._raw_labels(self.data)
        used, info = self.family.prepare_labels(raw, name=self._label_name(),
                                                index=self.data.index)
        msg = info.pop("warning", None)
        if msg and not quiet:
            warnings.warn(msg, UserWarning, stacklevel=3)
        self.labels_info = info
        self.labels = used

    def set_labels(self, labels):
        """Replace the labels, keeping the predictors and the compiled model.

        The new labels go through the same checks and preparation (threshold, squeeze).
        The next :meth:`fit` reuses the compiled sampler (only the data changes), which is
        what simulation-based calibration and refits on resampled labels need.

        Parameters
        ----------
        labels : array_like, shape (n,) or (n, K)
        """
        labels = np.asarray(labels, dtype=float)
        expected = (self.n_obs, len(self.label_columns)) if self.family.multiclass else (
            self.n_obs,)
        if labels.shape != expected:
            raise ValueError(f"labels: expected shape {expected}, got {labels.shape}.")
        frame = self.data.copy()
        if self.family.multiclass:
            frame[self.label_columns] = labels
        else:
            frame[self.label_columns[0]] = labels
        old = self.data
        self.data = frame
        try:
            self._set_labels_from_frame(quiet=True)
        except Exception:
            self.data = old
            raise
        if self._pymc_model is not None:
            with self._pymc_model:
                pm.set_data({LABELS_DATA: self.labels})
        if self._compiled is not None:
            self._compiled = self._compiled.with_data(**{LABELS_DATA: self.labels})
        return self

    def set_data(self, data, *, weights=None):
        """Replace the rows by ``data`` (same formula), keeping the compiled sampler.

        New rows are evaluated with the stored formula state (levels, ``scale()``
        parameters, centring) and the priors are kept; the next :meth:`fit` reuses the
        compiled model (nutpie's ``with_data``). See :func:`softbayes.backend.refit.set_data`.
        """
        from softbayes.backend.refit import set_data

        return set_data(self, data, weights=weights)

    def refit(self, data=None, labels=None, *, weights=None, **fit_kwargs):
        """:meth:`set_data` and/or :meth:`set_labels`, then :meth:`fit` without recompiling."""
        from softbayes.backend.refit import refit

        return refit(self, data, labels, weights=weights, **fit_kwargs)

    # -- priors -----------------------------------------------------------------------------
    def _prior_entries(self):
        entries = list(self._main.entries())
        if self.family.name == "beta":
            if self._phi is None:
                entries.append(("phi", "phi", phi_prior(), "precision", ()))
            else:
                entries += self._phi.entries()
        return entries

    def _set_priors(self, user):
        entries = self._prior_entries()
        keys = [e[0] for e in entries]
        unknown = [k for k in user if k not in keys]
        if unknown:
            raise ValueError(
                f"priors: unknown term(s) {unknown}; the terms of this model are {keys} "
                "(the key of a group-level term sets the prior of its sd)."
            )
        self._priors = {}
        self._prior_rows = []
        for key, param, default, role, shape in entries:
            prior = parse_prior(key, user[key]) if key in user else default
            prior.check(key, shape)
            self._priors[key] = prior
            self._prior_rows.append((key, param, prior, role))

    @property
    def priors(self) -> pd.DataFrame:
        """The priors in use: one row per term (parameter, role, prior, source)."""
        return priors_table(self._prior_rows)

    def priors_dict(self) -> dict:
        """``{term: {"dist": ..., **parameters}}``, accepted back by ``priors=``."""
        return {k: p.to_dict() for k, p in self._priors.items()}

    # -- the PyMC model ---------------------------------------------------------------------
    def _coords(self):
        coords = {OBS_DIM: np.arange(self.n_obs)}
        if self.family.multiclass:
            coords[CLASS_DIM] = self.class_labels
            coords[CLASS_REDUCED_DIM] = self.class_labels[1:]
        coords.update(self._main.coords())
        if self._phi is not None:
            coords.update(self._phi.coords())
        return coords

    def _wants_fused(self):
        return self.fused and self.family.glm_kernel is not None

    @property
    def likelihood_kernel(self) -> str:
        """``"fused"`` if the likelihood runs on a fused kernel of :mod:`softbayes.ops.glm`,
        else ``"graph"`` (the elementwise PyTensor graph)."""
        return "fused" if self._wants_fused() and self._main.fusable() else "graph"

    @property
    def pymc_model(self) -> pm.Model:
        """The PyMC model (built on first use)."""
        if self._pymc_model is None:
            self._pymc_model = self._build()
        return self._pymc_model

    def _label_dims(self):
        return (OBS_DIM, CLASS_DIM) if self.family.multiclass else (OBS_DIM,)

    def _build(self, rate=None):
        """The PyMC model; with ``rate``, its log-likelihood multiplied by ``rate``
        (``calibrate="dispersion"``): through the row weights for weighted families, else as
        a potential ``(rate - 1) * loglik`` beside the likelihood term."""
        with pm.Model(coords=self._coords()) as m:
            labels = pm.Data(LABELS_DATA, self.labels, dims=self._label_dims())
            eta, glm = self._main.build(self._priors, fused=self._wants_fused())
            if self.family.multiclass:
                eta = pt.concatenate([pt.zeros((eta.shape[0], 1)), eta], axis=1)
            params = {"eta": eta}
            if self.family.name == "beta":
                if self._phi is None:
                    params["phi"] = self._priors["phi"].build("phi", shape=())
                else:
                    params["phi"] = pt.exp(self._phi.build(self._priors)[0])
            dims = self._label_dims() if not self.family.multiclass else OBS_DIM
            weights = self.weights
            if self.family.supports_weights:
                # a container (unit weights if none) so that refits and ADVI minibatches can
                # swap or rescale the rows' weights (backend.refit, backend.approx)
                weights = np.ones(self.n_obs) if weights is None else np.asarray(weights, float)
                if rate is not None:
                    weights = weights * float(rate)
                weights = pm.Data(WEIGHTS_DATA, weights)
            if glm is not None:
                params["glm"] = glm
            term = self.family.add_likelihood(LOGLIK_VAR, labels, weights=weights, dims=dims,
                                              **params)
            if rate is not None and not self.family.supports_weights:
                # (rate - 1) times the same log-likelihood term (the fused one if fused)
                loglik = m.logp(vars=[term], sum=True, jacobian=False)
                pm.Potential("softbayes_tempering", (float(rate) - 1.0) * loglik)
        return m

    # -- NumPy evaluation on draws ----------------------------------------------------------
    def _params(self, posterior, data=None, *, new_groups="error", rng=None):
        """Distribution parameters on ``data`` (default: training) for every draw."""
        if hasattr(posterior, "to_dataset"):
            posterior = posterior.to_dataset()
        data = self.data if data is None else data
        rng = np.random.default_rng(rng)
        eta = self._main.evaluate(posterior, data, new_groups=new_groups, rng=rng)
        if self.family.multiclass:
            eta = np.concatenate([np.zeros((*eta.shape[:-1], 1)), eta], axis=-1)
        params = {"eta": eta}
        if self.family.name == "beta":
            if self._phi is None:
                phi = np.asarray(posterior["phi"].transpose("chain", "draw").values, float)
                params["phi"] = phi[:, :, None]
            else:
                params["phi"] = np.exp(
                    self._phi.evaluate(posterior, data, new_groups=new_groups, rng=rng)
                )
        return params

    def check_new_data(self, data, *, labels=False):
        """Raise a ValueError if ``data`` lacks a used column or has missing values."""
        if not isinstance(data, pd.DataFrame):
            raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
        cols = list(self.predictor_columns)
        if labels:
            cols = list(self.label_columns) + cols
        check_columns(data, cols, what="model (prediction data)")

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, draws=1000, tune=1000, chains=4, random_seed=None, sampler=None, *,
            cores=None, progressbar=False, log_likelihood=True, calibrate=None,
            method="nuts", **kwargs):
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
        progressbar : bool, default False
        log_likelihood : bool, default True
            Add the pointwise ``log_likelihood`` group (through
            :func:`softbayes.compute_log_likelihood`).
        calibrate : {None, "dispersion", "sandwich"}, default None
            Calibrate the posterior spread to the noise of the labels
            (``weighted_bernoulli``, ``continuous_bernoulli``, ``soft_categorical``; see
            :mod:`softbayes.backend.calibration`): ``"dispersion"`` multiplies the log-likelihood by
            ``1/phi_hat`` (Pearson dispersion at the posterior mode), ``"sandwich"`` maps the
            draws to the sandwich covariance around the mode. Recorded in the attrs
            ``softbayes_calibration``; every fit of those families records
            ``softbayes_dispersion`` and warns when it is outside [0.5, 2].
        method : {"nuts", "laplace", "advi", "pathfinder"}, default "nuts"
            ``"nuts"`` samples with ``sampler``; the others are approximations for large n
            (``chains`` x ``draws`` draws of the approximate posterior; ``tune`` and
            ``sampler`` unused): see :mod:`softbayes.backend.approx`. Recorded in the attrs
            ``softbayes_method``.
        **kwargs
            Passed to ``nutpie.sample`` or ``pm.sample`` (e.g. ``target_accept``), or to the
            approximation (see :func:`softbayes.backend.approx.fit_approx`).

        Returns
        -------
        xarray.DataTree
        """
        if method != "nuts":
            from softbayes.backend.approx import fit_approx

            return fit_approx(self, method, draws=draws, chains=chains,
                              random_seed=random_seed, log_likelihood=log_likelihood,
                              calibrate=calibrate, progressbar=progressbar, **kwargs)
        from softbayes.backend import calibration

        plan = calibration.plan_fit(self, calibrate)
        sampler = _resolve_sampler(sampler)
        if random_seed is None:
            random_seed = int(np.random.SeedSequence().generate_state(1)[0] % (2**31))
        random_seed = int(random_seed)
        cores = cores or min(chains, os.cpu_count() or 1)
        model = self.pymc_model if plan.sampling_model is None else plan.sampling_model
        if sampler == "nutpie":
            import nutpie

            if plan.sampling_model is not None:  # tempered: compiled for this fit only
                compiled = nutpie.compile_pymc_model(model)
            else:
                if self._compiled is None:
                    self._compiled = nutpie.compile_pymc_model(model)
                compiled = self._compiled
            t0 = time.time()
            try:
                idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains,
                                      cores=cores, seed=random_seed, save_warmup=False,
                                      progress_bar=progressbar, **kwargs)
            except RuntimeError as err:
                if "initialization points failed" not in str(err):
                    raise
                raise _start_failure(err, model) from None
            idata["posterior"].attrs["sampling_time"] = time.time() - t0
        else:
            kwargs.setdefault("compute_convergence_checks", False)
            if sampler in ("numpyro", "blackjax"):
                nuts = dict(kwargs.pop("nuts", None) or {})
                method = _jax_chain_method(chains)
                if method is not None:
                    nuts.setdefault("chain_method", method)
                kwargs["nuts"] = nuts
            idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores,
                              random_seed=random_seed, nuts_sampler=sampler,
                              progressbar=progressbar, model=model, **kwargs)
        for group in ("observed_data", "constant_data", "log_likelihood"):
            if group in idata.children:
                del idata[group]
        idata = plan.adjust(self, idata)  # calibrate="sandwich": adjusted draws
        if log_likelihood:
            from softbayes.backend.log_likelihood import compute_log_likelihood

            compute_log_likelihood(idata, model=self.pymc_model)
        self._add_groups(idata)
        idata.attrs.update(self._attrs(sampler, random_seed, draws, tune, chains))
        idata.attrs["softbayes_method"] = "nuts"
        idata.attrs.update(plan.finish(self, idata))
        calibration.warn_messages(plan, stacklevel=3)
        return idata

    def _add_groups(self, idata):
        ldims = self._label_dims()
        coords = {OBS_DIM: np.arange(self.n_obs)}
        if self.family.multiclass:
            coords[CLASS_DIM] = self.class_labels
        idata["observed_data"] = xr.Dataset({LOGLIK_VAR: (ldims, self.labels)}, coords=coords)
        const = {"X": ((OBS_DIM, "coef"), self._main.design.X)}
        cc = {OBS_DIM: np.arange(self.n_obs), "coef": self._main.design.common_labels}
        if self._phi is not None:
            const["X_phi"] = ((OBS_DIM, "phi_coef"), self._phi.design.X)
            cc["phi_coef"] = self._phi.design.common_labels
        if self.weights is not None:
            const["weights"] = ((OBS_DIM,), self.weights)
        idata["constant_data"] = xr.Dataset(const, coords=cc)
        idata[TRAINING_GROUP] = frame_to_dataset(self.data)

    def _hashes(self):
        pred = [c for c in self.data.columns if c not in self.label_columns]
        return data_hash(self.data, pred), labels_hash(self._raw_labels(self.data))

    def _attrs(self, sampler, seed, draws, tune, chains):
        dh, lh = self._hashes()
        attrs = {
            "softbayes_version": __version__,
            "softbayes_family": self.family.name,
            "softbayes_formula": self.formula,
            "softbayes_phi_formula": self.phi_formula or "",
            "softbayes_label_columns": _attr_json(list(map(str, self.label_columns))),
            "softbayes_options": _attr_json(
                {**self.family.options(), "weights": self.weights_column}
            ),
            "softbayes_priors": _attr_json(
                {k: {"dist": p.dist, "kwargs": {a: v for a, v in p.to_dict().items()
                                                 if a != "dist"}, "source": p.source}
                 for k, p in self._priors.items()}
            ),
            "softbayes_data_hash": dh,
            "softbayes_labels_hash": lh,
            "softbayes_n_obs": int(self.n_obs),
            "softbayes_log_likelihood_var": LOGLIK_VAR,
            "softbayes_log_likelihood_kind": self.family.log_likelihood_kind,
            "softbayes_sampler": sampler,
            "softbayes_random_seed": int(seed),
            "softbayes_draws": int(draws),
            "softbayes_tune": int(tune),
            "softbayes_chains": int(chains),
            "softbayes_likelihood_kernel": self.likelihood_kernel,
        }
        for k, v in self.labels_info.items():
            attrs[f"softbayes_{k}"] = v
        return attrs

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
            (:func:`softbayes.io.fits.validate_fit`): the attrs of a fit are untrusted input,
            its formulas pass the sandbox before anything is evaluated.
        """
        attrs = fit.attrs
        if "softbayes_family" not in attrs:
            raise ValueError("Not a softbayes fit: its attrs lack 'softbayes_family'.")
        if TRAINING_GROUP not in fit.children:
            raise ValueError(f"The fit has no {TRAINING_GROUP!r} group to rebuild the model.")
        info = validate_fit(fit, extra_names=set(extra_namespace or {}))
        for key in ("formula", "options", "priors"):
            if key not in info:
                raise FitFileError("the fit", f"softbayes_{key}",
                                   "missing: the model cannot be rebuilt without it.")
        frame = dataset_to_frame(fit[TRAINING_GROUP])
        options = info["options"]
        stored = info["priors"]
        priors = {k: Prior(v["dist"], v["kwargs"], v.get("source", "user"))
                  for k, v in stored.items()}
        kw = {}
        if "threshold" in options:
            kw["threshold"] = options["threshold"]
        if "squeeze" in options:
            kw["squeeze"] = bool(options["squeeze"])
        model = cls(
            info["formula"], frame, likelihood=info["family"],
            priors=priors, phi_formula=info.get("phi_formula") or None,
            weights=options.get("weights"), extra_namespace=extra_namespace, _quiet=True,
            _untrusted=True, **kw,
        )
        if check:
            dh, lh = model._hashes()
            if dh != attrs.get("softbayes_data_hash") or lh != attrs.get("softbayes_labels_hash"):
                raise ValueError(
                    "The training data stored in the fit does not match the fit's recorded "
                    "hashes (softbayes_data_hash / softbayes_labels_hash): the file was "
                    "modified or written by an incompatible version. Refit the model."
                )
        return model

    # -- convenience ------------------------------------------------------------------------
    def predict(self, fit, data=None, kind="mean", **kwargs):
        """:func:`softbayes.analysis.predict` with this model (no rebuild from the fit)."""
        from softbayes.analysis.predict import predict

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
        for key, _, prior, _ in self._prior_rows:
            lines.append(f"    {key}: {prior.describe()}")
        return "\n".join(lines)


def _start_failure(err, model):
    """One readable SamplingError for nutpie's 'All initialization points failed'."""
    terms = ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logps = model.point_logps()
        bad = [f"{k} ({v})" for k, v in logps.items() if not np.isfinite(v)]
        if bad:
            terms = " Not finite at the model's initial point: " + ", ".join(bad) + "."
    except Exception:  # the diagnosis is a courtesy; the error below is what matters
        pass
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    cause = next((ln for ln in lines[1:] if not ln.startswith(("Caused by", "Stack"))), "")
    return pm.exceptions.SamplingError(
        "No chain could start: the log-density (or its gradient) was not finite at any initial "
        f"point the sampler tried.{terms} Check the priors (e.g. one that puts a parameter at "
        "infinity), extreme predictor values (standardize them with scale(x)) and any "
        f"init_mean passed to fit. (nutpie: {lines[0] if lines else err}"
        f"{'; ' + cause if cause else ''})"
    )


def _jax_chain_method(chains):
    """``"vectorized"`` when JAX runs on one accelerator with fewer devices than chains.

    PyMC's default (``"parallel"``, one device per chain) would then run the chains one
    after the other; vectorized chains share the accelerator. None: keep PyMC's default.
    """
    import jax

    if jax.default_backend() != "cpu" and jax.local_device_count() < chains:
        return "vectorized"
    return None


def _resolve_sampler(sampler):
    installed = [s for s in SAMPLERS if s == "pymc" or importlib.util.find_spec(s) is not None]
    if sampler is None:
        return "nutpie" if "nutpie" in installed else "pymc"
    s = str(sampler).lower()
    if s not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of {list(SAMPLERS)}.")
    if s not in installed:
        raise ImportError(
            f"sampler={s!r} needs the {s} package, which is not installed "
            f"(pip install {s}). Installed samplers: {installed}."
        )
    return s
