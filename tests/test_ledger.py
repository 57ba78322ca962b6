"""The ledger, driven directly: results landing in any order, as several workers hand them back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arc_kit.config.run import RunSettings, SolverSettings, TTTSettings
from arc_kit.run.job import RunJob, read_inputs
from arc_kit.run.ledger import Ledger
from arc_kit.run.progress import PhaseBars
from arc_kit.run.schedule import Schedule
from arc_kit.solve.solver import InputResult, RankedCandidate, TaskResult

TASKS = {"t": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}, {"input": [[4]]}]}}
FULL, QUICK, RANKED_SECOND = ((5,),), ((6,),), ((7,),)


def open_ledger(tmp_path: Path) -> Ledger:
    """A two-worker run of one task with two test inputs, its results landed by hand."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "c.json").write_text(json.dumps(TASKS))
    job = RunJob(model_dir=None, challenges=tmp_path / "c.json", output=tmp_path / "submission.json",
                 run=RunSettings(workers=2), solver=SolverSettings(), ttt=TTTSettings(enabled=False), progress=False)
    inputs = read_inputs(job)
    queued = list(inputs.tasks)
    schedule = Schedule(queued, job, deadline=1e12, workers=2, two_phases=True)
    ledger = Ledger(job, inputs, queued, schedule, PhaseBars(schedule.phase_tasks, True, False), workers=2)
    ledger.open()
    return ledger


def full_result(first_input_only: bool = False) -> TaskResult:
    """The full solver's answer: one grid for input 0 (and for input 1 unless ``first_input_only``)."""
    attempts = [(FULL, None), (None, None) if first_input_only else (FULL, None)]
    inputs = [InputResult([RankedCandidate(FULL, 1.0, 1, 0)] if a is not None else []) for a, _ in attempts]
    return TaskResult("t", attempts, seconds=2.0, inputs=inputs)


def quick_result() -> TaskResult:
    return TaskResult("t", [(QUICK, None), (QUICK, None)], seconds=0.5)


def on_disk(ledger: Ledger) -> list[dict]:
    return json.loads(ledger.file.path.read_text())["t"]


@pytest.mark.parametrize("first_input_only", [False, True])
def test_a_late_quick_pass_answer_never_replaces_the_full_answer_only_feeds_attempt_two(tmp_path, first_input_only):
    """With several workers a quick-pass group can come back after the same task's full answer landed: the file
    ends as if the quick pass had come first, whichever order they land in."""
    in_order = open_ledger(tmp_path / "in-order")
    in_order.land(quick_result(), "quick")
    in_order.land(full_result(first_input_only), "full")
    late = open_ledger(tmp_path / "late")
    late.land(full_result(first_input_only), "full")
    assert on_disk(late)[0] == {"attempt_1": [[5]], "attempt_2": [[3]]}  # before: attempt 2 is the test input
    late.land(quick_result(), "quick")
    entries = on_disk(late)
    assert entries[0] == {"attempt_1": [[5]], "attempt_2": [[6]]}  # the full answer stays; the quick one is second
    assert entries[1] == ({"attempt_1": [[6]], "attempt_2": [[4]]} if first_input_only  # the full solver had none
                          else {"attempt_1": [[5]], "attempt_2": [[6]]})
    assert entries == on_disk(in_order)
    record = late.report.per_task["t"]
    assert record.phase1_seconds == 0.5 and record.seconds == 2.0
    assert record.inputs[0].landed and record.inputs[0].attempt_2_source == "phase1"
    assert [c["source"] for c in record.inputs[0].second_choices] == ["phase1", "test_input", "placeholder"]
    assert late.report.attempted_ids == ["t"] and late.submission.placeholders_left == 0


def test_a_spare_answer_after_a_late_quick_pass_keeps_it_as_attempt_two(tmp_path):
    ledger = open_ledger(tmp_path)
    ledger.land(full_result(), "full")
    ledger.land(quick_result(), "quick")
    revisit = TaskResult("t", [(RANKED_SECOND, None), (FULL, RANKED_SECOND)], seconds=1.0,
                         inputs=[InputResult([RankedCandidate(RANKED_SECOND, 2.0, 2, 0)]),
                                 InputResult([RankedCandidate(FULL, 2.0, 2, 0), RankedCandidate(RANKED_SECOND, 1.0, 1, 1)])])
    ledger.land(revisit, "spare")
    assert on_disk(ledger) == [{"attempt_1": [[7]], "attempt_2": [[6]]}, {"attempt_1": [[5]], "attempt_2": [[7]]}]
    record = ledger.report.per_task["t"]
    assert [r.attempt_2_source for r in record.inputs] == ["phase1", "ranked"]
    assert record.spare["landed"] and record.spare["changed"] and ledger.report.spare_changed == 1


def test_a_late_quick_pass_after_a_failed_full_solve_lands(tmp_path):
    """A full result that is an error (its worker died) holds no answer: the quick pass's answer fills the file,
    whenever it comes."""
    ledger = open_ledger(tmp_path)
    ledger.land(TaskResult("t", error="worker 0 died"), "full")
    ledger.land(quick_result(), "quick")
    assert on_disk(ledger) == [{"attempt_1": [[6]], "attempt_2": [[3]]}, {"attempt_1": [[6]], "attempt_2": [[4]]}]
    assert ledger.report.errors["t"] == "worker 0 died" and ledger.failed == {}
