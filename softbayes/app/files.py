"""File safety: report folders softbayes owns, their lock, and atomic replacement of files.

* A report is built in a temporary folder next to the target (same file system,
  ``reports/.<name>.tmp-XXXXXXXX``) and swapped in only when complete
  (:func:`write_report_atomically`): an atomic exchange (Linux
  ``renameat2(RENAME_EXCHANGE)``, :func:`renameat2_exchange`) or, elsewhere, two renames that
  keep the old report until the new one is in place (:func:`replace_dir`). An interrupted or
  failed run leaves the previous report untouched; leftovers of killed runs are removed by the
  next run of the same spec (:func:`clean_stale`).
* softbayes replaces or writes into only the folders it created: every report folder carries
  the marker file :data:`REPORT_MARKER` (JSON: tool, version, kind), written into the
  temporary folder when it is created (:func:`write_marker`), so the folder swapped in already
  carries it. An existing non-empty folder without it, the current folder, the home folder and
  the file system root are refused (:func:`check_report_target`).
* One lock per report folder (``reports/.<name>.lock``, :mod:`filelock`, :func:`report_lock`): a
  second run of the same spec fails at once with :class:`ReportBusyError`; runs of different
  specs proceed in parallel (no shared temporary paths).
* Fit files are written to a temporary name and renamed (:func:`save_fit_atomically`), so a
  killed run never leaves a partial fit behind.
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
from pathlib import Path

import filelock

from softbayes._version import __version__
from softbayes.io.attrs import attr_key
from softbayes.io.fits import save_fit

__all__ = [
    "REPORT_MARKER",
    "RUN_VERSION_KEY",
    "ReportBusyError",
    "ReportTargetError",
    "check_report_target",
    "clean_stale",
    "has_marker",
    "is_report_folder",
    "link_or_copy",
    "path_problem",
    "renameat2_exchange",
    "replace_dir",
    "report_lock",
    "save_fit_atomically",
    "write_marker",
    "write_report_atomically",
]

#: Written into every report folder softbayes creates; only a folder carrying it (or an empty
#: one) is ever replaced, so a mistyped path never costs a user's files.
REPORT_MARKER = ".softbayes-report"
_MARKER_MAX_BYTES = 4096
# A report written before the marker existed is adopted only if it holds nothing but what a
# report consists of (file name -> kind; folder -> suffix of its plain files).
_LEGACY_FILES = ("index.html", "report.md", "run.json", "spec.toml")
#: The key of ``run.json`` (written into every report folder) holding the softbayes version:
#: the fit attribute's name, so a report and its fits say it the same way.
RUN_VERSION_KEY = attr_key("version")
_LEGACY_DIRS = {"figures": ".png", "tables": ".csv", "fits": ".nc"}
# mkdtemp's names: prefix + 8 characters of [a-z0-9_].
_TEMP_SUFFIX = r"\.(?:tmp|old)-[A-Za-z0-9_]{8}"


class ReportBusyError(RuntimeError):
    """Another run holds the lock of this report folder."""


class ReportTargetError(ValueError):
    """A folder softbayes will not replace or write a report into (it did not create it)."""


# --------------------------------------------------------------------------- paths


def path_problem(path) -> str | None:
    """Why the operating system cannot use ``path`` as a file name (None if it can).

    A NUL byte, a name longer than the file system allows (ENAMETOOLONG), a folder on the
    way that is a file (ENOTDIR), a permission or a symlink loop: the reason as a short text,
    so that callers can name the file in their message instead of letting ``os.stat``'s
    OSError or ValueError escape. A path that merely does not exist is no problem here.
    """
    text = os.fspath(path)
    if "\0" in str(text):
        return "the path holds a NUL byte"
    try:
        os.stat(text)
    except FileNotFoundError:
        return None
    except OSError as err:
        return err.strerror or str(err)
    except ValueError as err:  # other paths the OS layer rejects
        return str(err)
    return None


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (no extra disk space), or copy it where linking fails."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def save_fit_atomically(fit, path: Path) -> None:
    """Save ``fit`` (:func:`softbayes.io.fits.save_fit`) to ``path`` through a temporary name.

    The fit is written to ``.<stem>.XXXX.nc.part`` in the same folder and renamed over
    ``path`` when complete; a killed writer leaves at most that partial file, never a partial
    ``path``.
    """
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


def has_marker(folder: Path) -> bool:
    """True if ``folder`` holds a valid :data:`REPORT_MARKER` (a small plain JSON file)."""
    raw = _read_small(Path(folder) / REPORT_MARKER, _MARKER_MAX_BYTES)
    if raw is None:
        return False
    try:
        meta = json.loads(raw)
    except ValueError:
        return False
    return (isinstance(meta, dict) and meta.get("tool") == "softbayes"
            and meta.get("kind") == "report")


def _holds_only_report_files(folder: Path) -> bool:
    """Every entry of ``folder`` is a file or folder a report consists of."""
    with os.scandir(folder) as entries:
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
    return True


def _is_legacy_report(folder: Path) -> bool:
    """A report of a softbayes without markers: ``run.json`` and only report files."""
    try:
        if not _holds_only_report_files(folder):
            return False
    except OSError:
        return False
    raw = _read_small(Path(folder) / "run.json", 1 << 20)
    try:
        meta = json.loads(raw) if raw is not None else None
    except ValueError:
        return False
    return isinstance(meta, dict) and RUN_VERSION_KEY in meta


def is_report_folder(folder) -> bool:
    """True if ``folder`` is a report folder softbayes wrote (its marker, or an older report)."""
    folder = Path(folder)
    return folder.is_dir() and (has_marker(folder) or _is_legacy_report(folder))


def _refuse_special_folder(target: Path, shown: str, new: str) -> None:
    """Refuse the file system root, and the current or home folder or any folder above them."""
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
    new = "give a new folder (softbayes creates it), e.g. reports/<name>"
    _refuse_special_folder(target, shown, new)
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
    """Exclusive, non-blocking lock of one report folder (released on exit or death).

    Yields the lock file ``reports_root/.<name>.lock`` (a :class:`filelock.FileLock`: ``flock``
    on POSIX, filelock's Windows lock elsewhere); raises :class:`ReportBusyError` at once if another
    process holds it, :class:`ReportTargetError` if it is not a plain file (a symlink is never
    followed: opening it would touch whatever it points to). An existing file keeps its content.
    """
    reports_root.mkdir(parents=True, exist_ok=True)
    path = reports_root / f".{name}.lock"
    refused = (f"cannot open the report lock {path} ({{}}); it must be a plain file softbayes "
               "creates.")
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(os.lstat(path).st_mode):  # filelock would open a FIFO or device
            raise ReportTargetError(refused.format("not a plain file"))
    lock = filelock.FileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise ReportBusyError(
            f"another softbayes run is writing {reports_root / name} (lock {path} is "
            "held); wait for it to finish. Runs of different specs may run at once."
        ) from None
    except OSError as err:
        raise ReportTargetError(refused.format(err.strerror or err)) from None
    try:
        yield path
    finally:
        lock.release()


def renameat2_exchange(a: Path, b: Path) -> bool:
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
    if renameat2_exchange(new, target):
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


def clean_stale(reports_root: Path, name: str) -> None:
    """Remove temporary folders of killed runs of report ``name`` (call it holding the lock).

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
        if has_marker(p):
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
        clean_stale(root, target.name)
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
