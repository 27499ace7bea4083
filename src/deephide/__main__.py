"""``python -m deephide ...`` = the ``deephide`` command (where no console script is installed, e.g. a GPU image)."""

import sys

from deephide.cli import main

if __name__ == "__main__":
    sys.exit(main())
