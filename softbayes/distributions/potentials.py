"""Weighted (soft-label) Bernoulli and categorical terms as first-class ``pm.Potential``\\ s.

``WeightedBernoulli`` adds ``pm.Potential(name, sum_r w_r [l_r log q_r + (1-l_r) log(1-q_r)])``
to the model: the soft-label cross-entropy (source eq. 3) or, with hard labels and weights,
the weighted likelihood of the duplicated data set (eq. 6); both are the same number (eq. 7).

A plain ``pm.Potential`` is invisible to ``pm.compute_log_likelihood``. These potentials
are *registered*: the Potential is built as ``pt.sum(rows)`` where ``rows`` is the vector of
weighted per-row terms, and a :class:`WeightedTerm` record (kind, row-to-observation map,
observation dimension) is attached to the variable's ``tag`` and to a registry on the model.
The tag travels with the variable when PyMC clones the model (``remove_value_transforms``,
``pm.do``, ``clone_model``), and the summed ``rows`` stays the Potential's input, so
:func:`softbayes.compute_log_likelihood` can evaluate the per-row terms on posterior draws
and sum them into one term per original observation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.model import modelcontext
from pytensor.graph.basic import Variable
from pytensor.tensor.math import Sum

from softbayes.data.validation import (
    check_parameter_shape,
    validate_obs_index,
    validate_soft_labels,
    validate_weights,
)
from softbayes.math.soft_labels import (
    soft_bernoulli_logp,
    soft_bernoulli_logp_p,
    soft_categorical_logp,
    soft_categorical_logp_p,
)

__all__ = [
    "WeightedBernoulli",
    "WeightedCategorical",
    "WeightedTerm",
    "get_weighted_term",
    "label_values",
    "register_weighted_term",
    "weight_values",
    "weighted_terms",
]

TAG = "softbayes_weighted_term"
REGISTRY_ATTR = "_softbayes_weighted_terms"


@dataclass(frozen=True, eq=False)
class WeightedTerm:
    """What :func:`softbayes.compute_log_likelihood` needs to know about a potential.

    Attributes
    ----------
    name : str
        The Potential's name (also the name of its ``log_likelihood`` variable).
    kind : {"bernoulli", "categorical"}
    n_rows : int
        Number of rows (terms summed by the Potential).
    n_obs : int
        Number of original observations (pointwise log-likelihood terms).
    obs_index : ndarray of int64, shape (n_rows,), or None
        Original observation of each row; ``None`` when each row is its own observation.
    obs_dim : str
        Name of the observation dimension of the pointwise log-likelihood.
    """

    name: str
    kind: str
    n_rows: int
    n_obs: int
    obs_index: np.ndarray | None
    obs_dim: str

    def rows_of(self, potential):
        """The per-row term vector summed by ``potential`` (in that potential's graph)."""
        owner = potential.owner
        if owner is None or not isinstance(owner.op, Sum):
            raise ValueError(
                f"Potential {self.name!r} is no longer the sum built by softbayes (its graph "
                "was rewritten), so its pointwise terms cannot be recovered."
            )
        rows = owner.inputs[0]
        if rows.ndim != 1:
            raise ValueError(f"Potential {self.name!r}: expected a vector of row terms.")
        return rows


def _registry(model) -> dict:
    reg = getattr(model, REGISTRY_ATTR, None)
    if reg is None:
        reg = {}
        setattr(model, REGISTRY_ATTR, reg)
    return reg


def get_weighted_term(potential, model=None) -> WeightedTerm | None:
    """The :class:`WeightedTerm` of a potential, or None if it is not a softbayes term."""
    info = getattr(potential.tag, TAG, None)
    if info is None and model is not None and potential.name is not None:
        info = getattr(model, REGISTRY_ATTR, {}).get(potential.name)
    return info


def weighted_terms(model=None) -> dict[str, WeightedTerm]:
    """All softbayes weighted potentials of a model, by name."""
    model = modelcontext(model)
    out = {}
    for pot in model.potentials:
        info = get_weighted_term(pot, model)
        if info is not None:
            out[pot.name] = info
    return out


def label_values(labels, name):
    """Numeric values of a data input and the object to put in the graph.

    Parameters
    ----------
    labels : array_like, pandas object or PyTensor variable
        Labels (or weights). A shared variable or constant (``pm.Data``) stays symbolic, so
        that its value can be swapped later.
    name : str
        Used in the error message.

    Returns
    -------
    values : array_like
        The current numeric values (to validate).
    symbolic : TensorVariable or None
        The variable to put in the graph, or None for plain arrays.
    """
    if isinstance(labels, Variable):
        if hasattr(labels, "get_value"):
            return labels.get_value(), labels
        if hasattr(labels, "data"):
            return labels.data, labels
        raise ValueError(f"{name}: labels must be data (array, pandas or pm.Data).")
    return labels, None


def _obs_dim(name, dims, n_obs, model):
    if dims is None:
        return f"{name}_dim_0"
    if not isinstance(dims, str):
        if len(dims) != 1:
            raise ValueError(f"{name}: dims names the one observation dimension, got {dims!r}.")
        (dims,) = dims
    if dims in model.coords and model.coords[dims] is not None:
        if len(model.coords[dims]) != n_obs:
            raise ValueError(
                f"{name}: dims {dims!r} has {len(model.coords[dims])} coordinates but there are "
                f"{n_obs} observations."
            )
    return dims


def register_weighted_term(name, kind, rows, n_rows, obs_index, dims, model):
    """Add ``pm.Potential(name, pt.sum(rows))`` to ``model`` and register it as a term.

    Parameters
    ----------
    name : str
        Name of the Potential (and of its pointwise ``log_likelihood`` variable).
    kind : {"bernoulli", "categorical"}
    rows : TensorVariable, shape (n_rows,)
        The weighted per-row terms.
    n_rows : int
    obs_index, dims
        As in :func:`WeightedBernoulli` (validated here).
    model : pm.Model

    Returns
    -------
    TensorVariable
        The Potential, tagged with its :class:`WeightedTerm` (also kept in the model's
        registry) so that :func:`softbayes.compute_log_likelihood` finds its rows.
    """
    obs_index, n_obs = validate_obs_index(obs_index, n_rows)
    identity = n_obs == n_rows and bool(np.all(obs_index == np.arange(n_rows)))
    info = WeightedTerm(
        name=name,
        kind=kind,
        n_rows=n_rows,
        n_obs=n_obs,
        obs_index=None if identity else obs_index,
        obs_dim=_obs_dim(name, dims, n_obs, model),
    )
    pot = pm.Potential(name, pt.sum(rows), model=model)
    setattr(pot.tag, TAG, info)
    _registry(model)[name] = info
    return pot


def _weighted(rows, w, *, guard_zero, symbolic=None):
    if w is None:
        return rows
    wg = w if symbolic is None else symbolic  # pm.Data weights stay symbolic (data swaps)
    if guard_zero and np.any(w == 0):
        # 0 * (-inf) would be NaN: a zero-weight row contributes exactly nothing.
        return pt.switch(wg == 0, 0.0, wg * rows)
    return wg * rows


def weight_values(weights, n_rows):
    """Validated row weights and the object to put in the graph (see :func:`label_values`).

    Returns ``(None, None)`` for ``weights=None`` (unit weights), else the float64 weights
    (:func:`~softbayes.data.validation.validate_weights`) and the ``pm.Data`` variable they
    came from, or None.
    """
    if weights is None:
        return None, None
    values, symbolic = label_values(weights, "weights")
    return validate_weights(values, n_rows, name="weights"), symbolic


def _term_inputs(name, labels, weights, p, other, *, ndim, wrong_ndim):
    """Checked labels, weights and parameter of a term: ``p`` or ``other``, a (name, value).

    Labels that are not ``ndim``-D raise ``wrong_ndim`` (``{shape}`` filled in). Returns the
    labels' and the parameter's graph objects, the row count and :func:`weight_values`.
    """
    other_name, other_value = other
    if (p is None) == (other_value is None):
        raise ValueError(f"{name}: give exactly one of p and {other_name}.")
    values, symbolic = label_values(labels, name)
    lab = validate_soft_labels(values, name=name)
    if lab.ndim != ndim:
        raise ValueError(f"{name}: " + wrong_ndim.format(shape=lab.shape))
    n_rows = lab.shape[0]
    w, w_symbolic = weight_values(weights, n_rows)
    param = other_value if p is None else p
    check_parameter_shape(lab.shape, param, param_name=other_name if p is None else "p", name=name)
    graph_labels = pt.as_tensor_variable(lab) if symbolic is None else symbolic
    return graph_labels, pt.as_tensor_variable(param), n_rows, w, w_symbolic


def WeightedBernoulli(
    name, *, labels, p=None, logit_p=None, weights=None, obs_index=None, dims=None, model=None
):
    r"""Add the weighted (soft-label) Bernoulli log-likelihood as a ``pm.Potential``.

    .. math::

        \sum_r w_r \left[ l_r \log q_r + (1 - l_r) \log(1 - q_r) \right],
        \qquad q_r = \sigma(\eta_r) \text{ or } p_r .

    Parameters
    ----------
    name : str
        Name of the Potential (and of its ``log_likelihood`` variable).
    labels : array_like or pm.Data, shape (n_rows,)
        Soft labels in [0, 1] (direct form, eq. 3), or the hard 0/1 labels of the duplicated
        data set (eq. 6, see :func:`softbayes.expand_soft_labels`). Validated, never clipped.
    p : tensor_like, optional
        Probability of label 1; evaluated as ``l log p + (1-l) log1p(-p)`` (no clamping).
    logit_p : tensor_like, optional
        Log-odds of label 1; evaluated in softplus form, exact for any finite logit
        (``|eta|`` of 700 and labels exactly 0 or 1 included). Exactly one of ``p``/``logit_p``;
        each must broadcast to the labels' shape.
    weights : array_like, shape (n_rows,), optional
        Non-negative row weights (e.g. ``w_dup`` of the duplicated data set).
    obs_index : array_like of int, shape (n_rows,), optional
        Original observation of each row (``obs_index`` of :func:`expand_soft_labels`): the
        rows of one duplicated point form one pointwise log-likelihood term. Default: one
        observation per row.
    dims : str, optional
        Name of the observation dimension in the pointwise log-likelihood (default
        ``f"{name}_dim_0"``, as PyMC names an observed variable's dimension).
    model : pm.Model, optional
        Defaults to the model on the context stack.

    Returns
    -------
    TensorVariable
        The registered scalar Potential.

    Notes
    -----
    The term is not a density of the labels; its ELPD compares only with models of the same
    kind on the same labels. Use :func:`softbayes.compute_log_likelihood` (not
    ``pm.compute_log_likelihood``, which ignores potentials) before ``az.loo``.
    """
    model = modelcontext(model)
    wrong_ndim = (
        "WeightedBernoulli takes 1-D labels (probability of label 1), got shape {shape}; for "
        "probability vectors use WeightedCategorical."
    )
    graph_labels, param, n_rows, w, w_symbolic = _term_inputs(
        name, labels, weights, p, ("logit_p", logit_p), ndim=1, wrong_ndim=wrong_ndim
    )
    if p is None:
        rows = soft_bernoulli_logp(graph_labels, param)
    else:
        rows = soft_bernoulli_logp_p(graph_labels, param)
    if rows.type.shape != (n_rows,):
        # the labels' symbolic shape, so that pm.Data / nutpie data swaps may change n
        rows = pt.broadcast_to(rows, graph_labels.shape)
    rows = _weighted(rows, w, guard_zero=p is not None, symbolic=w_symbolic)
    return register_weighted_term(name, "bernoulli", rows, n_rows, obs_index, dims, model)


def WeightedCategorical(
    name, *, labels, p=None, logits=None, weights=None, obs_index=None, dims=None, model=None
):
    r"""Add the weighted (soft-label) categorical log-likelihood as a ``pm.Potential``.

    .. math::

        \sum_r w_r \sum_{k=1}^K l_{rk} \log q_{rk},
        \qquad q_r = \operatorname{softmax}(\eta_r) \text{ or } p_r .

    Parameters
    ----------
    labels : array_like or pm.Data, shape (n_rows, K)
        Probability vectors (rows sum to 1 within 1e-6), or one-hot rows of the K-fold
        duplicated data set (``np.eye(K)[y_dup]``). Validated, never renormalized.
    p : tensor_like, shape (..., K), optional
        Class probabilities, used as given (``log p``).
    logits : tensor_like, shape (..., K), optional
        Unnormalized log-probabilities (``log_softmax``). Exactly one of ``p``/``logits``.

    The other parameters are those of :func:`WeightedBernoulli`.
    """
    model = modelcontext(model)
    wrong_ndim = (
        "WeightedCategorical takes probability vectors of shape (n, K), got shape {shape}; for "
        "binary soft labels use WeightedBernoulli."
    )
    graph_labels, param, n_rows, w, w_symbolic = _term_inputs(
        name, labels, weights, p, ("logits", logits), ndim=2, wrong_ndim=wrong_ndim
    )
    if p is None:
        rows = soft_categorical_logp(graph_labels, pt.broadcast_to(param, graph_labels.shape))
    else:
        rows = soft_categorical_logp_p(graph_labels, pt.broadcast_to(param, graph_labels.shape))
    rows = _weighted(rows, w, guard_zero=p is not None, symbolic=w_symbolic)
    return register_weighted_term(name, "categorical", rows, n_rows, obs_index, dims, model)
