"""Export a training run (adapter + merged 16-bit model + manifest): the same code as `arc-kit export`.

    python scripts/export.py runs/x --out export/x [--dtype bfloat16] [--no-adapter]
"""

from __future__ import annotations

import sys

from arc_kit.cli.flags import Parser
from arc_kit.cli.main import notices_on_stderr
from arc_kit.cli.train import add_export_arguments, export_from_args


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    add_export_arguments(parser)
    args = parser.parse_args(argv)
    with notices_on_stderr():
        return export_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
