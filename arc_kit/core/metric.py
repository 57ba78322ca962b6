"""The ARC Prize metric: per task, correct test outputs / test outputs, then the mean over tasks.

A test output counts when either attempt equals the solution exactly. We also report the mean over all test outputs
(the older per-output metric) since papers quote both.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from arc_kit.core.tasks import TaskFileError


@dataclass
class TaskScore:
    task_id: str
    correct: list[bool]  # one per test output

    @property
    def score(self) -> float:
        return sum(self.correct) / len(self.correct) if self.correct else 0.0


@dataclass
class ScoreReport:
    score: float  # ARC Prize: mean over tasks of the per-task fraction
    score_per_output: float  # mean over all test outputs
    tasks: int
    test_outputs: int
    correct_outputs: int
    per_task: dict[str, TaskScore] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["per_task"] = {tid: {"correct": ts.correct, "score": ts.score} for tid, ts in self.per_task.items()}
        return out


def _as_lists(grid: Any) -> Any:
    """Grids may arrive as tuples (in memory) or lists (from JSON): compare them as lists."""
    if isinstance(grid, (list, tuple)):
        return [_as_lists(x) for x in grid]
    return grid


def _check_shape(data: Any, name: str, what: str) -> None:
    """Refuse data the metric cannot read at all (Kaggle would fail it too); ``name`` starts the message."""
    if not isinstance(data, Mapping):
        raise TaskFileError(f"{name}: must be an object mapping task ids to {what}, got {type(data).__name__}")
    for tid, value in data.items():
        if not isinstance(value, (list, tuple)):
            raise TaskFileError(f"{name}: task {tid}: must be a list of {what}, got {type(value).__name__}")


def score_submission(submission: Mapping[str, Any], solutions: Mapping[str, Sequence[Any]],
                     names: tuple[str, str] = ("submission", "solutions")) -> ScoreReport:
    """Score against every task in ``solutions``; a task missing from the submission scores 0, and a malformed
    entry or attempt counts as wrong. A task whose value is not a list is a ``ValueError`` starting with the
    matching name in ``names`` (the file paths, when scoring files)."""
    _check_shape(submission, names[0], "entries")
    _check_shape(solutions, names[1], "grids")
    per_task: dict[str, TaskScore] = {}
    for tid, answers in solutions.items():
        entries = submission.get(tid, [])
        correct = []
        for i, answer in enumerate(answers):
            entry = entries[i] if i < len(entries) and isinstance(entries[i], Mapping) else {}
            truth = _as_lists(answer)
            correct.append(any(_as_lists(entry.get(a)) == truth for a in ("attempt_1", "attempt_2")))
        per_task[tid] = TaskScore(tid, correct)
    n_tasks = len(per_task)
    n_outputs = sum(len(ts.correct) for ts in per_task.values())
    n_correct = sum(sum(ts.correct) for ts in per_task.values())
    return ScoreReport(
        score=sum(ts.score for ts in per_task.values()) / n_tasks if n_tasks else 0.0,
        score_per_output=n_correct / n_outputs if n_outputs else 0.0,
        tasks=n_tasks,
        test_outputs=n_outputs,
        correct_outputs=n_correct,
        per_task=per_task,
    )


def solutions_cover(task_ids: Collection[str], solutions: Mapping[str, Any], solutions_name: str,
                    tasks_name: str) -> str | None:
    """How far ``solutions`` cover the tasks a run scores: None when every task has its solutions; a warning line
    when only some do (the score is then over those alone); ``TaskFileError`` when none do: another set's
    solutions, whose score of 0 would say nothing. Checked before a run, so a wrong file costs nothing."""
    missing = [tid for tid in task_ids if tid not in solutions]
    if not missing:
        return None
    if len(missing) == len(task_ids):
        raise TaskFileError(f"{solutions_name}: solutions for none of the {len(task_ids)} tasks of {tasks_name} "
                            "(another set's solutions?): nothing could be scored")
    shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
    return (f"only {len(task_ids) - len(missing)} of {len(task_ids)} tasks scored: {solutions_name} has no "
            f"solutions for {len(missing)} ({shown}); the score is over the others alone")


def score_files(submission_path: str | Path, solutions_path: str | Path) -> ScoreReport:
    """Score a submission file against a solutions file; errors (``ValueError``) name the file."""
    from arc_kit.core.tasks import read_json

    return score_submission(read_json(Path(submission_path)), read_json(Path(solutions_path)),
                            names=(str(submission_path), str(solutions_path)))
