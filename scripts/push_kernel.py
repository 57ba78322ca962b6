"""Push the built submission kernel to Kaggle (see arc-kit kernel push --help)."""

import sys

from arc_kit.cli.main import run_standalone

if __name__ == "__main__":
    sys.exit(run_standalone(["kernel", "push"]))
