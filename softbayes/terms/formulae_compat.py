"""What differs between the formulae versions softbayes supports (0.6 to 0.9), in one place.

softbayes works with every formulae from 0.6 (the range Bambi's release pins) to the newest.
The parts of formulae's API it uses are the same across that range except:

* ``GroupSpecificTerm.eval_new_data_group_index`` (formulae 0.9): the group index of new
  data, unseen levels included. :func:`group_index` uses it where it exists and otherwise
  computes the same from the term's fitted levels (:func:`group_index_from_levels`).
* The transforms and their parameters: ``cr``, ``cc`` and ``tp`` and ``bs(center=)`` exist
  from formulae 0.9 on. :func:`unsupported_call` names a call the installed formulae cannot
  evaluate, so the formula sandbox refuses it with the version it needs.

``bs(x, df=...)`` without ``intercept=`` or ``center=`` gives another basis in formulae 0.6
(first column dropped) than in 0.9 (centred); both are valid designs, but a fit keeps the
basis of the formulae that built it.
"""

from __future__ import annotations

import inspect
import re
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd
from formulae.categorical import CategoricalBox
from formulae.terms.variable import Variable
from formulae.transforms import TRANSFORMS as _FORMULAE_TRANSFORMS

__all__ = [
    "FORMULAE_VERSION",
    "group_index",
    "group_index_from_levels",
    "transform_parameters",
    "unsupported_call",
]


def _version() -> tuple[int, ...]:
    try:
        text = version("formulae")
    except PackageNotFoundError:  # pragma: no cover - a source checkout of formulae
        return (0, 0)
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


#: The installed formulae's version as integers, e.g. ``(0, 6, 2)``.
FORMULAE_VERSION: tuple[int, ...] = _version()

#: The first formulae version with each transform softbayes' sandbox allows, and with each
#: of their parameters, where that is later than 0.6 (for the message of a refusal).
_SINCE = {"cr": "0.9", "cc": "0.9", "tp": "0.9", ("bs", "center"): "0.9"}


def transform_parameters(name: str) -> frozenset[str] | None:
    """Parameters of the installed formulae's transform ``name``, or None if it has none.

    ``name`` is a transform of formulae (``"bs"``, ``"scale"``, ...); the data argument is
    included (``"x"`` for ``bs``), ``self`` is not.
    """
    obj = _FORMULAE_TRANSFORMS.get(name)
    if obj is None:
        return None
    func = obj.__call__ if inspect.isclass(obj) else obj
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # pragma: no cover - a builtin without a signature
        return frozenset()
    return frozenset(p for p in params if p != "self")


def unsupported_call(name: str, keywords) -> str | None:
    """Why the installed formulae cannot evaluate the transform call ``name(..., keywords)``.

    Parameters
    ----------
    name : str
        A transform the formula sandbox allows (``"bs"``, ``"cr"``, ...).
    keywords : iterable of str
        The parameters the call gives (by keyword or by position).

    Returns
    -------
    str or None
        A message naming the formulae version the call needs, or None if the installed
        formulae has the transform and those parameters (or ``name`` is not one that
        formulae added after 0.6).
    """
    keywords = list(keywords)
    later = [k for k in keywords if (name, k) in _SINCE]
    if name not in _SINCE and not later:
        return None
    installed = ".".join(map(str, FORMULAE_VERSION))
    params = transform_parameters(name)
    if params is None:
        return f"{name}() needs formulae >= {_SINCE.get(name, '0.9')} (installed: {installed})."
    for key in later:
        if key not in params:
            return (f"{name}(..., {key}=...) needs formulae >= {_SINCE[(name, key)]} "
                    f"(installed: {installed}).")
    return None


def group_index(term, data) -> tuple[np.ndarray, tuple]:
    """Group index of each row of ``data`` for a fitted group-level term.

    Parameters
    ----------
    term : formulae.terms.GroupSpecificTerm
        A term of a design built on training data.
    data : pandas.DataFrame
        New data with the grouping factor's columns.

    Returns
    -------
    index : ndarray of int64, shape (n,)
        ``0 .. G-1`` for the fitted groups (in the order of ``term.groups``), ``-1`` for a
        missing value, ``G, G+1, ...`` for unseen groups in order of first appearance.
    new_groups : tuple
        The unseen groups in that order (tuples of values for an interaction ``g:h``).
    """
    method = getattr(term, "eval_new_data_group_index", None)
    if method is not None:
        return method(data)
    return group_index_from_levels(term, data)


def group_index_from_levels(term, data) -> tuple[np.ndarray, tuple]:
    """:func:`group_index` computed from the fitted levels of the factor's components.

    The group of a row is the combination of its components' levels in row-major order
    (formulae's order of ``term.groups``). Used where formulae has no
    ``eval_new_data_group_index``; same arguments and results as :func:`group_index`.
    """
    values, codes, missing = [], [], []
    for component in term.factor.components:
        if isinstance(component, Variable):
            value = data[component.name]
        else:  # a call such as C(g): evaluated as formulae evaluated it on the training data
            value = component.call.eval(data, component.env)
            if isinstance(value, CategoricalBox):
                value = value.data
        values.append(np.asarray(value))
        # -1 for a missing or unseen value (pd.Categorical would warn about unseen ones)
        codes.append(pd.Index(component.levels).get_indexer(np.asarray(value).reshape(-1)))
        missing.append(np.asarray(pd.isna(value), dtype=bool).reshape(-1))
    index = np.full(len(data), -1, dtype=np.int64)
    missing = np.logical_or.reduce(missing)
    known = np.logical_and.reduce([c >= 0 for c in codes])
    dims = tuple(len(c.levels) for c in term.factor.components)
    index[known] = np.ravel_multi_index(tuple(c[known] for c in codes), dims)
    fitted = int(np.prod(dims))
    new_groups, where = [], {}
    for row in np.flatnonzero(~known & ~missing):
        group = tuple(v[row] for v in values)
        if group not in where:
            where[group] = fitted + len(new_groups)
            new_groups.append(group)
        index[row] = where[group]
    if len(values) == 1:
        new_groups = [g[0] for g in new_groups]
    return index, tuple(new_groups)
