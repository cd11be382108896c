"""``python -m softbayes``: the ``softbayes`` command (see :mod:`softbayes.cli`)."""

from softbayes.cli import app

if __name__ == "__main__":
    app(prog_name="softbayes")
