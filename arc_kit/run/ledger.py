"""Where a run's results land: what each task holds, from which phase, and what the submission file holds.

The file on disk is valid from the first write (placeholders for every test input of every task, malformed ones
included) and is rewritten atomically as answers land. The workers hand every result to the ``Ledger`` and
nothing else touches the submission or the report's per-task records while the run goes on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from arc_kit.core.submission import PLACEHOLDER, Submission, entry_counts, validate_submission
from arc_kit.core.tasks import Grid, Task, grid_to_json
from arc_kit.run.job import RunInputs, RunJob
from arc_kit.run.progress import PhaseBars
from arc_kit.run.records import InputRecord, RunReport, TaskRecord, stage_seconds
from arc_kit.run.schedule import Schedule
from arc_kit.solve.selection import confidence_key, second_attempt
from arc_kit.solve.solver import TaskResult

log = logging.getLogger(__name__)

MAX_LOGGED_TASK_ERRORS = 5

Attempts = tuple[Grid | None, Grid | None]
Fallbacks = list[tuple[str, Grid]]  # attempt 2's choices when the pool holds one grid: (source, grid), in order


@dataclass
class TaskLanded:
    """What landed for one task: the quick pass's attempts, and the solver's answers (the full result, then a
    spare-time revisit that finished), oldest first."""

    quick: list[Attempts] | None = None
    answers: list[TaskResult] = field(default_factory=list)


@dataclass
class Entry:
    """One test input's entry, worked out from what landed: the attempts, where attempt 2 came from and the
    fallbacks it was chosen from; ``answer`` is the solver result attempt 1 comes from (None: the quick pass's
    answer, or none), ``answered`` False when attempt 1 is the placeholder."""

    first: Grid | None
    second: Grid | None
    source: str | None
    fallbacks: Fallbacks
    answer: TaskResult | None = None
    answered: bool = True


class Ledger:
    """The run's results as they land: the submission (rewritten at once, atomically), the report's records, and
    per task what landed from which phase.

    Each test input's entry is worked out again from everything that landed for its task, whatever the order
    (with several workers a quick-pass group can come back after the same task's full answer): the last solver
    answer for that input, else the quick pass's, else the placeholder. So a full answer replaces the quick pass's
    only for the test inputs it answered, a late quick-pass answer never replaces a solver answer (it only becomes
    attempt 2's first fallback), and a spare-time revisit lands only when it finished (its pool then holds the full
    search's candidates too). Attempt 2 is never a copy of attempt 1 while any fallback differs from it: the
    ranking's second grid, else the quick pass's answer, the test input, the placeholder.
    """

    def __init__(self, job: RunJob, inputs: RunInputs, queued: list[Task], schedule: Schedule, bar: PhaseBars,
                 workers: int):
        self.job = job
        self.counts = entry_counts(inputs.raw)
        self.submission = Submission.placeholders(self.counts)
        self.report = RunReport(str(job.output), tasks=len(self.counts), entries=self.submission.num_entries,
                                tasks_queued=len(queued), workers=workers, warnings=[*job.warnings, *filter(None, [inputs.coverage])],
                                selection={"formula": job.solver.formula, **asdict(job.solver.selection)})
        self.file = SubmissionFile(self.submission, job.output, self.report)
        self.solutions = inputs.solutions
        self.tasks = {t.task_id: t for t in queued}
        self.schedule, self.bar = schedule, bar
        self.landed: dict[str, TaskLanded] = {}
        self.attempted: set[str] = set()
        self.failed: dict[str, str] = {}  # attempted tasks whose last result is an error
        self.malformed = inputs.tasks.errors

    def open(self) -> None:
        """Write the placeholder file and note the tasks that cannot be answered; an ``OSError`` when nothing can
        be written (see ``SubmissionFile.write_first``)."""
        self.file.write_first(self.counts)
        self.report.errors.update(self.malformed)
        _log_skipped(self.malformed)
        for tid, n in self.counts.items():
            if n == 0 and tid not in self.report.errors:
                self.report.errors[tid] = "no test inputs: nothing to answer"

    # -- while the run goes on ---------------------------------------------------------------------------------

    def came_back(self, phase: str, task_ids: list[str], results: list[TaskResult]) -> None:
        """A work item is done: land its results; a task that came back without one is counted back to the
        schedule; the phase's bar moves on."""
        for result in results:
            self.land(result, phase)
        for _ in range(len(task_ids) - len(results)):
            self.schedule.landed(phase, None)
        self.bar.update(phase, len(task_ids))

    def land(self, result: TaskResult, phase: str) -> None:
        """One task's result: into the report and, at once, into the file."""
        task = self.tasks.get(result.task_id)
        previous = self.report.per_task.get(result.task_id)
        landed = self.landed.setdefault(result.task_id, TaskLanded())
        if phase == "spare" and (result.error or result.timed_out or task is None):
            if previous is not None:
                previous.spare = {"landed": False, "seconds": round(result.seconds, 3),
                                  "why": result.error or "timed out (its cap or the deadline)"}
            return
        before = [dict(entry) for entry in self.submission.entries.get(result.task_id, [])]
        truths = self.solutions.get(result.task_id) or []
        if phase == "quick":
            record = self.report.per_task.setdefault(result.task_id, TaskRecord())
            record.phase1_seconds = round(result.seconds, 3)
            record.phase1_correct = _correct(result.attempts, truths) if truths else None
            landed.quick = list(result.attempts)
        else:
            record = self.report.per_task[result.task_id] = _solver_record(result, previous, truths, phase)
            if not result.error:
                landed.answers.append(result)
        self._attempted(result)
        self._write_entries(result.task_id)
        if phase == "spare" and record.spare is not None:
            record.spare["changed"] = self.submission.entries.get(result.task_id) != before
            self.report.spare_revisits += 1
            self.report.spare_changed += record.spare["changed"]
        if phase == "full":
            eligible = not result.error and not result.timed_out and task is not None
            self.schedule.landed("full", task if eligible else None, _key(result) if eligible else None,
                                 result.seconds, result.inputs)
        self.file.write()

    def _attempted(self, result: TaskResult) -> None:
        if result.task_id not in self.attempted:
            self.attempted.add(result.task_id)
            self.report.attempted_ids.append(result.task_id)
        self.report.tasks_attempted = len(self.attempted)
        if result.error:
            self.report.errors[result.task_id] = result.error
            self.failed[result.task_id] = result.error
        else:
            self.failed.pop(result.task_id, None)

    def _write_entries(self, task_id: str) -> None:
        """Work out the task's entries from what landed, into the submission and the latest solver record: that
        record says, per test input, whether its answer is the one in the file and where attempt 2 came from."""
        landed = self.landed[task_id]
        latest = landed.answers[-1] if landed.answers else None
        record = self.report.per_task.get(task_id) if latest is not None else None
        for i in range(len(self.submission.entries.get(task_id, []))):
            entry = self._entry(task_id, i, landed)
            if entry.answered:
                self.submission.set_attempts(task_id, i, entry.first, entry.second)
            elif entry.second is not None:  # no answer anywhere: the placeholder stays, an unanswered attempt 1
                self.submission.entries[task_id][i]["attempt_2"] = entry.second
            if record is not None and i < len(record.inputs):
                mine = entry.answer is latest or not entry.answered
                record.inputs[i].landed = entry.answer is latest
                record.inputs[i].attempt_2_source = entry.source if mine else None
                record.inputs[i].second_choices = [{"source": s, "grid": grid_to_json(g)}
                                                   for s, g in self._fallbacks(task_id, i, landed.quick)]

    def _entry(self, task_id: str, i: int, landed: TaskLanded) -> Entry:
        """Test input ``i``'s entry: the last solver answer for it, else the quick pass's, else the placeholder."""
        for answer in reversed(landed.answers):
            first, ranked_second = answer.attempts[i] if i < len(answer.attempts) else (None, None)
            if first is not None:
                fallbacks = self._fallbacks(task_id, i, landed.quick)
                return Entry(first, *second_attempt(first, ranked_second, fallbacks), fallbacks, answer)
        fallbacks = self._fallbacks(task_id, i, None)
        if landed.quick is not None and (first := _first(landed.quick, i)) is not None:
            return Entry(first, *second_attempt(first, landed.quick[i][1], fallbacks), fallbacks)
        return Entry(PLACEHOLDER, *second_attempt(PLACEHOLDER, None, fallbacks), fallbacks, answered=False)

    def _fallbacks(self, task_id: str, i: int, quick: list[Attempts] | None) -> Fallbacks:
        """Attempt 2's choices in order when the pool holds one grid (``selection.second_attempt``): the quick
        pass's answer (for a solver answer), the test input itself, the placeholder."""
        task = self.tasks.get(task_id)
        fallbacks: Fallbacks = []
        if _first(quick, i) is not None:
            fallbacks.append(("phase1", quick[i][0]))
        if task is not None and i < len(task.test):
            fallbacks.append(("test_input", task.test[i].input))
        fallbacks.append(("placeholder", PLACEHOLDER))
        return fallbacks

    # -- at the end --------------------------------------------------------------------------------------------

    def close(self) -> RunReport:
        """The final write; the file read back, validated, and scored when solutions are known; the run's
        warnings about failed writes and failed tasks."""
        report, job = self.report, self.job
        self.file.write()
        self.file.say_failures()
        if report.model_error:
            log.error("MODEL NOT LOADED, every entry keeps its placeholder: %s", report.model_error)
        report.tasks_failed = len(self.failed)
        if report.every_task_failed:
            first, why = next(iter(self.failed.items()))
            report.warnings.append(f"every one of the {len(self.failed)} attempted tasks failed (task {first}: "
                                   f"{why}): the model or its tokenizer does not suit the solver")
        try:
            with open(job.output, encoding="utf-8") as f:
                on_disk = json.load(f)
        except (OSError, ValueError) as e:
            report.problems = [f"{job.output}: cannot be read back ({getattr(e, 'strerror', None) or e})"]
            on_disk = None
        else:
            report.problems = validate_submission(on_disk, self.counts)
        report.answered = len(self.submission.answered)
        report.placeholders_left = self.submission.placeholders_left
        if job.solutions is not None and on_disk is not None:
            from arc_kit.core.metric import score_submission

            scored = score_submission(on_disk, {tid: s for tid, s in self.solutions.items() if tid in self.counts})
            report.score, report.score_per_output = scored.score, scored.score_per_output
            report.correct_outputs = scored.correct_outputs
            for tid, ts in scored.per_task.items():
                report.per_task.setdefault(tid, TaskRecord()).correct = ts.correct
            attempted = [scored.per_task[tid] for tid in report.attempted_ids if tid in scored.per_task]
            if attempted and len(attempted) < len(scored.per_task):
                report.score_attempted = round(sum(ts.score for ts in attempted) / len(attempted), 6)
        return report


def _first(attempts: list[Attempts] | None, i: int) -> Grid | None:
    return attempts[i][0] if attempts is not None and i < len(attempts) else None


def _log_skipped(errors: dict[str, str]) -> None:
    """The first few malformed tasks, then how many more (every one is in the report)."""
    for tid, why in list(errors.items())[:MAX_LOGGED_TASK_ERRORS]:
        log.error("task %s skipped (placeholder kept): %s", tid, why)
    if len(errors) > MAX_LOGGED_TASK_ERRORS:
        log.error("... and %d more malformed tasks (all in the report)", len(errors) - MAX_LOGGED_TASK_ERRORS)


def _solver_record(result: TaskResult, previous: TaskRecord | None, truths: list[Any], phase: str) -> TaskRecord:
    """The report's record of a full or spare-time result: its inputs' candidate pools, the task's confidence;
    the quick pass's fields carried over, and for a revisit the confidence before. Where each input's answers
    landed is filled in by ``Ledger._write_entries``."""
    record = TaskRecord(result.seconds, result.tokens, result.answered, result.pairs_dropped, result.unparsed,
                        result.timed_out, result.error)
    if previous is not None:
        record.phase1_seconds, record.phase1_correct = previous.phase1_seconds, previous.phase1_correct
    record.inputs = [InputRecord.of(r, truths[i] if i < len(truths) else None) for i, r in enumerate(result.inputs)]
    record.ttt = result.ttt
    record.confidence = _confidence(result)
    record.stages = stage_seconds(result)
    if phase == "spare" and previous is not None:
        # the full solve's seconds and stages; the revisit's own go into ``spare``
        record.seconds, record.stages = previous.seconds, previous.stages
        record.spare = {"landed": True, "seconds": round(result.seconds, 3), "stages": stage_seconds(result),
                        "changed": False, "confidence_before": previous.confidence}
    return record


def _confidence(result: TaskResult) -> float | None:
    """The smallest selection margin over the task's test inputs (None when no input has a competing grid)."""
    margins = [r.margin for r in result.inputs if r.margin is not None]
    return round(min(margins), 6) if margins else None


def _key(result: TaskResult) -> float:
    """The revisit order's key: ``selection.confidence_key`` over the task's test inputs."""
    return confidence_key([r.margin for r in result.inputs], [len(r.candidates) for r in result.inputs])


def _correct(attempts: list[Attempts], truths: list[Any]) -> list[bool]:
    # a missing solution (a malformed file) counts as not correct; the score in Ledger.close says why
    return [any(a is not None and grid_to_json(a) == truth for a in pair)
            for pair, truth in zip(attempts, truths, strict=False)]


class SubmissionFile:
    """The submission and its file, rewritten atomically after every change.

    A write that fails (a full disk) keeps the last good file and the run goes on: the answers found meanwhile
    stay in memory and reach the file with the next write that works. The first failure is logged once; the
    summary says how many writes failed and what the file lacks.
    """

    def __init__(self, submission: Submission, path: Path, report: RunReport):
        self.submission, self.path, self.report = submission, path, report
        self.first_error: str | None = None  # why the first failed write failed
        self.failing = False  # the last write failed
        self.answers_written = 0  # answered entries in the file on disk

    def write_first(self, counts: dict[str, int]) -> None:
        """The placeholders. When they cannot be written and the output holds no valid file for these tasks
        (a read-only folder), the ``OSError`` is raised: nothing has been done yet, and nothing could be kept."""
        try:
            self.submission.write(self.path)
        except OSError:
            if not self._holds_a_valid_file(counts):
                raise
            self.write()  # said and counted like any other failed write

    def _holds_a_valid_file(self, counts: dict[str, int]) -> bool:
        try:
            with open(self.path, encoding="utf-8") as f:
                return not validate_submission(json.load(f), counts)
        except (OSError, ValueError):
            return False

    def write(self) -> None:
        try:
            self.submission.write(self.path)
        except OSError as e:
            self.report.write_failures += 1
            if self.first_error is None:
                self.first_error = e.strerror or str(e)
                log.warning("cannot write %s (%s): it keeps the last file written (%d answered entries); the run "
                            "goes on and writes again as answers land", self.path, self.first_error,
                            self.answers_written)
            self.failing = True
            return
        if self.failing:
            log.warning("wrote %s again after %d failed writes", self.path, self.report.write_failures)
            self.failing = False
        self.answers_written = len(self.submission.answered)

    def say_failures(self) -> None:
        """The run's warning about failed writes, once, at the end."""
        if not self.report.write_failures:
            return
        answered = len(self.submission.answered)
        self.report.answers_not_written = answered - self.answers_written if self.failing else 0
        what = f"{self.report.write_failures} writes of {self.path} failed ({self.first_error})"
        if self.failing:
            self.report.warnings.append(
                f"{what}: it holds the last file written, {self.answers_written} of the {answered} answered "
                f"entries; {self.report.answers_not_written} answers never reached it")
        else:
            self.report.warnings.append(f"{what}; a later write worked: the file holds every answer")
