"""Many fits at once: tasks of one shape, run here, on a local Dask cluster or a scheduler.

Every many-fit workload (the candidates of a spec, K-fold folds, SBC and coverage
replications, refits) is a list of :class:`Task`: a module-level function applied to a
*model description*, a *data reference* and a *seed*, returning a small result. An
:class:`Executor` runs the list and returns one :class:`TaskResult` per task, in task order:

* ``Executor()`` -- serially, in this process (the default; no Dask needed);
* ``Executor(workers=N)`` -- a ``distributed.LocalCluster`` of N worker processes with one
  thread each, started here and closed by :meth:`Executor.close`;
* ``Executor(scheduler="tcp://host:8786")`` -- a running Dask scheduler (its workers must
  have softbayes installed); ``Executor(client=client)`` -- an existing
  ``distributed.Client`` (left open).

The rules that make results independent of where a task runs:

* **Seeds per task.** A task carries its own seed, derived by :func:`task_seed` from a base
  seed and the task's key (never from the worker, never ``random_seed=None``).
* **Data once.** :meth:`Executor.scatter` sends a description or a data frame to every
  worker once (``client.scatter(..., broadcast=True)``); tasks carry the reference.
* **One compile per worker.** A task function gets a compiled model from
  :func:`cached_refitter` (a per-process cache keyed by the model's structure), so every
  fold or replication of one structure on a worker reuses one compiled sampler
  (:class:`~softbayes.backend.refit.Refitter`), exactly as a serial loop does.
* **Same threads.** Every task runs with BLAS pinned to one thread (``threadpoolctl``) in
  every mode; the fused numba kernels sum fixed-size blocks in block order, so their
  results do not depend on their thread count.
* **Failures are results.** An exception in a task becomes a :class:`TaskResult` with
  ``ok=False`` and the reason; a task whose worker died is retried by Dask
  (``retries=``) and only fails once its retries are spent.

Progress: ``echo("[3/40] fold 3 of model X done")`` once per finished task, and the Dask
dashboard address when a cluster is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from softbayes.backend.refit import Refitter, fit_description

__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_WORKERS",
    "QUIET_FIT",
    "REFIT",
    "Executor",
    "Task",
    "TaskResult",
    "as_executor",
    "cached_refitter",
    "fit_task",
    "pinned_threads",
    "refit_labels_task",
    "run_task",
    "task_seed",
]

#: The largest local cluster ``workers=`` may ask for.
MAX_WORKERS = 64
#: How often Dask reruns a task whose worker died before the task counts as failed.
RETRIES = 3
#: Seconds to wait for a scheduler given by address before refusing it.
CONNECT_TIMEOUT = 20
# compiled structures kept per process (each holds a compiled sampler, a few MB)
_CACHE_SIZE = 8
_REFITTERS: OrderedDict = OrderedDict()


def task_seed(base_seed: int, *key) -> int:
    """The seed of the task ``key`` (e.g. ``("fold", 3)``) in a run seeded ``base_seed``.

    ``numpy.random.SeedSequence(base_seed, spawn_key=hash(key))``: independent streams for
    distinct keys, the same seed for the same key wherever the task runs.
    """
    base_seed = int(base_seed)
    if base_seed < 0:
        raise ValueError(f"seed must be 0 or more, got {base_seed}.")
    words = tuple(int.from_bytes(hashlib.sha256(repr(k).encode()).digest()[:4], "little")
                  for k in key)
    seq = np.random.SeedSequence(base_seed, spawn_key=words)
    return int(seq.generate_state(1, dtype=np.uint32)[0])


def cached_refitter(key: str, description) -> Refitter:
    """This process's :class:`Refitter` of the model structure ``key`` (built from
    ``description`` on first use), so that one worker compiles a structure once.

    ``key`` must determine the structure (formula, family, priors, options, the rows the
    formula state was taken from): callers hash what the model is made of. The caller sets
    its own rows or labels on the refitter before fitting (``set_data`` / ``set_labels``),
    so what a previous task left in it does not matter.
    """
    refitter = _REFITTERS.get(key)
    if refitter is None:
        refitter = Refitter(description)
        _REFITTERS[key] = refitter
        while len(_REFITTERS) > _CACHE_SIZE:
            _REFITTERS.popitem(last=False)
    else:
        _REFITTERS.move_to_end(key)
    return refitter


#: Fit options of a task unless it gives its own: no warnings, no progress bar (a task's
#: warnings are not shown, and many tasks would spam the terminal).
QUIET_FIT = {"warn": False, "progressbar": False}

#: Options of a refit whose fit is only scored (a K-fold fold, an SBC or coverage
#: replication): quiet, without predictive groups nobody reads, and compiled with numba:
#: many refits of one structure pay its compilation once and then sample without Python
#: per gradient (STAR98's K-fold: 0.2 s a fold after one 9 s compilation, against 4.5 s a
#: fold on the JAX backend of the main fit).
REFIT = {**QUIET_FIT, "predictive": False, "backend": "numba"}


def fit_task(description, data, seed, **options):
    """Task function: fit ``description`` (to the rows of ``data`` if not None) with
    ``seed``; ``options`` are those of :meth:`softbayes.Model.fit` (:data:`QUIET_FIT`
    unless given). Returns the fit."""
    return fit_description(description, data, random_seed=seed, **{**QUIET_FIT, **options})


def refit_labels_task(description, labels, seed, *, structure, **options):
    """Task function: the model ``description`` with other ``labels``, fitted with ``seed``
    on this process's compiled model of ``structure`` (:func:`cached_refitter`); for
    simulation-based calibration and refits on resampled labels (:data:`REFIT` options unless
    given). Returns the fit."""
    refitter = cached_refitter(structure, description)
    return refitter.set_labels(labels).fit(random_seed=seed, **{**REFIT, **options})


@contextlib.contextmanager
def pinned_threads():
    """BLAS limited to one thread while a task runs (the same in every mode)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@dataclass(frozen=True)
class Task:
    """One fit-shaped unit of work: ``fn(description, data, seed, **options)``.

    Parameters
    ----------
    fn : callable
        A module-level function (workers import it by name), returning a small result.
    description : object
        A model description, or a reference from :meth:`Executor.scatter`.
    data : object
        The task's data (a frame, arrays, None), or a reference from :meth:`Executor.scatter`.
    seed : int
        The task's seed (:func:`task_seed`).
    label : str
        What the progress line calls it: ``"fold 3 of model X"``.
    options : mapping
        Further keyword arguments of ``fn`` (small: fold indices, sampler options).
    """

    fn: Callable[..., Any]
    description: Any
    data: Any
    seed: int
    label: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TaskResult:
    """What a task returned (``value``), or why it failed (``error``); ``seconds`` it ran."""

    label: str
    value: Any = None
    error: str | None = None
    seconds: float = float("nan")

    @property
    def ok(self) -> bool:
        """Whether the task finished without an exception."""
        return self.error is None


def run_task(fn, description, data, seed, options, label) -> TaskResult:
    """Run one task here (this process or a worker): threads pinned, exceptions caught."""
    t0 = time.perf_counter()
    try:
        with pinned_threads(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = fn(description, data, int(seed), **dict(options))
    except Exception as err:  # a finding for the caller, not the end of the run
        reason = " ".join(str(err).split()) or type(err).__name__
        return TaskResult(label, error=f"{type(err).__name__}: {reason}",
                          seconds=time.perf_counter() - t0)
    return TaskResult(label, value=value, seconds=time.perf_counter() - t0)


def _check_workers(workers) -> int:
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)):
        raise ValueError(f"workers must be a whole number from 1 to {MAX_WORKERS}, "
                         f"got {workers!r}.")
    if not 1 <= int(workers) <= MAX_WORKERS:
        raise ValueError(f"workers must be from 1 to {MAX_WORKERS}, got {workers}.")
    return int(workers)


class Executor:
    """Runs :class:`Task` lists serially, on a local Dask cluster or on a scheduler.

    Parameters
    ----------
    client : distributed.Client, optional
        Run on this client's cluster (not closed by :meth:`close`).
    workers : int, optional
        Start a ``LocalCluster`` of this many worker processes, one thread each.
    scheduler : str, optional
        Connect to a running scheduler (``"tcp://host:8786"``). Only from the command line
        or Python: Dask's protocol unpickles what it receives, so the address must be one
        the user trusts.
    echo : callable, optional
        ``echo(line)`` for progress lines (default: none).

    At most one of ``client``, ``workers`` and ``scheduler``; none runs serially. Use as a
    context manager, or call :meth:`close`.
    """

    def __init__(self, client=None, *, workers=None, scheduler=None, echo=None):
        given = [n for n, v in (("client", client), ("workers", workers),
                                ("scheduler", scheduler)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of client, workers and scheduler, got {given}.")
        self.echo = echo
        self._own_client = self._cluster = None
        self.client = client
        if workers is not None:
            workers = _check_workers(workers)
            import dask
            from distributed import Client, LocalCluster

            # PyMC's sampler runs chains in child processes, which daemonic workers may not
            # start; set for the process, so that a worker restarted later is alike
            dask.config.set({"distributed.worker.daemon": False})
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                         processes=True, dashboard_address=":0",
                                         silence_logs=logging.ERROR)
            self.client = self._own_client = Client(self._cluster)
        elif scheduler is not None:
            if not isinstance(scheduler, str) or "://" not in scheduler:
                raise ValueError(f"scheduler must be an address such as 'tcp://host:8786', "
                                 f"got {scheduler!r}.")
            from distributed import Client

            try:
                self.client = self._own_client = Client(scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as err:
                # an address nobody answers is a bad argument, not a crash of the run
                raise ValueError(f"scheduler {scheduler!r}: no Dask scheduler answered within "
                                 f"{CONNECT_TIMEOUT} s ({type(err).__name__}: {err}).") from None
        if self.client is not None and echo is not None:
            n = len(self.client.scheduler_info().get("workers", {}))
            echo(f"  dask: {n} worker{'s' if n != 1 else ''}, dashboard "
                 f"{self.dashboard_link or '(none)'}")

    @property
    def kind(self) -> str:
        """``"serial"`` or ``"dask"``."""
        return "serial" if self.client is None else "dask"

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard's address (None when serial or without a dashboard)."""
        if self.client is None:
            return None
        with contextlib.suppress(Exception):
            return self.client.dashboard_link
        return None

    def scatter(self, value):
        """A reference to ``value`` for :class:`Task` (sent to every worker once).

        ``value`` is always one object: a dict or list is sent whole (Dask's own ``scatter``
        would send their items as separate data, keyed by the dict's keys, so two dicts with
        the same keys would overwrite each other on the workers).
        """
        if self.client is None:
            return value
        return self.client.scatter([value], broadcast=True, hash=False)[0]

    def run(self, tasks: Sequence[Task], *, on_result=None) -> list[TaskResult]:
        """Run ``tasks``; one :class:`TaskResult` per task, in task order.

        ``on_result(index, result)`` is called here, in this process, as each task finishes
        (e.g. to write a cache entry at once); progress lines go to ``echo``.
        """
        tasks = list(tasks)
        results: list[TaskResult | None] = [None] * len(tasks)
        for done, (i, res) in enumerate(self._finished(tasks), start=1):
            results[i] = res
            if self.echo is not None:
                state = (f"done in {res.seconds:.1f} s" if res.ok
                         else f"FAILED: {res.error}")
                self.echo(f"  [{done}/{len(tasks)}] {res.label} {state}")
            if on_result is not None:
                on_result(i, res)
        return results

    def _finished(self, tasks):
        """``(index, result)`` pairs in the order the tasks finish."""
        if self.client is None:
            for i, t in enumerate(tasks):
                yield i, run_task(t.fn, t.description, t.data, t.seed, t.options, t.label)
            return
        from distributed import as_completed

        run_id = uuid.uuid4().hex[:12]
        futures = [
            self.client.submit(run_task, t.fn, t.description, t.data, t.seed, dict(t.options),
                               t.label, key=f"softbayes-{run_id}-{i}", pure=False,
                               retries=RETRIES)
            for i, t in enumerate(tasks)
        ]
        index = {fut.key: i for i, fut in enumerate(futures)}
        for fut in as_completed(futures):
            i = index[fut.key]
            try:
                res = fut.result()
            except Exception as err:  # the worker died more often than the retries
                res = TaskResult(tasks[i].label, error=f"{type(err).__name__}: {err}")
            yield i, res

    def close(self) -> None:
        """Close the client and cluster this executor started (not a client given to it)."""
        if self._own_client is not None:
            self._own_client.close()
            self._own_client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def as_executor(client=None, *, workers=None, echo=None):
    """An :class:`Executor` for ``client`` (an Executor, a ``distributed.Client`` or None)
    or ``workers``; closes only what it started."""
    if isinstance(client, Executor):
        if workers is not None:
            raise ValueError("give either client or workers, not both.")
        yield client
        return
    ex = Executor(client, workers=workers, echo=echo)
    try:
        yield ex
    finally:
        ex.close()
