"""Who solves: one in-process solver on a CPU, or one worker process per visible GPU sharing one task queue.

Either way the run's deadline holds: nothing new starts past it, a worker that is slow to stop is stopped, and
workers die with the parent however it ends. torch is imported only inside functions, so a worker sets
``CUDA_VISIBLE_DEVICES`` before any model library loads.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from arc_kit.core.tasks import Task
from arc_kit.run.schedule import Schedule, Work
from arc_kit.solve.solver import TaskResult

if TYPE_CHECKING:
    from arc_kit.run.records import RunReport
    from arc_kit.run.runner import RunConfig, SolverFactory

log = logging.getLogger(__name__)


def visible_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def run_in_process(config: RunConfig, factory: SolverFactory, schedule: Schedule, deadline: float,
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
        results = solve_group(solver, work.tasks, min(deadline, now + work.cap_seconds), work.phase, work.priors)
        for result in results:
            land(result, work.phase)
        for _ in range(len(work.tasks) - len(results)):  # a task that came back without a result
            schedule.landed(work.phase, None)
        bar.update(work.phase, len(work.tasks))
    tokens, seconds = _decode_stats(solver)
    report.generated_tokens += tokens
    report.decode_seconds += seconds


def _decode_stats(solver: Any) -> tuple[int, float]:
    decoder = getattr(solver, "decoder", None)
    return (decoder.stats.tokens, decoder.stats.seconds) if decoder is not None else (0, 0.0)


def solve_group(solver: Any, group: list[Task], stop_at: float, phase: str = "full",
                priors: dict[str, Any] | None = None) -> list[TaskResult]:
    """A solver that raises costs its group nothing more than the failing task: retry one by one.

    ``phase`` "quick" calls the solver's ``quick`` pass when it has one (a stand-in solver may not); "spare" its
    ``revisit`` with ``priors`` (a solver without one revisits nothing)."""
    if phase == "spare":
        if not hasattr(solver, "revisit"):
            return []
        def method(tasks: list[Task], stop: float) -> list[TaskResult]:
            return solver.revisit(tasks, stop, priors or {})
    else:
        method = getattr(solver, "quick", solver.solve) if phase == "quick" else solver.solve
    try:
        return list(method(group, stop_at))
    except Exception as e:
        if len(group) > 1:
            return [r for task in group for r in solve_group(solver, [task], stop_at, phase, priors)]
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
        results = solve_group(solver, work.tasks, min(deadline, now + work.cap_seconds), work.phase, work.priors)
        results_out.put(("results", (work.phase, [t.task_id for t in work.tasks], results)))
    results_out.put(("done", _decode_stats(solver)))


# How many groups wait in the task queue per worker: enough that no worker idles, few enough that the queue's
# feeder thread never holds more than a pipe buffer's worth when the workers stop reading.
GROUPS_AHEAD_PER_WORKER = 2
# After the deadline the parent waits this long for results already being sent, then stops every worker.
DRAIN_SECONDS = 2.0
STOP_SECONDS = 5.0


def run_in_workers(config: RunConfig, factory: SolverFactory, schedule: Schedule, deadline: float,
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
    out = 0  # work items sent whose answer (results or skipped) has not come back
    limit = GROUPS_AHEAD_PER_WORKER * workers

    def feed() -> None:
        """Keep ``limit`` items in the queue or in the workers; send the stop sentinels once the schedule is done
        (not while it waits for full tasks still out before handing out revisits)."""
        nonlocal sentinels_sent, out
        while out < limit and not sentinels_sent:
            work = schedule.next(time.time())
            if work is not None:
                tasks_in.put(work)
                out += 1
            elif not schedule.waiting:
                for _ in range(workers):
                    tasks_in.put(None)
                sentinels_sent = True
            else:
                return

    gpus = visible_gpus()
    procs = []
    for w in range(workers):
        env = {"CUDA_VISIBLE_DEVICES": str(w)} if gpus >= workers else {}
        p = ctx.Process(target=_worker_main,
                        args=(env, config, factory, tasks_in, results_out, deadline, os.getpid()),
                        daemon=True, name=f"arc-kit-worker-{w}")
        p.start()
        procs.append(p)
    feed()
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
                phase, task_ids, results = payload
                for result in results:
                    land(result, phase)
                for _ in range(len(task_ids) - len(results)):  # a task that came back without a result
                    schedule.landed(phase, None)
                bar.update(phase, len(task_ids))
                out -= 1
                feed()
            elif kind == "skipped":
                report.deadline_hit = True
                for _ in payload[1]:
                    schedule.landed(payload[0], None)
                bar.update(payload[0], len(payload[1]))
                out -= 1
                feed()
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
