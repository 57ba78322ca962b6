"""`arc-kit select`: re-rank the candidates of one or more runs under other formulas and weights, score each
choice, and write a new submission; imports stay inside the handler so `--help` is instant."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from arc_kit.cli.flags import input_errors, solutions_file


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this area's sub-commands on the top-level parser."""
    from arc_kit.cli.flags import settings_parent
    from arc_kit.config.run import FORMULAS, SelectionSettings

    p = sub.add_parser(
        "select",
        parents=[settings_parent(SelectionSettings)],
        help="re-rank the candidates of run folders under every selection formula and write a new submission",
        description="Read the candidates each run folder's report.json kept (every distinct grid of every test "
        "input, its generations by view and its re-scoring NLLs), rank them again under each formula, print the "
        "top-2 score and how often the right grid was among the candidates (given --solutions), and with --out "
        "write the submission the first formula gives. Several folders pool their candidates (two seeds, two "
        "models). The weights default to the first run's; their flags override them. Nothing is decoded again.",
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="a folder holding report.json and submission.json (arc-kit dry-run --out)")
    p.add_argument("--solutions", type=solutions_file, help="solutions file or data set name: score every choice")
    p.add_argument("--formula", nargs="+", choices=FORMULAS, metavar="F",
                   help=f"formulas to compare ({', '.join(FORMULAS)}); the first is written with --out "
                        "(default: the first run's formula, then the others)")
    p.add_argument("--out", type=Path, help="folder for the new submission.json and selection.json (how it "
                   "was chosen); never a run folder, nor a folder holding a submission.json select did not write")
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON object")
    p.set_defaults(handler=_select)


@input_errors
def _select(args: argparse.Namespace) -> int:
    from arc_kit.cli.flags import settings_from_args
    from arc_kit.config.run import FORMULAS, SelectionSettings
    from arc_kit.core.metric import solutions_cover
    from arc_kit.core.tasks import read_json
    from arc_kit.run.reselect import SelectError, check_out_folder, read_run, reselect, write_selection

    runs = [read_run(folder) for folder in args.runs]
    weights = settings_from_args(args, SelectionSettings, base=runs[0].weights)
    own = runs[0].formula
    formulas = list(dict.fromkeys(args.formula or [own, *FORMULAS]))
    solutions = read_json(args.solutions) if args.solutions is not None else None
    coverage = None
    if solutions is not None:
        if not isinstance(solutions, dict):
            raise SelectError(f"{args.solutions}: must map task ids to lists of output grids")
        coverage = solutions_cover(runs[0].submission, solutions, str(args.solutions), f"{runs[0].folder}")
    if args.out is not None:
        check_out_folder(args.out)
    results = [reselect(runs, f, weights, solutions) for f in formulas]
    if args.out is not None:
        write_selection(args.out, results[0], runs, weights)
    if coverage:
        print(f"warning: {coverage}", file=sys.stderr)
    if args.json:
        print(json.dumps({"runs": [str(r.folder) for r in runs], "weights": asdict(weights), "choices": [
            {k: v for k, v in r.__dict__.items() if k not in ("submission", "per_task")} for r in results]}))
        return 0
    print(f"{len(runs)} run(s), {results[0].inputs} test inputs with candidates; weights: "
          + ", ".join(f"{k}={v}" for k, v in asdict(weights).items()))
    print(f"{'formula':<16} {'top-2 score':>11} {'per output':>10} {'right among':>12} {'changed':>8} {'voted':>6}")
    for r in results:
        name = f"{r.formula} (run)" if r.formula == own else r.formula
        score = "-" if r.score is None else f"{r.score:.4f}"
        per_output = "-" if r.score_per_output is None else f"{r.score_per_output:.4f}"
        among = "-" if r.right_among is None else f"{r.right_among}/{r.inputs}"
        print(f"{name:<16} {score:>11} {per_output:>10} {among:>12} {r.changed:>8} {r.voted_inputs:>6}")
    if args.out is not None:
        print(f"wrote {args.out / 'submission.json'} ({results[0].formula})")
    return 0
