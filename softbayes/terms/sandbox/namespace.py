"""The namespace formulas are evaluated in: the allowed functions and a frozen ``np``, no module."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from softbayes.terms.sandbox.allowlist import FLAT_FUNCTIONS, SAFE_NUMPY

__all__ = ["safe_namespace"]


class _Functions:
    """A frozen, attribute-only view of a few functions (``np.log``, ...), not a module.

    Attribute lookup answers only the allowed names: ``np.f2py``, ``np.__class__`` or
    ``np.__dict__`` do not exist on it, and it cannot be changed.
    """

    __slots__ = ("_functions", "_name")

    def __init__(self, name: str, functions: Mapping):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_functions", MappingProxyType(dict(functions)))

    def __getattribute__(self, attr):
        functions = object.__getattribute__(self, "_functions")
        try:
            return functions[attr]
        except KeyError:
            name = object.__getattribute__(self, "_name")
            raise AttributeError(
                f"{name}.{attr} is not available in formulas; allowed: "
                f"{', '.join(f'{name}.{f}' for f in sorted(functions))}."
            ) from None

    def __setattr__(self, attr, value):
        raise AttributeError("the functions available to formulas cannot be changed")

    def __delattr__(self, attr):
        raise AttributeError("the functions available to formulas cannot be changed")

    def __dir__(self):
        return sorted(object.__getattribute__(self, "_functions"))

    def __repr__(self):
        name = object.__getattribute__(self, "_name")
        return f"<formula functions {name}: {', '.join(type(self).__dir__(self))}>"

    def __reduce__(self):
        raise TypeError("formula function sets are not picklable")


def safe_namespace(extra: Mapping | None = None) -> dict:
    """The namespace formulas are evaluated in: only the allow-list, never a module.

    Parameters
    ----------
    extra : mapping, optional
        Functions (or values) the caller passes in Python (``extra_namespace=``); they are
        trusted as the caller's own code and added as given.

    Returns
    -------
    dict
        The flat functions of :data:`FLAT_FUNCTIONS`, ``"np"``: a frozen object whose only
        attributes are the :data:`SAFE_NUMPY` functions, and ``extra``.
    """
    ns = dict(FLAT_FUNCTIONS)
    ns["np"] = _Functions("np", {f: getattr(np, f) for f in sorted(SAFE_NUMPY)})
    ns.update(extra or {})
    return ns

