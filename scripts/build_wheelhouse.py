"""Build the offline wheel folder for the kernel (see arc-kit wheelhouse --help)."""

import sys

from arc_kit.cli.main import run_standalone

if __name__ == "__main__":
    sys.exit(run_standalone(["wheelhouse"]))
