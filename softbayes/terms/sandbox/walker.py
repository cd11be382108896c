"""The walk over formulae's parse tree that accepts only data, allowed calls and constants."""

from __future__ import annotations

import math
import unicodedata

from formulae.expr import Assign, Binary, Call, Grouping, Literal, QuotedName, Unary, Variable

from softbayes.terms.formulae_compat import unsupported_call
from softbayes.terms.sandbox.allowlist import (
    ALLOWED_FUNCTIONS,
    ARITHMETIC,
    COMPARISON,
    CONTRASTS,
    DANGEROUS_NAMES,
    FLAT_FUNCTIONS,
    FORMULA_OPERATORS,
    IDENTIFIER,
    SAFE_NUMPY,
    SIZE_PARAMS,
    TRANSFORMS,
)
from softbayes.terms.sandbox.errors import Refusal
from softbayes.terms.sandbox.limits import (
    MAX_CONSTANT_EXPONENT,
    MAX_DEPTH,
    MAX_TERM_POWER,
    MAX_TERMS,
)
from softbayes.terms.sandbox.nodes import constant_number, has_data, node_text

__all__ = ["FormulaWalker"]


class FormulaWalker:
    """Walks one formula's parse tree and raises :class:`Refusal` at the first refused piece.

    :meth:`formula` checks a right-hand side (and bounds its number of terms),
    :meth:`response` a left-hand side; the other methods check the pieces inside them.

    Parameters
    ----------
    columns : set of str or None
        The data's column names, when known (a bare name that is a column is always data).
    extra_names : frozenset of str
        Names the caller passes in Python: callable with any data arguments and keywords.
    attribute_roots : frozenset of str
        Names among ``extra_names`` whose attributes may be called (formulas typed in Python).
    """

    def __init__(self, columns, extra_names, attribute_roots):
        self.columns = columns
        self.extra = extra_names
        self.roots = attribute_roots
        self.functions = set(TRANSFORMS) | set(FLAT_FUNCTIONS) | {"np"}

    # -- names ------------------------------------------------------------------------------
    def identifier(self, name, *, what):
        """A bare identifier (no backticks) must be plain: no dunder, no look-alikes."""
        if "__" in name:
            raise Refusal(name, f"{what} {name!r}: double underscores are not allowed "
                                "(write a column name in `backticks`).")
        if unicodedata.normalize("NFKC", name) != name:
            plain = unicodedata.normalize("NFKC", name)
            raise Refusal(name, f"{what} {name!r} is a Unicode look-alike of {plain!r} "
                                "(it changes under NFKC normalisation); write a column name "
                                "in `backticks`.")
        if any(unicodedata.category(ch)[0] in "CZ" for ch in name):
            raise Refusal(name, f"{what} {name!r} holds control or invisible characters.")

    def data_name(self, node):
        if isinstance(node, QuotedName):
            lexeme = node.expression.lexeme
            if len(lexeme) < 3:
                raise Refusal(lexeme, "an empty `` `` name is not a column.")
            return  # backticks mark data: looked up in the data only (see module docstring)
        if node.level is not None:
            raise Refusal(node_text(node), "subscripts (name[level]) are not allowed; compare "
                                           "instead, e.g. I(g == 'level').")
        name = node.name.lexeme
        if self.columns is not None and name in self.columns:
            return
        if name in self.extra:
            return
        self.identifier(name, what="name")
        root = name.split(".")[0]
        if name in CONTRASTS:
            raise Refusal(name, f"{name} is a contrast: use it inside C(), e.g. C(g, {name}), "
                                "or write a column of that name in `backticks`.")
        if name in self.functions or root == "np":
            raise Refusal(name, f"{name!r} is a function, not a column: call it, e.g. "
                                f"{name}(x), or write a column of that name in `backticks`.")
        if name in DANGEROUS_NAMES:
            raise Refusal(name, f"{name!r} is a Python built-in, not allowed in a formula; "
                                "write a column of that name in `backticks`.")
        if any(p and "__" in p for p in name.split(".")):  # pragma: no cover - caught above
            raise Refusal(name, "double underscores are not allowed.")

    # -- formula level ----------------------------------------------------------------------
    def formula(self, node, depth=0) -> int:
        """Check a formula-level expression; return an upper bound on its number of terms."""
        if depth > MAX_DEPTH:
            raise Refusal("(...)", f"nested more than {MAX_DEPTH} levels deep.")
        if isinstance(node, Binary):
            op = node.operator.kind
            if op not in FORMULA_OPERATORS:
                raise Refusal(node_text(node), f"operator {node.operator.lexeme!r} is only "
                                               "allowed inside a call such as I(...).")
            a = self.formula(node.left, depth + 1)
            if op == "STAR_STAR":
                n = constant_number(node.right)
                if not isinstance(n, int) or not 1 <= n <= MAX_TERM_POWER:
                    raise Refusal(node_text(node), "the power of formula terms must be a whole "
                                                   f"number from 1 to {MAX_TERM_POWER}, e.g. "
                                                   "(a + b)**2.")
                return self.cap(2 ** min(a, 64) if n >= a else a ** min(n, 64), node)
            b = self.formula(node.right, depth + 1)
            count = {"PLUS": a + b, "MINUS": a, "STAR": a + b + a * b, "COLON": a * b,
                     "SLASH": a + a * b, "PIPE": a * b}[op]
            return self.cap(count, node)
        if isinstance(node, Unary):
            if node.operator.kind not in ("PLUS", "MINUS"):  # pragma: no cover - parser
                raise Refusal(node_text(node), "unknown unary operator.")
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
            if constant_number(node) is None:
                raise Refusal(node_text(node), "only the numbers 0, 1 and -1 (intercept) may stand "
                                               "alone in a formula; text goes inside a call, "
                                               "e.g. I(g == 'a').")
            return 1
        if isinstance(node, Assign):
            raise Refusal(node_text(node), "'=' is only allowed for a keyword argument of an "
                                           "allowed function, e.g. bs(x, df=4).")
        raise Refusal(type(node).__name__, "unexpected syntax.")  # pragma: no cover

    @staticmethod
    def cap(count, node):
        if count > MAX_TERMS:
            raise Refusal(node_text(node), f"it expands to more than {MAX_TERMS} terms; write "
                                           "the interactions you need explicitly.")
        return count

    # -- calls ------------------------------------------------------------------------------
    def signature(self, callee, *, contrast=False):
        if not isinstance(callee, Variable) or callee.level is not None:
            raise Refusal(node_text(callee), "only named functions can be called (no calls of "
                                             "expressions, subscripts or quoted names).")
        name = callee.name.lexeme
        if name in CONTRASTS and not contrast:
            raise Refusal(name, f"{name} is a contrast: use it inside C(), e.g. "
                                f"C(g, {name}('b')).")
        if name in self.extra and name not in TRANSFORMS and "." not in name:
            # the caller's own function replaces a default one of that name (formulae looks
            # its transforms up first, so those cannot be replaced)
            return name, None
        if name in ALLOWED_FUNCTIONS:
            return name, ALLOWED_FUNCTIONS[name]
        parts = name.split(".")
        for p in parts:
            if not p:
                raise Refusal(name, f"function name {name!r} is malformed.")
            self.identifier(p, what="function name")
        if not all(IDENTIFIER.fullmatch(p) for p in parts):
            raise Refusal(name, f"function {name!r} is not allowed: function names are ASCII "
                                "(this one looks like another name).")
        if len(parts) == 1 and name in self.extra:
            return name, None
        if len(parts) > 1 and parts[0] in self.roots:
            return name, None
        shown = ", ".join(sorted(n for n in ALLOWED_FUNCTIONS if "." not in n))
        if len(parts) > 1:
            raise Refusal(name, f"function {name!r} is not allowed: attribute access is "
                                f"limited to np.<f> for f in {', '.join(sorted(SAFE_NUMPY))} "
                                "(formulas from specs, fits and the command line are data, "
                                "not code).")
        raise Refusal(name, f"function {name!r} is not allowed (formulas from specs, fits and "
                            f"the command line are data, not code). Allowed: {shown} and "
                            "np.<f> for the NumPy functions "
                            f"{', '.join(sorted(SAFE_NUMPY))}; in Python, pass your own "
                            "functions with extra_namespace=.")

    def call(self, node, depth, *, contrast=False):
        if depth > MAX_DEPTH:
            raise Refusal(node_text(node), f"nested more than {MAX_DEPTH} levels deep.")
        name, sig = self.signature(node.callee, contrast=contrast)
        positional = [a for a in node.args if not isinstance(a, Assign)]
        keywords = [a for a in node.args if isinstance(a, Assign)]
        if keywords and node.args[len(positional):] != keywords:
            raise Refusal(node_text(node), "positional arguments must come before keyword "
                                           "arguments.")
        seen = set()
        for kw in keywords:
            key = kw.name.name.lexeme
            if key in seen:
                raise Refusal(node_text(kw), f"keyword {key!r} is given twice.")
            seen.add(key)
        if sig is None:  # the caller's own function (Python): any data arguments
            for a in positional:
                self.value(a, depth + 1)
            for kw in keywords:
                key = kw.name.name.lexeme
                self.identifier(key, what="keyword")
                if not IDENTIFIER.fullmatch(key):
                    raise Refusal(key, f"keyword {key!r} is not a plain ASCII name.")
                self.value(kw.value, depth + 1)
            return
        if len(positional) > sig.data + len(sig.params):
            raise Refusal(node_text(node), f"{name}() takes at most "
                                           f"{sig.data + len(sig.params)} positional arguments.")
        for a in positional[:sig.data]:
            self.value(a, depth + 1)
        given = dict(zip(sig.params, positional[sig.data:], strict=False))
        for kw in keywords:
            key = kw.name.name.lexeme
            if key not in sig.params:
                allowed = ", ".join(sig.params) if sig.params else "none"
                raise Refusal(node_text(kw), f"keyword {key!r} is not allowed in {name}() "
                                             f"(allowed keywords: {allowed}).")
            if key in given:
                raise Refusal(node_text(kw), f"{name}() gets {key!r} twice.")
            given[key] = kw.value
        if name in TRANSFORMS and name not in self.extra:
            reason = unsupported_call(name, given)
            if reason:
                raise Refusal(node_text(node), reason)
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
        number = constant_number(inner)
        if number is None and not (isinstance(inner, Literal)
                                   and isinstance(inner.value, str | bool | type(None))):
            raise Refusal(node_text(node), f"parameter {key!r} of {fname}() must be a constant "
                                           "(a number, a quoted string, True, False or None).")
        if key in SIZE_PARAMS and number is not None:
            top = SIZE_PARAMS[key]
            if number != int(number) or not 0 <= number <= top:
                raise Refusal(node_text(node), f"parameter {key!r} of {fname}() must be a whole "
                                               f"number from 0 to {top}.")
        if isinstance(number, float) and not math.isfinite(number):  # pragma: no cover
            raise Refusal(node_text(node), f"parameter {key!r} of {fname}() must be finite.")

    def contrast(self, node, key, fname, depth):
        inner = node
        while isinstance(inner, Grouping):
            inner = inner.expression
        if isinstance(inner, Variable) and inner.level is None \
                and inner.name.lexeme in CONTRASTS:
            return
        if isinstance(inner, Call) and isinstance(inner.callee, Variable) \
                and inner.callee.name.lexeme in CONTRASTS:
            self.call(inner, depth, contrast=True)
            return
        if isinstance(inner, Literal) and inner.value is None:
            return
        raise Refusal(node_text(node), f"parameter {key!r} of {fname}() must be a contrast: "
                                       "Treatment, Sum, Treatment('level') or Sum('level').")

    def value(self, node, depth, *, string_ok=True):
        """A data expression inside a call."""
        if depth > MAX_DEPTH:
            raise Refusal(node_text(node), f"nested more than {MAX_DEPTH} levels deep.")
        if isinstance(node, Variable | QuotedName):
            self.data_name(node)
        elif isinstance(node, Literal):
            if isinstance(node.value, str) and not string_ok:
                raise Refusal(node_text(node), "text cannot take part in arithmetic (only in "
                                               "comparisons such as g == 'a').")
            if isinstance(node.value, float) and not math.isfinite(node.value):
                raise Refusal(node_text(node), "numbers must be finite.")  # pragma: no cover
        elif isinstance(node, Grouping):
            self.value(node.expression, depth + 1, string_ok=string_ok)
        elif isinstance(node, Unary):
            if node.operator.kind not in ("PLUS", "MINUS"):  # pragma: no cover - parser
                raise Refusal(node_text(node), "unknown unary operator.")
            self.value(node.right, depth + 1, string_ok=False)
        elif isinstance(node, Binary):
            op = node.operator.kind
            if op in COMPARISON:
                self.value(node.left, depth + 1)
                self.value(node.right, depth + 1)
            elif op in ARITHMETIC:
                self.value(node.left, depth + 1, string_ok=False)
                self.value(node.right, depth + 1, string_ok=False)
                if op == "STAR_STAR" and not has_data(node.right):
                    self.exponent(node)
            else:
                raise Refusal(node_text(node), f"operator {node.operator.lexeme!r} is not allowed "
                                               "inside a call (only + - * / ** and comparisons).")
        elif isinstance(node, Call):
            self.call(node, depth + 1)
        elif isinstance(node, Assign):
            raise Refusal(node_text(node), "'=' is only allowed for a keyword argument.")
        else:  # pragma: no cover - formulae has no other node types
            raise Refusal(type(node).__name__, "unexpected syntax.")

    @staticmethod
    def exponent(node):
        """A constant exponent: a plain number of moderate size (``x**2``, ``2**-1``)."""
        n = constant_number(node.right)
        if n is None or abs(n) > MAX_CONSTANT_EXPONENT or (
                not has_data(node.left) and constant_number(node.left) is None):
            raise Refusal(node_text(node), "a constant exponent must be a plain number of at "
                                           f"most {MAX_CONSTANT_EXPONENT} in absolute value, "
                                           "applied to a column or a number.")

    # -- left-hand side ---------------------------------------------------------------------
    def response(self, node):
        if isinstance(node, Variable | QuotedName):
            if isinstance(node, Variable):
                if node.level is not None:
                    raise Refusal(node_text(node), "subscripts are not allowed in the response.")
                self.identifier(node.name.lexeme, what="label column")
            return
        if isinstance(node, Call) and isinstance(node.callee, Variable) \
                and node.callee.name.lexeme == "c" and node.callee.level is None \
                and node.args and all(isinstance(a, Variable | QuotedName) for a in node.args):
            for a in node.args:
                self.response(a)
            return
        if self.is_counts(node):
            for a in node.args:
                if isinstance(a, Variable | QuotedName):
                    self.data_name(a)  # stricter than a bare response: no function names
            return
        raise Refusal(node_text(node), "the left-hand side must name the label column ('share ~ "
                                       "x'), the K probability columns ('c(p_a, p_b) ~ x') or "
                                       "counts of trials ('p(k, m) ~ x', m a column or a "
                                       "positive whole number).")

    @staticmethod
    def is_counts(node) -> bool:
        """``p(<column>, <column or positive whole number>)``: k successes of m trials, the
        one place a formula may write ``p``."""
        if not (isinstance(node, Call) and isinstance(node.callee, Variable)
                and node.callee.name.lexeme == "p" and node.callee.level is None
                and len(node.args) == 2 and isinstance(node.args[0], Variable | QuotedName)):
            return False
        m = node.args[1]
        if isinstance(m, Variable | QuotedName):
            return True
        return (isinstance(m, Literal) and type(m.value) is int and m.value >= 1
                and (m.lexeme is None or m.lexeme.isdigit()))

