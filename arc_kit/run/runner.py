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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from arc_kit.config.run import RunSettings, SolverConfig, TTTConfig
from arc_kit.core.submission import Submission, entry_counts, read_raw_tasks, validate_submission
from arc_kit.core.tasks import TaskFileError, grid_to_json, parse_tasks, read_json
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


SolverFactory = Callable[[RunConfig], Any]  # returns an object with .solve(tasks, stop_at) -> list[TaskResult]


def load_solver_for(config: RunConfig) -> Any:
    """The default factory: load the weights named by the config (module level, so worker processes can pickle it)."""
    from arc_kit.models.loading import ModelLoadError
    from arc_kit.solve.solver import load_solver

    if config.model_dir is None:
        raise ModelLoadError(config.model_problem or "no weights folder given or found")
    return load_solver(config.model_dir, config.solver, config.ttt)


def run_submission(config: RunConfig, solver_factory: SolverFactory | None = None) -> RunReport:
    """Write ``config.output`` (valid at every moment) and return what happened; never raises for a bad model.

    Bad input writes nothing and raises ``TaskFileError`` (the caller says why in one line): a challenges file that
    cannot be read, one in which no entry is a valid task (a solutions file given as challenges, say), or a bad
    solutions file. Ctrl-C ends the run early with what finished written and ``report.interrupted`` set.
    """
    start = config.start_time if config.start_time is not None else time.time()
    deadline = start + config.run.deadline_offset
    raw = read_raw_tasks(config.challenges)  # read once: counted for placeholders, then parsed
    counts = entry_counts(raw)
    # a bad solutions file is said now, not after hours of decoding
    solutions = _read_solutions(config.solutions) if config.solutions is not None else {}
    tasks = parse_tasks(raw, str(config.challenges), strict=False)
    if raw and not tasks.tasks:
        raise TaskFileError(_no_valid_task(config.challenges, tasks.errors))
    submission = Submission.placeholders(counts)
    submission.write(config.output)
    report = RunReport(str(config.output), tasks=len(counts), entries=submission.num_entries)
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

    tasks_by_id = {t.task_id: t for t in ordered}
    phase1: dict[str, list[tuple[Any, Any]]] = {}  # the quick pass's attempts: attempt 2's first fallback
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
        for i, (a1, a2, _source, _fallbacks) in enumerate(filled):  # a cut input comes back (None, None): kept
            submission.set_attempts(result.task_id, i, a1, a2)
        if phase == "spare" and record.spare is not None:
            record.spare["changed"] = submission.entries.get(result.task_id) != before
            report.spare_revisits += 1
            report.spare_changed += record.spare["changed"]
        if phase == "full":
            eligible = not result.error and not result.timed_out and task is not None
            schedule.landed("full", task if eligible else None, _key(result) if eligible else None,
                            result.seconds, result.inputs)
        submission.write(config.output)

    bar = PhaseBars(schedule.phase_tasks, schedule.two_phases, config.progress)
    try:
        if workers <= 1:
            run_in_process(config, factory, schedule, deadline, land, report, bar)
        else:
            run_in_workers(config, factory, schedule, deadline, land, report, bar, workers)
    except KeyboardInterrupt:
        report.interrupted = True
        log.warning("interrupted: %s holds the answers that landed so far", config.output)
    finally:
        bar.close()
    if report.model_error:
        log.error("MODEL NOT LOADED, every entry keeps its placeholder: %s", report.model_error)
    ended = time.time()
    report.deadline_hit = report.deadline_hit or ended >= deadline
    report.overrun_seconds = round(max(0.0, ended - deadline), 3)
    _finish(config, submission, counts, report, start)
    return report


def dry_run(config: RunConfig, solver_factory: SolverFactory | None = None) -> RunReport:
    """``run_submission`` plus ``report.json`` and ``report.html`` beside the submission (the dry run, the demo);
    an interrupted run writes both for what finished, then raises ``KeyboardInterrupt`` again."""
    from arc_kit.core.files import atomic_write_json
    from arc_kit.run.report import write_run_report

    report = run_submission(config, solver_factory=solver_factory)
    atomic_write_json(config.output.parent / "report.json", report.to_json(), indent=1)
    write_run_report(config.output.parent / "report.html", config.challenges, config.solutions, config.output,
                     report)
    if report.interrupted:
        raise KeyboardInterrupt
    return report


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


def _finish(config: RunConfig, submission: Submission, counts: dict[str, int], report: RunReport,
            start: float) -> None:
    """Final write, reload and validate what is on disk, score it when solutions are known."""
    submission.write(config.output)
    with open(config.output, encoding="utf-8") as f:
        on_disk = json.load(f)
    report.problems = validate_submission(on_disk, counts)
    report.answered = len(submission.answered)
    report.placeholders_left = submission.placeholders_left
    report.seconds = time.time() - start
    if config.solutions is not None:
        from arc_kit.core.metric import score_submission

        try:
            solutions = _read_solutions(config.solutions)
        except TaskFileError as e:
            report.errors["<solutions>"] = str(e)
            return
        scored = score_submission(on_disk, {tid: sols for tid, sols in solutions.items() if tid in counts})
        report.score, report.score_per_output = scored.score, scored.score_per_output
        report.correct_outputs = scored.correct_outputs
        for tid, ts in scored.per_task.items():
            report.per_task.setdefault(tid, TaskRecord()).correct = ts.correct


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


