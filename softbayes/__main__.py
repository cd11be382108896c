"""``python -m softbayes``: the ``softbayes`` command (see :mod:`softbayes.app.cli`)."""

from softbayes.app.entry import main

if __name__ == "__main__":
    main()
