"""A model described as plain data: formula state, family, priors, labels and rows.

:class:`ModelDescription` is what :class:`softbayes.Model` is made of and what the backend
fits (:func:`softbayes.backend.fit_description`): a frozen, picklable dataclass holding the
formula(s) with their evaluated state (:class:`~softbayes.terms.predictor.Predictor`), the
family, the priors, the rows (the used columns of the data frame), the labels as the
likelihood sees them and the row weights. :func:`describe_model` builds one from the
arguments of ``Model`` and checks them; :meth:`ModelDescription.with_data` and
:meth:`ModelDescription.with_labels` give the description of other rows or labels with the
same formula state (refits). :meth:`ModelDescription.params` evaluates the family's
parameters on posterior draws, the single NumPy counterpart of the PyMC graph.

Pickling rebuilds the description from its arguments (the formula state is a function of the
rows it was evaluated on; the functions of a formula's namespace are not pickled), so the
functions of ``extra_namespace`` must be importable by name in the process that unpickles.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from softbayes.data.validation import validate_weights
from softbayes.terms.design import (
    DEFAULT_NAMESPACE,
    LinearDesign,
    check_columns,
    check_predictor_types,
    parse_response,
    rhs_variables,
    strip_tilde,
)
from softbayes.terms.families import FAMILIES, Family, family_class, get_family
from softbayes.terms.predictor import Predictor
from softbayes.terms.priors import (
    PHI_LOG_MU,
    PHI_LOG_SCALE,
    parse_prior,
    phi_prior,
    priors_table,
)
from softbayes.terms.response import Response
from softbayes.terms.sandbox import check_formula

__all__ = ["DTYPES", "WEIGHTS_COLUMN", "ModelDescription", "as_description", "describe_model"]

#: The column that holds row weights given as an array (not a column name).
WEIGHTS_COLUMN = "__weights__"
DTYPES = ("float64", "float32")  #: storage dtypes of the design and the labels (Model(dtype=))


@dataclass(frozen=True, eq=False)
class ModelDescription:
    """A soft-label regression as plain data (see the module docstring).

    Attributes
    ----------
    formula : str
        ``"labels ~ predictors"`` as given.
    family : Family
        The likelihood family (with its options).
    data : pandas.DataFrame
        The rows the model is on: its used columns (labels, predictors, weights).
    label_columns, predictor_columns : tuple of str
        (for a ``p(k, m)`` response the label column is ``k``; ``trials`` names ``m``)
    main : Predictor
        The linear predictor of the formula.
    phi : Predictor or None
        The linear predictor of ``log phi`` (``phi_formula``), if any.
    priors : dict
        ``{prior key: Prior}`` in use.
    prior_rows : tuple
        ``(key, parameter, Prior, role)`` per prior, in model order.
    labels : ndarray
        The labels as the likelihood sees them (thresholded, squeezed).
    labels_info : dict
        Facts about that preparation recorded in a fit's attrs (``n_thresholded``, ...).
    weights : ndarray or None
        Row weights.
    phi_formula, weights_column : str or None
    extra_namespace : dict
        Functions the formulas may call beyond the defaults.
    fused : bool
        Use the fused likelihood kernels where the family and the predictor allow.
    untrusted : bool
        The formulas came from a file or the command line (stricter sandbox).
    state_data : pandas.DataFrame or None
        The rows the formula state was evaluated on, when not ``data`` (after
        :meth:`with_data`).
    trials : str or int or None
        The trials ``m`` of a ``p(k, m)`` response (a column or a number).
    dtype : {"float64", "float32"}
        Storage dtype of the design matrix and the labels (float32: fused kernels only).
    """

    formula: str
    family: Family
    data: pd.DataFrame
    label_columns: tuple
    predictor_columns: tuple
    main: Predictor
    phi: Predictor | None
    priors: dict
    prior_rows: tuple
    labels: np.ndarray
    labels_info: dict
    weights: np.ndarray | None = None
    phi_formula: str | None = None
    weights_column: str | None = None
    extra_namespace: dict = field(default_factory=dict)
    fused: bool = True
    untrusted: bool = False
    state_data: pd.DataFrame | None = None
    trials: str | int | None = None
    dtype: str = "float64"

    # -- derived facts ----------------------------------------------------------------------
    @property
    def n_obs(self) -> int:
        return len(self.data)

    @property
    def class_labels(self) -> list[str]:
        """The label columns as text (the classes of a multiclass family)."""
        return list(map(str, self.label_columns))

    @property
    def response(self) -> Response:
        """The formula's left-hand side (:class:`~softbayes.terms.response.Response`)."""
        return Response(tuple(self.label_columns), self.family.multiclass, self.trials)

    @property
    def rhs(self) -> str:
        return self.main.design.rhs

    @property
    def namespace(self) -> dict:
        """The functions the formulas may call."""
        return {**DEFAULT_NAMESPACE, **self.extra_namespace}

    @property
    def likelihood_kernel(self) -> str:
        """``"fused"`` if the likelihood runs on a fused kernel of :mod:`softbayes.ops`,
        else ``"graph"`` (the elementwise PyTensor graph)."""
        fused = self.fused and self.family.glm_kernel is not None and self.main.fusable()
        return "fused" if fused else "graph"

    def options(self) -> dict:
        """The family's options and the weights column (what a fit records)."""
        return {**self.family.options(), "weights": self.weights_column}

    # -- labels -----------------------------------------------------------------------------
    def raw_labels(self, frame) -> np.ndarray:
        """The labels of ``frame`` as given (before thresholding or squeezing; the
        proportions ``k / m`` of a ``p(k, m)`` response)."""
        return self.response.labels(frame)

    def prepare_labels(self, frame, *, n_ref=None):
        """``(labels the likelihood sees, info)`` of the rows of ``frame``
        (:meth:`Family.prepare_labels`); ``info`` may hold a ``"warning"``."""
        return _prepare_labels(self.family, self.response, frame, n_ref)

    def row_trials(self, frame) -> np.ndarray | None:
        """The trials ``m`` of the rows of ``frame`` (None without a ``p(k, m)`` response or
        when ``frame`` lacks the trials column)."""
        return self.response.trials_of(frame) if self.response.has_trials(frame) else None

    def row_weights(self, frame) -> np.ndarray | None:
        """The row weights of ``frame`` (None without a weights column, or when the weights
        were an array and ``frame`` lacks them)."""
        if self.weights_column is None:
            return None
        if self.weights_column in frame.columns:
            return frame[self.weights_column].to_numpy(dtype=float)
        if self.weights_column != WEIGHTS_COLUMN:
            raise ValueError(f"data lacks the weights column {self.weights_column!r} of the fit.")
        return None

    def check_new_data(self, data, *, labels=False):
        """Raise a ValueError if ``data`` lacks a used column or has missing values."""
        if not isinstance(data, pd.DataFrame):
            raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
        cols = list(self.predictor_columns)
        if labels:
            cols = [c for c in self.response.data_columns if c not in cols] + cols
        check_columns(data, cols, what="model (prediction data)")

    # -- other rows, other labels -----------------------------------------------------------
    def with_labels(self, labels) -> ModelDescription:
        """This description with other labels as given (same checks and preparation; the
        proportions ``k / m`` for a ``p(k, m)`` response)."""
        labels = np.asarray(labels, dtype=float)
        expected = ((self.n_obs, len(self.label_columns)) if self.family.multiclass
                    else (self.n_obs,))
        if labels.shape != expected:
            raise ValueError(f"labels: expected shape {expected}, got {labels.shape}.")
        frame = self.response.with_labels(self.data, labels)
        used, info = self.prepare_labels(frame)
        info.pop("warning", None)
        return dataclasses.replace(self, data=frame, labels=used, labels_info=info)

    def with_data(self, data, *, weights=None) -> ModelDescription:
        """This description on the rows of ``data``, evaluated with the stored formula state
        (levels, ``scale()`` parameters, centring means) and the same priors.

        ``weights`` gives the row weights when the model's weights were an array.
        """
        if not isinstance(data, pd.DataFrame):
            raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
        data = data.copy()
        if self.weights_column == WEIGHTS_COLUMN and WEIGHTS_COLUMN not in data.columns:
            if weights is None:
                raise ValueError("set_data: the model's weights were given as an array; pass "
                                 "weights= for the new rows.")
            data[WEIGHTS_COLUMN] = np.asarray(weights)
        elif weights is not None:
            raise ValueError("set_data: weights= applies to models whose weights were an array.")
        cols = [c for c in self.response.data_columns if c not in self.predictor_columns]
        cols += [*self.predictor_columns]
        cols += [self.weights_column] if self.weights_column not in (None, *cols) else []
        check_columns(data, cols, what="model (new data)")
        frame = data[cols].reset_index(drop=True)
        if len(frame) == 0:
            raise ValueError("set_data: data has no rows.")
        main = self.main.on_rows(frame)
        phi = self.phi.on_rows(frame) if self.phi is not None else None
        used, info = self.prepare_labels(frame)
        info.pop("warning", None)
        w = None
        if self.weights_column is not None:
            w = validate_weights(frame[self.weights_column].to_numpy(), len(frame),
                                 name=f"weights column {self.weights_column!r}")
        state = self.data if self.state_data is None else self.state_data
        return dataclasses.replace(self, data=frame, main=main, phi=phi, labels=used,
                                   labels_info=info, weights=w, state_data=state)

    # -- priors -----------------------------------------------------------------------------
    def priors_table(self) -> pd.DataFrame:
        """The priors in use: one row per term (parameter, role, prior, source)."""
        return priors_table(self.prior_rows)

    def priors_dict(self) -> dict:
        """``{term: {"dist": ..., **parameters}}``, accepted back by ``priors=``."""
        return {k: p.to_dict() for k, p in self.priors.items()}

    # -- NumPy evaluation on draws ----------------------------------------------------------
    def params(self, posterior, data=None, *, new_groups="error", rng=None) -> dict:
        """The family's parameters (``eta``, ``phi``) on ``data`` (default: the model's
        rows) for every posterior draw; ``new_groups`` as in
        :meth:`Predictor.evaluate`."""
        if hasattr(posterior, "to_dataset"):
            posterior = posterior.to_dataset()
        data = self.data if data is None else data
        rng = np.random.default_rng(rng)
        eta = self.main.evaluate(posterior, data, new_groups=new_groups, rng=rng)
        if self.family.multiclass:
            eta = np.concatenate([np.zeros((*eta.shape[:-1], 1)), eta], axis=-1)
        params = {"eta": eta}
        trials = self.row_trials(data) if self.family.takes_trials else None
        if trials is not None:
            params["trials"] = trials
        if "phi" in self.family.parameters:
            if self.phi is None:
                phi = np.asarray(posterior["phi"].transpose("chain", "draw").values, float)
                params["phi"] = phi[:, :, None]
            else:
                params["phi"] = np.exp(
                    self.phi.evaluate(posterior, data, new_groups=new_groups, rng=rng))
        for name, _, _ in self.family.scalar_parameters():
            params[name] = np.asarray(posterior[name].transpose("chain", "draw").values,
                                      float)[:, :, None]
        return params

    def log_likelihood(self, posterior, data=None, *, n_ref=None, new_groups="error",
                       rng=None) -> np.ndarray:
        """The family's pointwise log-likelihood of the labels of ``data`` (default: the
        model's rows and labels) for every draw; ``n_ref`` is the training size of label
        transformations that use one (default: this description's)."""
        params = self.params(posterior, data, new_groups=new_groups, rng=rng)
        if data is None:
            return self.family.logp(self.labels, weights=self.weights, **params)
        labels, _ = self.prepare_labels(data, n_ref=self.n_obs if n_ref is None else n_ref)
        return self.family.logp(labels, weights=self.row_weights(data), **params)

    # -- pickling ---------------------------------------------------------------------------
    def __reduce__(self):
        state = self.data if self.state_data is None else self.state_data
        kwargs = dict(likelihood=self.family, priors=self.priors, phi_formula=self.phi_formula,
                      weights=self.weights_column, extra_namespace=self.extra_namespace or None,
                      fused=self.fused, quiet=True, untrusted=self.untrusted, dtype=self.dtype)
        rows = None if self.state_data is None else self.data
        return _rebuild, (self.formula, state, kwargs, rows, self.labels)


def _rebuild(formula, state, kwargs, rows, labels):
    out = describe_model(formula, state, **kwargs)
    if rows is not None:
        out = out.with_data(rows)
    return dataclasses.replace(out, labels=labels)


def as_description(model) -> ModelDescription:
    """The :class:`ModelDescription` of ``model``: a description itself, or anything with a
    ``description`` attribute (a :class:`softbayes.Model`)."""
    if isinstance(model, ModelDescription):
        return model
    desc = getattr(model, "description", None)
    if not isinstance(desc, ModelDescription):
        raise TypeError(f"expected a softbayes.Model or a ModelDescription, got "
                        f"{type(model).__name__}.")
    return desc


# --------------------------------------------------------------------------- construction
def _prepare_labels(family, response, frame, n_ref=None):
    if family.multiclass:
        name = "label columns " + response.text()
    else:
        name = response.text() if response.counts else f"label column {response.columns[0]!r}"
    # only the count families take the trials (the others see the proportions k / m)
    trials = {"trials": response.trials_of(frame)} if family.takes_trials else {}
    return family.prepare_labels(response.labels(frame), name=name, index=frame.index,
                                 n_ref=n_ref, **trials)


def _option_owner(option) -> str:
    """The family (or families) whose model takes ``option``, for messages."""
    return " or ".join(repr(n) for n, c in FAMILIES.items() if option in c.model_options())


def _family(likelihood, options, phi_formula) -> Family:
    name = likelihood.name if isinstance(likelihood, Family) else likelihood
    allowed = family_class(name).model_options()
    given = {k: v for k, v in options.items() if v is not None}
    if phi_formula is not None:
        given["phi_formula"] = phi_formula
    for k in given:
        if k not in allowed:
            raise ValueError(f"{k}= applies to likelihood={_option_owner(k)}, not {name!r}.")
    given.pop("phi_formula", None)
    return get_family(likelihood, **given)


def _check_formulas(formula, phi_formula, data, family, extra_names, untrusted):
    sandbox = {"columns": [str(c) for c in data.columns], "extra_names": extra_names,
               "attribute_roots": () if untrusted else extra_names}
    check_formula(formula, **sandbox)
    if phi_formula is not None:
        check_formula(phi_formula, rhs_only=True, **sandbox)
    response, rhs = parse_response(formula)
    label_columns, multi = response.columns, response.multiclass
    if family.takes_trials and not response.counts:
        raise ValueError(f"likelihood={family.name!r} models counts k of m trials: write the "
                         f"response as 'p(k, m) ~ ...' (Bambi's binomial response), got "
                         f"{formula!r}.")
    if family.multiclass and (not multi or len(label_columns) < 2):
        raise ValueError(
            f"likelihood={family.name!r} needs K >= 2 label columns: write the formula as "
            f"'c(p_a, p_b, p_c) ~ ...', got {formula!r}."
        )
    if not family.multiclass and (multi or len(label_columns) != 1):
        multiclass = [n for n, c in FAMILIES.items() if c.multiclass]
        raise ValueError(
            f"likelihood={family.name!r} takes one label column ('share ~ x'); for "
            f"probability vectors use likelihood={' or '.join(map(repr, multiclass))}."
        )
    return response, rhs


def _frame(data, response, rhs, phi_formula, weights):
    """``(rows of the used columns, predictor columns, weights column)``."""
    pred_cols = sorted(rhs_variables(rhs))
    if phi_formula is not None:
        pred_cols = sorted(set(pred_cols) | rhs_variables(phi_formula))
    label_columns = response.columns  # the trials m may also be a predictor
    overlap = set(pred_cols) & set(label_columns)
    if overlap:
        raise ValueError(f"Label column(s) {sorted(overlap)} also appear as predictors.")
    weights_column, extra = None, {}
    if isinstance(weights, str):
        weights_column = weights
    elif weights is not None:
        w = np.asarray(weights)
        if w.shape != (len(data),):
            raise ValueError(
                f"weights: expected one weight per row ({len(data)}), got shape {w.shape}."
            )
        weights_column = WEIGHTS_COLUMN
        extra[WEIGHTS_COLUMN] = w
    used = [c for c in response.data_columns if c not in pred_cols] + pred_cols
    named = [weights] if isinstance(weights, str) and weights not in used else []
    check_columns(data, used + named)
    check_predictor_types(data, pred_cols, rhs + " " + (phi_formula or ""))
    frame = data[used + named].copy()
    for k, v in extra.items():
        frame[k] = v
    if len(frame) == 0:
        raise ValueError("data has no rows.")
    return frame, tuple(pred_cols), weights_column


def _check_design(design, phi, family, n_obs, quiet):
    if design.intercept and not quiet:
        const = [lab for j, lab in enumerate(design.common_labels)
                 if j > 0 and np.ptp(design.X[:, j]) == 0]
        if const:
            warnings.warn(
                f"Design column(s) {const} are constant (the same value in every row): "
                "next to the intercept their coefficients are not identified by the data, "
                "only by their priors. Drop them from the formula unless that is intended.",
                UserWarning, stacklevel=4,
            )
    has_phi = "phi" in family.parameters
    n_coef = design.X.shape[1] + ((phi.design.X.shape[1] if phi else 1) if has_phi else 0)
    if n_obs <= n_coef:
        raise ValueError(
            f"Too few rows: {n_obs} observations for {n_coef} population-level "
            f"coefficients ({', '.join(design.common_labels)}{', phi' if has_phi else ''}). "
            "Use more data or a smaller formula (fewer predictors / levels)."
        )


def _priors(main, phi, family, user):
    """``(priors, prior rows)`` from the defaults and the user's overrides."""
    entries = list(main.entries())
    if "phi" in family.parameters:
        entries += phi.entries() if phi is not None else [
            ("phi", "phi", phi_prior(), "precision", ())]
    entries += [(name, name, prior, role, ()) for name, prior, role in family.scalar_parameters()]
    keys = [e[0] for e in entries]
    unknown = [k for k in user if k not in keys]
    if unknown:
        raise ValueError(
            f"priors: unknown term(s) {unknown}; the terms of this model are {keys} "
            "(the key of a group-level term sets the prior of its sd)."
        )
    priors, rows = {}, []
    for key, param, default, role, shape in entries:
        prior = parse_prior(key, user[key]) if key in user else default
        prior.check(key, shape)
        priors[key] = prior
        rows.append((key, param, prior, role))
    return priors, tuple(rows)


def describe_model(formula, data, likelihood="weighted_bernoulli", priors=None, *,
                   phi_formula=None, weights=None, options=None, extra_namespace=None,
                   fused=True, quiet=False, untrusted=False, dtype="float64") -> ModelDescription:
    """Check the arguments of :class:`softbayes.Model` and describe the model.

    The parameters are those of :class:`softbayes.Model`, with the family's own options
    (``threshold``, ``squeeze``: :attr:`Family.option_names`) in the dict ``options`` (None
    values are left out); ``quiet`` silences the warnings about the labels and the design,
    ``untrusted`` marks formulas from a file or the command line (they may call only the
    allow-list and the ``extra_namespace`` functions by name, never attributes of those).
    """
    family = _family(likelihood, dict(options or {}), phi_formula)
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
    if weights is not None and not family.supports_weights:
        weighted = [n for n, c in FAMILIES.items() if c.supports_weights]
        raise ValueError(
            f"weights= is supported by the {' and '.join(weighted)} likelihoods, not "
            f"{family.name!r} (its likelihood is a density of the label; duplicate rows "
            "instead if weights are counts)."
        )
    extra_namespace = dict(extra_namespace or {})
    response, rhs = _check_formulas(formula, phi_formula, data, family,
                                    set(extra_namespace), untrusted)
    phi_formula = None if phi_formula is None else strip_tilde(phi_formula)
    frame, pred_cols, weights_column = _frame(data, response, rhs, phi_formula, weights)
    labels, info = _prepare_labels(family, response, frame)
    if (msg := info.pop("warning", None)) and not quiet:
        warnings.warn(msg, UserWarning, stacklevel=3)
    w = None if weights_column is None else validate_weights(
        frame[weights_column].to_numpy(), len(frame), name=f"weights column {weights_column!r}")
    namespace = {**DEFAULT_NAMESPACE, **extra_namespace}
    k_red = len(response.columns) - 1 if family.multiclass else None
    main = Predictor(LinearDesign(rhs, frame, namespace), "", k_red)
    phi = None if phi_formula is None else Predictor(
        LinearDesign(phi_formula, frame, namespace), "phi_", intercept_mu=PHI_LOG_MU,
        scale=PHI_LOG_SCALE)
    _check_design(main.design, phi, family, len(frame), quiet)
    prior_map, rows = _priors(main, phi, family, priors or {})
    if dtype not in DTYPES or (dtype != "float64" and not (
            fused and family.glm_kernel is not None and main.fusable())):
        raise ValueError(f"dtype={dtype!r}: expected one of {list(DTYPES)}; float32 applies to "
                         "likelihoods on a fused kernel (likelihood_kernel 'fused') only.")
    return ModelDescription(
        formula=formula, family=family, data=frame, label_columns=tuple(response.columns),
        predictor_columns=pred_cols, main=main, phi=phi, priors=prior_map, prior_rows=rows,
        labels=labels, labels_info=info, weights=w, phi_formula=phi_formula,
        weights_column=weights_column, extra_namespace=extra_namespace, fused=bool(fused),
        untrusted=bool(untrusted), trials=response.trials, dtype=dtype,
    )
