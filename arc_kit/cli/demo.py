"""`arc-kit show` (a task as a picture) and `arc-kit demo` (the whole kit, offline, on an embedded default)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arc_kit.cli.flags import challenges_file, input_errors, solutions_file


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

    from arc_kit.cli.flags import add_settings_file, settings_parent
    from arc_kit.config.run import SolverSettings, SubmissionConfig, TTTSettings
    from arc_kit.config.training import TrainConfig
    from arc_kit.demo import DemoSettings  # settings only: torch loads when the demo runs

    p = sub.add_parser("demo", parents=[settings_parent(DemoSettings, SolverSettings, TTTSettings)],
                       help="the whole kit end to end, offline, on a CPU, on synthetic tasks (~10 min)",
                       description="Every flag is a field of arc_kit.demo.DemoSettings or of the kernel's settings. "
                       "--set takes training settings (train.learning_rate=...) as well as the run's "
                       "(solver.views=...); --settings replaces arc_kit/configs/demo-settings.toml.")
    add_settings_file(p, SubmissionConfig, TrainConfig)
    p.set_defaults(handler=_demo)


@input_errors
def _show(args: argparse.Namespace) -> int:
    from arc_kit.core.submission import validate_submission
    from arc_kit.core.tasks import TaskFileError, load_tasks, read_json
    from arc_kit.run.report import save_task_png

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


@input_errors
def _demo(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads: one thread is fastest for the tiny model
    from arc_kit.cli.flags import config_from_args, set_overrides, settings_from_args
    from arc_kit.config.training import TrainConfig
    from arc_kit.demo import DEMO_SETTINGS, DemoSettings, run_demo

    if args.settings is None:
        args.settings = DEMO_SETTINGS
    config = config_from_args(args)
    train_overrides = set_overrides(args, TrainConfig)
    demo = dataclasses.replace(settings_from_args(args, DemoSettings), overrides=train_overrides)
    summary = run_demo(demo, config)["summary"]
    return 0 if summary["score after (held-out)"] > summary["score before (held-out)"] else 1
