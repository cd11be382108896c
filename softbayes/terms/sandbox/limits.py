"""Bounds that keep a formula from taking unbounded time or memory before any data check."""

__all__ = [
    "MAX_CONSTANT_EXPONENT",
    "MAX_DEPTH",
    "MAX_FORMULA_LENGTH",
    "MAX_TERMS",
    "MAX_TERM_POWER",
]

#: Longest formula accepted (characters); real formulas are far shorter.
MAX_FORMULA_LENGTH = 10_000
#: Nesting of parentheses / calls, well above any real formula and below Python's recursion
#: limit (formulae's parser and the sandbox's walker both recurse).
MAX_DEPTH = 60
#: Terms a formula may expand to (a*b*c*... doubles the count with every factor): formulae
#: would spend minutes building millions of interaction terms before any size check.
MAX_TERMS = 5_000
#: Largest power of formula terms, (a + b + c)**k (formulae multiplies the terms k times).
MAX_TERM_POWER = 20
#: Largest constant exponent: Python integer powers of constants are computed exactly, so
#: 9**9**9 would run for hours.
MAX_CONSTANT_EXPONENT = 1_000
