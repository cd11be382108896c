"""NUTS samplers: which are available, and one call that samples a PyMC model with any of them.

``"nutpie"`` (the default when installed) compiles the model once (:func:`compile_nutpie`;
the compiled model is reused across fits and takes other data through ``with_data``);
``"pymc"``, ``"numpyro"`` and ``"blackjax"`` go through ``pm.sample``.

nutpie compiles with one of two backends (:data:`BACKENDS`, ``fit(backend=...)``):

* ``"jax"`` -- PyTensor's JAX backend, gradient by JAX. Compiling costs well under a second
  and XLA's compiled programs are kept on disk (:func:`jax_cache_dir`), so a second process
  fitting the same structure skips XLA; each log-density call costs some 100 us of Python.
* ``"numba"`` -- numba cfuncs with the fused GLM kernels: no Python per call, but several
  seconds of compilation in every process (numba's cfuncs cannot be cached on disk).

The automatic choice (:func:`auto_backend`) takes JAX for designs of at most
:data:`JAX_MAX_CELLS` cells (rows x coefficients), numba above, and falls back to numba when
a model holds an Op without a JAX conversion. Measured on this project's 2-core machine under
a load of 8-12 (other jobs; quiet-machine times are some 3-5x shorter), weighted Bernoulli,
2 chains x (500 + 500), the first ``Model.fit`` in a new process, seconds of compile /
sampling / total (the total includes the pointwise log-likelihood and the other groups)::

    n x d        JAX                 numba
    300 x 5      5.4 / 6.2 / 15.3    35.0 /  1.4 /  38.4
    300 x 10     5.9 / 1.9 / 23.7    32.1 /  0.4 /  33.8
    1e4 x 5      8.5 / 3.3 / 58.2    83.1 /  5.2 /  94.9
    1e4 x 10     7.2 / 6.0 / 40.0    50.4 /  3.2 /  62.5
    1e5 x 5      5.6 / 30.3 / 47.3   63.1 / 25.9 / 109.7
    1e5 x 10     11.3 / 42.5 / 83.9  63.7 / 31.4 / 108.2

(up to 1e4 rows these JAX totals include a numba compilation of the pointwise
log-likelihood, 1-44 s; a JAX fit compiles it in JAX mode instead,
:func:`softbayes.backend.refit.compile_mode`: 1.3-1.5 s at 300 x 8, against 18 s).
numba samples 1.3-2x faster per draw from 1e4 rows on, but its compilation costs more than
JAX's slower sampling up to 1e5 x 5 for this run length; at 1e5 x 10 the two tie here, and
the default run (4 chains x (1000 + 1000), four times the draws) favours numba from about
5e5 cells: hence :data:`JAX_MAX_CELLS`. On the quiet machine (medians of 3, whole fit call in
a new process, benchmarks/RESULTS.md section 9): 300 x 5 2.7 s with JAX against 5.7 s with
numba; 1e4 x 10 4.0 s against 6.4 s; 1e5 x 5 10.6 s against 9.5 s, but a first draw in 2.0 s
against some 5.5 s; 1e5 x 10 (numba) 11.8 s, and JAX 13.8 s there. At n = 300 the call is
mostly importing JAX and nutpie (1.2 s), PyTensor's rewriting (0.55 s) and sampling at some
86 us of Python per log-density call. Both chains in one thread (``cores=1``) sample a
300 x 5 model in 0.51 s against 0.54 s for two (medians of 3, twice), and a 1e4 x 10 one in
2.60 s against 2.41 s: too little either way to change ``cores``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pymc as pm

__all__ = [
    "BACKENDS",
    "CACHE_ENV",
    "JAX_MAX_CELLS",
    "SAMPLERS",
    "auto_backend",
    "backend_array",
    "check_backend",
    "compile_nutpie",
    "enable_jax_cache",
    "installed_samplers",
    "jax_cache_dir",
    "jax_chain_method",
    "new_seed",
    "resolve_sampler",
    "sample_nuts",
    "start_failure",
]

#: The NUTS implementations ``fit(sampler=...)`` accepts.
SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")
#: nutpie's compilation backends ``fit(backend=...)`` accepts (None: :func:`auto_backend`).
BACKENDS = ("jax", "numba")
#: The largest design (rows x coefficients) the automatic choice compiles with JAX.
JAX_MAX_CELLS = 500_000
#: The environment variable naming softbayes' cache folder (default: the user's cache).
CACHE_ENV = "SOFTBAYES_CACHE_DIR"


def new_seed() -> int:
    """A random seed for a fit that was given none (it is recorded in the fit's attrs)."""
    return int(np.random.SeedSequence().generate_state(1)[0] % (2**31))


def _installed(package) -> bool:
    # a package already imported counts without a look-up: find_spec on a lazily loaded
    # module would import it (numpyro imports JAX, seconds)
    return package == "pymc" or package in sys.modules or (
        importlib.util.find_spec(package) is not None)


def installed_samplers() -> list[str]:
    """The samplers of :data:`SAMPLERS` whose package is installed."""
    return [s for s in SAMPLERS if _installed(s)]


def resolve_sampler(sampler) -> str:
    """The sampler to use for ``sampler`` (None: nutpie if installed, else pymc).

    Raises a ValueError for an unknown name and an ImportError for one whose package is not
    installed. The default looks for nutpie only.
    """
    if sampler is None:
        return "nutpie" if _installed("nutpie") else "pymc"
    s = str(sampler).lower()
    if s not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of {list(SAMPLERS)}.")
    if not _installed(s):
        installed = installed_samplers()
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


def check_backend(backend) -> str | None:
    """``backend`` checked: None (automatic) or one of :data:`BACKENDS` (a ValueError else)."""
    if backend is None:
        return None
    b = str(backend).lower() if isinstance(backend, str) else backend
    if b not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {list(BACKENDS)} or "
                         "None (automatic: JAX for small designs, numba for large ones).")
    return b


def auto_backend(n_cells) -> str:
    """The backend the automatic choice takes for a design of ``n_cells`` (rows x
    coefficients): ``"jax"`` up to :data:`JAX_MAX_CELLS` when JAX is installed, else
    ``"numba"``."""
    if n_cells <= JAX_MAX_CELLS and _installed("jax"):
        return "jax"
    return "numba"


def backend_array(backend, value):
    """``value`` as the data of a model compiled with ``backend`` takes it: a JAX array for
    JAX (handed to XLA at every log-density call without a copy), else a NumPy array."""
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(value)
    return np.asarray(value)


def jax_cache_dir() -> Path | None:
    """The folder of JAX's on-disk compilation cache, created if missing; None if it cannot
    be created or written (the cache is then off).

    ``$SOFTBAYES_CACHE_DIR/jax`` if that variable is set, else ``softbayes/jax`` in
    ``$XDG_CACHE_HOME`` (default ``~/.cache``). Only the folders missing on the way are
    created; nothing already there is changed or removed.
    """
    base = os.environ.get(CACHE_ENV)
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".cache")
        base = os.path.join(xdg, "softbayes")
    path = Path(base).expanduser() / "jax"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    if not (path.is_dir() and os.access(path, os.W_OK | os.X_OK)):
        return None
    return path


def enable_jax_cache() -> Path | None:
    """Point JAX's persistent compilation cache at :func:`jax_cache_dir`, small programs
    included; returns the folder (None: off). A cache folder the user configured for JAX
    is left as it is."""
    import jax

    configured = jax.config.jax_compilation_cache_dir
    if configured:
        return Path(configured)
    path = jax_cache_dir()
    if path is None:
        return None
    try:
        jax.config.update("jax_compilation_cache_dir", str(path))
        # a small model's programs compile in well under JAX's default threshold (1 s)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except Exception:  # an unknown option in another JAX version: no cache, no failure
        return None
    return path


def compile_nutpie(pymc_model, backend="numba", *, fallback=False):
    """nutpie's compiled form of ``pymc_model`` with ``backend`` (one of :data:`BACKENDS`);
    returns ``(compiled, backend used)``.

    JAX compiles without freezing the data (so that ``with_data`` swaps it) and with the
    on-disk cache on (:func:`enable_jax_cache`). ``fallback``: compile with numba instead
    when JAX is missing or the model holds an Op without a JAX conversion.
    """
    import nutpie

    if backend == "jax":
        try:
            enable_jax_cache()
            return nutpie.compile_pymc_model(pymc_model, backend="jax", gradient_backend="jax",
                                             freeze_model=False), "jax"
        except (ImportError, NotImplementedError) as err:
            if not fallback:
                raise type(err)(f"backend='jax' cannot compile this model: {err} "
                                "(use backend='numba')") from err
    return nutpie.compile_pymc_model(pymc_model), "numba"


def sample_nuts(pymc_model, *, sampler, draws, tune, chains, cores, random_seed,
                progressbar=False, compiled=None, backend=None, **kwargs):
    """Sample ``pymc_model`` with NUTS; returns the DataTree of the sampler.

    Parameters
    ----------
    sampler : str
        One of :data:`SAMPLERS` (see :func:`resolve_sampler`).
    compiled : nutpie compiled model, optional
        For ``"nutpie"``: the compiled form of ``pymc_model`` (compiled here if None, with
        ``backend``: one of :data:`BACKENDS`, default numba).
    **kwargs
        Passed to ``nutpie.sample`` or ``pm.sample`` (e.g. ``target_accept``).
    """
    if sampler == "nutpie":
        import nutpie

        if compiled is None:
            compiled, _ = compile_nutpie(pymc_model, backend or "numba", fallback=True)
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
