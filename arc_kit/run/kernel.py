"""The submission kernel's run: resolve the kernel's settings and Kaggle's mount paths, run, log a summary, choose
the exit code. ``submission/main.py`` reaches ``run_kernel`` through ``arc_kit.run.entry`` (by the kind its
settings name); the evaluation kernel (``arc_kit.run.evaluate``) finds its weights here too."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arc_kit.config.run import KernelSettings, SettingsError, SubmissionConfig
from arc_kit.core.submission import Submission, entry_counts, read_raw_tasks, validate_submission
from arc_kit.core.tasks import TaskFileError
from arc_kit.run.interrupts import StopSignals
from arc_kit.run.job import RunJob
from arc_kit.run.records import summary_lines
from arc_kit.run.runner import run_submission, write_reports

log = logging.getLogger(__name__)


@dataclass
class FoundWeights:
    """The weights folder a kernel found (None: none), why not, and a warning about where it was found."""

    model_dir: Path | None
    problem: str | None = None
    warning: str | None = None


def find_kernel_weights(k: KernelSettings, root: Path, rerun: bool) -> FoundWeights:
    """The weights the kernel's settings name (a dataset, a model, a notebook's output or a folder), found below
    ``root``; a missing model is left to the run (its report says why).

    Weights named but found only by searching elsewhere are another model: an interactive run refuses them (its
    user fixes the attachment before submitting), a rerun uses them, since they beat placeholders, and both say
    so in a WARNING."""
    from arc_kit.kaggle.paths import KagglePathError, find_model_dir, named_weight_places

    sources = {"dataset": k.weights_dataset, "model": k.weights_model, "kernel": k.weights_kernel}
    try:
        model_dir = find_model_dir(root, k.model_dir, **sources)
    except KagglePathError as e:
        log.error("%s", e)
        return FoundWeights(None, str(e))
    named = named_weight_places(root, k.model_dir, **sources)
    if not named or any(p.is_dir() for p in named):
        return FoundWeights(model_dir)
    what = ", ".join(f"{kind} {value}" for kind, value in (*sources.items(), ("model_dir", k.model_dir)) if value)
    warning = (f"the weights named ({what}) are not attached (not at {', '.join(map(str, named))}); {model_dir} was "
               "found instead")
    if rerun:
        warning += ": this rerun uses it"
        log.warning("%s", warning)
        return FoundWeights(model_dir, None, warning)
    warning += (": an interactive run does not use another model; attach the weights named, or name that folder "
                "in kernel.model_dir")
    log.warning("%s", warning)
    return FoundWeights(None, warning, warning)


def kernel_job(config: SubmissionConfig, start_time: float, env: dict[str, str] | None = None) -> RunJob:
    """Resolve the kernel's settings and Kaggle paths into a RunJob (a missing model is left to the run)."""
    from arc_kit.kaggle.paths import find_challenges, input_root, is_competition_rerun, output_path

    env = dict(os.environ) if env is None else env
    root = input_root(env)
    k = config.kernel
    challenges = find_challenges(root, k.competition, k.challenges)
    rerun = is_competition_rerun(env)
    weights = find_kernel_weights(k, root, rerun)
    return RunJob(
        model_dir=weights.model_dir,
        challenges=challenges,
        output=output_path(env),
        run=config.run,
        solver=config.solver,
        ttt=config.ttt,
        max_tasks=None if rerun or not k.quick_tasks else k.quick_tasks,
        start_time=start_time,
        progress=not rerun,
        model_problem=weights.problem,
        warnings=[weights.warning] if weights.warning else [],
    )


def _keep_a_valid_file(job: RunJob) -> None:
    """After a run that ended early (bad input, a fault), make sure the output holds a valid file: when it does
    not, placeholders for every task id that can be read (``{}`` when none can), so Kaggle still finds one."""
    try:
        counts = entry_counts(read_raw_tasks(job.challenges))
    except TaskFileError:
        counts = {}
    try:
        with open(job.output, encoding="utf-8") as f:
            if not validate_submission(json.load(f), counts):
                return
    except (OSError, ValueError):
        pass
    try:
        Submission.placeholders(counts).write(job.output)
    except OSError as e:
        print(f"arc-kit kernel: cannot write placeholders to {job.output} ({e.strerror or e})", flush=True)


def run_kernel(settings: dict[str, Any], start_time: float) -> int:
    """The kernel: resolve paths, run, log a summary; 0 when the submission is valid and the model ran.

    Every failure ends in one line saying why and leaves the most valid file it can. On a competition rerun a
    model error still returns 0: the valid placeholder file is then what gets scored, and the loud log says why.
    On an interactive run it returns 1, so the user hears of it before submitting: so does a run in which every
    task failed, or whose last answers could not be written.
    """
    from arc_kit.kaggle.paths import KagglePathError, is_competition_rerun, output_path
    from arc_kit.models.manifest import check_model_requirements

    if not logging.getLogger().handlers:  # the run's warnings, with their level, in the kernel's log
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    rerun = is_competition_rerun()
    try:
        config = SubmissionConfig.from_dict(settings)
        job = kernel_job(config, start_time)
    except (SettingsError, KagglePathError) as e:
        print(f"arc-kit kernel: {e}", flush=True)
        if not output_path().exists():
            Submission.placeholders({}).write(output_path())
        return 1
    print(f"arc-kit kernel: {'competition rerun' if rerun else 'interactive run'}; challenges {job.challenges}; "
          f"weights {job.model_dir}; output {job.output}; "
          f"{'all tasks' if job.max_tasks is None else f'quick pass on {job.max_tasks} tasks'}", flush=True)
    version_problems = check_model_requirements(job.model_dir) if job.model_dir is not None else []
    for problem in version_problems:
        print(f"arc-kit kernel: VERSION PROBLEM: {problem}", flush=True)
    with StopSignals():  # an interrupt stops the run; later ones wait until the file and report.json are written
        return _run_and_report(job, rerun, version_problems)


def _run_and_report(job: RunJob, rerun: bool, version_problems: list[str]) -> int:
    """The run, ``report.json``, the summary in the log, and the kernel's exit code (see ``run_kernel``)."""
    try:
        report = run_submission(job)
    except TaskFileError as e:
        print(f"arc-kit kernel: cannot read the challenges: {e}", flush=True)
        _keep_a_valid_file(job)
        return 0 if rerun else 1
    except Exception as e:  # a fault nobody foresaw: its stack goes to the log, and the file stays valid
        log.exception("the run failed")
        _keep_a_valid_file(job)
        print(f"arc-kit kernel: the run failed ({type(e).__name__}: {e}); {job.output} holds the last valid "
              "file written, else placeholders", flush=True)
        return 0 if rerun else 1
    write_reports(job, report)
    for line in summary_lines(report):
        print(line, flush=True)
    if report.problems:
        return 1
    if report.interrupted:
        return 0 if rerun else 1
    if (report.model_error or version_problems or report.answers_not_written or report.every_task_failed) \
            and not rerun:
        return 1
    return 0
