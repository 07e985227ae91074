"""``python -m cityops``: the ``cityops`` command (exit status as the script's)."""

import sys

from cityops.cli import main

if __name__ == "__main__":
    sys.exit(main())
