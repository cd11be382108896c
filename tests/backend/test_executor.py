"""The executor in this process: task seeds, failures as results, progress, the per-process
compile cache, thread pinning, and a fit task equal to ``Model.fit`` bit for bit.

The Dask backends (a local cluster, a killed worker) are tested end to end in
tests/analysis/test_kfold_executor.py, which starts one cluster for its module.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import softbayes as sb
from softbayes.backend.executor import (
    MAX_WORKERS,
    REFIT,
    Executor,
    Task,
    as_executor,
    cached_refitter,
    fit_task,
    pinned_threads,
    refit_labels_task,
    run_task,
    task_seed,
)

FIT = {"draws": 60, "tune": 60, "chains": 1, "progressbar": False}


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=25)
    df = pd.DataFrame({"y": rng.binomial(2, 1 / (1 + np.exp(-x))) / 2, "x": x})
    return sb.Model("y ~ x", df, likelihood="weighted_bernoulli")


def test_task_seeds_depend_on_base_and_key_only():
    seeds = {task_seed(b, "fold", j) for b in (0, 1) for j in range(50)}
    assert len(seeds) == 100  # distinct for every (base, key)
    assert task_seed(7, "fold", 3) == task_seed(7, "fold", 3)
    assert task_seed(7, "fold", 3) != task_seed(7, "fold", "3")
    assert all(0 <= s < 2**32 for s in seeds)
    # independent reference: numpy's SeedSequence spawned with the same key words
    word = int.from_bytes(__import__("hashlib").sha256(b"'x'").digest()[:4], "little")
    ref = np.random.SeedSequence(5, spawn_key=(word,)).generate_state(1, dtype=np.uint32)[0]
    assert task_seed(5, "x") == int(ref)
    with pytest.raises(ValueError, match="0 or more"):
        task_seed(-1, "fold", 0)


def _double(description, data, seed, *, plus=0):
    return 2 * data + plus + seed


def test_failed_task_is_a_result_and_the_others_run():
    tasks = [Task(_double, None, 1, 0, "one", {"plus": 1}),
             Task(fit_task, None, None, 0, "broken"),  # no description: raises
             Task(_double, None, 5, 10, "three")]
    lines, seen = [], []
    results = Executor(echo=lines.append).run(tasks, on_result=lambda i, r: seen.append(i))
    assert [r.ok for r in results] == [True, False, True]
    assert results[0].value == 3 and results[2].value == 20
    assert results[1].value is None and "AttributeError" in results[1].error
    assert seen == [0, 1, 2]
    assert lines[0].startswith("  [1/3] one done in ")
    assert lines[1].startswith("  [2/3] broken FAILED: AttributeError")
    assert lines[2].startswith("  [3/3] three done in ")


def test_fit_task_equals_model_fit_bit_for_bit(model):
    ref = model.fit(random_seed=11, **FIT)
    res = run_task(fit_task, model.description, None, 11, FIT, "fit")
    assert res.ok, res.error
    for name in ("Intercept", "x"):
        np.testing.assert_array_equal(res.value.posterior[name].values,
                                      ref.posterior[name].values)


def test_refit_labels_task_reuses_one_compiled_model(model):
    labels = model.labels[::-1]
    first = run_task(refit_labels_task, model.description, labels, 3,
                     {"structure": "test-labels", **FIT}, "a")
    assert first.ok, first.error
    refitter = cached_refitter("test-labels", None)  # built above: the description is unused
    compiled = refitter.compiled
    assert compiled is not None
    again = run_task(refit_labels_task, model.description, labels, 3,
                     {"structure": "test-labels", **FIT}, "b")
    assert cached_refitter("test-labels", None) is refitter
    # the same labels and seed on the reused compiled model: the same draws; the reference
    # is a fresh model given those labels, on the refits' backend (executor.REFIT)
    ref = sb.Model.from_description(model.description).set_labels(labels).fit(
        random_seed=3, backend=REFIT["backend"], **FIT)
    for fit in (first.value, again.value):
        np.testing.assert_array_equal(fit.posterior["x"].values, ref.posterior["x"].values)


def test_blas_is_pinned_to_one_thread_in_a_task():
    from threadpoolctl import threadpool_info

    with pinned_threads():
        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert blas and set(blas) == {1}


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"workers": 0}, "from 1 to"),
    ({"workers": MAX_WORKERS + 1}, "from 1 to"),
    ({"workers": 2.0}, "whole number"),
    ({"workers": True}, "whole number"),
    ({"scheduler": "localhost"}, "address"),
    ({"workers": 2, "scheduler": "tcp://h:1"}, "at most one"),
])
def test_bad_executor_arguments(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        Executor(**kwargs)


def test_serial_executor_is_the_default():
    with as_executor() as ex:
        assert ex.kind == "serial" and ex.dashboard_link is None
        assert ex.scatter([1, 2]) == [1, 2]
    given = Executor()
    with as_executor(given) as ex:
        assert ex is given
