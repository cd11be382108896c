"""``python -m softbayes``: the ``softbayes`` command (see :mod:`softbayes.app.cli`)."""

from softbayes.app.cli import app

if __name__ == "__main__":
    app(prog_name="softbayes")
