"""The sandbox's refusals: the public FormulaError and the Refusal its checks raise."""

__all__ = ["FormulaError", "Refusal"]


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


class Refusal(Exception):
    """A refused piece of a formula, raised by the checks and turned into a FormulaError.

    Only :func:`softbayes.terms.sandbox.check_formula` catches it (it knows the whole formula
    and where it came from); it never leaves the sandbox.

    Parameters
    ----------
    piece : str
        The part of the formula that was refused.
    reason : str
        Why, without the formula.
    """

    def __init__(self, piece, reason):
        super().__init__(reason)
        self.piece = piece
        self.reason = reason
