"""The formula sandbox: which formulas may be evaluated, and the only namespace they see.

Formulas reach softbayes from places that are not code: spec files, ``softbayes fit
--formula``, the attrs of saved fits. formulae evaluates a formula by walking its own parse
tree (``formulae.terms.call_resolver``): a name is looked up in the data, then in the
namespace, a dotted callee ``a.b.c`` is resolved with ``getattr`` from the namespace entry
``a``, and there is no ``eval`` of formula text. So :func:`check_formula` walks *that same
tree* (formulae's scanner and parser, not a second grammar that could read the text
differently) and accepts only:

* names that are data: a column (bare or in backticks); bare names must not be dunder names,
  names of functions, dangerous Python built-ins or Unicode look-alikes of other names
  (backticks make any column name data);
* calls to an allow-list: formulae's transforms (``scale``, ``center``, ``standardize``,
  ``C``, ``S``, ``T``, ``binary``, ``I`` or ``{...}``, ``poly``, ``bs``, ``cr``, ``cc``,
  ``tp``), the NumPy / SciPy functions of :data:`FLAT_FUNCTIONS` and the qualified names
  ``np.<f>`` for ``f`` in :data:`SAFE_NUMPY`; a transform's data argument may be a column,
  a literal, arithmetic, a comparison or a nested allowed call; its other parameters are
  constants, given positionally or with a keyword from the transform's own list;
  the contrasts ``Treatment`` and ``Sum`` only as the contrast of ``C()``;
* nothing else: no other attribute access, no subscripts, no keyword outside the lists, no
  calls of calls, no text left over after the formula;
* and nothing that would take unbounded time or memory before any data check: formulas of at
  most :data:`MAX_FORMULA_LENGTH` characters, nesting, expansion into interaction terms,
  constant powers (``9**9**9``), repeated text (``'a' * 10**9``) and size parameters
  (``poly(x, 10**6)``) are bounded.

Functions a user passes in Python (``Model(..., extra_namespace={"f": f})``) are allowed by
name (``extra_names``); only formulas typed in Python may call attributes of them
(``attribute_roots``), never a formula read from a file.

:func:`safe_namespace` builds the evaluation namespace: the flat functions, and for ``np`` a
frozen object whose only attributes are the :data:`SAFE_NUMPY` functions, never a module, so
that a formula that got past the check still could not reach ``os``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from formulae.expr import Assign, Binary, Call, Grouping, Literal, QuotedName, Unary, Variable
from formulae.parser import Parser
from formulae.scanner import Scanner
from formulae.token import Token
from scipy import special as _sp

__all__ = [
    "ALLOWED_FUNCTIONS",
    "FLAT_FUNCTIONS",
    "MAX_FORMULA_LENGTH",
    "SAFE_NUMPY",
    "FormulaError",
    "check_formula",
    "safe_namespace",
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

#: Longest formula accepted (characters); real formulas are far shorter.
MAX_FORMULA_LENGTH = 10_000
# Nesting of parentheses / calls, well above any real formula and below Python's recursion
# limit (formulae's parser and this walker both recurse).
_MAX_DEPTH = 60
# Terms a formula may expand to (a*b*c*... doubles the count with every factor): formulae
# would spend minutes building millions of interaction terms before any size check.
_MAX_TERMS = 5_000
# Largest power of formula terms, (a + b + c)**k (formulae multiplies the terms k times).
_MAX_TERM_POWER = 20
# Largest constant exponent: Python integer powers of constants are computed exactly, so
# 9**9**9 would run for hours.
_MAX_CONSTANT_EXPONENT = 1_000


@dataclass(frozen=True)
class _Signature:
    """How an allowed function may be called.

    ``data``: how many leading positional arguments are data expressions (columns,
    arithmetic, nested calls); ``params``: the parameters after them, in positional order,
    which take constants only (positionally or by keyword); ``contrast``: parameters that
    also take a contrast (``Treatment``, ``Sum``, or a call of them).
    """

    data: int = 1
    params: tuple = ()
    contrast: tuple = ()


_TRANSFORMS = {
    "I": _Signature(),
    "scale": _Signature(),
    "center": _Signature(),
    "standardize": _Signature(),
    "C": _Signature(params=("contrast", "levels"), contrast=("contrast",)),
    "S": _Signature(params=("omit", "levels")),
    "T": _Signature(params=("ref", "levels")),
    "binary": _Signature(params=("success",)),
    "B": _Signature(params=("success",)),
    "poly": _Signature(params=("degree", "raw")),
    "bs": _Signature(params=("df", "knots", "degree", "intercept", "lower_bound",
                             "upper_bound", "center")),
    "cr": _Signature(params=("df", "knots", "lower_bound", "upper_bound", "center")),
    "cc": _Signature(params=("period", "df", "knots", "lower_bound", "center")),
    "tp": _Signature(params=("df", "center", "max_knots", "seed")),
    # contrasts of C(x, Treatment("b")) / C(x, Sum)
    "Treatment": _Signature(data=0, params=("reference",)),
    "Sum": _Signature(data=0, params=("omit",)),
}
_CONTRASTS = frozenset({"Treatment", "Sum"})
_NUMPY_SIGNATURES = {
    "clip": _Signature(data=3),
    "minimum": _Signature(data=2),
    "maximum": _Signature(data=2),
    "round": _Signature(params=("decimals",)),
}

#: Every function a formula from an untrusted source may call, with its signature.
ALLOWED_FUNCTIONS = MappingProxyType({
    **_TRANSFORMS,
    **{name: _Signature() for name in FLAT_FUNCTIONS},
    **{f"np.{f}": _NUMPY_SIGNATURES.get(f, _Signature()) for f in sorted(SAFE_NUMPY)},
})

# Size parameters: a constant, a whole number in a sane range (poly(x, 10**6) would build
# a million design columns).
_SIZE_PARAMS = {"degree": 50, "df": 500, "max_knots": 5_000}

# Python built-ins that have no business in a formula, even as a bare name: formulae never
# reaches them (it has no eval), but refusing them keeps the corpus of accepted formulas
# free of anything that reads like code. A column of that name is written in backticks.
# (Words that are also common column names, such as open or type, are left out.)
_DANGEROUS_NAMES = frozenset({
    "eval", "exec", "compile", "getattr", "setattr", "delattr", "hasattr", "globals",
    "locals", "vars", "breakpoint", "exit", "quit", "memoryview", "classmethod",
    "staticmethod", "builtins", "lambda", "import",
})

# Operators formulae's call resolver evaluates inside a call.
_ARITHMETIC = frozenset({"PLUS", "MINUS", "STAR", "SLASH", "STAR_STAR"})
_COMPARISON = frozenset({"EQUAL_EQUAL", "BANG_EQUAL", "LESS_EQUAL", "LESS", "GREATER_EQUAL",
                         "GREATER"})
# Operators of the formula language outside calls.
_FORMULA_OPERATORS = frozenset({"PLUS", "MINUS", "STAR", "SLASH", "COLON", "STAR_STAR", "PIPE"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class FormulaError(ValueError):
    """A formula the sandbox refuses; the message names the formula and the offending part.

    Attributes
    ----------
    formula : str
        The formula as given.
    piece : str
        The part of it that was refused (a name, a call, an operator).
    reason : str
        Why, without the formula (for messages that name the formula elsewhere).
    where : str or None
        Where the formula came from (a file and key, a command-line option).
    """

    def __init__(self, formula, piece, reason, where=None):
        self.formula = formula
        self.piece = piece
        self.reason = reason
        self.where = where
        shown = formula if isinstance(formula, str) else repr(formula)
        if isinstance(shown, str) and len(shown) > 300:
            shown = shown[:300] + "..."
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}formula {shown!r} is refused: {reason}")


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
        return f"<formula functions {name}: {', '.join(self.__dir__())}>"

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


# --------------------------------------------------------------------------- checking


class _Refuse(Exception):
    """Internal: carries the offending piece and the reason up to check_formula."""

    def __init__(self, piece, reason):
        super().__init__(reason)
        self.piece = piece
        self.reason = reason


def _text(node) -> str:
    """Formula text of a parse-tree node (for messages)."""
    if isinstance(node, Variable):
        lex = node.name.lexeme
        return lex if node.level is None else f"{lex}[{node.level.value}]"
    if isinstance(node, QuotedName):
        return node.expression.lexeme
    if isinstance(node, Literal):
        if node.lexeme is not None:
            return node.lexeme
        return repr(node.value) if isinstance(node.value, str) else str(node.value)
    if isinstance(node, Grouping):
        return f"({_text(node.expression)})"
    if isinstance(node, Unary):
        return f"{node.operator.lexeme}{_text(node.right)}"
    if isinstance(node, Binary):
        return f"{_text(node.left)} {node.operator.lexeme} {_text(node.right)}"
    if isinstance(node, Assign):
        return f"{_text(node.name)}={_text(node.value)}"
    if isinstance(node, Call):
        return f"{_text(node.callee)}({', '.join(_text(a) for a in node.args)})"
    return type(node).__name__  # pragma: no cover - formulae has no other node types


def _is_string(node) -> bool:
    return isinstance(node, Literal) and isinstance(node.value, str)


def _constant_number(node):
    """The value of a numeric constant (``2``, ``-1.5``, ``(3)``), else None."""
    while isinstance(node, Grouping):
        node = node.expression
    if isinstance(node, Unary) and node.operator.kind in ("PLUS", "MINUS"):
        v = _constant_number(node.right)
        return None if v is None else (-v if node.operator.kind == "MINUS" else v)
    if isinstance(node, Literal) and isinstance(node.value, int | float) \
            and not isinstance(node.value, bool):
        return node.value
    return None


def _has_data(node) -> bool:
    """Whether an expression mentions a name (a column): its arithmetic is NumPy's, not
    Python's exact integers."""
    if isinstance(node, Variable | QuotedName):
        return True
    if isinstance(node, Grouping):
        return _has_data(node.expression)
    if isinstance(node, Unary):
        return _has_data(node.right)
    if isinstance(node, Binary):
        return _has_data(node.left) or _has_data(node.right)
    if isinstance(node, Call):
        return any(_has_data(a.value if isinstance(a, Assign) else a) for a in node.args)
    return False


class _Walker:
    def __init__(self, columns, extra_names, attribute_roots):
        self.columns = columns
        self.extra = extra_names
        self.roots = attribute_roots
        self.functions = set(_TRANSFORMS) | set(FLAT_FUNCTIONS) | {"np"}

    # -- names ------------------------------------------------------------------------------
    def identifier(self, name, *, what):
        """A bare identifier (no backticks) must be plain: no dunder, no look-alikes."""
        if "__" in name:
            raise _Refuse(name, f"{what} {name!r}: double underscores are not allowed "
                                "(write a column name in `backticks`).")
        if unicodedata.normalize("NFKC", name) != name:
            plain = unicodedata.normalize("NFKC", name)
            raise _Refuse(name, f"{what} {name!r} is a Unicode look-alike of {plain!r} "
                                "(it changes under NFKC normalisation); write a column name "
                                "in `backticks`.")
        if any(unicodedata.category(ch)[0] in "CZ" for ch in name):
            raise _Refuse(name, f"{what} {name!r} holds control or invisible characters.")

    def data_name(self, node):
        if isinstance(node, QuotedName):
            lexeme = node.expression.lexeme
            if len(lexeme) < 3:
                raise _Refuse(lexeme, "an empty `` `` name is not a column.")
            return  # backticks mark data: looked up in the data only (see module docstring)
        if node.level is not None:
            raise _Refuse(_text(node), "subscripts (name[level]) are not allowed; compare "
                                       "instead, e.g. I(g == 'level').")
        name = node.name.lexeme
        if self.columns is not None and name in self.columns:
            return
        if name in self.extra:
            return
        self.identifier(name, what="name")
        root = name.split(".")[0]
        if name in _CONTRASTS:
            raise _Refuse(name, f"{name} is a contrast: use it inside C(), e.g. C(g, {name}), "
                                "or write a column of that name in `backticks`.")
        if name in self.functions or root == "np":
            raise _Refuse(name, f"{name!r} is a function, not a column: call it, e.g. "
                                f"{name}(x), or write a column of that name in `backticks`.")
        if name in _DANGEROUS_NAMES:
            raise _Refuse(name, f"{name!r} is a Python built-in, not allowed in a formula; "
                                "write a column of that name in `backticks`.")
        if any(p and "__" in p for p in name.split(".")):  # pragma: no cover - caught above
            raise _Refuse(name, "double underscores are not allowed.")

    # -- formula level ----------------------------------------------------------------------
    def formula(self, node, depth=0) -> int:
        """Check a formula-level expression; return an upper bound on its number of terms."""
        if depth > _MAX_DEPTH:
            raise _Refuse("(...)", f"nested more than {_MAX_DEPTH} levels deep.")
        if isinstance(node, Binary):
            op = node.operator.kind
            if op not in _FORMULA_OPERATORS:
                raise _Refuse(_text(node), f"operator {node.operator.lexeme!r} is only "
                                           "allowed inside a call such as I(...).")
            a = self.formula(node.left, depth + 1)
            if op == "STAR_STAR":
                n = _constant_number(node.right)
                if not isinstance(n, int) or not 1 <= n <= _MAX_TERM_POWER:
                    raise _Refuse(_text(node), "the power of formula terms must be a whole "
                                               f"number from 1 to {_MAX_TERM_POWER}, e.g. "
                                               "(a + b)**2.")
                return self.cap(2 ** min(a, 64) if n >= a else a ** min(n, 64), node)
            b = self.formula(node.right, depth + 1)
            count = {"PLUS": a + b, "MINUS": a, "STAR": a + b + a * b, "COLON": a * b,
                     "SLASH": a + a * b, "PIPE": a * b}[op]
            return self.cap(count, node)
        if isinstance(node, Unary):
            if node.operator.kind not in ("PLUS", "MINUS"):  # pragma: no cover - parser
                raise _Refuse(_text(node), "unknown unary operator.")
            return self.formula(node.right, depth + 1)
        if isinstance(node, Grouping):
            return self.formula(node.expression, depth + 1)
        if isinstance(node, Call):
            self.call(node, depth + 1)
            return 1
        if isinstance(node, Variable | QuotedName):
            self.data_name(node)
            return 1
        if isinstance(node, Literal):
            if _constant_number(node) is None:
                raise _Refuse(_text(node), "only the numbers 0, 1 and -1 (intercept) may stand "
                                           "alone in a formula; text goes inside a call, "
                                           "e.g. I(g == 'a').")
            return 1
        if isinstance(node, Assign):
            raise _Refuse(_text(node), "'=' is only allowed for a keyword argument of an "
                                       "allowed function, e.g. bs(x, df=4).")
        raise _Refuse(type(node).__name__, "unexpected syntax.")  # pragma: no cover

    @staticmethod
    def cap(count, node):
        if count > _MAX_TERMS:
            raise _Refuse(_text(node), f"it expands to more than {_MAX_TERMS} terms; write "
                                       "the interactions you need explicitly.")
        return count

    # -- calls ------------------------------------------------------------------------------
    def signature(self, callee, *, contrast=False):
        if not isinstance(callee, Variable) or callee.level is not None:
            raise _Refuse(_text(callee), "only named functions can be called (no calls of "
                                         "expressions, subscripts or quoted names).")
        name = callee.name.lexeme
        if name in _CONTRASTS and not contrast:
            raise _Refuse(name, f"{name} is a contrast: use it inside C(), e.g. "
                                f"C(g, {name}('b')).")
        if name in self.extra and name not in _TRANSFORMS and "." not in name:
            # the caller's own function replaces a default one of that name (formulae looks
            # its transforms up first, so those cannot be replaced)
            return name, None
        if name in ALLOWED_FUNCTIONS:
            return name, ALLOWED_FUNCTIONS[name]
        parts = name.split(".")
        for p in parts:
            if not p:
                raise _Refuse(name, f"function name {name!r} is malformed.")
            self.identifier(p, what="function name")
        if not all(_IDENTIFIER.fullmatch(p) for p in parts):
            raise _Refuse(name, f"function {name!r} is not allowed: function names are ASCII "
                                "(this one looks like another name).")
        if len(parts) == 1 and name in self.extra:
            return name, None
        if len(parts) > 1 and parts[0] in self.roots:
            return name, None
        shown = ", ".join(sorted(n for n in ALLOWED_FUNCTIONS if "." not in n))
        if len(parts) > 1:
            raise _Refuse(name, f"function {name!r} is not allowed: attribute access is "
                                f"limited to np.<f> for f in {', '.join(sorted(SAFE_NUMPY))} "
                                "(formulas from specs, fits and the command line are data, "
                                "not code).")
        raise _Refuse(name, f"function {name!r} is not allowed (formulas from specs, fits and "
                            f"the command line are data, not code). Allowed: {shown} and "
                            "np.<f> for the NumPy functions "
                            f"{', '.join(sorted(SAFE_NUMPY))}; in Python, pass your own "
                            "functions with extra_namespace=.")

    def call(self, node, depth, *, contrast=False):
        if depth > _MAX_DEPTH:
            raise _Refuse(_text(node), f"nested more than {_MAX_DEPTH} levels deep.")
        name, sig = self.signature(node.callee, contrast=contrast)
        positional = [a for a in node.args if not isinstance(a, Assign)]
        keywords = [a for a in node.args if isinstance(a, Assign)]
        if keywords and node.args[len(positional):] != keywords:
            raise _Refuse(_text(node), "positional arguments must come before keyword "
                                       "arguments.")
        seen = set()
        for kw in keywords:
            key = kw.name.name.lexeme
            if key in seen:
                raise _Refuse(_text(kw), f"keyword {key!r} is given twice.")
            seen.add(key)
        if sig is None:  # the caller's own function (Python): any data arguments
            for a in positional:
                self.value(a, depth + 1)
            for kw in keywords:
                key = kw.name.name.lexeme
                self.identifier(key, what="keyword")
                if not _IDENTIFIER.fullmatch(key):
                    raise _Refuse(key, f"keyword {key!r} is not a plain ASCII name.")
                self.value(kw.value, depth + 1)
            return
        if len(positional) > sig.data + len(sig.params):
            raise _Refuse(_text(node), f"{name}() takes at most "
                                       f"{sig.data + len(sig.params)} positional arguments.")
        for a in positional[:sig.data]:
            self.value(a, depth + 1)
        given = dict(zip(sig.params, positional[sig.data:], strict=False))
        for kw in keywords:
            key = kw.name.name.lexeme
            if key not in sig.params:
                allowed = ", ".join(sig.params) if sig.params else "none"
                raise _Refuse(_text(kw), f"keyword {key!r} is not allowed in {name}() "
                                         f"(allowed keywords: {allowed}).")
            if key in given:
                raise _Refuse(_text(kw), f"{name}() gets {key!r} twice.")
            given[key] = kw.value
        for key, value in given.items():
            if key in sig.contrast:
                self.contrast(value, key, name, depth + 1)
            else:
                self.constant(value, key, name)

    def constant(self, node, key, fname):
        """A parameter of a transform: a number, a string, True/False/None."""
        inner = node
        while isinstance(inner, Grouping):
            inner = inner.expression
        number = _constant_number(inner)
        if number is None and not (isinstance(inner, Literal)
                                   and isinstance(inner.value, str | bool | type(None))):
            raise _Refuse(_text(node), f"parameter {key!r} of {fname}() must be a constant "
                                       "(a number, a quoted string, True, False or None).")
        if key in _SIZE_PARAMS and number is not None:
            top = _SIZE_PARAMS[key]
            if number != int(number) or not 0 <= number <= top:
                raise _Refuse(_text(node), f"parameter {key!r} of {fname}() must be a whole "
                                           f"number from 0 to {top}.")
        if isinstance(number, float) and not math.isfinite(number):  # pragma: no cover
            raise _Refuse(_text(node), f"parameter {key!r} of {fname}() must be finite.")

    def contrast(self, node, key, fname, depth):
        inner = node
        while isinstance(inner, Grouping):
            inner = inner.expression
        if isinstance(inner, Variable) and inner.level is None \
                and inner.name.lexeme in _CONTRASTS:
            return
        if isinstance(inner, Call) and isinstance(inner.callee, Variable) \
                and inner.callee.name.lexeme in _CONTRASTS:
            self.call(inner, depth, contrast=True)
            return
        if isinstance(inner, Literal) and inner.value is None:
            return
        raise _Refuse(_text(node), f"parameter {key!r} of {fname}() must be a contrast: "
                                   "Treatment, Sum, Treatment('level') or Sum('level').")

    def value(self, node, depth, *, string_ok=True):
        """A data expression inside a call."""
        if depth > _MAX_DEPTH:
            raise _Refuse(_text(node), f"nested more than {_MAX_DEPTH} levels deep.")
        if isinstance(node, Variable | QuotedName):
            self.data_name(node)
        elif isinstance(node, Literal):
            if isinstance(node.value, str) and not string_ok:
                raise _Refuse(_text(node), "text cannot take part in arithmetic (only in "
                                           "comparisons such as g == 'a').")
            if isinstance(node.value, float) and not math.isfinite(node.value):
                raise _Refuse(_text(node), "numbers must be finite.")  # pragma: no cover
        elif isinstance(node, Grouping):
            self.value(node.expression, depth + 1, string_ok=string_ok)
        elif isinstance(node, Unary):
            if node.operator.kind not in ("PLUS", "MINUS"):  # pragma: no cover - parser
                raise _Refuse(_text(node), "unknown unary operator.")
            self.value(node.right, depth + 1, string_ok=False)
        elif isinstance(node, Binary):
            op = node.operator.kind
            if op in _COMPARISON:
                self.value(node.left, depth + 1)
                self.value(node.right, depth + 1)
            elif op in _ARITHMETIC:
                self.value(node.left, depth + 1, string_ok=False)
                self.value(node.right, depth + 1, string_ok=False)
                if op == "STAR_STAR" and not _has_data(node.right):
                    self.exponent(node)
            else:
                raise _Refuse(_text(node), f"operator {node.operator.lexeme!r} is not allowed "
                                           "inside a call (only + - * / ** and comparisons).")
        elif isinstance(node, Call):
            self.call(node, depth + 1)
        elif isinstance(node, Assign):
            raise _Refuse(_text(node), "'=' is only allowed for a keyword argument.")
        else:  # pragma: no cover - formulae has no other node types
            raise _Refuse(type(node).__name__, "unexpected syntax.")

    @staticmethod
    def exponent(node):
        """A constant exponent: a plain number of moderate size (``x**2``, ``2**-1``)."""
        n = _constant_number(node.right)
        if n is None or abs(n) > _MAX_CONSTANT_EXPONENT or (
                not _has_data(node.left) and _constant_number(node.left) is None):
            raise _Refuse(_text(node), "a constant exponent must be a plain number of at "
                                       f"most {_MAX_CONSTANT_EXPONENT} in absolute value, "
                                       "applied to a column or a number.")

    # -- left-hand side ---------------------------------------------------------------------
    def response(self, node):
        if isinstance(node, Variable | QuotedName):
            if isinstance(node, Variable):
                if node.level is not None:
                    raise _Refuse(_text(node), "subscripts are not allowed in the response.")
                self.identifier(node.name.lexeme, what="label column")
            return
        if isinstance(node, Call) and isinstance(node.callee, Variable) \
                and node.callee.name.lexeme == "c" and node.callee.level is None \
                and node.args and all(isinstance(a, Variable | QuotedName) for a in node.args):
            for a in node.args:
                self.response(a)
            return
        raise _Refuse(_text(node), "the left-hand side must name the label column ('share ~ "
                                   "x') or the K probability columns ('c(p_a, p_b) ~ x').")


def _parse(tokens):
    """formulae's parse of a token list; the whole list must be consumed."""
    parser = Parser([*tokens, Token("EOF", "")])
    try:
        node = parser.parse()
    except RecursionError:
        raise _Refuse("(...)", f"nested more than {_MAX_DEPTH} levels deep.") from None
    except Exception as err:  # formulae's ParseError and friends
        raise _Refuse(" ".join(t.lexeme for t in tokens)[:80],
                      f"it cannot be parsed: {err}") from None
    if not parser.at_end():
        rest = " ".join(t.lexeme for t in tokens[parser.current:])
        raise _Refuse(rest[:80], "unexpected text after the end of the formula "
                                 "(unbalanced parentheses?).")
    return node


def check_formula(formula, *, columns: Iterable[str] | None = None,
                  extra_names: Iterable[str] = (), attribute_roots: Iterable[str] = (),
                  rhs_only: bool = False, where: str | None = None) -> None:
    """Refuse a formula unless it is data: column names, literals and allowed calls.

    Parameters
    ----------
    formula : str
        ``"labels ~ terms"``, ``"~ terms"`` or ``"terms"``.
    columns : iterable of str, optional
        The data's column names when known: a bare name that is a column is always data
        (even ``input`` or ``log``). Other names are still accepted when they are plain, so
        that the data check can name missing columns.
    extra_names : iterable of str, optional
        Names of functions (or values) the caller passes in Python (``extra_namespace=``):
        they may be called with any data arguments and keywords.
    attribute_roots : iterable of str, optional
        Names among ``extra_names`` whose attributes may be called (``mymodule.f(x)``).
        Only for formulas typed in Python; never pass them for a formula read from a file.
    rhs_only : bool, default False
        Refuse a left-hand side (for ``phi_formula``).
    where : str, optional
        Where the formula came from, for the message (``"fit.nc, attr softbayes_formula"``).

    Raises
    ------
    FormulaError
        (a ValueError) naming the formula, the offending piece and why.
    """
    if not isinstance(formula, str):
        raise FormulaError(formula, repr(formula), f"a formula must be a string, got "
                                                   f"{type(formula).__name__}.", where)
    if len(formula) > MAX_FORMULA_LENGTH:
        raise FormulaError(formula, formula[:40], f"it is longer than {MAX_FORMULA_LENGTH} "
                                                  "characters.", where)
    bad = [ch for ch in formula if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn")
           and ch not in " \t\r\n"]
    if bad:
        raise FormulaError(formula, repr(bad[0]), f"it holds the control or invisible "
                                                  f"character {bad[0]!r}.", where)
    walker = _Walker(None if columns is None else {str(c) for c in columns},
                     frozenset(extra_names), frozenset(attribute_roots) & set(extra_names))
    try:
        try:
            tokens = Scanner(formula).scan(add_intercept=False)[:-1]  # without EOF
        except Exception as err:  # formulae's ScanError, int() of odd digits, ...
            raise _Refuse(formula[:40], f"it cannot be read: {type(err).__name__}: "
                                        f"{err}") from None
        tildes = [i for i, t in enumerate(tokens) if t.kind == "TILDE"]
        if len(tildes) != formula.count("~"):
            # softbayes splits 'labels ~ terms' at the '~' of the text: one inside a string
            # or a quoted name would split it somewhere else than formulae reads it
            raise _Refuse("~", "'~' may not appear inside a string or a quoted name.")
        if len(tildes) > 1:
            raise _Refuse("~", "it has more than one '~'.")
        lhs, rhs = (tokens[:tildes[0]], tokens[tildes[0] + 1:]) if tildes else ([], tokens)
        if lhs:
            if rhs_only:
                raise _Refuse(" ".join(t.lexeme for t in lhs), "this formula takes no "
                                                               "left-hand side ('~ x').")
            walker.response(_parse(lhs))
        if not rhs:
            raise _Refuse("~", "it has no right-hand side; use '~ 1' for an intercept only.")
        walker.formula(_parse(rhs))
    except _Refuse as r:
        raise FormulaError(formula, r.piece, r.reason, where) from None
