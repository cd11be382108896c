"""Run an analysis spec: fit every candidate (with a fit cache), compare, write the report.

Safety
------
* The report is built in a temporary folder next to the target (same file system,
  ``reports/.<name>.tmp-XXXX``) and swapped in only when complete: an atomic exchange
  (Linux ``renameat2(RENAME_EXCHANGE)``) or, elsewhere, two renames that keep the old report
  until the new one is in place. An interrupted or failed run leaves the previous report
  untouched; leftovers of killed runs are removed by the next run of the same spec.
* softbayes replaces or writes into only the folders it created: every report folder carries
  the marker file ``.softbayes-report`` (JSON: tool, version, kind), written into the
  temporary folder when it is created, so the folder swapped in already carries it. An
  existing non-empty folder without it, the current folder, the home folder and the file
  system root are refused (:func:`check_report_target`). Leftovers of killed runs are found
  by their exact name (``.<name>.tmp-XXXXXXXX``) and removed only if they carry the marker.
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
import re
import shutil
import stat
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from softbayes._version import __version__
from softbayes.app.spec import Spec, SpecError, check_spec, load_spec

__all__ = [
    "REPORT_MARKER",
    "ReportBusyError",
    "ReportTargetError",
    "RunResult",
    "check_report_target",
    "default_reports_dir",
    "demo_spec_path",
    "is_report_folder",
    "replace_dir",
    "report_lock",
    "run_spec",
    "write_marker",
    "write_report_atomically",
]

CACHE_DIR = Path(".cache") / "fits"

# Written into every report folder softbayes creates; only a folder carrying it (or an empty
# one) is ever replaced, so a mistyped path never costs a user's files.
REPORT_MARKER = ".softbayes-report"
_MARKER_MAX_BYTES = 4096
# A report written before the marker existed is adopted only if it holds nothing but what a
# report consists of (file name -> kind; folder -> suffix of its plain files).
_LEGACY_FILES = ("index.html", "report.md", "run.json", "spec.toml")
_LEGACY_DIRS = {"figures": ".png", "tables": ".csv", "fits": ".nc"}
# mkdtemp's names: prefix + 8 characters of [a-z0-9_].
_TEMP_SUFFIX = r"\.(?:tmp|old)-[A-Za-z0-9_]{8}"


class ReportBusyError(RuntimeError):
    """Another run holds the lock of this report folder."""


class ReportTargetError(ValueError):
    """A folder softbayes will not replace or write a report into (it did not create it)."""


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
    root = Path(__file__).resolve().parents[2]
    return root if (root / "models").is_dir() and (root / "pyproject.toml").is_file() else None


def demo_spec_path(name: str = "star98") -> Path:
    """``models/<name>.toml`` of the checkout, else the copy shipped in the package."""
    root = _repo_root()
    if root is not None and (root / "models" / f"{name}.toml").is_file():
        return root / "models" / f"{name}.toml"
    from importlib.resources import files

    shipped = files("softbayes.app") / "specs" / f"{name}.toml"
    return Path(str(shipped))


def default_reports_dir(spec_path: Path) -> Path:
    """``reports/`` next to the spec's ``models/`` folder, else ``./reports``.

    A shipped spec (inside the installed package) reports to ``./reports`` of the current
    folder, or to the checkout's ``reports/`` when run from a source checkout.
    """
    spec_path = Path(spec_path).resolve()
    package = Path(__file__).resolve().parents[1]
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


# --------------------------------------------------------------------------- report folders


def write_marker(folder: Path) -> None:
    """Mark ``folder`` as a report folder softbayes created (and may replace)."""
    payload = {"tool": "softbayes", "version": __version__, "kind": "report"}
    (Path(folder) / REPORT_MARKER).write_text(json.dumps(payload) + "\n", encoding="utf-8")


def _read_small(path: Path, limit: int) -> bytes | None:
    """The bytes of a plain file (no symlink) of at most ``limit`` bytes, else None."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        return os.read(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _has_marker(folder: Path) -> bool:
    raw = _read_small(Path(folder) / REPORT_MARKER, _MARKER_MAX_BYTES)
    if raw is None:
        return False
    try:
        meta = json.loads(raw)
    except ValueError:
        return False
    return (isinstance(meta, dict) and meta.get("tool") == "softbayes"
            and meta.get("kind") == "report")


def _is_legacy_report(folder: Path) -> bool:
    """A report of a softbayes without markers: ``run.json`` and only report files."""
    try:
        entries = list(os.scandir(folder))
        for e in entries:
            if e.name in _LEGACY_FILES:
                if not e.is_file(follow_symlinks=False):
                    return False
            elif e.name in _LEGACY_DIRS and e.is_dir(follow_symlinks=False):
                suffix = _LEGACY_DIRS[e.name]
                with os.scandir(e.path) as inner:
                    if not all(f.is_file(follow_symlinks=False) and f.name.endswith(suffix)
                               for f in inner):
                        return False
            else:
                return False
    except OSError:
        return False
    raw = _read_small(Path(folder) / "run.json", 1 << 20)
    try:
        meta = json.loads(raw) if raw is not None else None
    except ValueError:
        return False
    return isinstance(meta, dict) and "softbayes_version" in meta


def is_report_folder(folder) -> bool:
    """True if ``folder`` is a report folder softbayes wrote (its marker, or an older report)."""
    folder = Path(folder)
    return folder.is_dir() and (_has_marker(folder) or _is_legacy_report(folder))


def check_report_target(target, *, what: str = "report folder") -> Path:
    """The resolved ``target`` if softbayes may put a report there, else :class:`ReportTargetError`.

    Allowed: a folder that does not exist yet, an empty folder, or a report folder softbayes
    wrote (:func:`is_report_folder`). Refused, whatever they hold: the file system root, the
    home folder, the current folder and any folder holding one of them (replacing the report
    swaps the whole folder away).
    """
    given = Path(target)
    target = given.resolve()
    shown = f"{what} {given}" + (f" ({target})" if str(given) != str(target) else "")
    new = ("give a new folder (softbayes creates it), e.g. reports/<name>")
    if target == Path(target.anchor):
        raise ReportTargetError(f"{shown} is the root of the file system; softbayes does not "
                                f"write a report there: {new}.")
    for place, label in ((Path.cwd, "the current folder"), (Path.home, "your home folder")):
        try:
            where = place().resolve()
        except (OSError, RuntimeError):  # deleted working folder, no HOME
            continue
        if where.is_relative_to(target):
            held = "" if where == target else f" (it holds {label}, {where})"
            name = label if where == target else "a folder"
            hint = "run softbayes from another folder, or " if place is Path.cwd else ""
            raise ReportTargetError(f"{shown} is {name}{held}; writing the report would replace "
                                    f"it: {hint}{new}.")
    if os.path.lexists(target) and not target.is_dir():
        raise ReportTargetError(f"{shown} exists and is not a folder: {new}.")
    if target.is_dir():
        try:
            with os.scandir(target) as it:
                empty = next(it, None) is None
        except OSError as err:
            raise ReportTargetError(f"{shown} cannot be read ({err.strerror}): {new}.") from None
        if not empty and not is_report_folder(target):
            raise ReportTargetError(
                f"{shown} already exists and was not created by softbayes (it has no "
                f"{REPORT_MARKER} marker); softbayes replaces only the report folders it "
                f"created. Write the report to a new folder, or remove this one yourself if "
                "nothing in it is needed.")
    return target


# --------------------------------------------------------------------------- locking & swap


@contextlib.contextmanager
def report_lock(reports_root: Path, name: str):
    """Exclusive, non-blocking lock of one report folder (released on exit or death)."""
    reports_root.mkdir(parents=True, exist_ok=True)
    path = reports_root / f".{name}.lock"
    try:  # never through a symlink: truncating it would truncate whatever it points to
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as err:
        raise ReportTargetError(f"cannot open the report lock {path} ({err.strerror}); it "
                                "must be a plain file softbayes creates.") from None
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
        # The pid is only a hint for people; a file of that name with other content is
        # someone else's and is left as it is (the flock works either way).
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_size <= 32 and (
                os.read(fd, 32).strip().isdigit() or st.st_size == 0):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
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
    """Put folder ``new`` at ``target``; the old ``target`` stays until ``new`` is in place.

    The old ``target`` is deleted: callers first check that softbayes owns it
    (:func:`check_report_target`, as :func:`write_report_atomically` does).
    """
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
    """Remove temporary folders of killed runs (we hold the lock: none is in use).

    The report's name is user text: it is matched literally (never as a glob), against the
    exact names :func:`write_report_atomically` and :func:`replace_dir` create, and a folder is
    removed only if it carries the marker written when it was created.
    """
    exact = re.compile(re.escape(f".{name}") + _TEMP_SUFFIX)
    try:
        with os.scandir(reports_root) as it:
            stale = [Path(e.path) for e in it
                     if exact.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for p in stale:
        if _has_marker(p):
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def write_report_atomically(target: Path):
    """Yield a temporary folder next to ``target``; on success it replaces ``target``.

    Holds the report folder's lock throughout. On any exception (or interrupt) the
    temporary folder is removed and ``target`` is left as it was. ``target`` must pass
    :func:`check_report_target` (checked before and again right before the swap); the
    temporary folder carries the report marker from the start.
    """
    target = check_report_target(target)
    root = target.parent
    with report_lock(root, target.name):
        _clean_stale(root, target.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=root))
        try:
            write_marker(tmp)
            yield tmp
            os.chmod(tmp, 0o755)
            check_report_target(target)  # the folder may have changed while we worked
            replace_dir(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- fitting


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _save_atomically(fit, path: Path) -> None:
    from softbayes.io.fits import save_fit

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
    from softbayes.io.fits import data_hash, load_fit

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
    if target.parent != root or target.name != spec.name:  # load_spec refuses such names
        raise SpecError(f"the spec's name {spec.name!r} does not name a folder inside {root}.",
                        path=spec.path)
    check_report_target(target)  # before any fitting: refusing later would waste the fits
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
    from softbayes.analysis.comparison import compare
    from softbayes.app.report import build_report, write_report

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
