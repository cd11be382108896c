"""The ``softbayes`` console entry point: the command line, where any Ctrl-C ends in exit 130.

Importing the command line loads PyMC and PyTensor (about a second). A Ctrl-C in that window
arrives before the command's own interrupt handling exists, and may land inside a compiled
module's initialisation, which turns the ``KeyboardInterrupt`` into an ``ImportError``. So
this module, imported only by the console script and ``python -m softbayes``, makes SIGINT end
the process at once (nothing has been written yet) while it imports the command line.

While a command runs, SIGINT raises ``KeyboardInterrupt`` as usual, so that the command
discards what it was doing and says so. Third-party code may still swallow it (an import
or a compiler turning it into another error, a sampler's worker threads that keep running):
the first SIGINT therefore also arms a watchdog that ends the process with 130 if it is still
alive :data:`GRACE_SECONDS` later, a second SIGINT ends it at once, and a command that ends
with another error after a SIGINT exits with 130 too. Results are written to a temporary
name and renamed into place, so an exit at any moment leaves nothing that looks complete.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["GRACE_SECONDS", "INTERRUPTED", "main"]

#: Exit status of an interrupted command (128 + SIGINT, what shells report).
INTERRUPTED = 130
#: Seconds a command has to wind down after the first SIGINT before the process is ended.
GRACE_SECONDS = 5.0

_interrupt = threading.Event()


def _end(message: bytes):  # pragma: no cover - ends the process
    # straight to the file descriptor: the signal may arrive while sys.stderr is mid-write
    os.write(2, message)
    os._exit(INTERRUPTED)


def _interrupted_at_start(signum, frame):  # pragma: no cover - ends the process
    _end(b"\ninterrupted during start-up: nothing was written.\n")


def _watchdog():  # pragma: no cover - ends the process
    _end(b"\ninterrupted: nothing was written.\n")


def _interrupted_while_running(signum, frame):
    if _interrupt.is_set():
        _watchdog()
    _interrupt.set()
    timer = threading.Timer(GRACE_SECONDS, _watchdog)
    timer.daemon = True
    timer.start()
    raise KeyboardInterrupt


signal.signal(signal.SIGINT, _interrupted_at_start)
try:
    from softbayes.app.cli import app  # after the start-up handler, on purpose
finally:
    signal.signal(signal.SIGINT, _interrupted_while_running)


def main() -> None:
    """Run the ``softbayes`` command line."""
    try:
        app(prog_name="softbayes")
    except SystemExit as done:
        if _interrupt.is_set() and done.code not in (0, None, INTERRUPTED):
            # the KeyboardInterrupt became another error inside third-party code
            os.write(2, b"\ninterrupted: nothing was written.\n")
            raise SystemExit(INTERRUPTED) from None
        raise
