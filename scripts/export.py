"""Export a training run (adapter + merged 16-bit model + manifest): the same code as `arc-kit export`.

    python scripts/export.py runs/x --out export/x [--dtype bfloat16] [--no-adapter]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arc_kit.training.export import export_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--no-adapter", action="store_true")
    args = parser.parse_args(argv)
    print(export_model(args.run_dir, args.out, dtype=args.dtype, write_adapter=not args.no_adapter))
    return 0


if __name__ == "__main__":
    sys.exit(main())
