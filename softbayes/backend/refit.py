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
compiled sampler with nutpie's ``CompiledModel.with_data`` -- the compilation, which
dominates the time to the first draw, is done once per model structure and backend (one
compiled model per backend of :data:`~softbayes.backend.sample.BACKENDS` is kept; with JAX,
rows of a new count are traced once more by XLA). The automatic backend
(:func:`~softbayes.backend.sample.auto_backend`) is chosen at the first nutpie fit of a
structure, from the size of its design, and kept for its refits. With ``sampler="pymc"``
PyTensor's compilation cache does the same job.

Restrictions: the new rows may not hold group levels or categorical levels unseen in the
original data (the model's parameters are those of the original levels; levels absent from
the new rows keep their prior through partial pooling). Stateful transforms are *not*
re-estimated on the new rows: a model built from scratch on them would centre and scale
with their own statistics and set default priors from them, so its posterior differs
slightly (a reparametrization of the intercept and, for data-dependent default priors, their
scales).
"""

from __future__ import annotations

import contextlib
import os
import sys

import pymc as pm
import pytensor

import softbayes.backend.calibration as calibration
from softbayes.backend.approx import fit_approx
from softbayes.backend.build import LABELS_DATA, build_pymc_model, build_sampling_model
from softbayes.backend.convergence import warn_convergence
from softbayes.backend.result import complete_fit, fit_attrs
from softbayes.backend.sample import (
    auto_backend,
    backend_array,
    check_backend,
    compile_nutpie,
    new_seed,
    resolve_sampler,
    sample_nuts,
)

__all__ = ["Refitter", "compile_mode", "design_cells", "fit_description", "swap_compiled"]


def compile_mode(backend):
    """A context in which PyTensor functions compiled without an explicit mode use
    ``backend``'s (``"jax"``: the JAX mode, whose programs the on-disk cache keeps; else
    PyTensor's default): the pointwise log-likelihood of a JAX fit then compiles in well
    under a second, where numba compiles a new structure for seconds."""
    if backend == "jax":
        return pytensor.config.change_flags(mode="JAX")
    return contextlib.nullcontext()


def design_cells(description) -> int:
    """Rows x coefficients of the designs of ``description`` (the population-level columns,
    once per non-reference class of a multiclass family, and those of the phi formula): the
    size the automatic backend (:func:`~softbayes.backend.sample.auto_backend`) goes by."""
    cols = description.main.design.X.shape[1]
    if description.family.multiclass:
        cols *= max(1, len(description.class_labels) - 1)
    if description.phi is not None:
        cols += description.phi.design.X.shape[1]
    return description.n_obs * max(1, cols)


def swap_compiled(compiled, pymc_model, backend="numba"):
    """``compiled.with_data(...)`` with every shared value of ``pymc_model`` (by name);
    ``backend``: the one ``compiled`` was compiled with.

    Returns None (recompile on the next fit) if a shared variable of the compiled model has
    no counterpart in ``pymc_model``. A model compiled with numba names its shared
    variables; one compiled with JAX takes the data containers of ``pymc_model``.
    """
    named = dict(pymc_model.named_vars)
    named.update({k: v for k, v in pymc_model.dim_lengths.items() if k not in named})
    keys = getattr(compiled, "shared_var_keys", None)
    names = ([v.name for v in pymc_model.data_vars] if keys is None
             else [v.name for v in keys])
    updates = {}
    for name in names:
        new = named.get(name)
        if new is None or not hasattr(new, "get_value"):
            return None
        updates[name] = backend_array(backend, new.get_value())
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
        self._sampling = None  # the model of the distinct rows, when NUTS samples that
        self._aggregated = None  # whether it does: decided at the first fit, then kept
        self._compiled = {}  # {backend: nutpie's compiled model}
        self._backend = None  # the automatic choice, made at the first nutpie fit
        self._last = None  # the backend of the last nutpie fit

    @property
    def pymc_model(self) -> pm.Model:
        """The PyMC model of the current rows (built on first use)."""
        if self._pymc_model is None:
            self._pymc_model = build_pymc_model(self.description)
        return self._pymc_model

    @property
    def sampling_model(self) -> pm.Model:
        """The model NUTS samples: that of the distinct rows
        (:func:`~softbayes.backend.build.build_sampling_model`) when identical rows collapse
        enough at the first fit (then for every refit of the structure), else
        :attr:`pymc_model`."""
        if self._sampling is None and self._aggregated is not False:
            self._sampling = build_sampling_model(self.description,
                                                  always=bool(self._aggregated))
            self._aggregated = self._sampling is not None
        return self.pymc_model if self._sampling is None else self._sampling

    @property
    def compiled(self):
        """nutpie's compiled model of the last nutpie fit, reused across fits (None before
        the first nutpie fit)."""
        return self._compiled.get(self._last)

    def backend(self, backend=None) -> str:
        """The compilation backend a nutpie fit with ``backend`` uses (None: automatic, by
        the size of the design at the first fit, then kept)."""
        backend = check_backend(backend)
        if backend is not None:
            return backend
        if self._backend is None:
            self._backend = auto_backend(design_cells(self.description))
        return self._backend

    def set_data(self, data, *, weights=None) -> Refitter:
        """Replace the rows by ``data`` (same formula state), keeping the compiled sampler.

        ``weights``: the row weights when the model's weights were an array. A failure
        (unseen group levels, bad labels) leaves the refitter as it was.
        """
        description = self.description.with_data(data, weights=weights)
        pymc_model = build_pymc_model(description)
        sampling = build_sampling_model(description, always=True) if self._aggregated else None
        target = pymc_model if sampling is None else sampling
        compiled = {b: swap_compiled(c, target, b) for b, c in self._compiled.items()}
        self.description, self._pymc_model, self._sampling = description, pymc_model, sampling
        self._compiled = {b: c for b, c in compiled.items() if c is not None}
        return self

    def set_labels(self, labels) -> Refitter:
        """Replace the labels (same checks and preparation), keeping the compiled sampler."""
        self.description = self.description.with_labels(labels)
        # in the containers' dtype (Model(dtype="float32") stores the labels in float32)
        dtype = self.description.dtype
        labels = self.description.labels.astype(dtype, copy=False)
        if self._pymc_model is not None:  # pm.set_data casts floats to floatX
            with self._pymc_model, pytensor.config.change_flags(floatX=dtype):
                pm.set_data({LABELS_DATA: labels})
        if self._aggregated:  # the distinct rows' mean labels change: new containers
            self._sampling = build_sampling_model(self.description, always=True)
            compiled = {b: swap_compiled(c, self._sampling, b)
                        for b, c in self._compiled.items()}
            self._compiled = {b: c for b, c in compiled.items() if c is not None}
            return self
        self._compiled = {b: c.with_data(**{LABELS_DATA: backend_array(b, labels)})
                          for b, c in self._compiled.items()}
        return self

    def compile(self, model, backend=None, *, tempered=False):
        """``(compiled, backend used)``: nutpie's compiled form of ``model`` (the current
        model, or a ``tempered`` one compiled for one fit only) with ``backend`` (None:
        :meth:`backend`; an automatic JAX choice falls back to numba for a model JAX cannot
        compile, and the structure keeps numba)."""
        chosen = self.backend(backend)
        if tempered:
            return compile_nutpie(model, chosen, fallback=backend is None)
        if chosen not in self._compiled:
            compiled, used = compile_nutpie(model, chosen, fallback=backend is None)
            self._compiled = {**self._compiled, used: compiled}  # copies share no dict
            if backend is None:
                self._backend = used
            chosen = used
        self._last = chosen
        return self._compiled[chosen], chosen

    def fit(self, draws=1000, tune=1000, chains=4, random_seed=None, sampler=None, *,
            cores=None, progressbar=None, log_likelihood=True, calibrate=None,
            method="nuts", warn=True, backend=None, predictive=None, **kwargs):
        """Fit the current rows and labels; the arguments are those of
        :meth:`softbayes.Model.fit`. Returns the fit (an ``xarray.DataTree``)."""
        if progressbar is None:
            progressbar = sys.stdout.isatty()
        backend = check_backend(backend)
        if method != "nuts":
            return fit_approx(self.description, self.pymc_model, method, draws=draws,
                              chains=chains, random_seed=random_seed,
                              log_likelihood=log_likelihood, calibrate=calibrate,
                              progressbar=progressbar, predictive=predictive, **kwargs)
        description = self.description
        plan = calibration.plan_fit(description, self.pymc_model, calibrate)
        sampler = resolve_sampler(sampler)
        random_seed = new_seed() if random_seed is None else int(random_seed)
        model = self.sampling_model if plan.sampling_model is None else plan.sampling_model
        compiled = used = None
        if sampler == "nutpie":
            compiled, used = self.compile(model, backend,
                                          tempered=plan.sampling_model is not None)
        idata = sample_nuts(model, sampler=sampler, draws=draws, tune=tune, chains=chains,
                            cores=cores or min(chains, os.cpu_count() or 1),
                            random_seed=random_seed, progressbar=progressbar,
                            compiled=compiled, **kwargs)
        idata = plan.adjust(description, idata)  # calibrate="sandwich": adjusted draws
        attrs = fit_attrs(description, sampler=sampler, random_seed=random_seed, draws=draws,
                          tune=tune, chains=chains, method="nuts").replace(backend=used)
        try:
            with compile_mode(used):
                complete_fit(idata, description, self.pymc_model, attrs,
                             log_likelihood=log_likelihood, predictive=predictive)
        except NotImplementedError:
            if used != "jax":
                raise
            # an Op of the pointwise log-likelihood without a JAX conversion: PyTensor's default
            complete_fit(idata, description, self.pymc_model, attrs,
                         log_likelihood=log_likelihood, predictive=predictive)
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
