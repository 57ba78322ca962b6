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

from arc_kit.inference import InferenceConfig, TaskResult
from arc_kit.submission import Submission, raw_test_counts, validate_submission
from arc_kit.tasks import Task, TaskFileError, load_tasks, read_json
from arc_kit.text import largest_answer_tokens, physical_tokens

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    model_dir: Path | None
    challenges: Path
    output: Path  # the submission.json to write
    solutions: Path | None = None  # scores the run when given
    budget_seconds: float = 12 * 3600.0
    margin_seconds: float | None = None  # deadline = start + budget - margin; None: 5% of the budget, <= 900 s
    task_cap_seconds: float = 1200.0  # a group of tasks decoding longer than this keeps its placeholders
    max_tasks: int | None = None  # quick pass: only the first N tasks (shortest first) are decoded
    workers: int | None = None  # None: one per visible GPU, one (in-process) on CPU
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    start_time: float | None = None  # time.time() when the run (or the kernel) started; None: now
    progress: bool = True  # tqdm bar

    @property
    def deadline_offset(self) -> float:
        margin = self.margin_seconds if self.margin_seconds is not None else min(900.0, 0.05 * self.budget_seconds)
        return self.budget_seconds - margin


SolverFactory = Callable[[RunConfig], Any]  # returns an object with .solve(tasks, stop_at) -> list[TaskResult]


def load_solver_for(config: RunConfig) -> Any:
    """The default factory: load the weights named by the config (module level, so worker processes can pickle it)."""
    from arc_kit.inference import ModelLoadError, load_solver

    if config.model_dir is None:
        raise ModelLoadError("no weights folder given or found")
    return load_solver(config.model_dir, config.inference)


@dataclass
class TaskRecord:
    seconds: float = 0.0
    tokens: int = 0
    answered: int = 0
    pairs_dropped: int = 0
    unparsed: int = 0
    timed_out: bool = False
    error: str | None = None
    correct: list[bool] | None = None  # per test input, when solutions were given


@dataclass
class RunReport:
    submission_path: str
    tasks: int
    entries: int
    answered: int = 0
    placeholders_left: int = 0
    tasks_attempted: int = 0
    seconds: float = 0.0
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


def task_size(task: Task) -> int:
    """Tokens a task costs, roughly: its grids plus the answer room; orders the queue shortest first."""
    grids = sum(physical_tokens(p.input) + physical_tokens(p.output) for p in task.train)
    return grids + sum(physical_tokens(p.input) for p in task.test) + largest_answer_tokens(task) * len(task.test)


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


def visible_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def run_submission(config: RunConfig, solver_factory: SolverFactory | None = None) -> RunReport:
    """Write ``config.output`` (valid at every moment) and return what happened; never raises for a bad model."""
    start = config.start_time if config.start_time is not None else time.time()
    deadline = start + config.deadline_offset
    counts = raw_test_counts(config.challenges)  # a file we cannot read at all is the one error we raise
    submission = Submission.placeholders(counts)
    submission.write(config.output)
    report = RunReport(str(config.output), tasks=len(counts), entries=submission.num_entries)
    tasks = load_tasks(config.challenges, strict=False)
    for tid, why in tasks.errors.items():
        report.errors[tid] = why
        log.error("task %s skipped (placeholder kept): %s", tid, why)
    ordered = sorted(tasks, key=task_size)
    if config.max_tasks is not None:
        ordered = ordered[: config.max_tasks]
    report.tasks_attempted = len(ordered)
    groups = task_groups(ordered, config.inference.batch_size, config.inference.views)
    factory = solver_factory or load_solver_for
    workers = config.workers or max(1, visible_gpus())
    report.workers = workers

    def land(result: TaskResult) -> None:
        record = TaskRecord(result.seconds, result.tokens, result.answered, result.pairs_dropped, result.unparsed,
                            result.timed_out, result.error)
        report.per_task[result.task_id] = record
        if result.error:
            report.errors[result.task_id] = result.error
        if not result.timed_out:
            for i, (a1, a2) in enumerate(result.attempts):
                submission.set_attempts(result.task_id, i, a1, a2)
        submission.write(config.output)

    bar = _progress(len(ordered), config.progress)
    try:
        if workers <= 1:
            _run_in_process(config, factory, groups, deadline, land, report, bar)
        else:
            _run_in_workers(config, factory, groups, deadline, land, report, bar, workers)
    finally:
        bar.close()
    if report.model_error:
        log.error("MODEL NOT LOADED, every entry keeps its placeholder: %s", report.model_error)
    report.deadline_hit = report.deadline_hit or time.time() >= deadline
    _finish(config, submission, counts, report, start)
    return report


def dry_run(config: RunConfig, solver_factory: SolverFactory | None = None) -> RunReport:
    """``run_submission`` plus ``report.json`` beside the submission: what ``arc-kit dry-run`` and the demo write."""
    from arc_kit.io_utils import atomic_write_json

    report = run_submission(config, solver_factory=solver_factory)
    atomic_write_json(config.output.parent / "report.json", report.to_json(), indent=1)
    return report


def _run_in_process(config: RunConfig, factory: SolverFactory, groups: list[list[Task]], deadline: float,
                    land: Callable[[TaskResult], None], report: RunReport, bar: Any) -> None:
    try:
        solver = factory(config)
    except Exception as e:
        report.model_error = f"{type(e).__name__}: {e}"
        return
    for group in groups:
        now = time.time()
        if now >= deadline:
            report.deadline_hit = True
            break
        for result in _solve_group(solver, group, min(deadline, now + config.task_cap_seconds)):
            land(result)
        bar.update(len(group))
    decoder = getattr(solver, "decoder", None)
    if decoder is not None:
        report.generated_tokens += decoder.stats.tokens
        report.decode_seconds += decoder.stats.seconds


def _solve_group(solver: Any, group: list[Task], stop_at: float) -> list[TaskResult]:
    """A solver that raises costs its group nothing more than the failing task: retry one by one."""
    try:
        return list(solver.solve(group, stop_at))
    except Exception as e:
        if len(group) > 1:
            return [r for task in group for r in _solve_group(solver, [task], stop_at)]
        log.error("task %s failed: %s: %s", group[0].task_id, type(e).__name__, e)
        return [TaskResult(group[0].task_id, error=f"{type(e).__name__}: {e}")]


def _worker_main(env: dict[str, str], config: RunConfig, factory: SolverFactory, tasks_in: Any, results_out: Any,
                 deadline: float) -> None:
    """One worker process: set the device before any model library loads, then take groups until told to stop."""
    os.environ.update(env)
    try:
        solver = factory(config)
    except Exception as e:
        results_out.put(("load_error", f"{type(e).__name__}: {e}"))
        return
    while True:
        group = tasks_in.get()
        if group is None:
            break
        now = time.time()
        if now >= deadline:
            results_out.put(("skipped", [t.task_id for t in group]))
            continue
        results_out.put(("results", _solve_group(solver, group, min(deadline, now + config.task_cap_seconds))))
    decoder = getattr(solver, "decoder", None)
    stats = (decoder.stats.tokens, decoder.stats.seconds) if decoder is not None else (0, 0.0)
    results_out.put(("done", stats))


def _run_in_workers(config: RunConfig, factory: SolverFactory, groups: list[list[Task]], deadline: float,
                    land: Callable[[TaskResult], None], report: RunReport, bar: Any, workers: int) -> None:
    ctx = mp.get_context("spawn")
    tasks_in, results_out = ctx.Queue(), ctx.Queue()
    for group in groups:
        tasks_in.put(group)
    for _ in range(workers):
        tasks_in.put(None)
    gpus = visible_gpus()
    procs = []
    for w in range(workers):
        env = {"CUDA_VISIBLE_DEVICES": str(w)} if gpus >= workers else {}
        p = ctx.Process(target=_worker_main, args=(env, config, factory, tasks_in, results_out, deadline),
                        daemon=True, name=f"arc-kit-worker-{w}")
        p.start()
        procs.append(p)
    running, load_errors = workers, []
    try:
        while running:
            left = deadline - time.time()
            if left <= 0:
                report.deadline_hit = True
                break
            try:
                kind, payload = results_out.get(timeout=min(1.0, left))
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    break  # every worker died without a word (killed, out of memory)
                continue
            if kind == "results":
                for result in payload:
                    land(result)
                bar.update(len(payload))
            elif kind == "skipped":
                report.deadline_hit = True
                bar.update(len(payload))
            elif kind == "load_error":
                load_errors.append(payload)
                running -= 1
            elif kind == "done":
                report.generated_tokens += payload[0]
                report.decode_seconds += payload[1]
                running -= 1
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
    if load_errors and len(load_errors) == workers:
        report.model_error = load_errors[0]
    elif load_errors:
        log.error("%d of %d workers could not load the model: %s", len(load_errors), workers, load_errors[0])


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
        from arc_kit.scoring import score_submission

        try:
            solutions = read_json(config.solutions)
        except TaskFileError as e:
            report.errors["<solutions>"] = str(e)
            return
        scored = score_submission(on_disk, {tid: sols for tid, sols in solutions.items() if tid in counts})
        report.score, report.score_per_output = scored.score, scored.score_per_output
        report.correct_outputs = scored.correct_outputs
        for tid, ts in scored.per_task.items():
            report.per_task.setdefault(tid, TaskRecord()).correct = ts.correct


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="tasks", unit="task", dynamic_ncols=True)


def summary_lines(report: RunReport) -> Iterator[str]:
    """A short human summary (the kernel logs it, the dry run prints it)."""
    yield (f"{report.answered}/{report.entries} entries answered over {report.tasks} tasks "
           f"({report.tasks_attempted} attempted), {report.placeholders_left} placeholders left, "
           f"{report.seconds:.1f} s, {report.generated_tokens} tokens at {report.tokens_per_second:.1f} tokens/s, "
           f"{report.workers} worker(s)")
    if report.score is not None:
        yield (f"score {report.score:.4f} (ARC Prize, per task)  per output {report.score_per_output:.4f}  "
               f"{report.correct_outputs}/{report.entries} test outputs")
    if report.deadline_hit:
        yield "deadline reached: tasks not yet answered keep their placeholders"
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

KERNEL_DEFAULTS: dict[str, Any] = {
    "competition": None,  # None: arc_kit.COMPETITION_SLUG
    "challenges": None,  # a path; None: found under the input root
    "model_dir": None,  # a path (absolute or below the input root); None: found under the input root
    "budget_seconds": 12 * 3600,
    "margin_seconds": 900,
    "task_cap_seconds": 1200,
    "views": 1,
    "batch_size": 8,
    "max_length": 8192,
    "workers": None,
    "seed": 0,
    "use_unsloth": True,
    "quick_tasks": 8,  # interactive (not rerun) sessions decode only this many tasks; None or 0: all
}


def kernel_config(settings: dict[str, Any], start_time: float, env: dict[str, str] | None = None) -> RunConfig:
    """Resolve the kernel's settings and Kaggle paths into a RunConfig (a missing model is left to the run)."""
    from arc_kit import COMPETITION_SLUG
    from arc_kit.kaggle_paths import (
        KagglePathError,
        find_challenges,
        find_model_dir,
        input_root,
        is_competition_rerun,
        output_path,
    )

    env = dict(os.environ) if env is None else env
    unknown = set(settings) - set(KERNEL_DEFAULTS) - {"wheelhouse"}
    if unknown:
        log.warning("unknown kernel settings ignored: %s", ", ".join(sorted(unknown)))
    s = {**KERNEL_DEFAULTS, **{k: v for k, v in settings.items() if k in KERNEL_DEFAULTS}}
    root = input_root(env)
    challenges = find_challenges(root, s["competition"] or COMPETITION_SLUG, s["challenges"])
    try:
        model_dir: Path | None = find_model_dir(root, s["model_dir"])
    except KagglePathError as e:
        log.error("%s", e)
        model_dir = None
    rerun = is_competition_rerun(env)
    return RunConfig(
        model_dir=model_dir,
        challenges=challenges,
        output=output_path(env),
        budget_seconds=float(s["budget_seconds"]),
        margin_seconds=float(s["margin_seconds"]),
        task_cap_seconds=float(s["task_cap_seconds"]),
        max_tasks=None if rerun or not s["quick_tasks"] else int(s["quick_tasks"]),
        workers=s["workers"],
        inference=InferenceConfig(max_length=int(s["max_length"]), batch_size=int(s["batch_size"]),
                                  views=int(s["views"]), seed=int(s["seed"]), use_unsloth=bool(s["use_unsloth"])),
        start_time=start_time,
        progress=not rerun,
    )


def run_kernel(settings: dict[str, Any], start_time: float) -> int:
    """The kernel: resolve paths, run, log a summary; 0 when the submission is valid and the model ran.

    On a competition rerun a model error still returns 0: the valid placeholder file is then what gets scored,
    and the loud log says why.
    """
    from arc_kit.kaggle_paths import is_competition_rerun

    config = kernel_config(settings, start_time)
    rerun = is_competition_rerun()
    print(f"arc-kit kernel: {'competition rerun' if rerun else 'interactive run'}; challenges {config.challenges}; "
          f"weights {config.model_dir}; output {config.output}; "
          f"{'all tasks' if config.max_tasks is None else f'quick pass on {config.max_tasks} tasks'}", flush=True)
    report = run_submission(config)
    for line in summary_lines(report):
        print(line, flush=True)
    if report.problems:
        return 1
    if report.model_error and not rerun:
        return 1
    return 0
