"""Export a training run (adapter + merged 16-bit model + manifest): the same code as `arc-kit export`.

    python scripts/export.py runs/x --out export/x [--dtype bfloat16] [--no-adapter]
"""

from __future__ import annotations

import sys

from arc_kit.cli.flags import Parser
from arc_kit.cli.train import add_export_arguments, export_from_args


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    add_export_arguments(parser)
    return export_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
