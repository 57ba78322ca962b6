"""From a challenges file and a weights folder to a complete ``submission.json``, within a time budget.

Shared by the Kaggle kernel (``submission/main.py``) and ``arc-kit dry-run``. The file on disk is valid from the
first write: placeholders for every test input of every task (malformed ones included), rewritten atomically as
answers land. Tasks run shortest first, in groups sized to fill a batch, under a global deadline and a per-task
cap; one worker process per visible GPU shares one task queue, one in-process worker on CPU.

This module imports no torch/transformers at import time: worker processes set ``CUDA_VISIBLE_DEVICES`` first.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from arc_kit.config.run import RunSettings, SolverConfig, TTTConfig
from arc_kit.core.submission import Submission, entry_counts, read_raw_tasks, validate_submission
from arc_kit.core.tasks import TaskFileError, TaskSet, grid_to_json, parse_tasks, read_json
from arc_kit.errors import Terminated
from arc_kit.run.records import InputRecord, RunReport, TaskRecord
from arc_kit.run.schedule import Schedule
from arc_kit.run.workers import run_in_process, run_in_workers, visible_gpus
from arc_kit.solve.prompts import task_cost
from arc_kit.solve.solver import TaskResult, quick_config

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    """One run: the files it reads and writes, plus the settings (defaults in ``arc_kit.config.run``)."""

    model_dir: Path | None
    challenges: Path
    output: Path  # the submission.json to write
    solutions: Path | None = None  # scores the run when given
    run: RunSettings = field(default_factory=RunSettings)
    solver: SolverConfig = field(default_factory=SolverConfig)
    ttt: TTTConfig = field(default_factory=TTTConfig)
    max_tasks: int | None = None  # quick pass: only the first N tasks (shortest first) are decoded
    start_time: float | None = None  # time.time() when the run (or the kernel) started; None: now
    progress: bool = True  # tqdm bar
    model_problem: str | None = None  # why no weights folder was found (the kernel's search), for the report
    warnings: list[str] = field(default_factory=list)  # found before the run (weights found elsewhere), reported


SolverFactory = Callable[[RunConfig], Any]  # returns an object with .solve(tasks, stop_at) -> list[TaskResult]


def load_solver_for(config: RunConfig) -> Any:
    """The default factory: load the weights named by the config (module level, so worker processes can pickle it)."""
    from arc_kit.models.loading import ModelLoadError
    from arc_kit.solve.solver import load_solver

    if config.model_dir is None:
        raise ModelLoadError(config.model_problem or "no weights folder given or found")
    return load_solver(config.model_dir, config.solver, config.ttt)


@dataclass
class RunInputs:
    """A run's input files, read once: the challenges as written (counted for placeholders), the tasks parsed
    from them, and the solutions (``{}`` without)."""

    raw: dict[str, Any]
    tasks: TaskSet
    solutions: dict[str, Any]


def read_inputs(config: RunConfig) -> RunInputs:
    """The run's inputs; ``TaskFileError`` for a challenges file that cannot be read, one in which no entry is a
    valid task (a solutions file given as challenges, say), or a bad solutions file (said now, not after hours of
    decoding)."""
    raw = read_raw_tasks(config.challenges)
    solutions = _read_solutions(config.solutions) if config.solutions is not None else {}
    tasks = parse_tasks(raw, str(config.challenges), strict=False)
    if raw and not tasks.tasks:
        raise TaskFileError(_no_valid_task(config.challenges, tasks.errors))
    return RunInputs(raw, tasks, solutions)


def run_submission(config: RunConfig, solver_factory: SolverFactory | None = None,
                   inputs: RunInputs | None = None) -> RunReport:
    """Write ``config.output`` (valid at every moment) and return what happened; never raises for a bad model.

    Bad input (``read_inputs``; ``inputs`` when the caller read them already) writes nothing and raises
    ``TaskFileError``: the caller says why in one line. Ctrl-C ends the run early with what finished written and
    ``report.interrupted`` set.
    """
    start = config.start_time if config.start_time is not None else time.time()
    deadline = start + config.run.deadline_offset
    inputs = inputs or read_inputs(config)
    raw, tasks, solutions = inputs.raw, inputs.tasks, inputs.solutions
    counts = entry_counts(raw)
    submission = Submission.placeholders(counts)
    report = RunReport(str(config.output), tasks=len(counts), entries=submission.num_entries,
                       warnings=list(config.warnings))
    file = SubmissionFile(submission, config.output, report)
    file.write_first(counts)
    for tid, why in tasks.errors.items():
        report.errors[tid] = why
    _log_skipped(tasks.errors)
    for tid, n in counts.items():
        if n == 0 and tid not in report.errors:
            report.errors[tid] = "no test inputs: nothing to answer"
    ordered = sorted((t for t in tasks if t.test), key=task_cost)
    if config.max_tasks is not None:
        ordered = ordered[: config.max_tasks]
    report.tasks_queued = len(ordered)
    factory = solver_factory or load_solver_for
    workers = config.run.workers or max(1, visible_gpus())
    report.workers = workers
    two_phases = config.run.quick_first and (config.ttt.enabled or config.solver != quick_config(config.solver))
    schedule = Schedule(ordered, config, deadline, workers, two_phases)
    attempted: set[str] = set()
    failed: dict[str, str] = {}  # attempted tasks whose last result is an error

    tasks_by_id = {t.task_id: t for t in ordered}
    phase1: dict[str, list[tuple[Any, Any]]] = {}  # the quick pass's attempts: attempt 2's first fallback
    solved: set[str] = set()  # tasks whose full or spare-time answer is in the file
    report.selection = {"formula": config.solver.formula, **asdict(config.solver.selection)}

    def land(result: TaskResult, phase: str) -> None:
        """Write a result into the file at once (atomically); a full result replaces the quick pass's answer only
        for the test inputs it answered, a spare-time revisit only when it finished (its pool then holds the
        first search's candidates too)."""
        truths = solutions.get(result.task_id) or []
        task = tasks_by_id.get(result.task_id)
        previous = report.per_task.get(result.task_id)
        if phase == "spare" and (result.error or result.timed_out or task is None):
            if previous is not None:
                previous.spare = {"landed": False, "seconds": round(result.seconds, 3),
                                  "why": result.error or "cut by its cap or the deadline"}
            return
        filled = _with_second_attempts(result, task, phase1.get(result.task_id), phase)
        before = [dict(entry) for entry in submission.entries.get(result.task_id, [])]
        if phase == "quick":
            record = report.per_task.setdefault(result.task_id, TaskRecord())
            record.phase1_seconds = round(result.seconds, 3)
            record.phase1_correct = _correct(result.attempts, truths) if truths else None
            phase1[result.task_id] = list(result.attempts)
        else:
            record = report.per_task[result.task_id] = _solver_record(result, previous, truths, filled, phase)
        if result.task_id not in attempted:
            attempted.add(result.task_id)
            report.attempted_ids.append(result.task_id)
        report.tasks_attempted = len(attempted)
        if result.error:
            report.errors[result.task_id] = result.error
            failed[result.task_id] = result.error
        else:
            failed.pop(result.task_id, None)
        # With several workers a quick-pass group can come back after the same task's full or spare answer
        # landed: the quick answer then only serves as attempt 2's fallback and never replaces the better one.
        late_quick = phase == "quick" and result.task_id in solved
        for i, (a1, a2, _source, _fallbacks) in enumerate(filled):  # a cut input comes back (None, None): kept
            if not late_quick:
                submission.set_attempts(result.task_id, i, a1, a2)
        if phase != "quick" and not result.error:
            solved.add(result.task_id)
        if phase == "spare" and record.spare is not None:
            record.spare["changed"] = submission.entries.get(result.task_id) != before
            report.spare_revisits += 1
            report.spare_changed += record.spare["changed"]
        if phase == "full":
            eligible = not result.error and not result.timed_out and task is not None
            schedule.landed("full", task if eligible else None, _key(result) if eligible else None,
                            result.seconds, result.inputs)
        file.write()

    bar = PhaseBars(schedule.phase_tasks, schedule.two_phases, config.progress)
    try:
        with sigterm_interrupts():
            if workers <= 1:
                run_in_process(config, factory, schedule, deadline, land, report, bar)
            else:
                run_in_workers(config, factory, schedule, deadline, land, report, bar, workers)
    except KeyboardInterrupt as e:
        report.interrupted, report.terminated = True, isinstance(e, Terminated)
        report.warnings.append(f"{'terminated (SIGTERM)' if report.terminated else 'interrupted (Ctrl-C)'}: "
                               f"{config.output} holds the answers that landed so far")
        log.warning("%s", report.warnings[-1])
    finally:
        bar.close()
    if report.model_error:
        log.error("MODEL NOT LOADED, every entry keeps its placeholder: %s", report.model_error)
    report.tasks_failed = len(failed)
    if report.every_task_failed:
        first, why = next(iter(failed.items()))
        report.warnings.append(f"every one of the {len(failed)} attempted tasks failed (task {first}: {why}): the "
                               "model or its tokenizer does not suit the solver")
    ended = time.time()
    report.deadline_hit = report.deadline_hit or ended >= deadline
    report.overrun_seconds = round(max(0.0, ended - deadline), 3)
    _finish(config, file, counts, solutions, report, start)
    return report


def dry_run(config: RunConfig, solver_factory: SolverFactory | None = None) -> RunReport:
    """``run_submission`` plus ``report.json`` and ``report.html`` beside the submission (the dry run, the demo);
    an interrupted run writes both for what finished, then raises ``KeyboardInterrupt`` again."""
    inputs = read_inputs(config)
    report = run_submission(config, solver_factory=solver_factory, inputs=inputs)
    write_reports(config, report, inputs)
    if report.interrupted:
        raise Terminated if report.terminated else KeyboardInterrupt
    return report


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While solving, SIGTERM raises ``Terminated`` (a ``KeyboardInterrupt``) once, so the run ends as after
    Ctrl-C: workers stopped, the file valid, the end said; a second one while it stops is ignored. Afterwards the
    previous handler is back (the file is written atomically: a process killed then still leaves a valid one).
    Only the main thread can take signals: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def terminate(signum: int, frame: Any) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# The pictures of report.html stop this long before the budget ends: the page itself must still be written.
REPORT_RESERVE_SECONDS = 1.0


def write_reports(config: RunConfig, report: RunReport, inputs: RunInputs | None = None) -> None:
    """``report.json`` beside the submission, and ``report.html`` when the run's ``inputs`` are given (the dry
    run). They are written in the margin before the budget ends: nothing is read again, and the pictures stop
    when the budget is nearly spent. A failure (a full disk) is a warning in the report and the log, not an
    error: the submission is what matters, and it is written already."""
    from arc_kit.core.files import atomic_write_json
    from arc_kit.run.report import write_run_report

    began = time.time()
    start = config.start_time if config.start_time is not None else began - report.seconds
    try:
        atomic_write_json(config.output.parent / "report.json", report.to_json(), indent=1)
        if inputs is not None:
            write_run_report(config.output.parent / "report.html", inputs.raw, inputs.solutions,
                             str(config.challenges), config.output, report,
                             stop_at=start + config.run.budget_seconds - REPORT_RESERVE_SECONDS)
    except OSError as e:
        report.warnings.append(f"the reports were not written: {e.filename}: {e.strerror or e}")
        log.warning("%s", report.warnings[-1])
    ended = time.time()
    late = ended - (start + config.run.budget_seconds)
    if late > 0:
        log.warning("the reports took %.1f s and ended %.1f s after the budget: give the run a larger "
                    "margin_seconds", ended - began, late)
    else:
        log.info("reports written in %.1f s", ended - began)


MAX_LOGGED_TASK_ERRORS = 5


def _log_skipped(errors: dict[str, str]) -> None:
    """The first few malformed tasks, then how many more (every one is in the report)."""
    for tid, why in list(errors.items())[:MAX_LOGGED_TASK_ERRORS]:
        log.error("task %s skipped (placeholder kept): %s", tid, why)
    if len(errors) > MAX_LOGGED_TASK_ERRORS:
        log.error("... and %d more malformed tasks (all in the report)", len(errors) - MAX_LOGGED_TASK_ERRORS)


def _no_valid_task(path: Path, errors: dict[str, str], show: int = 3) -> str:
    first = "; ".join(why.split(": ", 1)[-1] for why in list(errors.values())[:show])
    return (f"{path}: none of its {len(errors)} entries is a valid task (is it a challenges file?); "
            f"first problems: {first}")


def _solver_record(result: TaskResult, previous: TaskRecord | None, truths: list[Any],
                   filled: list[tuple[Any, Any, str | None, list[tuple[str, Any]]]], phase: str) -> TaskRecord:
    """The report's record of a full or spare-time result: its inputs' candidate pools, where each attempt 2 came
    from, the task's confidence; the quick pass's fields carried over, and for a revisit the confidence before."""
    record = TaskRecord(result.seconds, result.tokens, result.answered, result.pairs_dropped, result.unparsed,
                        result.timed_out, result.error)
    if previous is not None:
        record.phase1_seconds, record.phase1_correct = previous.phase1_seconds, previous.phase1_correct
    record.inputs = [InputRecord.of(r, truths[i] if i < len(truths) else None) for i, r in enumerate(result.inputs)]
    for i, (a1, _a2, source, fallbacks) in enumerate(filled[: len(record.inputs)]):
        record.inputs[i].landed = a1 is not None
        record.inputs[i].attempt_2_source = source
        record.inputs[i].second_choices = [{"source": s, "grid": grid_to_json(g)} for s, g in fallbacks]
    record.ttt = result.ttt
    record.confidence = _confidence(result)
    if phase == "spare" and previous is not None:
        record.seconds = previous.seconds  # the full solve's; the revisit's own go into ``spare``
        record.spare = {"landed": True, "seconds": round(result.seconds, 3), "changed": False,
                        "confidence_before": previous.confidence}
    return record


def _with_second_attempts(result: TaskResult, task: Any, phase1: list[tuple[Any, Any]] | None,
                          phase: str) -> list[tuple[Any, Any, str | None, list[tuple[str, Any]]]]:
    """Per test input: (attempt 1, attempt 2, where attempt 2 came from, the fallbacks it was chosen from). When
    the pool held one grid, attempt 2 is the first fallback that differs (``selection.second_attempt``): phase 1's
    answer (a full or spare result), the test input itself, the placeholder."""
    from arc_kit.core.submission import PLACEHOLDER
    from arc_kit.solve.selection import second_attempt

    out = []
    for i, (a1, a2) in enumerate(result.attempts):
        fallbacks: list[tuple[str, Any]] = []
        if phase != "quick" and phase1 is not None and i < len(phase1) and phase1[i][0] is not None:
            fallbacks.append(("phase1", phase1[i][0]))
        if task is not None and i < len(task.test):
            fallbacks.append(("test_input", task.test[i].input))
        fallbacks.append(("placeholder", PLACEHOLDER))
        second, source = second_attempt(a1, a2, fallbacks)
        out.append((a1, second, source, fallbacks))
    return out


def _confidence(result: TaskResult) -> float | None:
    """The smallest selection margin over the task's test inputs (None when no input has a competing grid)."""
    margins = [r.margin for r in result.inputs if r.margin is not None]
    return round(min(margins), 6) if margins else None


def _key(result: TaskResult) -> float:
    """The revisit order's key: ``selection.confidence_key`` over the task's test inputs."""
    from arc_kit.solve.selection import confidence_key

    return confidence_key([r.margin for r in result.inputs], [len(r.candidates) for r in result.inputs])


def _correct(attempts: list[tuple[Any, Any]], truths: list[Any]) -> list[bool]:
    from arc_kit.core.tasks import grid_to_json

    # a missing solution (a malformed file) counts as not correct; the score in _finish says why
    return [any(a is not None and grid_to_json(a) == truth for a in pair)
            for pair, truth in zip(attempts, truths, strict=False)]


def _finish(config: RunConfig, file: SubmissionFile, counts: dict[str, int], solutions: dict[str, Any],
            report: RunReport, start: float) -> None:
    """Final write, reload and validate what is on disk, score it when solutions are known."""
    submission = file.submission
    file.write()
    file.say_failures()
    try:
        with open(config.output, encoding="utf-8") as f:
            on_disk = json.load(f)
    except (OSError, ValueError) as e:
        report.problems = [f"{config.output}: cannot be read back ({getattr(e, 'strerror', None) or e})"]
        on_disk = None
    else:
        report.problems = validate_submission(on_disk, counts)
    report.answered = len(submission.answered)
    report.placeholders_left = submission.placeholders_left
    report.seconds = time.time() - start
    if config.solutions is not None and on_disk is not None:
        from arc_kit.core.metric import score_submission

        scored = score_submission(on_disk, {tid: sols for tid, sols in solutions.items() if tid in counts})
        report.score, report.score_per_output = scored.score, scored.score_per_output
        report.correct_outputs = scored.correct_outputs
        for tid, ts in scored.per_task.items():
            report.per_task.setdefault(tid, TaskRecord()).correct = ts.correct


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


def _read_solutions(path: Path) -> dict[str, Any]:
    solutions = read_json(path)
    if not isinstance(solutions, dict):
        raise TaskFileError(f"{path}: the top level must map task ids to lists of output grids, "
                            f"got {type(solutions).__name__}")
    return solutions


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


