"""Fitting a model description, and refitting one structure on other rows or labels.

:func:`fit_description` is the one entry point that fits a
:class:`~softbayes.terms.description.ModelDescription` to data with a seed and sampler options
and returns the fit (an ``xarray.DataTree``, see :mod:`softbayes.model`); it needs no
:class:`softbayes.Model`, so a worker process can call it with a pickled description.

:class:`Refitter` keeps one model structure compiled across many fits. Its data -- the
centred design matrix, group-level columns and indices, labels and row weights -- are
``pm.Data`` containers with a flexible number of rows
(:func:`softbayes.backend.build.build_pymc_model`). :meth:`Refitter.set_data` evaluates new
rows with the *stored* formula state (categorical and group levels, ``scale()`` /
``center()`` parameters, the centring means and the priors of the original data), rebuilds
the (cheap) PyMC graph and, if the model was compiled for nutpie, swaps the data into the
compiled sampler with nutpie's ``CompiledModel.with_data`` -- the numba compilation, which
dominates the time to the first draw, is done once per model structure. With
``sampler="pymc"`` PyTensor's compilation cache does the same job.

Restrictions: the new rows may not hold group levels or categorical levels unseen in the
original data (the model's parameters are those of the original levels; levels absent from
the new rows keep their prior through partial pooling). Stateful transforms are *not*
re-estimated on the new rows: a model built from scratch on them would centre and scale
with their own statistics and set default priors from them, so its posterior differs
slightly (a reparametrization of the intercept and, for data-dependent default priors, their
scales).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pymc as pm

import softbayes.backend.calibration as calibration
from softbayes.backend.approx import fit_approx
from softbayes.backend.build import LABELS_DATA, build_pymc_model
from softbayes.backend.convergence import warn_convergence
from softbayes.backend.result import complete_fit, fit_attrs
from softbayes.backend.sample import compile_nutpie, new_seed, resolve_sampler, sample_nuts

__all__ = ["Refitter", "fit_description", "swap_compiled"]


def swap_compiled(compiled, pymc_model):
    """``compiled.with_data(...)`` with every shared value of ``pymc_model`` (by name).

    Returns None (recompile on the next fit) if a shared variable of the compiled model has
    no counterpart in ``pymc_model``.
    """
    named = dict(pymc_model.named_vars)
    named.update({k: v for k, v in pymc_model.dim_lengths.items() if k not in named})
    updates = {}
    for var in compiled.shared_var_keys:
        new = named.get(var.name)
        if new is None or not hasattr(new, "get_value"):
            return None
        updates[var.name] = np.asarray(new.get_value())
    try:
        return compiled.with_data(**updates)
    except (KeyError, ValueError):
        return None


class Refitter:
    """One model structure, compiled once, fitted to other rows or labels.

    Parameters
    ----------
    description : ModelDescription
    data : pandas.DataFrame, optional
        Rows to fit instead of the description's (:meth:`set_data`).
    weights : array_like, optional
        Row weights of ``data`` when the model's weights were an array.

    Attributes
    ----------
    description : ModelDescription
        The description of the current rows and labels.
    """

    def __init__(self, description, data=None, *, weights=None):
        if data is not None:
            description = description.with_data(data, weights=weights)
        self.description = description
        self._pymc_model = None
        self._compiled = None

    @property
    def pymc_model(self) -> pm.Model:
        """The PyMC model of the current rows (built on first use)."""
        if self._pymc_model is None:
            self._pymc_model = build_pymc_model(self.description)
        return self._pymc_model

    @property
    def compiled(self):
        """nutpie's compiled model, reused across fits (None before the first nutpie fit)."""
        return self._compiled

    def set_data(self, data, *, weights=None) -> Refitter:
        """Replace the rows by ``data`` (same formula state), keeping the compiled sampler.

        ``weights``: the row weights when the model's weights were an array. A failure
        (unseen group levels, bad labels) leaves the refitter as it was.
        """
        description = self.description.with_data(data, weights=weights)
        pymc_model = build_pymc_model(description)
        compiled = self._compiled
        self.description, self._pymc_model = description, pymc_model
        self._compiled = None if compiled is None else swap_compiled(compiled, pymc_model)
        return self

    def set_labels(self, labels) -> Refitter:
        """Replace the labels (same checks and preparation), keeping the compiled sampler."""
        self.description = self.description.with_labels(labels)
        labels = self.description.labels
        if self._pymc_model is not None:
            with self._pymc_model:
                pm.set_data({LABELS_DATA: labels})
        if self._compiled is not None:
            self._compiled = self._compiled.with_data(**{LABELS_DATA: labels})
        return self

    def fit(self, draws=1000, tune=1000, chains=4, random_seed=None, sampler=None, *,
            cores=None, progressbar=None, log_likelihood=True, calibrate=None,
            method="nuts", warn=True, **kwargs):
        """Fit the current rows and labels; the arguments are those of
        :meth:`softbayes.Model.fit`. Returns the fit (an ``xarray.DataTree``)."""
        if progressbar is None:
            progressbar = sys.stdout.isatty()
        if method != "nuts":
            return fit_approx(self.description, self.pymc_model, method, draws=draws,
                              chains=chains, random_seed=random_seed,
                              log_likelihood=log_likelihood, calibrate=calibrate,
                              progressbar=progressbar, **kwargs)
        description = self.description
        plan = calibration.plan_fit(description, self.pymc_model, calibrate)
        sampler = resolve_sampler(sampler)
        random_seed = new_seed() if random_seed is None else int(random_seed)
        model = self.pymc_model if plan.sampling_model is None else plan.sampling_model
        compiled = None
        if sampler == "nutpie" and plan.sampling_model is None:
            if self._compiled is None:
                self._compiled = compile_nutpie(model)
            compiled = self._compiled  # a tempered model is compiled for its fit only
        idata = sample_nuts(model, sampler=sampler, draws=draws, tune=tune, chains=chains,
                            cores=cores or min(chains, os.cpu_count() or 1),
                            random_seed=random_seed, progressbar=progressbar,
                            compiled=compiled, **kwargs)
        idata = plan.adjust(description, idata)  # calibrate="sandwich": adjusted draws
        attrs = fit_attrs(description, sampler=sampler, random_seed=random_seed, draws=draws,
                          tune=tune, chains=chains, method="nuts")
        complete_fit(idata, description, self.pymc_model, attrs, log_likelihood=log_likelihood)
        attrs.replace(**plan.finish(description, idata, self.pymc_model)).write(idata)
        if warn:  # refits of folds and replications pass warn=False: no spam, no cost
            plan.warn(stacklevel=3)
            warn_convergence(idata, stacklevel=3)
        return idata


def fit_description(description, data=None, *, weights=None, random_seed=None, **options):
    """Fit ``description`` (to the rows of ``data`` if given, with the stored formula state)
    with a seed and sampler options; returns the fit (an ``xarray.DataTree``).

    ``options`` are those of :meth:`softbayes.Model.fit` (``draws``, ``tune``, ``chains``,
    ``sampler``, ``cores``, ``progressbar``, ``log_likelihood``, ``calibrate``, ``method``
    and the sampler's or approximation's own keywords).
    """
    return Refitter(description, data, weights=weights).fit(random_seed=random_seed, **options)
