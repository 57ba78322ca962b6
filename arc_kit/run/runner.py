"""From a challenges file and a weights folder to a complete ``submission.json``, within a time budget.

Shared by the Kaggle kernel (``arc_kit.run.kernel``) and ``arc-kit dry-run``. The run reads its inputs once
(``job.read_inputs``), orders the work (``schedule``), solves it in this process or in one worker process per
visible GPU (``workers``), and lands every result in the ``ledger``, which keeps the file on disk valid at every
moment. Tasks run shortest first, in groups sized to fill a batch, under a global deadline and a per-task cap.

This module imports no torch/transformers at import time: worker processes set ``CUDA_VISIBLE_DEVICES`` first.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from arc_kit.errors import Terminated
from arc_kit.run.interrupts import StopSignals
from arc_kit.run.job import RunInputs, RunJob, SolverFactory, read_inputs
from arc_kit.run.ledger import Ledger
from arc_kit.run.progress import PhaseBars
from arc_kit.run.records import RunReport, total_stages
from arc_kit.run.schedule import Schedule
from arc_kit.run.workers import run_in_process, run_in_workers, visible_gpus
from arc_kit.solve.prompts import task_cost

log = logging.getLogger(__name__)


def load_solver_for(job: RunJob) -> Any:
    """The default factory: load the weights named by the job (module level, so worker processes can pickle it)."""
    from arc_kit.models.loading import ModelLoadError
    from arc_kit.solve.solver import load_solver

    if job.model_dir is None:
        raise ModelLoadError(job.model_problem or "no weights folder given or found")
    return load_solver(job.model_dir, job.solver, job.ttt)


def run_submission(job: RunJob, solver_factory: SolverFactory | None = None,
                   inputs: RunInputs | None = None) -> RunReport:
    """Write ``job.output`` (valid at every moment) and return what happened; never raises for a bad model.

    Bad input (``read_inputs``; ``inputs`` when the caller read them already) writes nothing and raises
    ``TaskFileError``: the caller says why in one line. Ctrl-C or SIGTERM ends the run early with what finished
    written and ``report.interrupted`` set (``StopSignals``: later ones wait until it is written).
    """
    start = job.start_time if job.start_time is not None else time.time()
    deadline = start + job.run.deadline_offset
    inputs = inputs or read_inputs(job)
    queued = sorted((t for t in inputs.tasks if t.test), key=task_cost)[: job.max_tasks]
    workers = job.run.workers or max(1, visible_gpus())
    schedule = Schedule(queued, job, deadline, workers, job.two_phases)
    bar = PhaseBars(schedule.phase_tasks, schedule.two_phases, job.progress)
    ledger = Ledger(job, inputs, queued, schedule, bar, workers)
    ledger.open()
    factory = solver_factory or load_solver_for
    with StopSignals() as signals:
        try:
            if workers <= 1:
                run_in_process(job, factory, schedule, ledger)
            else:
                run_in_workers(job, factory, schedule, ledger, workers)
        except KeyboardInterrupt as e:
            _say_stopped(job, ledger.report, terminated=isinstance(e, Terminated))
        finally:
            signals.finishing()
            bar.close()
        ended = time.time()
        report = ledger.close()
    report.deadline_hit = report.deadline_hit or ended >= deadline
    report.overrun_seconds = round(max(0.0, ended - deadline), 3)
    report.seconds = time.time() - start
    report.stage_seconds = total_stages(report)
    if report.tasks_attempted:
        report.worker_seconds_per_task = round(report.workers * report.seconds / report.tasks_attempted, 3)
    return report


def _say_stopped(job: RunJob, report: RunReport, terminated: bool) -> None:
    report.interrupted, report.terminated = True, terminated
    report.warnings.append(f"{'terminated (SIGTERM)' if terminated else 'interrupted (Ctrl-C)'}: "
                           f"{job.output} holds the answers that landed so far")
    log.warning("%s", report.warnings[-1])


def run_and_report(job: RunJob, solver_factory: SolverFactory | None = None) -> RunReport:
    """``run_submission`` plus ``report.json`` and ``report.html`` beside the submission (the dry run, the demo,
    the evaluation kernel); an interrupted run writes both for what finished, however many interrupts arrive
    meanwhile, and says so in ``report.interrupted``."""
    inputs = read_inputs(job)
    with StopSignals():
        report = run_submission(job, solver_factory=solver_factory, inputs=inputs)
        write_reports(job, report, inputs)
    return report


def dry_run(job: RunJob, solver_factory: SolverFactory | None = None) -> RunReport:
    """``run_and_report``; after an interrupt, with both reports written, ``KeyboardInterrupt`` (``Terminated``
    after SIGTERM) is raised again."""
    report = run_and_report(job, solver_factory)
    if report.interrupted:
        raise Terminated if report.terminated else KeyboardInterrupt
    return report


# The pictures of report.html stop this long before the budget ends: the page itself must still be written.
REPORT_RESERVE_SECONDS = 1.0


def write_reports(job: RunJob, report: RunReport, inputs: RunInputs | None = None) -> None:
    """``report.json`` beside the submission, and ``report.html`` when the run's ``inputs`` are given (the dry
    run). They are written in the margin before the budget ends: nothing is read again, and the pictures stop
    when the budget is nearly spent. A failure (a full disk) is a warning in the report and the log, not an
    error: the submission is what matters, and it is written already. A report that could not be written is in
    ``report.reports_not_written``, and an older one of that name, which would describe another run, is removed."""
    from arc_kit.core.files import atomic_write_json
    from arc_kit.run.report import write_run_report

    began = time.time()
    start = job.start_time if job.start_time is not None else began - report.seconds
    folder = job.output.parent
    steps = [("report.json", lambda: atomic_write_json(folder / "report.json", report.to_json(), indent=1))]
    if inputs is not None:
        steps.append(("report.html", lambda: write_run_report(
            folder / "report.html", inputs.raw, inputs.solutions, str(job.challenges), job.output, report,
            stop_at=start + job.run.budget_seconds - REPORT_RESERVE_SECONDS)))
    for n, (_name, write) in enumerate(steps):
        try:
            write()
        except OSError as e:
            _say_not_written(report, folder, [name for name, _ in steps[n:]], e)
            break
    ended = time.time()
    late = ended - (start + job.run.budget_seconds)
    if late > 0:
        log.warning("the reports took %.1f s and ended %.1f s after the budget: give the run a larger "
                    "margin_seconds", ended - began, late)
    else:
        log.info("reports written in %.1f s", ended - began)


def _say_not_written(report: RunReport, folder: Path, names: list[str], error: OSError) -> None:
    why = error.strerror or str(error)
    report.reports_not_written = dict.fromkeys(names, why)
    removed = []
    for name in names:
        try:
            if (folder / name).is_file():
                (folder / name).unlink()
                removed.append(name)
        except OSError:
            pass
    report.warnings.append(f"{' and '.join(names)} {'was' if len(names) == 1 else 'were'} not written: "
                           f"{error.filename}: {why}" + (f" (the older {' and '.join(removed)} of another run "
                                                         "removed)" if removed else ""))
    log.warning("%s", report.warnings[-1])
