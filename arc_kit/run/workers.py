"""Who solves: one in-process solver on a CPU, or one worker process per visible GPU sharing one task queue; every
result goes to the run's ``Ledger``.

Either way the run's deadline holds: nothing new starts past it, a worker that is slow to stop is stopped, and
workers die with the parent however it ends. torch is imported only inside functions, so a worker sets
``CUDA_VISIBLE_DEVICES`` before any model library loads.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from arc_kit.core.tasks import Task
from arc_kit.run.job import RunJob, SolverFactory
from arc_kit.run.ledger import Ledger
from arc_kit.run.schedule import Schedule, Work
from arc_kit.solve.solver import TaskResult

log = logging.getLogger(__name__)


def visible_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def run_in_process(job: RunJob, factory: SolverFactory, schedule: Schedule, ledger: Ledger) -> None:
    """Solve the schedule's work in this process, handing each result to the ledger, until the work or the
    time (``schedule.deadline``) runs out."""
    report = ledger.report
    try:
        solver = factory(job)
    except Exception as e:
        report.model_error = f"{type(e).__name__}: {e}"
        return
    while (work := schedule.next(time.time())) is not None:
        now = time.time()
        if now >= schedule.deadline:
            report.deadline_hit = True
            break
        results = solve_group(solver, work.tasks, min(schedule.deadline, now + work.cap_seconds), work.phase,
                              work.priors)
        ledger.came_back(work.phase, [t.task_id for t in work.tasks], results)
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


@dataclass
class WorkerStart:
    """What a worker process is started with (pickled once, when it is spawned): who it is, its device, the run,
    and its two queues: its own for work, a shared one for what it sends back."""

    worker_id: int
    env: dict[str, str]  # CUDA_VISIBLE_DEVICES: its GPU
    job: RunJob
    factory: SolverFactory
    deadline: float
    parent_pid: int
    tasks_in: Any
    results_out: Any


def _worker_main(start: WorkerStart) -> None:
    """One worker process: set the device before any model library loads, then take groups from its own queue
    until told to stop. Every message carries the worker's id, so the parent knows who answered."""
    _die_with_parent(start.parent_pid)
    _leave_stopping_to_the_parent()
    os.environ.update(start.env)
    worker_id, results_out = start.worker_id, start.results_out
    try:
        solver = start.factory(start.job)
    except Exception as e:
        results_out.put(("load_error", worker_id, f"{type(e).__name__}: {e}"))
        return
    results_out.put(("ready", worker_id, None))
    while True:
        work: Work | None = start.tasks_in.get()
        if work is None:
            break
        now = time.time()
        if now >= start.deadline:
            results_out.put(("skipped", worker_id, (work.phase, [t.task_id for t in work.tasks])))
            continue
        results = solve_group(solver, work.tasks, min(start.deadline, now + work.cap_seconds), work.phase,
                              work.priors)
        results_out.put(("results", worker_id, (work.phase, [t.task_id for t in work.tasks], results)))
    results_out.put(("done", worker_id, _decode_stats(solver)))


def _leave_stopping_to_the_parent() -> None:
    """A worker ignores Ctrl-C (the shell sends it to the whole process group: the parent decides what stops, and
    stops its workers with SIGTERM), and makes no named semaphore that would outlive it when it is stopped or
    killed. tqdm makes one for its write lock at the first bar (transformers shows one while loading weights):
    in a spawned process that lock is registered with multiprocessing's resource tracker, which reports it leaked
    when the worker ends without running its exit handlers. Within one process a thread lock serves as well."""
    import threading

    from tqdm import tqdm

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tqdm.set_lock(threading.RLock())


# How many groups wait in a worker's queue: enough that it never idles, few enough that the queue's feeder
# thread never holds more than a pipe buffer's worth when the worker stops reading.
GROUPS_AHEAD_PER_WORKER = 2
# After the deadline the parent waits this long for results already being sent, then stops every worker.
DRAIN_SECONDS = 2.0
STOP_SECONDS = 5.0
# A dead worker is replaced while the time left is at least this many times what loading the model took (a
# replacement must load it again before it solves anything), and at most this many times per GPU.
REPLACE_IF_LOADS_LEFT = 2.0
ASSUMED_LOAD_SECONDS = 60.0  # before any worker has loaded: what a replacement is assumed to need
MAX_REPLACEMENTS_PER_GPU = 3


@dataclass
class _Worker:
    """A worker process as the parent sees it: what it was sent and has not answered yet, in order (it takes
    them in that order, so the first is the one it is on)."""

    id: int
    slot: int  # which GPU (CUDA_VISIBLE_DEVICES) it runs on
    env: dict[str, str]
    process: Any
    tasks_in: Any  # its own queue: the parent knows what each worker holds when it dies
    started: float
    held: deque[Work] = field(default_factory=deque)
    ready: bool = False  # the model loaded
    stopping: bool = False  # sent its stop sentinel
    finished: bool = False  # said "done" or "load_error", or died


class _Pool:
    """The worker processes of a run and the work each holds. A worker that dies (killed, out of memory) is
    noticed within a second: the group it was on is not tried again (it may be what killed it: that task keeps
    its earlier answer), the groups it held but had not started go back to the schedule, and a replacement
    starts on the same GPU while there is time for it to load the model."""

    def __init__(self, job: RunJob, factory: SolverFactory, schedule: Schedule, ledger: Ledger, workers: int):
        self.job, self.factory, self.schedule, self.ledger = job, factory, schedule, ledger
        self.deadline, self.report = schedule.deadline, ledger.report
        self.ctx = mp.get_context("spawn")
        self.results_out = self.ctx.Queue()
        self.results_out.cancel_join_thread()  # never wait for a feeder thread at exit: see run_in_workers
        self.workers: dict[int, _Worker] = {}
        self.replacements = [0] * workers
        self.load_seconds: list[float] = []
        self.load_errors: list[str] = []
        gpus = visible_gpus()
        for slot in range(workers):
            self.start({"CUDA_VISIBLE_DEVICES": str(slot)} if gpus >= workers else {}, slot)

    def start(self, env: dict[str, str], slot: int) -> None:
        worker_id = len(self.workers)
        tasks_in = self.ctx.Queue()
        tasks_in.cancel_join_thread()
        start = WorkerStart(worker_id, env, self.job, self.factory, self.deadline, os.getpid(), tasks_in,
                            self.results_out)
        process = self.ctx.Process(target=_worker_main, args=(start,), daemon=True,
                                   name=f"arc-kit-worker-{worker_id}")
        process.start()
        self.workers[worker_id] = _Worker(worker_id, slot, env, process, tasks_in, time.time())
        self.feed()

    def live(self) -> list[_Worker]:
        return [w for w in self.workers.values() if not w.finished]

    def feed(self) -> None:
        """Top every live worker up to GROUPS_AHEAD_PER_WORKER groups; once no work is left (or the deadline has
        passed) and no worker holds any, tell each to stop. Until then an idle worker waits: a worker that dies
        may yet hand work back."""
        for worker in self.live():
            while not worker.stopping and len(worker.held) < GROUPS_AHEAD_PER_WORKER:
                work = self.schedule.next(time.time()) if time.time() < self.deadline else None
                if work is None:
                    break
                worker.tasks_in.put(work)
                worker.held.append(work)
        if not any(w.held for w in self.live()) and (time.time() >= self.deadline or self.schedule.empty):
            for worker in self.live():
                if not worker.stopping:
                    worker.tasks_in.put(None)
                    worker.stopping = True

    def handle(self, kind: str, worker_id: int, payload: Any) -> None:
        worker = self.workers[worker_id]
        if kind == "ready":
            worker.ready = True
            self.load_seconds.append(time.time() - worker.started)
        elif kind in ("results", "skipped"):
            phase, task_ids, results = payload if kind == "results" else (*payload, [])
            if worker.held:
                worker.held.popleft()
            if kind == "skipped":
                self.report.deadline_hit = True
            self.ledger.came_back(phase, task_ids, results)
            self.feed()
        elif kind == "load_error":
            self.load_errors.append(payload)
            worker.finished = True
            self._hand_back(list(worker.held))
        elif kind == "done":
            self.report.generated_tokens += payload[0]
            self.report.decode_seconds += payload[1]
            worker.finished = True

    def receive(self, timeout: float) -> None:
        """Handle the next message (waiting up to ``timeout``), then whatever else is already there; then notice
        workers that died."""
        try:
            self.handle(*self.results_out.get(timeout=timeout))
            while True:
                self.handle(*self.results_out.get_nowait())
        except queue.Empty:
            pass
        for worker in self.live():
            if not worker.process.is_alive():
                try:  # what it sent before it died comes first
                    while True:
                        self.handle(*self.results_out.get_nowait())
                except queue.Empty:
                    pass
                if not worker.finished:
                    self._died(worker)

    def _died(self, worker: _Worker) -> None:
        worker.finished = True
        code = worker.process.exitcode
        if code is not None and code < 0:
            how = f"killed by {signal.Signals(-code).name if -code in signal.valid_signals() else -code}"
        else:
            how = f"exit code {code}"
        held = list(worker.held)
        on = held.pop(0) if held and worker.ready else None
        if on is not None and len(on.tasks) > 1:  # a group goes back one task a group: one that kills costs itself
            held[:0] = [Work(on.phase, [task], on.cap_seconds) for task in on.tasks]
            on = None
        self._hand_back(held)
        what = f"worker {worker.id} (pid {worker.process.pid}) died ({how})"
        if on is not None:  # not tried again: it may be what killed the worker
            task_id = on.tasks[0].task_id
            results: list[TaskResult] = []
            if on.phase == "full":
                what += f" while solving task {task_id}, which keeps what the file holds for it"
                results.append(TaskResult(task_id, error=f"{what}; not tried again"))
            elif on.phase == "quick":
                what += f" on task {task_id}'s quick pass (the full solver will try it)"
            else:
                what += f" revisiting task {task_id} in spare time (it keeps its full answer)"
            self.ledger.came_back(on.phase, [task_id], results)
        back = sum(len(w.tasks) for w in held)
        what += f"; {back} task{'' if back == 1 else 's'} it held go{'es' if back == 1 else ''} back to the queue"
        why_not = self._why_not_replace(worker.slot)
        what += f"; no replacement ({why_not})" if why_not else "; starting a replacement"
        log.error("%s", what)
        self.report.warnings.append(what)
        if why_not:
            self.feed()
        else:
            self.replacements[worker.slot] += 1
            self.start(worker.env, worker.slot)

    def _why_not_replace(self, slot: int) -> str | None:
        """Why a dead worker on ``slot`` gets no replacement, or None when it does."""
        if self.schedule.empty and not any(w.held for w in self.live()):
            return "no work left"
        if self.replacements[slot] >= MAX_REPLACEMENTS_PER_GPU:
            return f"this GPU's worker was replaced {MAX_REPLACEMENTS_PER_GPU} times already"
        left = self.deadline - time.time()
        load = max(self.load_seconds or [ASSUMED_LOAD_SECONDS])
        if left < REPLACE_IF_LOADS_LEFT * load:
            return f"{left:.0f} s left, and loading the model takes about {load:.0f} s"
        return None

    def _hand_back(self, held: list[Work]) -> None:
        """Work sent to a worker that will not do it goes back to the front of the schedule."""
        self.schedule.put_back(held)
        self.feed()

    def stop(self) -> None:
        _stop_workers([w.process for w in self.workers.values()])
        for w in self.workers.values():
            w.tasks_in.close()
        self.results_out.close()


def run_in_workers(job: RunJob, factory: SolverFactory, schedule: Schedule, ledger: Ledger, workers: int) -> None:
    """Share the groups between worker processes, handing each result to the ledger; return by the deadline
    (``schedule.deadline``, plus a few seconds) whatever they do.

    Each worker has its own queue, fed a few groups at a time (not all up front), so the parent knows what a
    worker that dies was holding. The parent never waits for a queue's feeder thread at exit
    (``cancel_join_thread``): a 600 KB challenges file pickled into a pipe nobody reads any more once kept the
    interpreter from exiting after the submission was written.
    """
    pool = _Pool(job, factory, schedule, ledger, workers)
    deadline, report = schedule.deadline, ledger.report
    try:
        while pool.live():
            left = deadline - time.time()
            if left <= -DRAIN_SECONDS:
                break
            if left <= 0:
                report.deadline_hit = True
            pool.receive(timeout=max(0.05, min(1.0, left if left > 0 else DRAIN_SECONDS)))
    finally:
        pool.stop()
    if not schedule.empty and not pool.live() and time.time() < deadline:
        log.error("no worker left to solve the rest: those tasks keep their answers so far")
    if pool.load_errors and len(pool.load_errors) == len(pool.workers):
        report.model_error = pool.load_errors[0]
    elif pool.load_errors:
        log.error("%d of %d workers could not load the model: %s", len(pool.load_errors), len(pool.workers),
                  pool.load_errors[0])


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
