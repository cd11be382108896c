"""Run an analysis spec: fit every candidate (with a fit cache), compare, write the report.

* The report folder is written through :func:`softbayes.app.files.write_report_atomically`:
  built in a temporary folder, swapped in only when complete, under the report's lock, into
  a folder softbayes owns (see :mod:`softbayes.app.files`). An interrupted or failed run
  leaves the previous report untouched.
* Fits are cached in ``reports/.cache/fits/<key>.nc``, ``key`` = hash of (the model entry of
  the spec, the hash of the data columns it uses, labels and weights columns, seed, sampler
  settings, softbayes version); cache files are written to a temporary name and renamed
  (:func:`softbayes.app.files.save_fit_atomically`), so a killed run never leaves a partial
  fit behind. ``force=True`` refits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from softbayes._version import __version__
from softbayes.analysis.comparison import compare
from softbayes.analysis.diagnostics import diagnose_fit
from softbayes.app.files import (
    RUN_VERSION_KEY,
    check_report_target,
    link_or_copy,
    save_fit_atomically,
    write_report_atomically,
)
from softbayes.app.locations import default_reports_dir
from softbayes.app.report import build_report, write_report
from softbayes.app.spec import Spec, SpecError, check_spec, load_spec
from softbayes.backend.calibration_math import dispersion_warning
from softbayes.backend.executor import MAX_WORKERS, Executor, Task, fit_task
from softbayes.io.attrs import FitAttrs
from softbayes.io.fits import data_hash, load_fit

__all__ = [
    "CACHE_DIR",
    "RunResult",
    "build_and_write",
    "check_compute",
    "fit_models",
    "fit_slug",
    "format_seconds",
    "quiet_libraries",
    "run_spec",
]

#: The fit cache, relative to the reports folder.
CACHE_DIR = Path(".cache") / "fits"
# Partial cache files older than this belong to killed runs (no fit takes this long to save).
_STALE_PART_SECONDS = 3600


@dataclass
class RunResult:
    """What :func:`run_spec` did: the report folder, which models were fitted, reused from
    the cache or failed (name -> reason), the time taken and the report's warnings."""

    report_dir: Path
    fitted: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def format_seconds(seconds: float) -> str:
    """``12.3 s``, or ``4.5 min`` from two minutes on."""
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def fit_slug(name: str, taken: set) -> str:
    """A file-name stem for model ``name`` not yet in ``taken`` (and added to it)."""
    base = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "model"
    slug, i = base, 2
    while slug in taken:
        slug, i = f"{base}_{i}", i + 1
    taken.add(slug)
    return slug


def quiet_libraries() -> None:
    """Silence the INFO logging of PyMC, PyTensor, nutpie and ArviZ (progress is ours)."""
    for name in ("pymc", "pymc.sampling", "pytensor", "nutpie", "arviz"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _default_echo(msg: str, nl: bool = True) -> None:
    print(msg, end="\n" if nl else "", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- fitting


def _remove_stale_parts(cache_dir: Path) -> None:
    """Partial cache files of killed runs (an hour old: not in use)."""
    if not cache_dir.is_dir():
        return
    for part in cache_dir.glob(".*.nc.part"):
        with contextlib.suppress(OSError):
            if time.time() - part.stat().st_mtime > _STALE_PART_SECONDS:
                part.unlink()


def _load_cached(path: Path, force: bool):
    """``(fit, seconds it took)`` from the cache at ``path``; ``(None, None)`` if absent,
    unreadable or ``force``."""
    if force or not path.is_file():
        return None, None
    try:
        fit = load_fit(path, check=False)
        secs = FitAttrs.from_attrs(fit.attrs, warn_unknown=False).cli_fit_seconds
    except Exception:  # unreadable cache entry: refit
        return None, None
    return fit, float("nan") if secs is None else secs


def _cache(fit, secs: float, key: str, path: Path) -> None:
    """Record the fit's time and cache key in its attrs and save it to the cache."""
    FitAttrs(cli_fit_seconds=float(secs), cli_cache_key=key).write(fit)
    save_fit_atomically(fit, path)


def fit_models(spec: Spec, built: dict, cache_dir: Path, *, force=False, echo=print,
               executor=None):
    """Fit (or reuse) every model; the fits run as tasks on ``executor`` (default serial).

    Returns ``({name: fit}, {name: info}, fitted, reused, failed)``; ``failed`` maps the name
    of a model whose fit raised (e.g. a sampler that could not start) to the reason. Such a
    model is left out of the comparison and named in the report; the others still run. Each
    fit is cached (atomically) as soon as it arrives, whatever order the tasks finish in.
    """
    executor = executor or Executor(echo=echo)
    fits, info, reused, failed = {}, {}, [], {}
    _remove_stale_parts(cache_dir)
    width = max(len(n) for n in built)
    todo = []
    for i, (name, (ms, model, msgs)) in enumerate(built.items(), start=1):
        key = spec.cache_key(ms, data_hash(model.data))
        path = cache_dir / f"{key}.nc"
        fit, secs = _load_cached(path, force)
        info[name] = {"description": ms.description, "time": secs, "cached": fit is not None,
                      "notes": list(msgs), "cache_file": path, "key": key}
        head = f"  [{i}/{len(built)}] {name:<{width}}  {ms.likelihood:<20}"
        if fit is None:
            echo(f"{head}  compiling and sampling ({ms.sampler.describe()}) ...")
            todo.append(name)
            continue
        echo(f"{head}  reused cached fit (fitted in {format_seconds(secs)} originally)")
        reused.append(name)
        fits[name] = fit
    tasks = [Task(fit_task, executor.scatter(built[name][1].description), None, spec.seed,
                  label=f"model {name} ({built[name][0].likelihood})",
                  options={"progressbar": False, **built[name][0].fit_kwargs()})
             for name in todo]

    def on_result(i, res):
        name = todo[i]
        if res.ok:
            info[name]["time"] = res.seconds
            _cache(res.value, res.seconds, info[name]["key"], info[name]["cache_file"])
        else:  # a finding, not a crash: the other models still run
            failed[name] = res.error

    results = executor.run(tasks, on_result=on_result)
    fitted = [name for name, res in zip(todo, results, strict=True) if res.ok]
    fits.update({name: res.value for name, res in zip(todo, results, strict=True) if res.ok})
    fits = {name: fits[name] for name in built if name in fits}  # spec order
    for name in failed:
        info.pop(name)
    if not fits:
        raise RuntimeError("no model could be fitted: " + "; ".join(
            f"{name}: {why}" for name, why in failed.items()))
    return fits, info, fitted, reused, failed


def fit_summary(name: str, fit) -> tuple[str, list[str]]:
    """``(summary line, warnings)`` of model ``name``'s fit for the terminal: largest R-hat,
    smallest bulk/tail ESS, divergences, and the diagnostics' and dispersion warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diag = diagnose_fit(fit, name=name)
    warns = list(diag.warnings)
    attrs = FitAttrs.from_attrs(fit.attrs, warn_unknown=False)
    if attrs.dispersion is not None and attrs.calibration in (None, "none"):
        msg = dispersion_warning(attrs.dispersion, attrs.family)
        if msg:
            warns.append(f"{name}: {msg}")
    div = "n/a" if diag.n_divergent is None else str(diag.n_divergent)
    line = (f"  {name}: R-hat max {diag.rhat_max:.3f}, min ESS "
            f"{min(diag.ess_bulk_min, diag.ess_tail_min):.0f}, divergences {div}, "
            f"{len(warns)} warning{'s' if len(warns) != 1 else ''}")
    return line, warns


# --------------------------------------------------------------------------- the run


def _report_target(spec: Spec, reports_dir) -> tuple[Path, Path]:
    """``(reports root, report folder)``, the folder checked before any fitting."""
    root = Path(reports_dir) if reports_dir is not None else default_reports_dir(spec.path)
    root = root.resolve()
    target = root / spec.name
    if target.parent != root or target.name != spec.name:  # load_spec refuses such names
        raise SpecError(f"the spec's name {spec.name!r} does not name a folder inside {root}.",
                        path=spec.path)
    check_report_target(target)  # before any fitting: refusing later would waste the fits
    return root, target


def _subset_note(spec: Spec, only, failed: dict) -> str:
    """The report's note on models left out: by ``--only`` or because their fit failed."""
    subset = ""
    if only:
        left = [m.name for m in spec.models if m.name not in only]
        if left:
            subset = "Partial run (--only): left out " + ", ".join(left) + "."
    if failed:
        listed = "; ".join(f"{name} -- {why}" for name, why in failed.items())
        note = (f"Not fitted (left out of the comparison): {listed}. Check its priors and "
                "data, or try another family or sampler settings; the other models are "
                "compared without it.")
        subset = f"{subset} {note}".strip()
    return subset


def _copy_fits(fits: dict, info: dict, folder: Path) -> dict:
    """Link the cached fits into ``folder/fits/``; ``{name: "fits/<slug>.nc"}``."""
    (folder / "fits").mkdir()
    taken: set = set()
    fit_files = {}
    for name in fits:
        slug = fit_slug(name, taken)
        link_or_copy(info[name]["cache_file"], folder / "fits" / f"{slug}.nc")
        fit_files[name] = f"fits/{slug}.nc"
    return fit_files


def check_compute(workers=None, scheduler=None) -> None:
    """Raise a ``ValueError`` on a bad ``--workers`` / ``--scheduler`` (before any work)."""
    if workers is not None and scheduler is not None:
        raise ValueError("give either --workers or --scheduler, not both.")
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"--workers must be from 1 to {MAX_WORKERS}, got {workers}.")
    if scheduler is not None and not re.fullmatch(r"(tcp|tls|inproc|ucx|ws|wss)://\S+",
                                                  scheduler):
        raise ValueError(f"--scheduler must be a Dask scheduler address such as "
                         f"tcp://host:8786, got {scheduler!r}.")


def _executor(spec: Spec, workers, scheduler, client, echo) -> Executor:
    """Where the fits run: ``client`` or ``scheduler`` (Python / command line only), else
    ``workers`` local processes (command line, else the spec's ``[compute] workers``), else
    serially in this process."""
    if client is not None or scheduler is not None:
        return Executor(client, scheduler=scheduler, echo=echo)
    workers = workers if workers is not None else spec.compute.workers
    return Executor(workers=workers, echo=echo)


def run_spec(spec_path, *, reports_dir=None, only=None, force=False, echo=None, workers=None,
             scheduler=None, client=None) -> RunResult:
    """Fit every candidate of the spec, compare them, write ``reports/<spec name>/``.

    Parameters
    ----------
    spec_path : path-like
        The spec (``models/<name>.toml``).
    reports_dir : path-like, optional
        Folder of the reports (default :func:`softbayes.app.locations.default_reports_dir`).
    only : list of str, optional
        Run only these candidates (the report says which were left out).
    force : bool
        Refit even when a cached fit matches.
    echo : callable, optional
        ``echo(message, nl=True)`` for progress (default: stderr).
    workers : int, optional
        Fit and refit on a local Dask cluster of this many processes (default: the spec's
        ``[compute] workers``; neither: serially).
    scheduler : str, optional
        Fit and refit on the Dask scheduler at this address (trusted: never from a spec).
    client : distributed.Client, optional
        Fit and refit on this Dask client's cluster.

    The numbers do not depend on where the fits run. The report is written only once every
    fit and refit has finished.
    """
    echo = echo or _default_echo
    t_start = time.perf_counter()
    quiet_libraries()
    spec = load_spec(spec_path)
    data, built = check_spec(spec, only)
    root, target = _report_target(spec, reports_dir)
    echo(f"softbayes {__version__}: {spec.title}")
    echo(f"  spec {spec.path}  ->  report {target}")
    echo(f"  data: {spec.data.describe()}, {len(data)} rows; labels "
         f"{', '.join(spec.data.labels)}" + (f"; weights {spec.data.weights}"
                                             if spec.data.weights else ""))
    result = RunResult(report_dir=target)
    with (_executor(spec, workers, scheduler, client, echo) as executor,
          write_report_atomically(target) as tmp):
        fits, info, result.fitted, result.reused, result.failed = fit_models(
            spec, built, root / CACHE_DIR, force=force, echo=echo, executor=executor)
        fit_files = _copy_fits(fits, info, tmp)
        weights = data[spec.data.weights].to_numpy() if spec.data.weights else None
        result.warnings = build_and_write(
            fits, tmp, title=spec.title, name=spec.name, description=spec.description,
            data_source=f"{spec.data.describe()}, {len(data)} rows, {data.shape[1]} columns.",
            model_info=info, weights_column=spec.data.weights, weight_values=weights,
            compare_kwargs={**spec.compare.compare_kwargs(), "seed": spec.seed,
                            "client": executor},
            subset_note=_subset_note(spec, only, result.failed), echo=echo, t_start=t_start,
            run_info={"spec": str(spec.path), "fitted": result.fitted, "reused": result.reused,
                      "failed": result.failed, "fit_files": fit_files},
        )
        (tmp / "spec.toml").write_text(spec.text, encoding="utf-8")
    for name, fit in fits.items():
        line, warns = fit_summary(name, fit)
        echo(line)
        for msg in warns:
            echo(f"    warning: {msg}")
    result.seconds = time.perf_counter() - t_start
    echo(f"done in {format_seconds(result.seconds)}: {target / 'index.html'}")
    return result


def build_and_write(fits: dict, folder: Path, *, title: str, name: str, description="",
                    data_source="", model_info=None, weights_column=None, weight_values=None,
                    compare_kwargs=None, subset_note="", echo=None, t_start=None,
                    run_info=None) -> list[str]:
    """Compare ``fits`` and write the report files into ``folder`` (not atomic by itself).

    Returns the report's warnings. ``run.json`` records the version, title, models and
    ``run_info``.
    """
    echo = echo or _default_echo
    t0 = time.perf_counter()

    echo(f"  comparing {len(fits)} model{'s' if len(fits) != 1 else ''} (PSIS-LOO, scores, "
         "diagnostics; K-fold refits where PSIS-LOO is unreliable) ...")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = compare(fits, **(compare_kwargs or {}))
    echo(f"  compared in {format_seconds(time.perf_counter() - t0)}")
    t1 = time.perf_counter()
    echo("  writing the report (marginal effects, figures, tables) ...", nl=False)
    info = dict(run_info or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = build_report(
            cmp, fits, title=title, name=name, description=description,
            data_source=data_source, model_info=model_info, weights_column=weights_column,
            weight_values=weight_values, subset_note=subset_note, run_info=info,
        )
        if t_start is not None:
            report.run_info["total_seconds"] = time.perf_counter() - t_start
        write_report(report, folder)
    meta = {
        RUN_VERSION_KEY: __version__,
        "title": title,
        "models": list(fits),
        "generated": report.generated,
        "warnings": report.warnings,
        **{k: v for k, v in info.items() if k != "total_seconds"},
    }
    (Path(folder) / "run.json").write_text(json.dumps(meta, indent=2, default=str) + "\n",
                                           encoding="utf-8")
    echo(f" done in {format_seconds(time.perf_counter() - t1)}")
    return report.warnings
