"""`arc-kit` sub-commands for this area; imports stay inside the handlers so `arc-kit --help` is instant."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this area's sub-commands on the top-level parser."""
