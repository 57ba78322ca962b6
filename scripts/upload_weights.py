"""Publish an exported model folder to Kaggle (see arc-kit upload-weights --help)."""

import sys

from arc_kit.cli.main import run_standalone

if __name__ == "__main__":
    sys.exit(run_standalone(["upload-weights"]))
