"""Reading formulae's parse-tree nodes: their text, their constant value, whether they hold data."""

from __future__ import annotations

from formulae.expr import Assign, Binary, Call, Grouping, Literal, QuotedName, Unary, Variable

__all__ = ["constant_number", "has_data", "node_text"]


def node_text(node) -> str:
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
        return f"({node_text(node.expression)})"
    if isinstance(node, Unary):
        return f"{node.operator.lexeme}{node_text(node.right)}"
    if isinstance(node, Binary):
        return f"{node_text(node.left)} {node.operator.lexeme} {node_text(node.right)}"
    if isinstance(node, Assign):
        return f"{node_text(node.name)}={node_text(node.value)}"
    if isinstance(node, Call):
        return f"{node_text(node.callee)}({', '.join(node_text(a) for a in node.args)})"
    return type(node).__name__  # pragma: no cover - formulae has no other node types


def constant_number(node):
    """The value of a numeric constant (``2``, ``-1.5``, ``(3)``), else None."""
    while isinstance(node, Grouping):
        node = node.expression
    if isinstance(node, Unary) and node.operator.kind in ("PLUS", "MINUS"):
        v = constant_number(node.right)
        return None if v is None else (-v if node.operator.kind == "MINUS" else v)
    if isinstance(node, Literal) and isinstance(node.value, int | float) \
            and not isinstance(node.value, bool):
        return node.value
    return None


def has_data(node) -> bool:
    """Whether an expression mentions a name (a column): its arithmetic is NumPy's, not
    Python's exact integers."""
    if isinstance(node, Variable | QuotedName):
        return True
    if isinstance(node, Grouping):
        return has_data(node.expression)
    if isinstance(node, Unary):
        return has_data(node.right)
    if isinstance(node, Binary):
        return has_data(node.left) or has_data(node.right)
    if isinstance(node, Call):
        return any(has_data(a.value if isinstance(a, Assign) else a) for a in node.args)
    return False
