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
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from arc_kit.config.run import KernelPlan, RunSettings, SettingsError, SolverConfig, TTTConfig
from arc_kit.core.submission import Submission, entry_counts, read_raw_tasks, validate_submission
from arc_kit.core.tasks import Task, TaskFileError, parse_tasks, read_json
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


@dataclass
class InputRecord:
    """One test input in the report: how many candidates, where the right one ranked (given solutions), time."""

    candidates: int = 0
    rescored: bool = False
    right_among: bool | None = None  # the right answer was among the candidates
    rank_before: int | None = None  # its place by vote alone (0 = first); None when absent or unknown
    rank_after: int | None = None  # its place after re-scoring (0 = attempt_1)
    decode_seconds: float = 0.0
    score_seconds: float = 0.0
    top: list[dict[str, Any]] = field(default_factory=list)  # the best few: grid text, score, count

    @classmethod
    def of(cls, result: Any, truth: Any = None, keep: int = 3) -> InputRecord:
        """From a solver's ``InputResult``; ``truth`` is the right output grid when solutions were given."""
        from arc_kit.core.tasks import grid_to_json, to_grid

        record = cls(len(result.candidates), result.rescored, decode_seconds=round(result.decode_seconds, 3),
                     score_seconds=round(result.score_seconds, 3))
        record.top = [{"grid": grid_to_json(c.grid), "score": round(c.score, 4), "count": c.count}
                      for c in result.candidates[:keep]]
        try:
            right = to_grid(truth, "solution") if truth is not None else None
        except TaskFileError:
            right = None  # a malformed solution is reported when the run is scored
        if right is not None:
            place = next((i for i, c in enumerate(result.candidates) if c.grid == right), None)
            record.right_among = place is not None
            record.rank_after = place
            record.rank_before = result.candidates[place].vote_rank if place is not None else None
        return record


@dataclass
class TaskRecord:
    seconds: float = 0.0
    tokens: int = 0
    answered: int = 0
    pairs_dropped: int = 0
    unparsed: int = 0
    timed_out: bool = False  # some generation was cut: its test input keeps the placeholder
    error: str | None = None
    correct: list[bool] | None = None  # per test input, when solutions were given
    inputs: list[InputRecord] = field(default_factory=list)  # per test input: candidates, ranks, seconds
    phase1_seconds: float | None = None  # the quick greedy pass, when the run had two phases
    phase1_correct: list[bool] | None = None  # right after the quick pass (given solutions)
    ttt: dict[str, Any] | None = None  # test-time training: steps, first and last loss, seconds


@dataclass
class RunReport:
    submission_path: str
    tasks: int
    entries: int
    answered: int = 0
    placeholders_left: int = 0
    tasks_queued: int = 0  # tasks handed to the solver (all, or the quick pass)
    tasks_attempted: int = 0  # tasks the solver returned a result for
    attempted_ids: list[str] = field(default_factory=list)  # those tasks, in the order their first result landed
    interrupted: bool = False  # stopped by Ctrl-C (SIGINT): the file and the reports hold what finished
    seconds: float = 0.0
    overrun_seconds: float = 0.0  # how far past the deadline the last work ended (0: on time)
    decode_seconds: float = 0.0
    generated_tokens: int = 0
    workers: int = 1
    deadline_hit: bool = False
    model_error: str | None = None  # weights missing/corrupt: the submission is all placeholders
    errors: dict[str, str] = field(default_factory=dict)  # task id -> what went wrong
    per_task: dict[str, TaskRecord] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # from reloading and validating the written file
    score: float | None = None  # ARC Prize metric (mean over tasks), when solutions were given
    score_per_output: float | None = None  # mean over test outputs
    correct_outputs: int | None = None

    @property
    def ok(self) -> bool:
        return self.model_error is None and not self.problems

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.decode_seconds if self.decode_seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["tokens_per_second"] = self.tokens_per_second
        return out


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


def visible_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


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

    def land(result: TaskResult, phase: str) -> None:
        """Write a result into the file at once (atomically); a full result replaces the quick pass's answer only
        for the test inputs it answered."""
        truths = solutions.get(result.task_id) or []
        if phase == "quick":
            record = report.per_task.setdefault(result.task_id, TaskRecord())
            record.phase1_seconds = round(result.seconds, 3)
            record.phase1_correct = _correct(result.attempts, truths) if truths else None
        else:
            record = TaskRecord(result.seconds, result.tokens, result.answered, result.pairs_dropped,
                                result.unparsed, result.timed_out, result.error)
            previous = report.per_task.get(result.task_id)
            if previous is not None:
                record.phase1_seconds, record.phase1_correct = previous.phase1_seconds, previous.phase1_correct
            record.inputs = [InputRecord.of(r, truths[i] if i < len(truths) else None)
                             for i, r in enumerate(result.inputs)]
            record.ttt = result.ttt
            report.per_task[result.task_id] = record
        if result.task_id not in attempted:
            attempted.add(result.task_id)
            report.attempted_ids.append(result.task_id)
        report.tasks_attempted = len(attempted)
        if result.error:
            report.errors[result.task_id] = result.error
        for i, (a1, a2) in enumerate(result.attempts):  # a cut test input comes back as (None, None): kept as is
            submission.set_attempts(result.task_id, i, a1, a2)
        submission.write(config.output)

    bar = PhaseBars(schedule.phase_tasks, schedule.two_phases, config.progress)
    try:
        if workers <= 1:
            _run_in_process(config, factory, schedule, deadline, land, report, bar)
        else:
            _run_in_workers(config, factory, schedule, deadline, land, report, bar, workers)
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


def _correct(attempts: list[tuple[Any, Any]], truths: list[Any]) -> list[bool]:
    from arc_kit.core.tasks import grid_to_json

    # a missing solution (a malformed file) counts as not correct; the score in _finish says why
    return [any(a is not None and grid_to_json(a) == truth for a in pair)
            for pair, truth in zip(attempts, truths, strict=False)]


def _run_in_process(config: RunConfig, factory: SolverFactory, schedule: Schedule, deadline: float,
                    land: Callable[[TaskResult, str], None], report: RunReport, bar: Any) -> None:
    try:
        solver = factory(config)
    except Exception as e:
        report.model_error = f"{type(e).__name__}: {e}"
        return
    while (work := schedule.next(time.time())) is not None:
        now = time.time()
        if now >= deadline:
            report.deadline_hit = True
            break
        for result in _solve_group(solver, work.tasks, min(deadline, now + work.cap_seconds), work.phase):
            land(result, work.phase)
        bar.update(work.phase, len(work.tasks))
    tokens, seconds = _decode_stats(solver)
    report.generated_tokens += tokens
    report.decode_seconds += seconds


def _decode_stats(solver: Any) -> tuple[int, float]:
    decoder = getattr(solver, "decoder", None)
    return (decoder.stats.tokens, decoder.stats.seconds) if decoder is not None else (0, 0.0)


def _solve_group(solver: Any, group: list[Task], stop_at: float, phase: str = "full") -> list[TaskResult]:
    """A solver that raises costs its group nothing more than the failing task: retry one by one.

    ``phase`` "quick" calls the solver's ``quick`` pass when it has one (a stand-in solver may not)."""
    method = getattr(solver, "quick", solver.solve) if phase == "quick" else solver.solve
    try:
        return list(method(group, stop_at))
    except Exception as e:
        if len(group) > 1:
            return [r for task in group for r in _solve_group(solver, [task], stop_at, phase)]
        log.error("task %s failed: %s: %s", group[0].task_id, type(e).__name__, e)
        return [TaskResult(group[0].task_id, error=f"{type(e).__name__}: {e}")]


# ------------------------------------------------------------------------------------------------------------
# Worker processes: one per GPU, fed a few groups at a time, dying with the parent


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker end when the parent does, however the parent ends (a killed kernel must not leave
    workers holding GPU memory): Linux's parent-death signal, and a watcher thread where that is missing."""
    import signal
    import threading

    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="arc-kit-parent-watch", daemon=True).start()


def _worker_main(env: dict[str, str], config: RunConfig, factory: SolverFactory, tasks_in: Any, results_out: Any,
                 deadline: float, parent_pid: int) -> None:
    """One worker process: set the device before any model library loads, then take groups until told to stop."""
    _die_with_parent(parent_pid)
    os.environ.update(env)
    try:
        solver = factory(config)
    except Exception as e:
        results_out.put(("load_error", f"{type(e).__name__}: {e}"))
        return
    results_out.put(("ready", None))
    while True:
        work: Work | None = tasks_in.get()
        if work is None:
            break
        now = time.time()
        if now >= deadline:
            results_out.put(("skipped", (work.phase, [t.task_id for t in work.tasks])))
            continue
        results = _solve_group(solver, work.tasks, min(deadline, now + work.cap_seconds), work.phase)
        results_out.put(("results", (work.phase, results)))
    results_out.put(("done", _decode_stats(solver)))


# How many groups wait in the task queue per worker: enough that no worker idles, few enough that the queue's
# feeder thread never holds more than a pipe buffer's worth when the workers stop reading.
GROUPS_AHEAD_PER_WORKER = 2
# After the deadline the parent waits this long for results already being sent, then stops every worker.
DRAIN_SECONDS = 2.0
STOP_SECONDS = 5.0


def _run_in_workers(config: RunConfig, factory: SolverFactory, schedule: Schedule, deadline: float,
                    land: Callable[[TaskResult, str], None], report: RunReport, bar: Any, workers: int) -> None:
    """Share the groups between worker processes; return by the deadline (plus a few seconds) whatever they do.

    The parent feeds the task queue a few groups at a time (not all up front), and never waits for a queue's
    feeder thread at exit (``cancel_join_thread``): a 600 KB challenges file pickled into a pipe nobody reads
    any more once kept the interpreter from exiting after the submission was written.
    """
    ctx = mp.get_context("spawn")
    tasks_in, results_out = ctx.Queue(), ctx.Queue()
    tasks_in.cancel_join_thread()
    results_out.cancel_join_thread()
    sentinels_sent = False

    def feed(n: int) -> None:
        nonlocal sentinels_sent
        for _ in range(n):
            work = schedule.next(time.time())
            if work is not None:
                tasks_in.put(work)
            elif not sentinels_sent:
                for _ in range(workers):
                    tasks_in.put(None)
                sentinels_sent = True

    gpus = visible_gpus()
    procs = []
    for w in range(workers):
        env = {"CUDA_VISIBLE_DEVICES": str(w)} if gpus >= workers else {}
        p = ctx.Process(target=_worker_main,
                        args=(env, config, factory, tasks_in, results_out, deadline, os.getpid()),
                        daemon=True, name=f"arc-kit-worker-{w}")
        p.start()
        procs.append(p)
    feed(GROUPS_AHEAD_PER_WORKER * workers)
    running, load_errors = workers, []
    try:
        while running:
            left = deadline - time.time()
            if left <= -DRAIN_SECONDS:
                break
            if left <= 0:
                report.deadline_hit = True
            try:
                kind, payload = results_out.get(timeout=max(0.05, min(1.0, left if left > 0 else DRAIN_SECONDS)))
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    break  # every worker died without a word (killed, out of memory)
                continue
            if kind == "results":
                phase, results = payload
                for result in results:
                    land(result, phase)
                bar.update(phase, len(results))
                feed(1)
            elif kind == "skipped":
                report.deadline_hit = True
                bar.update(payload[0], len(payload[1]))
                feed(1)
            elif kind == "load_error":
                load_errors.append(payload)
                running -= 1
            elif kind == "done":
                report.generated_tokens += payload[0]
                report.decode_seconds += payload[1]
                running -= 1
    finally:
        _stop_workers(procs)
        for q in (tasks_in, results_out):
            q.close()
    if load_errors and len(load_errors) == workers:
        report.model_error = load_errors[0]
    elif load_errors:
        log.error("%d of %d workers could not load the model: %s", len(load_errors), workers, load_errors[0])


def _stop_workers(procs: list[Any]) -> None:
    """Terminate what is still running, wait a few seconds in all, then kill what is left."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    until = time.time() + STOP_SECONDS
    for p in procs:
        p.join(timeout=max(0.0, until - time.time()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(timeout=1.0)


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

    NAMES = {"quick": "phase 1, greedy", "full": "phase 2, full solver"}

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


def summary_lines(report: RunReport) -> Iterator[str]:
    """A short human summary (the kernel logs it, the dry run prints it)."""
    yield (f"{report.answered}/{report.entries} entries answered over {report.tasks} tasks "
           f"({report.tasks_attempted} of {report.tasks_queued} queued attempted), {report.placeholders_left} "
           f"placeholders left, {report.seconds:.1f} s, {report.generated_tokens} tokens at "
           f"{report.tokens_per_second:.1f} tokens/s, {report.workers} worker(s)")
    if report.score is not None:
        yield (f"score {report.score:.4f} (ARC Prize, per task)  per output {report.score_per_output:.4f}  "
               f"{report.correct_outputs}/{report.entries} test outputs")
    if report.deadline_hit:
        yield (f"deadline reached: tasks not yet answered keep their placeholders "
               f"(overrun {report.overrun_seconds:.1f} s)")
    if report.model_error:
        yield f"MODEL ERROR: {report.model_error}"
    for tid, why in list(report.errors.items())[:10]:
        yield f"error in task {tid}: {why}"
    if len(report.errors) > 10:
        yield f"... and {len(report.errors) - 10} more errors"
    for problem in report.problems[:10]:
        yield f"INVALID SUBMISSION: {problem}"


# ------------------------------------------------------------------------------------------------------------
# The Kaggle kernel's run (submission/main.py wires only this)


def kernel_config(plan: KernelPlan, start_time: float, env: dict[str, str] | None = None) -> RunConfig:
    """Resolve the kernel's settings and Kaggle paths into a RunConfig (a missing model is left to the run)."""
    from arc_kit.kaggle.paths import (
        KagglePathError,
        find_challenges,
        find_model_dir,
        input_root,
        is_competition_rerun,
        output_path,
    )

    env = dict(os.environ) if env is None else env
    root = input_root(env)
    k = plan.kernel
    challenges = find_challenges(root, k.competition, k.challenges)
    model_dir: Path | None = None
    problem = None
    try:
        model_dir = find_model_dir(root, k.model_dir, dataset=k.weights_dataset, model=k.weights_model)
    except KagglePathError as e:
        problem = str(e)
        log.error("%s", e)
    rerun = is_competition_rerun(env)
    return RunConfig(
        model_dir=model_dir,
        challenges=challenges,
        output=output_path(env),
        run=plan.run,
        solver=plan.solver,
        ttt=plan.ttt,
        max_tasks=None if rerun or not k.quick_tasks else k.quick_tasks,
        start_time=start_time,
        progress=not rerun,
        model_problem=problem,
    )


def _keep_a_placeholder_file(config: RunConfig) -> None:
    """After bad input the run wrote nothing: make sure the output holds placeholders for every task id that
    can be read (``{}`` when none can), so Kaggle still finds a valid file."""
    try:
        counts = entry_counts(read_raw_tasks(config.challenges))
    except TaskFileError:
        counts = {}
    if counts or not config.output.exists():
        Submission.placeholders(counts).write(config.output)


def run_kernel(settings: dict[str, Any], start_time: float) -> int:
    """The kernel: resolve paths, run, log a summary; 0 when the submission is valid and the model ran.

    Every failure ends in one line saying why, never a traceback, and leaves the most valid file it can. On a
    competition rerun a model error still returns 0: the valid placeholder file is then what gets scored, and
    the loud log says why. On an interactive run it returns 1, so the user hears of it before submitting.
    """
    from arc_kit.kaggle.paths import KagglePathError, is_competition_rerun, output_path
    from arc_kit.models.manifest import check_model_requirements

    rerun = is_competition_rerun()
    try:
        plan = KernelPlan.from_dict(settings)
        config = kernel_config(plan, start_time)
    except (SettingsError, KagglePathError) as e:
        print(f"arc-kit kernel: {e}", flush=True)
        if not output_path().exists():
            Submission.placeholders({}).write(output_path())
        return 1
    print(f"arc-kit kernel: {'competition rerun' if rerun else 'interactive run'}; challenges {config.challenges}; "
          f"weights {config.model_dir}; output {config.output}; "
          f"{'all tasks' if config.max_tasks is None else f'quick pass on {config.max_tasks} tasks'}", flush=True)
    version_problems = check_model_requirements(config.model_dir) if config.model_dir is not None else []
    for problem in version_problems:
        print(f"arc-kit kernel: VERSION PROBLEM: {problem}", flush=True)
    try:
        report = run_submission(config)
    except TaskFileError as e:
        print(f"arc-kit kernel: cannot read the challenges: {e}", flush=True)
        _keep_a_placeholder_file(config)
        return 0 if rerun else 1
    for line in summary_lines(report):
        print(line, flush=True)
    if report.problems:
        return 1
    if (report.model_error or version_problems) and not rerun:
        return 1
    return 0
