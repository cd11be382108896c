"""The report's conclusion never prefers a fit whose sampling diagnostics failed.

Built on hand-made comparison tables (no sampling): the model that comes first on a score or
in an ELPD group is named as preferred only when its R-hat, ESS, divergences, E-BFMI and
draws are clean; otherwise the sentence withholds the preference and names the first model
with clean diagnostics.
"""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from softbayes.app.report.text import conclusion, failing_fits


def _cmp(failing_first: bool):
    scores = pd.DataFrame({"log": [-0.40, -0.45, -0.60]}, index=["A", "B", "C"])
    table = pd.DataFrame({"log": [-0.40, -0.45, -0.60], "diff": [0.0, -0.05, -0.20],
                          "dse": [0.0, 0.01, 0.02]}, index=["A", "B", "C"])
    elpd = pd.DataFrame({"elpd": [-10.0, -30.0], "elpd_diff": [0.0, -20.0],
                         "dse": [0.0, 3.0]}, index=["A", "B"])
    diag = pd.DataFrame({"n_sampling_warnings": [2 if failing_first else 0, 0, 0],
                         "n_warnings": [3 if failing_first else 1, 0, 0]},
                        index=["A", "B", "C"])
    return SimpleNamespace(score_tables={"log": table}, scores=scores, diagnostics=diag), \
        {"density": elpd}


def test_failed_fit_is_never_preferred():
    cmp, elpd = _cmp(failing_first=True)
    assert failing_fits(cmp) == {"A"}
    text = " ".join(conclusion(cmp, elpd))
    assert "preferred model A" not in text and "A is preferred" not in text
    assert text.count("sampling diagnostics failed") == 2
    assert text.count("the first model with clean diagnostics is B") == 2


def test_clean_fit_is_preferred_as_before():
    cmp, elpd = _cmp(failing_first=False)  # A has only a PSIS warning: still preferred
    assert failing_fits(cmp) == set()
    text = " ".join(conclusion(cmp, elpd))
    assert "preferred model A" in text and "A is preferred over B by 20.00" in text
    assert "diagnostics failed" not in text
