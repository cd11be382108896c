"""The warnings a NUTS fit gives, as PyMC's: R-hat, ESS, divergences, tree depth, dispersion."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import softbayes as sb
from softbayes.backend.convergence import (
    ESS_MIN_PER_CHAIN,
    RHAT_MAX,
    convergence_messages,
    warn_convergence,
)


def _tree(post, stats=None):
    groups = {"posterior": xr.Dataset({k: (("chain", "draw"), v) for k, v in post.items()})}
    if stats is not None:
        groups["sample_stats"] = xr.Dataset(
            {k: (("chain", "draw"), v) for k, v in stats.items()})
    return xr.DataTree.from_dict(groups)


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(1)
    x = rng.normal(size=60)
    mu = 1 / (1 + np.exp(-x))
    share = rng.beta(mu * 20, (1 - mu) * 20)  # Beta noise: dispersion well below 1
    return sb.Model("share ~ x", pd.DataFrame({"x": x, "share": share}))


def test_unconverged_fit_warns_once_per_problem(model):
    with pytest.warns(UserWarning) as record:
        model.fit(draws=20, tune=5, chains=2, random_seed=1, sampler="pymc", cores=1)
    texts = [str(w.message) for w in record]
    assert sum("R-hat is" in t for t in texts) == 1, texts
    assert sum("smallest bulk ESS" in t for t in texts) == 1, texts
    assert sum("smallest tail ESS" in t for t in texts) == 1, texts
    assert sum("Dispersion phi" in t for t in texts) == 1, texts
    # the warning points at the caller's line, not at softbayes' internals
    assert all(w.filename == __file__ for w in record if "R-hat is" in str(w.message))


def test_warn_false_is_silent(model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(draws=20, tune=5, chains=2, random_seed=1, sampler="pymc", cores=1,
                  warn=False)
    texts = [str(w.message) for w in caught]
    assert not [t for t in texts if "R-hat" in t or "ESS" in t or "Dispersion" in t], texts


def test_progressbar_follows_the_terminal(model, monkeypatch):
    seen = []

    class Stop(Exception):
        pass

    def fake_sample_nuts(*args, progressbar, **kwargs):
        seen.append(progressbar)
        raise Stop

    monkeypatch.setattr("softbayes.backend.refit.sample_nuts", fake_sample_nuts)
    for tty in (True, False):
        out = io.StringIO()
        out.isatty = lambda tty=tty: tty
        monkeypatch.setattr("sys.stdout", out)
        with pytest.raises(Stop):
            model.fit(draws=5, tune=5, chains=1, sampler="pymc")
    with pytest.raises(Stop):
        model.fit(draws=5, tune=5, chains=1, sampler="pymc", progressbar=True)
    assert seen == [True, False, True]


def test_converged_iid_chains_give_no_message():
    rng = np.random.default_rng(0)
    fit = _tree({"a": rng.normal(size=(4, 1000)), "b": rng.normal(size=(4, 1000))},
                {"diverging": np.zeros((4, 1000), bool),
                 "maxdepth_reached": np.zeros((4, 1000), bool)})
    assert convergence_messages(fit) == []


def test_separated_chains_fail_rhat_and_ess():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 200)) + np.arange(4)[:, None]  # chains at means 0, 1, 2, 3
    msgs = convergence_messages(_tree({"a": a}))
    assert any(m.startswith("R-hat is") and f"> {RHAT_MAX}" in m for m in msgs), msgs
    assert any("bulk ESS" in m and f"< {4 * ESS_MIN_PER_CHAIN}" in m for m in msgs), msgs


def test_divergences_and_tree_depth_are_counted_after_tuning():
    rng = np.random.default_rng(0)
    div = np.zeros((2, 500), bool)
    div[0, [3, 7]] = True
    div[1, 10] = True
    tuning = np.zeros((2, 500), bool)
    tuning[1, 10] = True  # a divergence while tuning does not count
    deep = np.zeros((2, 500), bool)
    deep[1, :5] = True
    fit = _tree({"a": rng.normal(size=(2, 500))},
                {"diverging": div, "tuning": tuning, "reached_max_treedepth": deep})
    msgs = convergence_messages(fit)
    assert [m.split(" ")[0] for m in msgs] == ["2", "5"], msgs
    assert "divergent" in msgs[0] and "maximum tree depth" in msgs[1]
    with pytest.warns(UserWarning) as record:
        assert warn_convergence(fit) == msgs
    assert len(record) == 2
