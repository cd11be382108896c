"""softbayes.terms.formulae_compat: group indices and transforms on every supported formulae."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pandas as pd
import pytest
from formulae.terms.terms import GroupSpecificTerm

import softbayes as sb
from softbayes.terms.design import DEFAULT_NAMESPACE, LinearDesign
from softbayes.terms.formulae_compat import (
    FORMULAE_VERSION,
    group_index,
    group_index_from_levels,
    transform_parameters,
    unsupported_call,
)
from softbayes.terms.sandbox import FormulaError, check_formula

HAS_CR = transform_parameters("cr") is not None


@pytest.fixture
def train():
    rng = np.random.default_rng(5)
    n = 60
    return pd.DataFrame({
        "l": rng.uniform(0.05, 0.95, n),
        "x": rng.normal(size=n),
        "g": rng.choice(["a", "b", "c"], n),
        "h": rng.choice(["u", "v"], n),
        "k": rng.choice([1, 2, 3, 4], n),
    })


@pytest.fixture
def new():
    return pd.DataFrame({
        "l": [0.5] * 7,
        "x": [0.0, 1.0, -1.0, 2.0, 0.5, 0.1, 0.3],
        "g": ["c", "zz", "a", "zz", "b", None, "yy"],
        "h": ["v", "u", "w", "u", "u", "v", "w"],
        "k": [4, 1, 2, 9, 3, 1, 9],
    })


def _brute_force(levels, rows):
    """Row-major position of each row's level combination; unseen ones numbered after them
    in order of appearance; -1 where a value is missing."""
    combos = [()]
    for lv in levels:
        combos = [(*c, v) for c in combos for v in lv]
    pos = {c: i for i, c in enumerate(combos)}
    index, new = [], []
    for row in rows:
        if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in row):
            index.append(-1)
        elif row in pos:
            index.append(pos[row])
        else:
            if row not in new:
                new.append(row)
            index.append(len(combos) + new.index(row))
    return np.array(index), [r[0] if len(levels) == 1 else r for r in new]


@pytest.mark.parametrize(("rhs", "cols"), [("x + (1|g)", ["g"]), ("(x|g:h)", ["g", "h"]),
                                           ("(1|k)", ["k"])])
def test_group_index_matches_brute_force(train, new, rhs, cols):
    design = LinearDesign(rhs, train, DEFAULT_NAMESPACE)
    term = design.group_terms[0].term
    levels = [sorted(train[c].unique()) for c in cols]  # formulae's levels: sorted
    rows = [tuple(r) for r in new[cols].astype(object).itertuples(index=False)]
    want_index, want_new = _brute_force(levels, rows)
    for fn in (group_index, group_index_from_levels):
        index, found = fn(term, new)
        np.testing.assert_array_equal(index, want_index)
        assert list(found) == want_new
    # on the training data: the group of formulae's own indicator design
    if "(1|" in rhs:
        z = term.eval_new_data(train)
        z = z.toarray() if hasattr(z, "toarray") else np.asarray(z)
        np.testing.assert_array_equal(group_index(term, train)[0], z.argmax(axis=1))


@pytest.mark.skipif(not hasattr(GroupSpecificTerm, "eval_new_data_group_index"),
                    reason="formulae < 0.9 has no eval_new_data_group_index")
def test_fallback_equals_formulae_own_group_index(train, new):
    for rhs in ("(1|g)", "(x|g:h)", "(1|k)", "(1|C(k))"):
        term = LinearDesign(rhs, train, DEFAULT_NAMESPACE).group_terms[0].term
        got, want = group_index_from_levels(term, new), term.eval_new_data_group_index(new)
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1] == want[1]


def test_model_with_a_group_term_builds_and_rebuilds_new_groups(train, new):
    """The issue's case: Model('l ~ x + (1|g)') on every supported formulae."""
    model = sb.Model("l ~ x + (1|g)", train)
    assert "1|g" in model.pymc_model.named_vars
    xe, idx, unseen = model.description.main.design.group_parts(new.dropna())[0]
    assert xe.shape == (6, 1) and list(unseen) == ["zz", "yy"]
    np.testing.assert_array_equal(idx, [2, 3, 0, 3, 1, 4])


def test_version_is_the_installed_one():
    assert ".".join(map(str, FORMULAE_VERSION)) == version("formulae")
    assert FORMULAE_VERSION >= (0, 6)


def test_transform_parameters_read_formulae():
    assert {"x", "df", "degree", "knots"} <= transform_parameters("bs")
    assert transform_parameters("scale") == {"x"}
    assert transform_parameters("no_such_transform") is None
    assert unsupported_call("bs", ["df", "degree"]) is None
    assert unsupported_call("scale", []) is None


@pytest.mark.parametrize("rhs", ["cr(x, df=4)", "cc(x, period=2)", "bs(x, df=4, center=True)"])
def test_newer_transforms_refused_with_the_version_they_need(train, rhs):
    if HAS_CR:  # formulae >= 0.9: accepted and evaluated
        check_formula(f"l ~ {rhs}")
        assert LinearDesign(rhs, train, DEFAULT_NAMESPACE).X.shape[0] == len(train)
        return
    with pytest.raises(FormulaError, match=r"needs formulae >= 0\.9 \(installed: 0\.6"):
        check_formula(f"l ~ {rhs}")
    with pytest.raises(ValueError, match=r"needs formulae >= 0\.9"):
        sb.Model(f"l ~ {rhs}", train)


def test_transforms_of_every_version_pass(train):
    for rhs in ("bs(x, df=4)", "bs(x, df=4, degree=2)", "poly(x, 2)", "scale(x)"):
        check_formula(f"l ~ {rhs}")
        assert LinearDesign(rhs, train, DEFAULT_NAMESPACE).X.shape[0] == len(train)
