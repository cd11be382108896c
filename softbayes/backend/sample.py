"""NUTS samplers: which are available, and one call that samples a PyMC model with any of them.

``"nutpie"`` (the default when installed) compiles the model once with numba
(:func:`compile_nutpie`; the compiled model is reused across fits and takes other data
through ``with_data``); ``"pymc"``, ``"numpyro"`` and ``"blackjax"`` go through
``pm.sample``.
"""

from __future__ import annotations

import importlib.util
import time
import warnings

import numpy as np
import pymc as pm

__all__ = [
    "SAMPLERS",
    "compile_nutpie",
    "installed_samplers",
    "jax_chain_method",
    "new_seed",
    "resolve_sampler",
    "sample_nuts",
    "start_failure",
]

#: The NUTS implementations ``fit(sampler=...)`` accepts.
SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")


def new_seed() -> int:
    """A random seed for a fit that was given none (it is recorded in the fit's attrs)."""
    return int(np.random.SeedSequence().generate_state(1)[0] % (2**31))


def installed_samplers() -> list[str]:
    """The samplers of :data:`SAMPLERS` whose package is installed."""
    return [s for s in SAMPLERS if s == "pymc" or importlib.util.find_spec(s) is not None]


def resolve_sampler(sampler) -> str:
    """The sampler to use for ``sampler`` (None: nutpie if installed, else pymc).

    Raises a ValueError for an unknown name and an ImportError for one whose package is not
    installed.
    """
    installed = installed_samplers()
    if sampler is None:
        return "nutpie" if "nutpie" in installed else "pymc"
    s = str(sampler).lower()
    if s not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of {list(SAMPLERS)}.")
    if s not in installed:
        raise ImportError(
            f"sampler={s!r} needs the {s} package, which is not installed "
            f"(pip install {s}). Installed samplers: {installed}."
        )
    return s


def jax_chain_method(chains):
    """``"vectorized"`` when JAX runs on one accelerator with fewer devices than chains.

    PyMC's default (``"parallel"``, one device per chain) would then run the chains one
    after the other; vectorized chains share the accelerator. None: keep PyMC's default.
    """
    import jax

    if jax.default_backend() != "cpu" and jax.local_device_count() < chains:
        return "vectorized"
    return None


def start_failure(err, pymc_model):
    """One readable SamplingError for nutpie's 'All initialization points failed'."""
    terms = ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logps = pymc_model.point_logps()
        bad = [f"{k} ({v})" for k, v in logps.items() if not np.isfinite(v)]
        if bad:
            terms = " Not finite at the model's initial point: " + ", ".join(bad) + "."
    except Exception:  # the diagnosis is a courtesy; the error below is what matters
        pass
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    cause = next((ln for ln in lines[1:] if not ln.startswith(("Caused by", "Stack"))), "")
    return pm.exceptions.SamplingError(
        "No chain could start: the log-density (or its gradient) was not finite at any initial "
        f"point the sampler tried.{terms} Check the priors (e.g. one that puts a parameter at "
        "infinity), extreme predictor values (standardize them with scale(x)) and any "
        f"init_mean passed to fit. (nutpie: {lines[0] if lines else err}"
        f"{'; ' + cause if cause else ''})"
    )


def compile_nutpie(pymc_model):
    """nutpie's compiled form of ``pymc_model`` (numba; the slow step, done once)."""
    import nutpie

    return nutpie.compile_pymc_model(pymc_model)


def sample_nuts(pymc_model, *, sampler, draws, tune, chains, cores, random_seed,
                progressbar=False, compiled=None, **kwargs):
    """Sample ``pymc_model`` with NUTS; returns the DataTree of the sampler.

    Parameters
    ----------
    sampler : str
        One of :data:`SAMPLERS` (see :func:`resolve_sampler`).
    compiled : nutpie compiled model, optional
        For ``"nutpie"``: the compiled form of ``pymc_model`` (compiled here if None).
    **kwargs
        Passed to ``nutpie.sample`` or ``pm.sample`` (e.g. ``target_accept``).
    """
    if sampler == "nutpie":
        import nutpie

        compiled = compile_nutpie(pymc_model) if compiled is None else compiled
        t0 = time.time()
        sampler = None
        try:
            sampler = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains,
                                    cores=cores, seed=random_seed, save_warmup=False,
                                    progress_bar=progressbar, blocking=False, **kwargs)
            idata = sampler.wait()
        except KeyboardInterrupt:
            # nutpie's blocking call would return the draws so far, padded with NaN, as if
            # sampling had finished: an interrupted fit is discarded instead
            if sampler is not None:
                sampler.cancel()
            raise
        except RuntimeError as err:
            if sampler is not None:
                sampler.cancel()
            if "initialization points failed" not in str(err):
                raise
            raise start_failure(err, pymc_model) from None
        idata["posterior"].attrs["sampling_time"] = time.time() - t0
        return idata
    kwargs.setdefault("compute_convergence_checks", False)
    if sampler in ("numpyro", "blackjax"):
        nuts = dict(kwargs.pop("nuts", None) or {})
        method = jax_chain_method(chains)
        if method is not None:
            nuts.setdefault("chain_method", method)
        kwargs["nuts"] = nuts
    return pm.sample(draws=draws, tune=tune, chains=chains, cores=cores,
                     random_seed=random_seed, nuts_sampler=sampler, progressbar=progressbar,
                     model=pymc_model, **kwargs)
