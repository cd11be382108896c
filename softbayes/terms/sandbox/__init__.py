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

The package's modules: :mod:`~softbayes.terms.sandbox.allowlist` (what may be named and
called), :mod:`~softbayes.terms.sandbox.limits` (the size bounds),
:mod:`~softbayes.terms.sandbox.nodes` (reading parse-tree nodes),
:mod:`~softbayes.terms.sandbox.walker` (the tree walk), :mod:`~softbayes.terms.sandbox.checker`
(:func:`check_formula`), :mod:`~softbayes.terms.sandbox.errors` (:class:`FormulaError`) and
:mod:`~softbayes.terms.sandbox.namespace` (:func:`safe_namespace`).
"""

from softbayes.terms.sandbox.allowlist import ALLOWED_FUNCTIONS, FLAT_FUNCTIONS, SAFE_NUMPY
from softbayes.terms.sandbox.checker import check_formula
from softbayes.terms.sandbox.errors import FormulaError
from softbayes.terms.sandbox.limits import MAX_FORMULA_LENGTH
from softbayes.terms.sandbox.namespace import safe_namespace

__all__ = [
    "ALLOWED_FUNCTIONS",
    "FLAT_FUNCTIONS",
    "MAX_FORMULA_LENGTH",
    "SAFE_NUMPY",
    "FormulaError",
    "check_formula",
    "safe_namespace",
]
