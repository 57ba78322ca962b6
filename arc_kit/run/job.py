"""One run as every part of ``arc_kit.run`` sees it: the files it reads and writes, its settings, when it started
(``RunJob``), and its input files, read once (``RunInputs``).

The bottom of the run package: the schedule, the workers, the ledger and the runner import it, it imports none of
them. A new kind of run (an evaluation, a training kernel) starts from a ``RunJob`` too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arc_kit.config.run import RunSettings, SolverSettings, TTTSettings
from arc_kit.core.metric import solutions_cover
from arc_kit.core.submission import read_raw_tasks
from arc_kit.core.tasks import TaskFileError, TaskSet, parse_tasks, read_json
from arc_kit.solve.solver import quick_config


@dataclass
class RunJob:
    """One run: the files it reads and writes, plus the settings (defaults in ``arc_kit.config.run``)."""

    model_dir: Path | None
    challenges: Path
    output: Path  # the submission.json to write
    solutions: Path | None = None  # scores the run when given
    run: RunSettings = field(default_factory=RunSettings)
    solver: SolverSettings = field(default_factory=SolverSettings)
    ttt: TTTSettings = field(default_factory=TTTSettings)
    max_tasks: int | None = None  # quick pass: only the first N tasks (shortest first) are decoded
    start_time: float | None = None  # time.time() when the run (or the kernel) started; None: now
    progress: bool = True  # tqdm bar
    model_problem: str | None = None  # why no weights folder was found (the kernel's search), for the report
    warnings: list[str] = field(default_factory=list)  # found before the run (weights found elsewhere), reported

    @property
    def two_phases(self) -> bool:
        """A quick greedy pass over every task first, then the full solver: when asked for, and when the full
        solver is more than that greedy pass (test-time training, a search, several views)."""
        return self.run.quick_first and (self.ttt.enabled or self.solver != quick_config(self.solver))


SolverFactory = Callable[[RunJob], Any]  # returns an object with .solve(tasks, stop_at) -> list[TaskResult]


@dataclass
class RunInputs:
    """A run's input files, read once: the challenges as written (counted for placeholders), the tasks parsed
    from them, and the solutions (``{}`` without)."""

    raw: dict[str, Any]
    tasks: TaskSet
    solutions: dict[str, Any]
    coverage: str | None = None  # when the solutions cover only some of the tasks: what the score leaves out


def read_inputs(job: RunJob) -> RunInputs:
    """The run's inputs; ``TaskFileError`` for a challenges file that cannot be read, one in which no entry is a
    valid task (a solutions file given as challenges, say), a bad solutions file, or solutions for none of the
    tasks (another set's, whose score of 0 would say nothing): said now, not after hours of decoding."""
    raw = read_raw_tasks(job.challenges)
    solutions = _read_solutions(job.solutions) if job.solutions is not None else {}
    tasks = parse_tasks(raw, str(job.challenges), strict=False)
    if raw and not tasks.tasks:
        raise TaskFileError(_no_valid_task(job.challenges, tasks.errors))
    coverage = None
    if job.solutions is not None:
        coverage = solutions_cover(list(raw), solutions, str(job.solutions), str(job.challenges))
    return RunInputs(raw, tasks, solutions, coverage)


def _read_solutions(path: Path) -> dict[str, Any]:
    solutions = read_json(path)
    if not isinstance(solutions, dict):
        raise TaskFileError(f"{path}: the top level must map task ids to lists of output grids, "
                            f"got {type(solutions).__name__}")
    return solutions


def _no_valid_task(path: Path, errors: dict[str, str], show: int = 3) -> str:
    first = "; ".join(why.split(": ", 1)[-1] for why in list(errors.values())[:show])
    return (f"{path}: none of its {len(errors)} entries is a valid task (is it a challenges file?); "
            f"first problems: {first}")
