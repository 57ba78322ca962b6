"""`arc-kit` sub-commands for this area; imports stay inside the handlers so `arc-kit --help` is instant.

    arc-kit train --config tiny-cpu [--set train.output_dir=runs/x ...] [--resume]
    arc-kit export RUN_DIR --out DIR [--dtype bfloat16]
    arc-kit synth --out DIR --rules rot180,flip_lr --n-tasks 100 [--seed 0 --sizes 3,4]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this area's sub-commands on the top-level parser."""
    p = sub.add_parser("train", help="fine-tune a model on ARC tasks with the recipe (config file + overrides)")
    add_train_arguments(p)
    p.set_defaults(handler=_train)

    p = sub.add_parser("export", help="write a training run's LoRA adapter and merged 16-bit model (+ manifest)")
    p.add_argument("run_dir", type=Path, help="the run folder (train.output_dir)")
    p.add_argument("--out", required=True, type=Path, help="folder to write adapter/ and merged/ into")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--no-adapter", action="store_true", help="write only the merged model")
    p.set_defaults(handler=_export)

    p = sub.add_parser("synth", help="write synthetic ARC tasks (challenges + solutions, competition layout)")
    p.add_argument("--out", required=True, type=Path, help="folder for <prefix>_challenges/solutions.json")
    p.add_argument("--rules", default="rot180", help="comma-separated rule names (see arc_kit.synthetic.RULES)")
    p.add_argument("--n-tasks", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sizes", default="3", help="comma-separated grid sides to draw from")
    p.add_argument("--n-train", type=int, default=3)
    p.add_argument("--n-test", type=int, default=1)
    p.add_argument("--prefix", default="synthetic")
    p.set_defaults(handler=_synth)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Shared by `arc-kit train` and scripts/pretrain.py so both take the same flags."""
    p.add_argument("--config", required=True, help="a TOML file or a built-in name (tiny-cpu, gpu-qwen)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set train.learning_rate=2e-4 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in train.output_dir")


def train_from_args(args: argparse.Namespace) -> int:
    from arc_kit.training import ConfigError, load_config, resolve_config_path, run_training
    from arc_kit.training.trainer import RunFolderError

    try:
        config = load_config(resolve_config_path(args.config), args.set)
        result = run_training(config, resume=args.resume)
    except (ConfigError, RunFolderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"output_dir": str(result.output_dir), "final_dir": str(result.final_dir),
                      "steps": result.steps, "train_loss": result.train_loss, "eval_loss": result.eval_loss,
                      "log": str(result.log_path), "minutes": round(result.seconds / 60, 2)}))
    return 0


def _train(args: argparse.Namespace) -> int:
    return train_from_args(args)


def _export(args: argparse.Namespace) -> int:
    from arc_kit.training.export import export_model

    try:
        merged = export_model(args.run_dir, args.out, dtype=args.dtype, write_adapter=not args.no_adapter)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"merged model written to {merged}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from arc_kit.synthetic import write_synthetic

    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        rules = [r.strip() for r in args.rules.split(",") if r.strip()]
        challenges, solutions = write_synthetic(args.out, rules, args.n_tasks, args.seed, sizes, args.n_train,
                                                args.n_test, args.prefix)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.n_tasks} tasks written to {challenges} and {solutions}")
    return 0
