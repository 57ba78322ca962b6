"""`arc-kit data`: the named data sets (list them, write one out) and the competition's files (download)."""

from __future__ import annotations

import argparse
from pathlib import Path

from arc_kit.cli import kaggle as cli_kaggle
from arc_kit.cli.flags import input_errors


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this area's sub-commands on the top-level parser."""
    data = sub.add_parser("data", help="ARC data: the named public sets, and the competition's files",
                          description="A data set name (arc-agi-2/evaluation, ...) works wherever a challenges or "
                          "solutions file is taken: --challenges, --solutions, the training config's data tables.")
    data.set_defaults(handler=lambda _args: data.print_help() or 2)
    dsub = data.add_subparsers(title="data commands", metavar="ACTION")
    p = dsub.add_parser("list", help="the named data sets: tasks, test inputs, where they come from")
    p.set_defaults(handler=_list)

    p = dsub.add_parser("write", help="write a named set's challenges and solutions files (competition layout)")
    p.add_argument("name", help="a data set name (arc-kit data list)")
    p.add_argument("--out", type=Path, required=True, help="folder for arc-agi_<split>_{challenges,solutions}.json")
    p.add_argument("--force", action="store_true", help="replace files there that differ")
    p.set_defaults(handler=_write)

    cli_kaggle.add_data_download(dsub)


@input_errors
def _list(args: argparse.Namespace) -> int:
    from arc_kit.core.named_data import cache_folder, list_named_sets

    sets = list_named_sets()
    width = max(len(s.name) for s in sets)
    print(f"{'name':<{width}}  {'tasks':>5}  {'test inputs':>11}  source")
    for s in sets:
        print(f"{s.name:<{width}}  {s.tasks:>5}  {s.test_inputs:>11}  {s.source}")
    print(f"(a name works wherever a challenges or solutions file is taken; files cached in {cache_folder()})")
    return 0


@input_errors
def _write(args: argparse.Namespace) -> int:
    from arc_kit.core.named_data import write_named_set

    for path, written in write_named_set(args.name, args.out, force=args.force):
        print(f"{'wrote' if written else 'unchanged'} {path}")
    return 0
