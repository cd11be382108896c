"""Fixtures of the reliability tests: an audit-hook guard around the handling of untrusted input.

``audit_guard`` watches, through a Python audit hook (``sys.addaudithook``), everything the
process does while a test parses, loads or checks untrusted input (specs, formulas, fit
files, report folders): starting a program (``os.system``, ``subprocess.Popen``,
``os.exec*``, ``os.posix_spawn``, ``os.spawn*``, ``os.fork``) and removing or renaming a
file or folder (``os.remove`` / ``os.unlink``, ``os.rmdir``, ``shutil.rmtree``,
``os.rename`` / ``os.replace``, ``os.truncate``) outside the test's own temporary folder and
the libraries' cache folders (PyTensor's compiledir, Matplotlib's cache, ``__pycache__``).
Such an event is refused on the spot (the hook raises :class:`AuditViolation`, so
``os.system("id > pwned")`` never runs) and recorded; leaving the ``with`` block raises
:class:`AuditViolation` listing them, even if the code under test swallowed the first.

Usage::

    def test_x(audit_guard, tmp_path):
        with audit_guard() as guard:            # tmp_path is allowed
            softbayes.load_fit(tmp_path / "fit.nc")
        assert guard.events == []

``audit_guard(*folders, programs=("g++",))`` allows more folders and programs (by the base
name of the executable), e.g. a C compiler for a test that compiles a model;
``forbid=("pickle.find_class",)`` refuses more audit events outright (no unpickling while a
fit file is read).

An audit hook cannot be removed, so one hook is installed per test process and does nothing
(one set lookup) unless a guard is active.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

_EXEC_EVENTS = frozenset({
    "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.forkpty", "pty.spawn", "os.startfile",
})
_REMOVE_EVENTS = frozenset({"os.remove", "os.rmdir", "shutil.rmtree", "os.truncate"})
_RENAME_EVENTS = frozenset({"os.rename"})
_WATCHED = _EXEC_EVENTS | _REMOVE_EVENTS | _RENAME_EVENTS
_forbidden: set[str] = set()  # events some active guard refuses outright (forbid=)

_GUARDS: list[_Guard] = []
_LOCK = threading.Lock()
_INSTALLED = False


class AuditViolation(AssertionError):
    """A program was started, or a path outside the allowed folders removed, under a guard."""


def _library_cache_dirs() -> list[Path]:
    dirs = []
    try:
        import pytensor

        dirs += [Path(pytensor.config.compiledir), Path(pytensor.config.base_compiledir)]
    except Exception:  # pragma: no cover - pytensor is a dependency
        pass
    try:
        import matplotlib

        dirs += [Path(matplotlib.get_cachedir()), Path(matplotlib.get_configdir())]
    except Exception:  # pragma: no cover
        pass
    if os.environ.get("NUMBA_CACHE_DIR"):
        dirs.append(Path(os.environ["NUMBA_CACHE_DIR"]))
    return [Path(os.path.realpath(d)) for d in dirs]


def _fspath(p, dir_fd=None) -> str | None:
    """The absolute path an audited call acts on (its folder's links resolved, not its own)."""
    if isinstance(p, int):  # a file descriptor
        try:
            return os.readlink(f"/proc/self/fd/{p}")
        except OSError:
            return None
    try:
        p = os.fsdecode(os.fspath(p))
    except TypeError:
        return None
    if not os.path.isabs(p):
        base = os.getcwd()
        if dir_fd is not None:
            try:
                base = os.readlink(f"/proc/self/fd/{dir_fd}")
            except OSError:
                return None
        p = os.path.join(base, p)
    p = os.path.normpath(p)
    # a removed symlink is the link itself: resolve its folder only
    return os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))


class _Guard:
    def __init__(self, allowed, programs, forbid=()):
        self.allowed = [Path(os.path.realpath(a)) for a in allowed] + _library_cache_dirs()
        self.programs = frozenset(programs)
        self.forbid = frozenset(forbid)
        self.events: list[tuple[str, str]] = []

    def _inside(self, path: str | None) -> bool:
        if path is None:
            return False
        p = Path(path)
        if "__pycache__" in p.parts:
            return True
        return any(p == a or a in p.parents for a in self.allowed)

    def judge(self, event, args) -> str | None:
        """A description of the violation, or None if the event is allowed."""
        if event in self.forbid:
            return f"{event}: {args!r:.200}"
        if event not in _WATCHED:
            return None
        if event in _EXEC_EVENTS:
            if event == "subprocess.Popen":
                exe = args[0] if args[0] is not None else (
                    args[1][0] if isinstance(args[1], list | tuple) and args[1] else args[1])
                try:
                    name = os.path.basename(os.fsdecode(exe))
                except TypeError:
                    name = repr(exe)
                if name in self.programs:
                    return None
                return f"{event}: {args[1]!r:.200}"
            return f"{event}: {args!r:.200}"
        if event in _RENAME_EVENTS:
            src = _fspath(args[0], args[2] if len(args) > 2 else None)
            dst = _fspath(args[1], args[3] if len(args) > 3 else None)
            if self._inside(src) and self._inside(dst):
                return None
            return f"{event}: {src} -> {dst}"
        # os.remove (also os.unlink), os.rmdir, shutil.rmtree: (path, dir_fd); os.truncate:
        # (fd or path, length)
        dir_fd = args[1] if event != "os.truncate" and len(args) > 1 else None
        path = _fspath(args[0], dir_fd)
        if self._inside(path):
            return None
        return f"{event}: {path or args!r}"


def _hook(event, args):
    if not _GUARDS or (event not in _WATCHED and event not in _forbidden):
        return
    with _LOCK:
        guards = list(_GUARDS)
    for guard in guards:
        why = guard.judge(event, args)
        if why is not None:
            guard.events.append((event, why))
            raise AuditViolation(f"refused under audit_guard: {why}")


def _install():
    global _INSTALLED
    with _LOCK:
        if not _INSTALLED:
            sys.addaudithook(_hook)
            _INSTALLED = True


@contextmanager
def guard(*allowed, programs=(), forbid=()):
    """Watch (and refuse) program starts and removals outside ``allowed`` in the block."""
    _install()
    g = _Guard(allowed, programs, forbid)
    with _LOCK:
        _GUARDS.append(g)
        _forbidden.update(forbid)
    failed = False
    try:
        yield g
    except AuditViolation:
        failed = True
        raise
    finally:
        with _LOCK:
            _GUARDS.remove(g)
            _forbidden.clear()
            for other in _GUARDS:
                _forbidden.update(other.forbid)
        if g.events and not failed:
            raise AuditViolation("under audit_guard: " + "; ".join(w for _, w in g.events))


@pytest.fixture
def audit_guard(tmp_path):
    """``with audit_guard(*more_folders, programs=(), forbid=()) as g:`` -- see above.

    The test's ``tmp_path`` is always allowed.
    """

    def make(*allowed, programs=(), forbid=()):
        return guard(tmp_path, *allowed, programs=programs, forbid=forbid)

    return make
