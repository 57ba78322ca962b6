"""The run's work in order: which tasks a worker takes next, in which phase, with how much time.

Tasks run shortest first (``arc_kit.solve.prompts.task_cost``); the quick pass packs them in groups that fill a
batch, the full solver takes them one by one with a cap that shares the time left fairly, and the spare-time phase
revisits the least confident first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from arc_kit.core.tasks import Task
from arc_kit.run.job import RunJob


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
    """One item of the run: a group of tasks for the quick pass, one task for the full solver, or one task to
    revisit in spare time."""

    phase: str  # "quick" (phase 1: plain greedy), "full" or "spare"
    tasks: list[Task]
    cap_seconds: float  # how long it may take from when it starts
    priors: dict[str, Any] = field(default_factory=dict)  # spare: task id -> the full result's InputResults


@dataclass
class Revisit:
    """A task whose full answer landed, waiting for spare time: least confident first, then shortest."""

    confidence: float
    order: int
    seconds: float  # what its full solve took: a revisit is not started with less time left
    task: Task
    inputs: Any  # the full result's InputResults, pooled with the revisit's


MIN_TASK_CAP = 5.0  # seconds: below this a task's full solver could not even load its prompts


class Schedule:
    """The run's work in order: the quick pass over every task (shortest first), then the full solver task by
    task, then, with ``spare_time``, revisits in spare time.

    Why two phases: the full solver (search, re-scoring, test-time training) takes minutes a task; a run that
    times out must still hold a real answer for every task, so a plain greedy pass comes first and each full
    result replaces it. A full task's cap is its share of the time left: (deadline - now) x workers / tasks left, at
    most ``task_cap_seconds``, so early tasks cannot starve the late ones.

    Why a spare-time phase: tasks rarely use their whole share, so time is usually left once every task holds
    its full answer. Where the selection margin is small the right grid is often among the candidates but not
    chosen (NVARC's notebook on ARC-AGI-2's evaluation set: right among candidates for 36-40% of outputs,
    chosen for ~28%; re-running the less confident half with the time left gained ~2 points). Revisits start only
    when no full task is still out (``landed`` counts them back), least confident first; one whose full solve
    took longer than the time left is skipped (it would time out, and a timed-out revisit changes nothing).
    """

    def __init__(self, ordered: list[Task], job: RunJob, deadline: float, workers: int, two_phases: bool):
        solver = job.solver
        self.deadline, self.workers, self.cap = deadline, workers, job.run.task_cap_seconds
        self.quick = task_groups(ordered, solver.batch_size, 1) if two_phases else []
        self.full = [[t] for t in ordered] if two_phases else task_groups(ordered, solver.batch_size, solver.views)
        self.two_phases = two_phases
        self.spare_time = job.run.spare_time
        self.revisits: list[Revisit] = []
        self.full_out = 0  # full-phase tasks handed out whose results have not come back
        self.position = {t.task_id: i for i, t in enumerate(ordered)}
        self.phase_tasks = {"quick": sum(len(g) for g in self.quick), "full": len(ordered), "spare": 0}  # bars

    @property
    def waiting(self) -> bool:
        """Nothing to hand out now, but revisits may come once the full tasks still out have landed."""
        return not self.quick and not self.full and self.spare_time and self.full_out > 0

    def landed(self, phase: str, task: Task | None, confidence: float | None = None, seconds: float = 0.0,
               inputs: Any = None) -> None:
        """A work item's task came back; a full answer with a confidence joins the revisits."""
        if phase != "full":
            return
        self.full_out = max(0, self.full_out - 1)
        if self.spare_time and task is not None and confidence is not None:
            self.revisits.append(Revisit(confidence, self.position.get(task.task_id, 0), seconds, task, inputs))
            self.phase_tasks["spare"] += 1

    @property
    def empty(self) -> bool:
        """No work now and none to come (no full task still out whose landing could add a revisit)."""
        return not self.quick and not self.full and not self.revisits and not self.waiting

    def put_back(self, works: list[Work]) -> None:
        """Work a worker took but will not do (it died) goes to the front of its phase, in order; a revisit is
        dropped (the task keeps its full answer)."""
        for work in reversed(works):
            if work.phase == "quick":
                self.quick.insert(0, work.tasks)
            elif work.phase == "full":
                self.full.insert(0, work.tasks)
                self.full_out = max(0, self.full_out - len(work.tasks))  # handed out again by next()

    def next(self, now: float) -> Work | None:
        if self.quick:
            return Work("quick", self.quick.pop(0), self.cap)
        if self.full:
            tasks_left = sum(len(g) for g in self.full)
            group = self.full.pop(0)
            self.full_out += len(group)
            if not self.two_phases:
                return Work("full", group, self.cap)
            share = (self.deadline - now) * self.workers / max(1, tasks_left)
            return Work("full", group, min(self.cap, max(MIN_TASK_CAP, share)))
        return self._next_revisit(now)

    def _next_revisit(self, now: float) -> Work | None:
        if self.waiting or not self.revisits:
            return None
        self.revisits.sort(key=lambda r: (r.confidence, r.order))
        while self.revisits:
            revisit = self.revisits.pop(0)
            if revisit.seconds < self.deadline - now:
                return Work("spare", [revisit.task], self.cap, {revisit.task.task_id: revisit.inputs})
        return None
