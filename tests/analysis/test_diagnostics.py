"""Per-fit diagnostics on hand-built posteriors (no sampling)."""

import numpy as np
import pytest
from arviz_base import from_dict

from softbayes import diagnose_fit
from softbayes.analysis.diagnostics import pareto_k_threshold


def _fit(posterior, sample_stats=None):
    groups = {"posterior": posterior}
    if sample_stats is not None:
        groups["sample_stats"] = sample_stats
    return from_dict(groups)


def test_good_fit_has_no_warnings():
    rng = np.random.default_rng(0)
    fit = _fit(
        {"a": rng.normal(size=(4, 500)), "b": rng.normal(size=(4, 500, 3))},
        {"diverging": np.zeros((4, 500), bool), "energy": rng.normal(size=(4, 500))},
    )
    d = diagnose_fit(fit, name="good")
    assert d.ok, d.warnings
    assert d.rhat_max < 1.01
    assert d.n_divergent == 0
    assert d.bfmi_min > 1.0  # white-noise energy: E-BFMI ~ 2
    assert d.ess_min == 400


def test_stuck_chains_warn_rhat_and_ess():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 300))
    a[1] += 4.0  # one chain stuck elsewhere
    d = diagnose_fit(_fit({"a": a}), name="stuck")
    assert d.rhat_max > 1.1
    text = " ".join(d.warnings)
    assert "stuck: R-hat" in text and "> 1.01" in text
    assert "bulk ESS" in text


def test_divergences_bfmi_and_pareto_k_warn():
    rng = np.random.default_rng(2)
    div = np.zeros((2, 400), bool)
    div[0, :3] = True
    energy = np.cumsum(rng.normal(size=(2, 400)), axis=1)  # random walk: E-BFMI ~ 0
    k = np.array([0.1, 0.5, 0.8, 1.3])
    d = diagnose_fit(
        _fit({"a": rng.normal(size=(2, 400))}, {"diverging": div, "energy": energy}),
        name="bad",
        pareto_k=k,
    )
    assert d.n_divergent == 3
    assert d.bfmi_min < 0.3
    thr = pareto_k_threshold(800)
    assert thr == pytest.approx(min(1 - 1 / np.log10(800), 0.7))
    assert (d.n_k_good, d.n_k_bad, d.n_k_very_bad) == (2, 1, 1)
    text = " ".join(d.warnings)
    assert "3 divergent" in text
    assert "E-BFMI" in text
    assert "Pareto k" in text
    row = d.as_dict()
    assert row["n_warnings"] == len(d.warnings) == 3


def test_single_chain_warns():
    d = diagnose_fit(_fit({"a": np.random.default_rng(3).normal(size=(1, 500))}))
    assert any("one chain" in w for w in d.warnings)


def test_nan_padded_chains_are_an_error():
    # two chains stopped early and padded with NaN, as an interrupted sampler returns them
    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 500))
    b = rng.normal(size=(4, 500, 2))
    a[2, 300:] = np.nan
    b[3, 450:, 1] = np.nan
    d = diagnose_fit(_fit({"a": a, "b": b}), name="cut")
    assert d.n_nonfinite == 200 + 50
    assert not d.ok
    assert any("250 of 2000 posterior draws are NaN" in w for w in d.warnings), d.warnings


def test_sampling_warnings_are_counted_apart_from_pareto_k():
    rng = np.random.default_rng(4)
    clean = _fit({"a": rng.normal(size=(4, 500))})
    only_psis = diagnose_fit(clean, name="psis", pareto_k=np.array([0.1, 1.2]))
    assert len(only_psis.warnings) == 1 and only_psis.n_sampling_warnings == 0
    a = rng.normal(size=(4, 300))
    a[1] += 4.0
    stuck = diagnose_fit(_fit({"a": a}), name="stuck", pareto_k=np.array([0.1, 1.2]))
    assert stuck.n_sampling_warnings == len(stuck.warnings) - 1 >= 2  # R-hat and ESS
    one_chain = diagnose_fit(_fit({"a": rng.normal(size=(1, 2000))}), name="one")
    assert one_chain.n_sampling_warnings == 0 and not one_chain.ok
