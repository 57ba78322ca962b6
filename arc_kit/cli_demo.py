"""`arc-kit show` (a task as a picture) and `arc-kit demo` (the whole kit, offline, on an embedded default)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arc_kit.cli_args import challenges_file, input_errors, solutions_file


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="draw a task (train pairs, test input, expected output, attempts) as a PNG")
    p.add_argument("task_id")
    p.add_argument("--challenges", required=True, type=challenges_file,
                   help="challenges file, task folder or data set name (arc-kit data list)")
    p.add_argument("--solutions", type=solutions_file,
                   help="draw the expected outputs and mark attempts right or wrong (file or data set name)")
    p.add_argument("--submission", type=Path, help="draw both attempts from this submission")
    p.add_argument("--out", required=True, type=Path, help="PNG file to write")
    p.set_defaults(handler=_show)

    from arc_kit.demo import DemoConfig  # settings only: torch loads when the demo runs

    p = sub.add_parser("demo", help="the whole kit end to end, offline, on a CPU, on synthetic tasks (~10 min)")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="folder for every artefact (default: %(default)s)")
    p.add_argument("--config", default="demo", help="training config: built-in name or TOML path (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override a training setting (repeatable)")
    p.add_argument("--heldout-tasks", type=int, default=DemoConfig.heldout_tasks,
                   help="held-out synthetic tasks of the trained rule (default: %(default)s)")
    p.add_argument("--read-tasks", type=int, default=DemoConfig.read_tasks,
                   help="held-out tasks whose colour swap must be read from the demonstrations (default: %(default)s)")
    p.add_argument("--challenges", type=challenges_file,
                   help="also dry-run on this real ARC challenges file or data set name (arc-kit data list)")
    p.add_argument("--solutions", type=solutions_file, help="its solutions (file or data set name), for a score")
    p.add_argument("--budget-seconds", type=float, default=DemoConfig.real_budget_seconds,
                   help="seconds for the real-file dry run (default: %(default)s)")
    p.add_argument("--settings", type=Path, default=None, metavar="TOML",
                   help="a settings file: its [solver] and [ttt] tables are how the dry runs and the kernel answer "
                        "(default: arc_kit/configs/demo-settings.toml)")
    p.set_defaults(handler=_demo)


@input_errors
def _show(args: argparse.Namespace) -> int:
    from arc_kit.report import save_task_png
    from arc_kit.submission import validate_submission
    from arc_kit.tasks import TaskFileError, load_tasks, read_json

    tasks = load_tasks(args.challenges, args.solutions, strict=False)
    if args.task_id not in tasks.tasks:
        why = tasks.errors.get(args.task_id, "no such task id in the file")
        print(f"error: task {args.task_id}: {why} ({args.challenges})", file=sys.stderr)
        return 1
    task = tasks.tasks[args.task_id]
    attempts = None
    if args.submission:
        submission = read_json(args.submission)
        if not isinstance(submission, dict):
            raise TaskFileError(f"{args.submission}: must be an object mapping task ids to entries")
        attempts = submission.get(args.task_id)
        if attempts is None:
            print(f"error: task {args.task_id}: not in {args.submission}", file=sys.stderr)
            return 1
        problems = validate_submission({args.task_id: attempts}, {args.task_id: len(task.test)})
        if problems:  # drawing needs every attempt to be a grid
            raise TaskFileError(f"{args.submission}: {problems[0]}")
    out = save_task_png(task, args.out, attempts)
    print(f"wrote {out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads: one thread is fastest for the tiny model
    from arc_kit.demo import DemoConfig, demo_plan, run_demo

    plan = demo_plan(args.settings) if args.settings else demo_plan()
    result = run_demo(DemoConfig(out=args.out, train_config=args.config, overrides=args.overrides,
                                 heldout_tasks=args.heldout_tasks, read_tasks=args.read_tasks, challenges=args.challenges,
                                 solutions=args.solutions, real_budget_seconds=args.budget_seconds, solver=plan.solver,
                                 ttt=plan.ttt))
    summary = result["summary"]
    return 0 if summary["score after (held-out)"] > summary["score before (held-out)"] else 1
