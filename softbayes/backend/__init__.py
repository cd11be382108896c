"""Fitting a model description: PyMC graph, NUTS samplers, approximations, calibration.

The backend takes plain data (a :class:`~softbayes.terms.description.ModelDescription`, a
``pm.Model``), never :class:`softbayes.Model`: :func:`fit_description` fits a description,
:class:`Refitter` refits one compiled structure on other rows or labels,
:func:`build_pymc_model` builds the PyMC model, :data:`SAMPLERS` names the NUTS samplers;
:class:`Executor` runs many fits (:class:`Task`) serially or on Dask
(:mod:`softbayes.backend.executor`); every NUTS fit warns about its convergence
(:mod:`softbayes.backend.convergence`).
"""

from softbayes.backend.build import build_pymc_model
from softbayes.backend.executor import Executor, Task, TaskResult, task_seed
from softbayes.backend.refit import Refitter, fit_description
from softbayes.backend.sample import SAMPLERS, resolve_sampler

__all__ = [
    "SAMPLERS",
    "Executor",
    "Refitter",
    "Task",
    "TaskResult",
    "build_pymc_model",
    "fit_description",
    "resolve_sampler",
    "task_seed",
]
