"""A stand-in for ``arc-kit train --config C [--resume-from D]`` with ``train.max_seconds``: the training kernel's
command until the training library stops a run at a wall-clock budget and resumes from another run's output.

``python -m arc_kit.training.budget_stand_in --config C [--resume-from D]``: the newest checkpoint found below D
is copied into ``train.output_dir`` and resumed; with ``train.max_seconds`` the run saves a checkpoint and stops
once the next step would end past ``start + max_seconds - stop_margin_seconds``; ``run_info.json`` then says
``"finished": false``, ``"stopped": "max_seconds"`` and ``"checkpoint"``, and no ``final/`` is left. Imports transformers at its top: run it, never import it
from the kernel's path search.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from transformers import TrainerCallback

from arc_kit.training.stand_ins import newest_run


class WallClockBudget(TrainerCallback):
    """Save and stop at the end of a step when the next one (as long as the longest so far) would end past
    ``deadline``."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.step_began: float | None = None
        self.longest = 0.0
        self.stopped = False

    def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201 - the Trainer's hook
        self.step_began = time.time()

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        now = time.time()
        self.longest = max(self.longest, now - (self.step_began or now))
        if now + self.longest >= self.deadline and state.global_step < state.max_steps:
            control.should_save = True
            control.should_training_stop = True
            self.stopped = True
        return control


def main(argv: list[str] | None = None) -> int:
    from arc_kit.config.training import load_config, resolve_config_path
    from arc_kit.training import trainer

    started = time.time()
    parser = argparse.ArgumentParser(prog="budget_stand_in")
    parser.add_argument("--config", required=True)
    parser.add_argument("--resume-from", type=Path, default=None)
    args = parser.parse_args(argv)
    config = load_config(resolve_config_path(args.config))
    run_dir = Path(config.train.output_dir)
    resume = False
    if args.resume_from is not None:
        checkpoint = newest_run(args.resume_from)
        if checkpoint is None:
            raise SystemExit(f"error: {args.resume_from} holds no checkpoint-N/ to resume from")
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(checkpoint, run_dir / checkpoint.name, dirs_exist_ok=True)
        for name in (trainer.LOG_FILE, "base-model"):
            source = checkpoint.parent / name
            if source.is_dir():
                shutil.copytree(source, run_dir / name, dirs_exist_ok=True)
            elif source.is_file():
                shutil.copy2(source, run_dir / name)
        resume = True
    t = config.train
    budget = WallClockBudget(started + t.max_seconds - t.stop_margin_seconds) if t.max_seconds else None
    prepare = trainer.prepare_run

    def prepare_with_budget(*a, **k):  # noqa: ANN002, ANN003, ANN202
        run = prepare(*a, **k)
        if budget is not None:
            run.trainer.add_callback(budget)
        return run

    trainer.prepare_run = prepare_with_budget
    trainer.run_training(config, resume=resume)
    info_path = run_dir / trainer.RUN_INFO_FILE
    info = json.loads(info_path.read_text(encoding="utf-8"))
    info["finished"] = not (budget is not None and budget.stopped)
    info["stopped"] = None if info["finished"] else "max_seconds"
    info["checkpoint"] = None if info["finished"] else f"checkpoint-{info['steps']}"
    if not info["finished"]:
        shutil.rmtree(run_dir / trainer.FINAL_DIR, ignore_errors=True)
    info_path.write_text(json.dumps(info, indent=1), encoding="utf-8")
    print(json.dumps({"output_dir": str(run_dir), "finished": info["finished"], "steps": info["steps"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
