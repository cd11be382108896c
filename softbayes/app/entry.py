"""The ``softbayes`` console entry point: the command line, with Ctrl-C during start-up as exit 130.

Importing the command line loads PyMC and PyTensor (about a second); a Ctrl-C in that window
arrives before the command's own interrupt handling exists, so it is caught here.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

#: Exit status of an interrupted command (128 + SIGINT, what shells report).
INTERRUPTED = 130


def main() -> None:
    """Run the ``softbayes`` command line."""
    try:
        from softbayes.app.cli import app
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted during start-up: nothing was written.\n")
        raise SystemExit(INTERRUPTED) from None
    app(prog_name="softbayes")
