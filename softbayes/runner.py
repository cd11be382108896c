"""Run an analysis spec: fit every candidate (with a fit cache), compare, write the report.

Safety
------
* The report is built in a temporary folder next to the target (same file system,
  ``reports/.<name>.tmp-XXXX``) and swapped in only when complete: an atomic exchange
  (Linux ``renameat2(RENAME_EXCHANGE)``) or, elsewhere, two renames that keep the old report
  until the new one is in place. An interrupted or failed run leaves the previous report
  untouched; leftovers of killed runs are removed by the next run of the same spec.
* One lock per report folder (``reports/.<name>.lock``, ``flock``): a second run of the same
  spec fails at once with a clear message; runs of different specs proceed in parallel (no
  shared temporary paths).
* Fits are cached in ``reports/.cache/fits/<key>.nc``, ``key`` = hash of (the model entry of
  the spec, the hash of the data columns it uses, labels and weights columns, seed, sampler
  settings, softbayes version); cache files are written to a temporary name and renamed, so a
  killed run never leaves a partial fit behind. ``force=True`` refits.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from softbayes._version import __version__
from softbayes.spec import Spec, SpecError, check_spec, load_spec

__all__ = [
    "ReportBusyError",
    "RunResult",
    "default_reports_dir",
    "demo_spec_path",
    "replace_dir",
    "report_lock",
    "run_spec",
    "write_report_atomically",
]

CACHE_DIR = Path(".cache") / "fits"


class ReportBusyError(RuntimeError):
    """Another run holds the lock of this report folder."""


@dataclass
class RunResult:
    report_dir: Path
    fitted: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- locations


def _repo_root() -> Path | None:
    """The source checkout holding this package (``models/`` next to ``softbayes/``)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "models").is_dir() and (root / "pyproject.toml").is_file() else None


def demo_spec_path(name: str = "star98") -> Path:
    """``models/<name>.toml`` of the checkout, else the copy shipped in the package."""
    root = _repo_root()
    if root is not None and (root / "models" / f"{name}.toml").is_file():
        return root / "models" / f"{name}.toml"
    from importlib.resources import files

    shipped = files("softbayes") / "specs" / f"{name}.toml"
    return Path(str(shipped))


def default_reports_dir(spec_path: Path) -> Path:
    """``reports/`` next to the spec's ``models/`` folder, else ``./reports``.

    A shipped spec (inside the installed package) reports to ``./reports`` of the current
    folder, or to the checkout's ``reports/`` when run from a source checkout.
    """
    spec_path = Path(spec_path).resolve()
    package = Path(__file__).resolve().parent
    if spec_path.is_relative_to(package):
        root = _repo_root()
        return (root / "reports") if root is not None else Path.cwd() / "reports"
    if spec_path.parent.name == "models":
        return spec_path.parent.parent / "reports"
    return Path.cwd() / "reports"


def resolve_spec_path(arg: str) -> Path:
    """A spec path, or a bare name looked up in ``./models``, the checkout, the package."""
    p = Path(arg)
    if p.is_file():
        return p
    if p.suffix == "" and os.sep not in arg and "/" not in arg:
        for cand in (Path("models") / f"{arg}.toml",):
            if cand.is_file():
                return cand
        shipped = demo_spec_path(arg)
        if shipped.is_file():
            return shipped
    raise SpecError(f"spec file not found: {arg}")


# --------------------------------------------------------------------------- locking & swap


@contextlib.contextmanager
def report_lock(reports_root: Path, name: str):
    """Exclusive, non-blocking lock of one report folder (released on exit or death)."""
    reports_root.mkdir(parents=True, exist_ok=True)
    path = reports_root / f".{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - non-POSIX: no locking
            pass
        except BlockingIOError:
            raise ReportBusyError(
                f"another softbayes run is writing {reports_root / name} (lock {path} is "
                "held); wait for it to finish. Runs of different specs may run at once."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        os.close(fd)


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux >= 3.15 with glibc >= 2.28); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


def replace_dir(new: Path, target: Path) -> None:
    """Put folder ``new`` at ``target``; the old ``target`` stays until ``new`` is in place."""
    new, target = Path(new), Path(target)
    if not target.exists():
        os.rename(new, target)
        return
    if _renameat2_exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # now holds the old report
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _clean_stale(reports_root: Path, name: str) -> None:
    """Remove temporary folders of killed runs (we hold the lock: none is in use)."""
    for pattern in (f".{name}.tmp-*", f".{name}.old-*"):
        for p in reports_root.glob(pattern):
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def write_report_atomically(target: Path):
    """Yield a temporary folder next to ``target``; on success it replaces ``target``.

    Holds the report folder's lock throughout. On any exception (or interrupt) the
    temporary folder is removed and ``target`` is left as it was.
    """
    target = Path(target).resolve()
    root = target.parent
    with report_lock(root, target.name):
        _clean_stale(root, target.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=root))
        try:
            yield tmp
            os.chmod(tmp, 0o755)
            replace_dir(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- fitting


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _save_atomically(fit, path: Path) -> None:
    from softbayes.fit_io import save_fit

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".nc.part", dir=path.parent)
    os.close(fd)
    try:
        save_fit(fit, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _fit_slug(name: str, taken: set) -> str:
    import re

    base = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "model"
    slug, i = base, 2
    while slug in taken:
        slug, i = f"{base}_{i}", i + 1
    taken.add(slug)
    return slug


def _quiet_libraries() -> None:
    import logging

    for name in ("pymc", "pymc.sampling", "pytensor", "nutpie", "arviz"):
        logging.getLogger(name).setLevel(logging.WARNING)


def fit_models(spec: Spec, built: dict, cache_dir: Path, *, force=False, echo=print):
    """Fit (or reuse) every model.

    Returns ``({name: fit}, {name: info}, fitted, reused, failed)``; ``failed`` maps the name
    of a model whose fit raised (e.g. a sampler that could not start) to the reason. Such a
    model is left out of the comparison and named in the report; the others still run.
    """
    from softbayes.fit_io import data_hash, load_fit

    fits, info, fitted, reused, failed = {}, {}, [], [], {}
    if cache_dir.is_dir():  # partial cache files of killed runs (an hour old: not in use)
        for part in cache_dir.glob(".*.nc.part"):
            with contextlib.suppress(OSError):
                if time.time() - part.stat().st_mtime > 3600:
                    part.unlink()
    total = len(built)
    width = max(len(n) for n in built)
    for i, (name, (ms, model, msgs)) in enumerate(built.items(), start=1):
        key = spec.cache_key(ms, data_hash(model.data))
        path = cache_dir / f"{key}.nc"
        head = f"  [{i}/{total}] {name:<{width}}  {ms.likelihood:<20}"
        fit = None
        if path.is_file() and not force:
            try:
                fit = load_fit(path, check=False)
            except Exception:  # unreadable cache entry: refit
                fit = None
        if fit is not None:
            secs = float(fit.attrs.get("softbayes_cli_fit_seconds", float("nan")))
            echo(f"{head}  reused cached fit (fitted in {_fmt_s(secs)} originally)")
            reused.append(name)
            cached = True
        else:
            echo(f"{head}  compiling and sampling ({ms.sampler.describe()}) ...", nl=False)
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit = model.fit(random_seed=spec.seed, progressbar=False,
                                    **ms.sampler.fit_kwargs())
            except Exception as exc:  # a finding, not a crash: the other models still run
                secs = time.perf_counter() - t0
                reason = " ".join(str(exc).split()) or type(exc).__name__
                echo(f" FAILED after {_fmt_s(secs)}: {reason}")
                failed[name] = f"{type(exc).__name__}: {reason}"
                continue
            secs = time.perf_counter() - t0
            fit.attrs["softbayes_cli_fit_seconds"] = float(secs)
            fit.attrs["softbayes_cli_cache_key"] = key
            _save_atomically(fit, path)
            echo(f" done in {_fmt_s(secs)}")
            fitted.append(name)
            cached = False
        fits[name] = fit
        info[name] = {"description": ms.description, "time": secs, "cached": cached,
                      "notes": list(msgs), "cache_file": path}
    if not fits:
        raise RuntimeError("no model could be fitted: " + "; ".join(
            f"{name}: {why}" for name, why in failed.items()))
    return fits, info, fitted, reused, failed


# --------------------------------------------------------------------------- the run


def _default_echo(msg: str, nl: bool = True) -> None:
    print(msg, end="\n" if nl else "", file=sys.stderr, flush=True)


def run_spec(spec_path, *, reports_dir=None, only=None, force=False, echo=None) -> RunResult:
    """Fit every candidate of the spec, compare them, write ``reports/<spec name>/``.

    Parameters
    ----------
    spec_path : path-like
        The spec (``models/<name>.toml``).
    reports_dir : path-like, optional
        Folder of the reports (default :func:`default_reports_dir`).
    only : list of str, optional
        Run only these candidates (the report says which were left out).
    force : bool
        Refit even when a cached fit matches.
    echo : callable, optional
        ``echo(message, nl=True)`` for progress (default: stderr).
    """
    echo = echo or _default_echo
    t_start = time.perf_counter()
    _quiet_libraries()
    spec = load_spec(spec_path)
    data, built = check_spec(spec, only)
    root = Path(reports_dir) if reports_dir is not None else default_reports_dir(spec.path)
    root = root.resolve()
    target = root / spec.name
    echo(f"softbayes {__version__}: {spec.title}")
    echo(f"  spec {spec.path}  ->  report {target}")
    echo(f"  data: {spec.data.describe()}, {len(data)} rows; labels "
         f"{', '.join(spec.data.labels)}" + (f"; weights {spec.data.weights}"
                                             if spec.data.weights else ""))
    result = RunResult(report_dir=target)
    with write_report_atomically(target) as tmp:
        fits, info, result.fitted, result.reused, result.failed = fit_models(
            spec, built, root / CACHE_DIR, force=force, echo=echo)
        (tmp / "fits").mkdir()
        taken: set = set()
        fit_files = {}
        for name in fits:
            slug = _fit_slug(name, taken)
            _link_or_copy(info[name]["cache_file"], tmp / "fits" / f"{slug}.nc")
            fit_files[name] = f"fits/{slug}.nc"
        subset = ""
        if only:
            left = [m.name for m in spec.models if m.name not in only]
            if left:
                subset = ("Partial run (--only): left out " + ", ".join(left) + ".")
        failed = result.failed
        if failed:
            listed = "; ".join(f"{name} -- {why}" for name, why in failed.items())
            note = (f"Not fitted (left out of the comparison): {listed}. Check its priors and "
                    "data, or try another family or sampler settings; the other models are "
                    "compared without it.")
            subset = f"{subset} {note}".strip()
        weights = None
        if spec.data.weights:
            weights = data[spec.data.weights].to_numpy()
        result.warnings = build_and_write(
            fits, tmp, title=spec.title, name=spec.name, description=spec.description,
            data_source=f"{spec.data.describe()}, {len(data)} rows, {data.shape[1]} columns.",
            model_info=info, weights_column=spec.data.weights, weight_values=weights,
            compare_kwargs={**spec.compare.compare_kwargs(), "seed": spec.seed},
            subset_note=subset, echo=echo, t_start=t_start,
            run_info={"spec": str(spec.path), "fitted": result.fitted, "reused": result.reused,
                      "failed": result.failed, "fit_files": fit_files},
        )
        (tmp / "spec.toml").write_text(spec.text, encoding="utf-8")
    result.seconds = time.perf_counter() - t_start
    echo(f"done in {_fmt_s(result.seconds)}: {target / 'index.html'}")
    return result


def build_and_write(fits: dict, folder: Path, *, title: str, name: str, description="",
                    data_source="", model_info=None, weights_column=None, weight_values=None,
                    compare_kwargs=None, subset_note="", echo=None, t_start=None,
                    run_info=None) -> list[str]:
    """Compare ``fits`` and write the report files into ``folder`` (not atomic by itself)."""
    from softbayes.comparison import compare
    from softbayes.report import build_report, write_report

    echo = echo or _default_echo
    t0 = time.perf_counter()
    kfold_msgs = []

    def progress(fit_name, fold, k):
        if fold == 1:
            kfold_msgs.append(fit_name)
            echo(f"    K-fold refits of {fit_name}: {k} folds ...")

    echo(f"  comparing {len(fits)} model{'s' if len(fits) != 1 else ''} (PSIS-LOO, scores, "
         "diagnostics) ...", nl=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = compare(fits, progress=progress, **(compare_kwargs or {}))
    echo(f" done in {_fmt_s(time.perf_counter() - t0)}")
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
        "softbayes_version": __version__,
        "title": title,
        "models": list(fits),
        "generated": report.generated,
        "warnings": report.warnings,
        **{k: v for k, v in info.items() if k != "total_seconds"},
    }
    (Path(folder) / "run.json").write_text(json.dumps(meta, indent=2, default=str) + "\n",
                                           encoding="utf-8")
    echo(f" done in {_fmt_s(time.perf_counter() - t1)}")
    return report.warnings
