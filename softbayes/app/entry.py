"""The ``softbayes`` console entry point: the command line, with Ctrl-C during start-up as exit 130.

Importing the command line loads PyMC and PyTensor (about a second). A Ctrl-C in that window
arrives before the command's own interrupt handling exists, and may land inside a compiled
module's initialisation, which turns the ``KeyboardInterrupt`` into an ``ImportError``. So
this module, imported only by the console script and ``python -m softbayes``, makes SIGINT end
the process at once (nothing has been written yet) while it imports the command line, then
restores Python's usual handler before any command runs.
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["INTERRUPTED", "main"]

#: Exit status of an interrupted command (128 + SIGINT, what shells report).
INTERRUPTED = 130


def _interrupted_at_start(signum, frame):  # pragma: no cover - ends the process
    sys.stderr.write("\ninterrupted during start-up: nothing was written.\n")
    sys.stderr.flush()
    os._exit(INTERRUPTED)


signal.signal(signal.SIGINT, _interrupted_at_start)
try:
    from softbayes.app.cli import app  # after the start-up handler, on purpose
finally:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main() -> None:
    """Run the ``softbayes`` command line."""
    app(prog_name="softbayes")
