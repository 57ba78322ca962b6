"""Training under a wall-clock budget (``train.max_seconds``) and resuming from an earlier run's output: a budget
stop leaves a checkpoint and ``finished: false`` (no final/, no export); ``--resume-from`` that output continues to
the same final step and learning-rate schedule as an uninterrupted run; a finished run exports, and a training
output is told apart from an export (``models.weights.training_output``). The clock is faked: no test waits."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import one_error_line, tiny_config

from arc_kit.cli.main import main as cli_main

pytestmark = pytest.mark.slow

# ~12 optimiser steps over 2 epochs (flat, then cosine); a LR logged at every step.
OVERRIDES = ["data.synthetic.n_tasks=8", "data.augmentations=1", "data.eval_fraction=0", "train.logging_steps=1",
             "train.per_device_train_batch_size=4", "train.save_steps=100", "train.stop_margin_seconds=5"]


class FakeClock:
    """Ten seconds pass at every reading: the run starts at 10, training at 20, step k ends at 20 + 10k."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 10.0
        return self.now


def sets(out: Path, *extra: str) -> list[str]:
    return [a for o in [*OVERRIDES, f"train.output_dir={out}", *extra] for a in ("--set", o)]


def logged(run_dir: Path) -> list[tuple[int, float, float]]:
    """(step, learning rate, loss) of every training row of a run's log."""
    rows = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return [(r["step"], r["learning_rate"], r["loss"]) for r in rows if "loss" in r]


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    from arc_kit.training import run_training

    return run_training(tiny_config(tmp_path_factory.mktemp("whole") / "run", OVERRIDES))


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """The same run with a 40 s budget and 5 s margin on the fake clock: the deadline is 10 + 35 = 45; after step 2
    (ends at 40, steps take 10) the next would end at 50, past it."""
    from arc_kit.training import run_training, trainer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer, "_now", FakeClock())
        return run_training(tiny_config(tmp_path_factory.mktemp("stopped") / "run",
                                        [*OVERRIDES, "train.max_seconds=40"]))


def test_a_budget_stop_leaves_a_checkpoint_and_says_it_did_not_finish(stopped, whole):
    from arc_kit.models.weights import is_complete_checkpoint

    assert whole.finished and whole.steps >= 10 and whole.final_dir.is_dir()
    assert (stopped.finished, stopped.stopped, stopped.steps) == (False, "max_seconds", 2)
    assert stopped.final_dir is None and not (stopped.output_dir / "final").exists()
    assert stopped.checkpoint == stopped.output_dir / "checkpoint-2" and is_complete_checkpoint(stopped.checkpoint)
    info = json.loads((stopped.output_dir / "run_info.json").read_text())
    assert (info["finished"], info["stopped"], info["checkpoint"], info["steps"]) == (
        False, "max_seconds", "checkpoint-2", 2)
    assert info["max_steps"] == whole.steps  # the schedule is still the full run's
    assert logged(stopped.output_dir) == logged(whole.output_dir)[:2]


def test_a_stopped_run_is_not_exported_nor_taken_for_weights(stopped, tmp_path):
    from arc_kit.models.weights import CHECKPOINTS, WeightsFolderError, choose_weights, training_output
    from arc_kit.training.export import ExportError, export_model

    with pytest.raises(ExportError, match="stopped at its time budget .* --resume-from"):
        export_model(stopped.output_dir, tmp_path / "export")
    out = training_output(stopped.output_dir.parent)
    assert (out.kind, out.run_dir, out.checkpoint) == (CHECKPOINTS, stopped.output_dir, stopped.checkpoint)
    with pytest.raises(WeightsFolderError, match="holds checkpoint-2 but no export: the training kernel stopped at "
                                                 "its budget; run it again to resume"):
        choose_weights(stopped.output_dir.parent)


@pytest.fixture(scope="module")
def resumed(stopped, tmp_path_factory):
    """``arc-kit train --resume-from`` the stopped run's parent folder (as a notebook output is attached), into a
    new folder, with no budget."""
    before = digest(stopped.output_dir)
    out = tmp_path_factory.mktemp("resumed") / "run"
    assert cli_main(["train", "--config", "tiny-cpu", *sets(out), "--resume-from", str(stopped.output_dir.parent)]) == 0
    return out, before


def test_resume_from_an_earlier_output_ends_as_the_uninterrupted_run(resumed, stopped, whole):
    out, before = resumed
    assert digest(stopped.output_dir) == before  # the earlier output was only read
    info = json.loads((out / "run_info.json").read_text())
    assert info["finished"] and info["stopped"] is None and info["steps"] == whole.steps
    assert info["resumed_from"] == str(stopped.checkpoint)
    ours, theirs = logged(out), logged(whole.output_dir)
    assert [(s, lr) for s, lr, _ in ours] == [(s, lr) for s, lr, _ in theirs]  # the same schedule, step by step
    assert [loss for *_, loss in ours] == pytest.approx([loss for *_, loss in theirs], rel=1e-4)
    assert (out / "final").is_dir()


def test_a_finished_run_exports_and_its_output_holds_an_export(resumed, tmp_path):
    from arc_kit.models.weights import EXPORT, export_weights, training_output
    from arc_kit.training.export import export_model

    out, _ = resumed
    kernel_output = tmp_path / "working"  # a training kernel's /kaggle/working: the run folder and its export
    shutil.copytree(out, kernel_output / "run")
    merged = export_model(kernel_output / "run", kernel_output / "export")
    found = training_output(kernel_output)
    assert (found.kind, found.weights) == (EXPORT, merged)  # the export wins over the checkpoints beside it
    assert export_weights(kernel_output) == merged


def test_resume_from_is_refused_in_one_line(stopped, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["train", "--config", "tiny-cpu", *sets(tmp_path / "a"), "--resume-from", str(empty)]) == 2
    assert "no checkpoint-<step>/" in one_error_line(capsys, str(empty))
    assert cli_main(["train", "--config", "tiny-cpu", *sets(tmp_path / "b", "train.per_device_train_batch_size=2"),
                     "--resume-from", str(stopped.output_dir)]) == 2
    line = one_error_line(capsys, "train.per_device_train_batch_size")
    assert "was 4, now 2" in line
    assert not (tmp_path / "b").exists()  # refused before anything was written


def test_the_stop_margin_must_leave_time(tmp_path):
    from arc_kit.config.schema import SettingsError

    with pytest.raises(SettingsError, match="train.stop_margin_seconds"):
        tiny_config(tmp_path, ["train.max_seconds=100", "train.stop_margin_seconds=100"])
