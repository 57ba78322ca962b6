"""The run's work in order: which tasks a worker takes next, in which phase, with how much time.

Tasks run shortest first (``arc_kit.solve.prompts.task_cost``); the quick pass packs them in groups that fill a
batch, the full solver takes them one by one with a cap that shares the time left fairly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from arc_kit.core.tasks import Task

if TYPE_CHECKING:
    from arc_kit.run.runner import RunConfig


def task_groups(tasks: Sequence[Task], prompts_per_group: int, views: int) -> list[list[Task]]:
    """Consecutive tasks packed until their prompts (test inputs x views) fill one batch."""
    groups: list[list[Task]] = []
    current: list[Task] = []
    count = 0
    for task in tasks:
        current.append(task)
        count += len(task.test) * max(1, views)
        if count >= prompts_per_group:
            groups.append(current)
            current, count = [], 0
    if current:
        groups.append(current)
    return groups


@dataclass
class Work:
    """One item of the run: a group of tasks for the quick pass, or one task for the full solver."""

    phase: str  # "quick" (phase 1: plain greedy) or "full"
    tasks: list[Task]
    cap_seconds: float  # how long it may take from when it starts


MIN_TASK_CAP = 5.0  # seconds: below this a task's full solver could not even load its prompts


class Schedule:
    """The run's work in order: the quick pass over every task (shortest first), then the full solver task by task.

    Why two phases: the full solver (search, re-scoring, test-time training) takes minutes a task; a run cut short
    must still hold a real answer for every task, so a plain greedy pass comes first and each full result
    replaces it. A full task's cap is its share of the time left: (deadline - now) x workers / tasks left, at
    most ``task_cap_seconds``, so early tasks cannot starve the late ones.
    """

    def __init__(self, ordered: list[Task], config: RunConfig, deadline: float, workers: int, two_phases: bool):
        solver = config.solver
        self.deadline, self.workers, self.cap = deadline, workers, config.run.task_cap_seconds
        self.quick = task_groups(ordered, solver.batch_size, 1) if two_phases else []
        self.full = [[t] for t in ordered] if two_phases else task_groups(ordered, solver.batch_size, solver.views)
        self.two_phases = two_phases
        self.phase_tasks = {"quick": sum(len(g) for g in self.quick), "full": len(ordered)}  # progress bars

    @property
    def empty(self) -> bool:
        return not self.quick and not self.full

    def put_back(self, works: list[Work]) -> None:
        """Work a worker took but will not do (it died) goes to the front of its phase, in order."""
        for work in reversed(works):
            (self.quick if work.phase == "quick" else self.full).insert(0, work.tasks)

    def next(self, now: float) -> Work | None:
        if self.quick:
            return Work("quick", self.quick.pop(0), self.cap)
        if not self.full:
            return None
        tasks_left = sum(len(g) for g in self.full)
        group = self.full.pop(0)
        if not self.two_phases:
            return Work("full", group, self.cap)
        share = (self.deadline - now) * self.workers / max(1, tasks_left)
        return Work("full", group, min(self.cap, max(MIN_TASK_CAP, share)))
