"""Rebuild the built-in held-out list (``arc_kit/data/held_out/arc-agi-2-evaluation.txt``) from the named set.

    python scripts/held_out_digests.py            # rewrite the shipped file from arc-agi-2/evaluation
    python scripts/held_out_digests.py --check    # exit 1 when the shipped file differs from a rebuild

The list holds digests only (a task's canonical form, each solved pair's, each pair's cheap key), never grids, so
training can refuse ARC-AGI-2 evaluation tasks by content without the kit shipping the tasks themselves. Prints JSON
last.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from importlib import resources
from pathlib import Path

from arc_kit.core.named_data import named_files
from arc_kit.core.tasks import load_tasks
from arc_kit.training.mix import BUILTIN_HELD_OUT, write_held_out_digests

SOURCES = {"arc-agi-2-evaluation": "arc-agi-2/evaluation"}  # built-in list -> the named set it is made from


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with a rebuild instead of writing")
    args = parser.parse_args(argv)
    results = {}
    for name, data_set in SOURCES.items():
        shipped = Path(str(resources.files("arc_kit") / "data" / "held_out" / BUILTIN_HELD_OUT[name]))
        tasks = list(load_tasks(*named_files(data_set)))
        with tempfile.TemporaryDirectory() as tmp:
            rebuilt = Path(tmp) / shipped.name
            write_held_out_digests(tasks, rebuilt)
            text = rebuilt.read_text(encoding="utf-8")
        same = shipped.is_file() and shipped.read_text(encoding="utf-8") == text
        if not args.check and not same:
            shipped.write_text(text, encoding="utf-8")
        results[name] = {"set": data_set, "tasks": len(tasks), "lines": text.count("\n"), "unchanged": same}
    print(json.dumps(results))
    return 1 if args.check and not all(r["unchanged"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
