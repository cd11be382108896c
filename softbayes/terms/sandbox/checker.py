"""The sandbox's entry point, check_formula: read a formula with formulae and walk its tree."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from formulae.parser import Parser
from formulae.scanner import Scanner
from formulae.token import Token

from softbayes.terms.sandbox.errors import FormulaError, Refusal
from softbayes.terms.sandbox.limits import MAX_DEPTH, MAX_FORMULA_LENGTH
from softbayes.terms.sandbox.walker import FormulaWalker

__all__ = ["check_formula"]


def _parse(tokens):
    """formulae's parse of a token list; the whole list must be consumed."""
    parser = Parser([*tokens, Token("EOF", "")])
    try:
        node = parser.parse()
    except RecursionError:
        raise Refusal("(...)", f"nested more than {MAX_DEPTH} levels deep.") from None
    except Exception as err:  # formulae's ParseError and friends
        raise Refusal(" ".join(t.lexeme for t in tokens)[:80],
                      f"it cannot be parsed: {err}") from None
    if not parser.at_end():
        rest = " ".join(t.lexeme for t in tokens[parser.current:])
        raise Refusal(rest[:80], "unexpected text after the end of the formula "
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
    walker = FormulaWalker(None if columns is None else {str(c) for c in columns},
                           frozenset(extra_names), frozenset(attribute_roots) & set(extra_names))
    try:
        try:
            tokens = Scanner(formula).scan(add_intercept=False)[:-1]  # without EOF
        except Exception as err:  # formulae's ScanError, int() of odd digits, ...
            raise Refusal(formula[:40], f"it cannot be read: {type(err).__name__}: "
                                        f"{err}") from None
        tildes = [i for i, t in enumerate(tokens) if t.kind == "TILDE"]
        if len(tildes) != formula.count("~"):
            # softbayes splits 'labels ~ terms' at the '~' of the text: one inside a string
            # or a quoted name would split it somewhere else than formulae reads it
            raise Refusal("~", "'~' may not appear inside a string or a quoted name.")
        if len(tildes) > 1:
            raise Refusal("~", "it has more than one '~'.")
        lhs, rhs = (tokens[:tildes[0]], tokens[tildes[0] + 1:]) if tildes else ([], tokens)
        if lhs:
            if rhs_only:
                raise Refusal(" ".join(t.lexeme for t in lhs), "this formula takes no "
                                                               "left-hand side ('~ x').")
            walker.response(_parse(lhs))
        if not rhs:
            raise Refusal("~", "it has no right-hand side; use '~ 1' for an intercept only.")
        walker.formula(_parse(rhs))
    except Refusal as r:
        raise FormulaError(formula, r.piece, r.reason, where) from None
