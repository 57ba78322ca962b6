"""`arc-kit` sub-commands for this area; imports stay inside the handlers so `arc-kit --help` is instant.

    arc-kit train --config tiny-cpu [--set train.output_dir=runs/x ...] [--resume | --resume-from DIR]
    arc-kit export RUN_DIR --out DIR [--dtype bfloat16]
    arc-kit synth --out DIR --rules rot180,flip_lr --n-tasks 100 [--seed 0 --sizes 3,4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from arc_kit.cli.flags import add_set_flag, input_errors
from arc_kit.config.schema import SettingsError
from arc_kit.config.training import TrainConfig
from arc_kit.models.precision import DTYPE_NAMES, EXPORT_DTYPE


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this area's sub-commands on the top-level parser."""
    p = sub.add_parser("train", help="fine-tune a model on ARC tasks with the recipe (config file + overrides)")
    add_train_arguments(p)
    p.set_defaults(handler=train_from_args)

    p = sub.add_parser("export", help="write a training run's LoRA adapter and merged 16-bit model (+ manifest)")
    add_export_arguments(p)
    p.set_defaults(handler=export_from_args)

    p = sub.add_parser("synth", help="write synthetic ARC tasks (challenges + solutions, competition layout)")
    p.add_argument("--out", required=True, type=Path, help="folder for <prefix>_challenges/solutions.json")
    p.add_argument("--rules", default="rot180", help="comma-separated rule names (see arc_kit.core.synthetic.RULES)")
    p.add_argument("--n-tasks", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sizes", default="3", help="comma-separated grid sides to draw from (1-30)")
    p.add_argument("--n-train", type=int, default=3)
    p.add_argument("--n-test", type=int, default=1)
    p.add_argument("--prefix", default="synthetic")
    p.set_defaults(handler=_synth)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Shared by `arc-kit train` and scripts/pretrain.py so both take the same flags."""
    p.add_argument("--config", required=True, help="a TOML file or a built-in name (tiny-cpu, gpu-qwen)")
    add_set_flag(p, TrainConfig, help="override a field, e.g. --set train.learning_rate=2e-4 (repeatable)")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in train.output_dir")
    resume.add_argument("--resume-from", type=Path, metavar="DIR", help=(
        "continue an earlier run of the same config from the newest checkpoint at or below DIR (its output "
        "folder, e.g. a notebook output under /kaggle/input; only read): it is copied into train.output_dir"))


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """Shared by `arc-kit export` and scripts/export.py so both take the same flags."""
    p.add_argument("run_dir", type=Path, help="the run folder (train.output_dir)")
    p.add_argument("--out", required=True, type=Path, help="folder to write adapter/ and merged/ into")
    p.add_argument("--dtype", default=EXPORT_DTYPE, choices=DTYPE_NAMES, help="the merged weights' type")
    p.add_argument("--no-adapter", action="store_true", help="write only the merged model")


@input_errors
def train_from_args(args: argparse.Namespace) -> int:
    """Run training; bad input (settings, task files, run folder) is one `error:` line and exit 2."""
    from arc_kit.training import load_config, resolve_config_path, run_training

    config = load_config(resolve_config_path(args.config), args.set)
    result = run_training(config, resume=args.resume, resume_from=args.resume_from)
    if result.is_main_process:  # one summary per run, not one per process
        print(json.dumps({"output_dir": str(result.output_dir),
                          "final_dir": None if result.final_dir is None else str(result.final_dir),
                          "finished": result.finished, "stopped": result.stopped,
                          "checkpoint": None if result.checkpoint is None else str(result.checkpoint),
                          "steps": result.steps, "train_loss": result.train_loss, "eval_loss": result.eval_loss,
                          "padding_fraction": result.padding_fraction, "log": str(result.log_path),
                          "num_processes": result.num_processes,
                          "effective_batch_size": result.effective_batch_size,
                          "minutes": round(result.seconds / 60, 2)}))
    return 0


@input_errors
def export_from_args(args: argparse.Namespace) -> int:
    """Export a run; a missing run, a broken run_info.json or an --out that is a file is one `error:` line, exit 2."""
    from arc_kit.training.export import export_model

    merged = export_model(args.run_dir, args.out, dtype=args.dtype, write_adapter=not args.no_adapter)
    print(f"merged model written to {merged}")
    return 0


def _synth_options(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    """The rule names and grid sides, or a ValueError naming the option that is wrong."""
    from arc_kit.core.files import check_folder_path
    from arc_kit.core.synthetic import RULES
    from arc_kit.core.tasks import MAX_SIDE

    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    if not rules:
        raise SettingsError(f"--rules: give at least one rule name ({', '.join(sorted(RULES))})")
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise SettingsError(f"--rules: unknown rule(s) {unknown}; known: {', '.join(sorted(RULES))}")
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        sizes = []
    if not sizes or not all(1 <= s <= MAX_SIDE for s in sizes):
        raise SettingsError(f"--sizes: expected comma-separated grid sides 1-{MAX_SIDE}, got {args.sizes!r}")
    for option, value, least in (("--n-tasks", args.n_tasks, 0), ("--n-train", args.n_train, 1),
                                 ("--n-test", args.n_test, 1)):
        if value < least:
            raise SettingsError(f"{option} must be >= {least}, got {value}")
    check_folder_path(args.out, "--out")
    return rules, sizes


@input_errors
def _synth(args: argparse.Namespace) -> int:
    from arc_kit.core.synthetic import write_synthetic

    rules, sizes = _synth_options(args)
    challenges, solutions = write_synthetic(args.out, rules, args.n_tasks, args.seed, sizes, args.n_train,
                                            args.n_test, args.prefix)
    print(f"{args.n_tasks} tasks written to {challenges} and {solutions}")
    return 0
