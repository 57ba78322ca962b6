"""Push a built kernel to Kaggle, the submission kernel by default (see arc-kit kernel push --help)."""

import sys

from arc_kit.cli.main import run_standalone

if __name__ == "__main__":
    sys.exit(run_standalone(["kernel", "push"]))
