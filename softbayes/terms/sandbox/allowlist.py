"""What a formula may name and call: the allowed transforms, functions, keywords and operators."""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from scipy import special as _sp

__all__ = [
    "ALLOWED_FUNCTIONS",
    "ARITHMETIC",
    "COMPARISON",
    "CONTRASTS",
    "DANGEROUS_NAMES",
    "FLAT_FUNCTIONS",
    "FORMULA_OPERATORS",
    "IDENTIFIER",
    "SAFE_NUMPY",
    "SIZE_PARAMS",
    "TRANSFORMS",
    "Signature",
]

#: NumPy functions a formula may call as ``np.<name>(...)``.
SAFE_NUMPY = frozenset({
    "log", "log1p", "log2", "log10", "exp", "expm1", "sqrt", "abs", "square", "sin", "cos",
    "tanh", "arcsinh", "cbrt", "floor", "ceil", "round", "clip", "minimum", "maximum",
})

#: Functions a formula may call by their bare name (besides formulae's transforms).
FLAT_FUNCTIONS = MappingProxyType({
    "log": np.log,
    "log1p": np.log1p,
    "log2": np.log2,
    "log10": np.log10,
    "exp": np.exp,
    "expm1": np.expm1,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "square": np.square,
    "logit": _sp.logit,
    "expit": _sp.expit,
})


@dataclass(frozen=True)
class Signature:
    """How an allowed function may be called.

    ``data``: how many leading positional arguments are data expressions (columns,
    arithmetic, nested calls); ``params``: the parameters after them, in positional order,
    which take constants only (positionally or by keyword); ``contrast``: parameters that
    also take a contrast (``Treatment``, ``Sum``, or a call of them).
    """

    data: int = 1
    params: tuple = ()
    contrast: tuple = ()


#: formulae's transforms and the contrasts of ``C()``, with their signatures.
TRANSFORMS = MappingProxyType({
    "I": Signature(),
    "scale": Signature(),
    "center": Signature(),
    "standardize": Signature(),
    "C": Signature(params=("contrast", "levels"), contrast=("contrast",)),
    "S": Signature(params=("omit", "levels")),
    "T": Signature(params=("ref", "levels")),
    "binary": Signature(params=("success",)),
    "B": Signature(params=("success",)),
    "poly": Signature(params=("degree", "raw")),
    "bs": Signature(params=("df", "knots", "degree", "intercept", "lower_bound",
                            "upper_bound", "center")),
    "cr": Signature(params=("df", "knots", "lower_bound", "upper_bound", "center")),
    "cc": Signature(params=("period", "df", "knots", "lower_bound", "center")),
    "tp": Signature(params=("df", "center", "max_knots", "seed")),
    # contrasts of C(x, Treatment("b")) / C(x, Sum)
    "Treatment": Signature(data=0, params=("reference",)),
    "Sum": Signature(data=0, params=("omit",)),
})
#: The contrasts, allowed only as the contrast of ``C()``.
CONTRASTS = frozenset({"Treatment", "Sum"})
_NUMPY_SIGNATURES = {
    "clip": Signature(data=3),
    "minimum": Signature(data=2),
    "maximum": Signature(data=2),
    "round": Signature(params=("decimals",)),
}

#: Every function a formula from an untrusted source may call, with its signature.
ALLOWED_FUNCTIONS = MappingProxyType({
    **TRANSFORMS,
    **{name: Signature() for name in FLAT_FUNCTIONS},
    **{f"np.{f}": _NUMPY_SIGNATURES.get(f, Signature()) for f in sorted(SAFE_NUMPY)},
})

#: Size parameters and their largest value: a constant, a whole number in a sane range
#: (poly(x, 10**6) would build a million design columns).
SIZE_PARAMS = MappingProxyType({"degree": 50, "df": 500, "max_knots": 5_000})

#: Python built-ins that have no business in a formula, even as a bare name: formulae never
#: reaches them (it has no eval), but refusing them keeps the corpus of accepted formulas
#: free of anything that reads like code. A column of that name is written in backticks.
#: (Words that are also common column names, such as open or type, are left out.)
DANGEROUS_NAMES = frozenset({
    "eval", "exec", "compile", "getattr", "setattr", "delattr", "hasattr", "globals",
    "locals", "vars", "breakpoint", "exit", "quit", "memoryview", "classmethod",
    "staticmethod", "builtins", "lambda", "import",
})

#: Operators (formulae token kinds) formulae's call resolver evaluates inside a call.
ARITHMETIC = frozenset({"PLUS", "MINUS", "STAR", "SLASH", "STAR_STAR"})
#: Comparison operators (token kinds) allowed inside a call.
COMPARISON = frozenset({"EQUAL_EQUAL", "BANG_EQUAL", "LESS_EQUAL", "LESS", "GREATER_EQUAL",
                        "GREATER"})
#: Operators of the formula language outside calls.
FORMULA_OPERATORS = frozenset({"PLUS", "MINUS", "STAR", "SLASH", "COLON", "STAR_STAR", "PIPE"})
#: A plain ASCII identifier: the only spelling of a function name or keyword.
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
