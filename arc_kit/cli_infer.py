"""`arc-kit dry-run`: the kernel's path on this machine; imports stay inside the handler so `--help` is instant."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this area's sub-commands on the top-level parser."""
    p = sub.add_parser(
        "dry-run",
        help="run the kernel's inference path locally: write OUT/submission.json and OUT/report.json",
        description="Decode a challenges file with a weights folder exactly as the Kaggle kernel does, then "
        "validate (and score, given solutions) the submission. Exits 1 when the model could not be loaded or the "
        "submission is invalid.",
    )
    p.add_argument("--model", required=True, type=Path, help="weights folder: merged model or LoRA adapter")
    p.add_argument("--challenges", required=True, type=Path, help="*_challenges.json (or a folder of task files)")
    p.add_argument("--solutions", type=Path, help="*_solutions.json: score the run by both metrics")
    p.add_argument("--out", required=True, type=Path, help="folder for submission.json and report.json")
    p.add_argument("--budget", type=float, default=12 * 3600.0, help="seconds for the whole run (default 12 h)")
    p.add_argument("--margin", type=float, default=None,
                   help="seconds kept free before the budget ends (default 5%% of it, at most 900)")
    p.add_argument("--task-cap", type=float, default=1200.0, help="seconds a task may decode before it is dropped")
    p.add_argument("--views", type=int, default=1, help="views per task; 1 = plain greedy")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: one per GPU, 1 on CPU)")
    p.add_argument("--max-length", type=int, default=8192, help="context for prompt + answer")
    p.add_argument("--max-tasks", type=int, default=None, help="decode only the N shortest tasks")
    p.add_argument("--base-model", type=Path, default=None, help="base weights for an adapter folder")
    p.add_argument("--no-unsloth", action="store_true", help="use transformers even on CUDA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu-threads", type=int, default=1, help="torch threads on CPU (0: torch's default)")
    p.set_defaults(handler=_dry_run)


def _dry_run(args: argparse.Namespace) -> int:
    start = time.time()  # before the heavy imports: the budget counts them, as on Kaggle
    import logging

    from arc_kit.inference import InferenceConfig
    from arc_kit.runner import RunConfig, dry_run, summary_lines

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = RunConfig(
        model_dir=args.model,
        challenges=args.challenges,
        output=args.out / "submission.json",
        solutions=args.solutions,
        budget_seconds=args.budget,
        margin_seconds=args.margin,
        task_cap_seconds=args.task_cap,
        max_tasks=args.max_tasks,
        workers=args.workers,
        inference=InferenceConfig(max_length=args.max_length, batch_size=args.batch_size, views=args.views,
                                  seed=args.seed, use_unsloth=not args.no_unsloth,
                                  cpu_threads=args.cpu_threads or None,
                                  base_model=str(args.base_model) if args.base_model else None),
        start_time=start,
    )
    report = dry_run(config)
    _print_table(report)
    for line in summary_lines(report):
        print(line)
    print(f"wrote {config.output} and {args.out / 'report.json'}")
    if report.model_error or report.problems:
        return 1
    return 0


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
