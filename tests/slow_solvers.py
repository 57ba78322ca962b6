"""Picklable solver factories for runs with worker processes (imported by spawned workers, so a module)."""

from __future__ import annotations

import time

from arc_kit.solve.solver import TaskResult


class SleepySolver:
    """Answers [[1]] for every test input after ``delay`` seconds per group (a stand-in for a slow GPU)."""

    def __init__(self, delay: float):
        self.delay = delay

    def solve(self, tasks, stop_at=None):  # noqa: ANN001, ANN201
        time.sleep(self.delay)
        return [TaskResult(t.task_id, [(((1,),), None)] * len(t.test), tokens=1, seconds=self.delay) for t in tasks]


class SleepyFactory:
    """``loading_bar``: show a progress bar while "loading", as transformers does when it loads weights (tqdm
    makes its write lock at its first bar, in the worker process)."""

    def __init__(self, delay: float, loading_bar: bool = False):
        self.delay, self.loading_bar = delay, loading_bar

    def __call__(self, config):  # noqa: ANN001, ANN204
        if self.loading_bar:
            from tqdm.auto import tqdm

            for _ in tqdm(range(2), desc="loading weights"):
                pass
        return SleepySolver(self.delay)


class FailingFactory:
    """A model that cannot be loaded, in every worker."""

    def __call__(self, config):  # noqa: ANN001, ANN204
        raise OSError("weights folder /nope does not exist")
