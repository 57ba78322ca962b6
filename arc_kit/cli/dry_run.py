"""`arc-kit dry-run`: the kernel's path on this machine; imports stay inside the handler so `--help` is instant."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from arc_kit.cli.flags import challenges_file, input_errors, solutions_file


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this area's sub-commands on the top-level parser."""
    from arc_kit.cli.flags import add_settings_file, settings_parent
    from arc_kit.config.run import RunSettings, SolverSettings, SubmissionConfig, TTTSettings

    p = sub.add_parser(
        "dry-run",
        parents=[settings_parent(RunSettings, SolverSettings, TTTSettings)],
        help="run the kernel's inference path locally: write OUT/submission.json, report.json and report.html",
        description="Decode a challenges file with a weights folder exactly as the Kaggle kernel does, then "
        "validate (and score, given solutions) the submission. The settings flags and their defaults are the "
        "kernel's (arc_kit/config/run.py). Exits 1 when the model could not be loaded, every task failed, answers "
        "could not be written or the submission is invalid; 2 on bad input.",
    )
    p.add_argument("--model", required=True, type=Path, help="weights folder: merged model or LoRA adapter")
    p.add_argument("--challenges", required=True, type=challenges_file,
                   help="*_challenges.json, a folder of task files, or a data set name (arc-kit data list)")
    p.add_argument("--solutions", type=solutions_file,
                   help="*_solutions.json or a data set name: score the run by both metrics")
    p.add_argument("--out", required=True, type=Path, help="folder for submission.json, report.json, report.html")
    p.add_argument("--max-tasks", type=int, default=None, help="decode only the N shortest tasks")
    add_settings_file(p, SubmissionConfig)
    p.set_defaults(handler=_dry_run)


@input_errors
def _dry_run(args: argparse.Namespace) -> int:
    start = time.time()  # before the heavy imports: the budget counts them, as on Kaggle
    import logging

    from arc_kit.cli.flags import config_from_args
    from arc_kit.config.run import SettingsError
    from arc_kit.core.files import check_folder_path
    from arc_kit.run.job import RunJob
    from arc_kit.run.records import summary_lines
    from arc_kit.run.runner import dry_run

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    check_folder_path(args.out, "--out")  # the folder for submission.json and the reports
    if args.max_tasks is not None and args.max_tasks < 0:
        raise SettingsError(f"--max-tasks must be >= 0, got {args.max_tasks}")
    config = config_from_args(args)
    if config.solver.format != "auto":  # a format the weights contradict is bad input: one line, before the run
        from arc_kit.models.loading import inference_tokenizer, weights_folder

        inference_tokenizer(weights_folder(args.model), config.solver)
    job = RunJob(model_dir=args.model, challenges=args.challenges, output=args.out / "submission.json",
                 solutions=args.solutions, run=config.run, solver=config.solver, ttt=config.ttt,
                 max_tasks=args.max_tasks, start_time=start)
    report = dry_run(job)
    _print_table(report)
    for line in summary_lines(report):
        print(line)
    print(_what_was_written(report, job.output))
    if report.model_error or report.problems or report.answers_not_written or report.every_task_failed:
        return 1
    return 0


def _what_was_written(report, submission: Path) -> str:  # noqa: ANN001 - a RunReport, as in _print_table
    """The last line: the files the run wrote, and those it could not (a full disk), never more than happened."""
    reports = [name for name in ("report.json", "report.html") if name not in report.reports_not_written]
    if report.answers_not_written:
        said = (f"{submission} holds the last file written ({report.answers_not_written} answers never reached "
                "it)")
        said += f"; wrote {' and '.join(reports)}" if reports else ""
    else:
        said = f"wrote {submission}" + (f", {' and '.join(reports)} in {submission.parent}" if reports else "")
    if report.reports_not_written:
        missing = list(report.reports_not_written)
        said += (f"; {' and '.join(missing)} {'was' if len(missing) == 1 else 'were'} not written "
                 f"({next(iter(report.reports_not_written.values()))})")
    return said


def _print_table(report) -> None:  # noqa: ANN001 - a RunReport; typed loosely to keep imports lazy
    attempted = [(tid, r) for tid, r in report.per_task.items() if r.seconds or r.error or r.tokens]
    rows = sorted(attempted, key=lambda kv: kv[1].seconds, reverse=True)[:15]
    if not rows:
        return
    print(f"{'task':<10} {'sec':>7} {'tokens':>7} {'answered':>8} {'dropped':>7} {'correct':>8}  note")
    for tid, r in rows:
        correct = "-" if r.correct is None else f"{sum(r.correct)}/{len(r.correct)}"
        note = r.error or ("timed out" if r.timed_out else (f"{r.unparsed} unparsed" if r.unparsed else ""))
        print(f"{tid:<10} {r.seconds:>7.1f} {r.tokens:>7} {r.answered:>8} {r.pairs_dropped:>7} {correct:>8}  "
              f"{note[:60]}")
    if len(attempted) > len(rows):
        print(f"({len(attempted) - len(rows)} more tasks in report.json)")
