"""The run's progress on the terminal: one tqdm bar per phase."""

from __future__ import annotations

from typing import Any


class PhaseBars:
    """One tqdm bar per phase, each counting that phase's tasks once: "phase 1, greedy: 5/5" then
    "phase 2, full solver: 3/5", not one bar counting both phases as if there were twice the tasks."""

    NAMES = {"quick": "phase 1, greedy", "full": "phase 2, full solver", "spare": "phase 3, spare time"}

    def __init__(self, totals: dict[str, int], two_phases: bool, enabled: bool):
        self.totals, self.two_phases, self.enabled = totals, two_phases, enabled
        self.phase: str | None = None
        self.bar: Any = None

    def update(self, phase: str, n: int) -> None:
        if not self.enabled:
            return
        if phase != self.phase:
            self.close()
            from tqdm.auto import tqdm

            self.phase = phase
            self.bar = tqdm(total=self.totals[phase], desc=self.NAMES[phase] if self.two_phases else "tasks",
                            unit="task", dynamic_ncols=True)
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
