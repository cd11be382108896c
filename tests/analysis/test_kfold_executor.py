"""K-fold refits and spec runs on a local Dask cluster give the serial numbers bit for bit.

One ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` serves the module
(each worker process imports PyMC and compiles its models once). Checked against the serial
run of the same seeds:

* a spec run with exact K-fold (candidates and folds on the cluster, given its scheduler's
  address): the same fits, the same ELPD and score tables, and no report folder until
  every task has finished;
* ``compare(..., client=...)`` with a worker process killed mid-run: Dask reruns its task
  elsewhere and the numbers are unchanged;
* a failing fold: a finding (a warning naming the fold, PSIS-LOO kept), not a crash.
"""

from __future__ import annotations

import os
import signal
import warnings

import numpy as np
import pandas as pd
import pytest
from spec_helpers import model_toml, spec_toml, write

import softbayes as sb
from softbayes.app.runner import run_spec
from softbayes.backend.executor import Executor, Task
from softbayes.io.fits import load_fit

pytestmark = pytest.mark.slow

KFOLD = "\n[compare]\nloo = \"kfold\"\nk = 3\n"
FIT = {"draws": 100, "tune": 100, "chains": 1, "progressbar": False}


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with (distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=":0") as cluster,
          distributed.Client(cluster) as c):
        yield c


@pytest.fixture(scope="module")
def fits():
    rng = np.random.default_rng(5)
    x = rng.normal(size=36)
    g = np.repeat(["a", "b", "c", "d"], 9)
    mu = 1 / (1 + np.exp(-(0.4 + x)))
    df = pd.DataFrame({"y": np.clip(rng.beta(8 * mu, 8 * (1 - mu)), 0.01, 0.99), "x": x,
                       "g": g})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "wb": sb.Model("y ~ x + (1|g)", df).fit(random_seed=1, **FIT),
            "cb": sb.Model("y ~ x", df, likelihood="continuous_bernoulli").fit(
                random_seed=2, **FIT),
        }


def _spec(folder):
    text = spec_toml(model_toml("wb"), model_toml("cb", "continuous_bernoulli"), seed=9)
    return write(folder, text.replace("draws = 10\ntune = 10", "draws = 80\ntune = 80")
                 + KFOLD)


def _run(spec, reports, **kw):
    lines = []
    target = reports / "s"

    def echo(msg, nl=True):
        lines.append(msg)
        if msg.lstrip().startswith("["):  # a finished task: nothing written yet
            assert not target.exists(), msg
    run_spec(spec, reports_dir=reports, echo=echo, **kw)
    return target, lines


def _tables(target):
    return {p.name: p.read_text() for p in sorted((target / "tables").glob("*.csv"))
            if "model" not in p.name}  # the models table holds fit times


def test_spec_run_on_two_workers_equals_serial(folder, tmp_path, client):
    spec = _spec(folder)
    serial, _ = _run(spec, tmp_path / "serial")
    # through the scheduler's address, as `softbayes run SPEC --scheduler ADDRESS` does
    dask, lines = _run(spec, tmp_path / "dask", scheduler=client.scheduler.address)
    assert any(ln.lstrip().startswith("[6/6] fold ") for ln in lines)  # 2 models x 3 folds
    assert any("dask: 2 workers, dashboard" in ln for ln in lines)
    tables = _tables(serial)
    assert tables and tables == _tables(dask)
    for name in ("wb", "cb"):
        a, b = (load_fit(t / "fits" / f"{name}.nc") for t in (serial, dask))
        np.testing.assert_array_equal(a.posterior["x"].values, b.posterior["x"].values)
    report = (dask / "report.md").read_text()
    assert "come from exact K-fold cross-validation (kfold(k=3) in the cv column" in report


def _compare(fits, **kw):
    return sb.compare(fits, loo="kfold", k=6, seed=4, warn=False,
                      refit_kwargs={**FIT, "draws": 150}, **kw)


def _same(a, b):
    for name in a.names:
        np.testing.assert_array_equal(a.elpd_data[name].elpd_i.values,
                                      b.elpd_data[name].elpd_i.values)
        np.testing.assert_array_equal(a.loo_means[name], b.loo_means[name])
    assert a.cv == b.cv == {name: "kfold(k=6)" for name in a.names}


def test_killed_worker_is_retried_with_the_same_numbers(fits, client):
    serial = _compare(fits)
    killed = []

    def kill_one(fit_name, fold, k):
        if not killed:  # after the first fold, a worker with tasks in hand
            busy = [w for w, keys in client.processing().items() if keys]
            pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    on_dask = _compare(fits, client=client, progress=kill_one)
    assert killed
    _same(serial, on_dask)
    client.wait_for_workers(2, timeout=120)  # the nanny restarted it


def test_failed_fold_is_a_finding(fits, client):
    bad = {**FIT, "not_a_sampler_option": 1}
    for where in (None, client):
        cmp = sb.compare(fits, loo="kfold", k=3, seed=4, warn=False, refit_kwargs=bad,
                         client=where)
        assert cmp.cv == {"wb": "psis-loo", "cb": "psis-loo"}
        found = [w for w in cmp.warnings if "K-fold failed" in w]
        assert len(found) == 2 and "3 of 3 folds" in found[0]
        assert "PSIS-LOO estimate is kept" in found[0]


def test_model_kfold_on_workers_equals_compare(fits, client):
    data = pd.DataFrame({"y": fits["cb"].training_data["y"].values,
                         "x": fits["cb"].training_data["x"].values})
    model = sb.Model("y ~ x", data, likelihood="continuous_bernoulli")
    on_dask = model.kfold(fits["cb"], k=3, seed=8, client=client, **FIT)
    serial = sb.compare({"cb": fits["cb"]}, loo="kfold", k=3, seed=8, warn=False,
                        refit_kwargs=FIT).elpd_data["cb"]
    assert on_dask.kind == "loo_kfold" and on_dask.n_folds == 3
    np.testing.assert_array_equal(on_dask.elpd_i.values, serial.elpd_i.values)


def test_scattered_dicts_with_the_same_keys_stay_apart(client):
    # each scattered value is one object on the workers, whatever its type
    ex = Executor(client)
    first, second = ex.scatter({"m": "first"}), ex.scatter({"m": "second"})
    # dict.get(description, data, seed): an importable function, as every task's must be
    results = ex.run([Task(dict.get, first, "m", 0, label="first"),
                      Task(dict.get, second, "m", 0, label="second")])
    assert [r.value for r in results] == ["first", "second"]
