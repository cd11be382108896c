"""Run the package-structure check of ``make lint``: ``python tools/check_structure.py [ROOT]``.

The rules and their settings are in the :mod:`structure_check` package next to this file; each
violation is printed as ``path:line: rule: detail`` and the exit status is 1 if there is any.
"""

import sys

from structure_check import main

if __name__ == "__main__":
    sys.exit(main())
