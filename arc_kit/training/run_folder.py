"""A training run's folder as later runs see it: its file names, whether it finished, and resuming from it.

``--resume`` continues a run in its own folder. ``--resume-from DIR`` continues an earlier run whose folder may be
read-only (a Kaggle notebook's output, attached to the next version at ``/kaggle/input/notebooks/<owner>/<slug>/``)
or anywhere below ``DIR``: the newest complete ``checkpoint-<step>/`` is found by its layout
(``arc_kit.models.weights.newest_run``), copied with the earlier log into the new ``train.output_dir``, and the
run goes on from there as ``--resume`` would, on the same schedule. Both refuse, in one line, an earlier run of
another config (``config_differences``): resuming it would train a model that neither config describes.
"""

from __future__ import annotations

import json
import logging
import shutil
import stat
from pathlib import Path
from typing import Any

from arc_kit.errors import ArcKitError
from arc_kit.models.weights import FINAL_DIR, RUN_INFO_FILE, TRAINER_STATE, checkpoint_step, newest_run

log = logging.getLogger(__name__)

__all__ = ["FINAL_DIR", "LOG_FILE", "RUN_INFO_FILE", "STOPPED_AT_BUDGET", "RunFolderError", "adopt_checkpoint",
           "check_same_config", "config_differences", "read_info", "resume_point"]

LOG_FILE = "train_log.jsonl"
STOPPED_AT_BUDGET = "max_seconds"
"""``run_info.json``'s ``stopped`` when the run ended at ``train.max_seconds``."""

FREE_TO_CHANGE = {
    "train": {"output_dir", "save_steps", "save_total_limit", "logging_steps", "eval_steps", "max_steps",
              "max_seconds", "stop_margin_seconds", "per_device_eval_batch_size", "gradient_checkpointing",
              "dataloader_num_workers", "report_to", "debug_batches"},
    "data": {"cache_dir", "num_proc"},
    "model": {"local_files_only", "backend"},
}
"""Settings a resumed run may change: where and how often it saves and logs, when it stops, how it fits memory.
Every other setting shapes the model, the data or the schedule, so it must be the earlier run's."""


class RunFolderError(ArcKitError, ValueError):
    """The run folder cannot be used as asked: it holds checkpoints of an earlier run and --resume was not given, or
    its log is corrupt; or the folder to resume from holds no checkpoint, a finished run or another config's. (A
    run folder that is a file is ``arc_kit.core.files.NotAFolderError``.)"""


def read_info(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's ``run_info.json`` (written when the run starts, rewritten when it ends); None when it has
    none or it cannot be read (a run from before the file held the config)."""
    try:
        info = json.loads((run_dir / RUN_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def config_differences(earlier: dict[str, Any], now: dict[str, Any], where: str = "") -> list[str]:
    """The settings (``table.field``) whose values differ between two configs as dicts (``TrainConfig.to_dict``),
    those in ``FREE_TO_CHANGE`` left out; a setting one of them lacks counts as differing."""
    out = []
    table = where.split(".", 1)[0]
    for key in sorted(set(earlier) | set(now)):
        name = f"{where}.{key}" if where else key
        if where and key in FREE_TO_CHANGE.get(table, ()) and "." not in where:
            continue
        a, b = earlier.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, name)
        elif a != b:
            out.append(name)
    return out


def check_same_config(earlier_dir: Path, config: Any, num_processes: int, *, warn_unknown: bool = True) -> None:
    """Refuse to go on from ``earlier_dir`` with ``config`` (a ``TrainConfig``) on ``num_processes`` processes when
    the earlier run trained another model, on other data or on another schedule; one line naming the first
    setting that differs. A folder without the earlier config (a run folder of an older kit) is let through, with
    a warning when ``warn_unknown`` (another run's folder)."""
    info = read_info(earlier_dir)
    if info is None or not isinstance(info.get("config"), dict):
        if warn_unknown:
            log.warning(f"{earlier_dir}: no {RUN_INFO_FILE} with the earlier run's config; resuming without "
                        "checking that it is the same")
        return
    earlier = info["config"]
    differ = config_differences(earlier, config.to_dict())
    if differ:
        name = differ[0]
        table, _, field = name.partition(".")
        was = _lookup(earlier, name)
        now = _lookup(config.to_dict(), name)
        more = f" (and {len(differ) - 1} more: {', '.join(differ[1:4])})" if len(differ) > 1 else ""
        raise RunFolderError(f"{earlier_dir} was trained with another config: {name} was {was!r}, now {now!r}"
                             f"{more}; resume with the earlier config, or start a new run")
    processes = (info.get("parallel") or {}).get("num_processes")
    if processes is not None and processes != num_processes:
        raise RunFolderError(f"{earlier_dir} was trained on {processes} process(es), this launch has "
                             f"{num_processes}: the effective batch and the schedule would change; launch "
                             f"{processes} process(es) to resume it")


def _lookup(values: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        values = values.get(part) if isinstance(values, dict) else None
    return values


def resume_point(folder: Path) -> Path:
    """The newest complete checkpoint at or below ``folder`` (``--resume-from``); ``RunFolderError`` in one line
    when there is none, or when that run finished (nothing to resume: its export is what to use)."""
    if not folder.is_dir():
        raise RunFolderError(f"--resume-from {folder}: no such folder")
    checkpoint = newest_run(folder)
    if checkpoint is None:
        raise RunFolderError(f"--resume-from {folder}: no checkpoint-<step>/ with {TRAINER_STATE} at or "
                             "below it (give an earlier run's train.output_dir, or a notebook output holding one)")
    info = read_info(checkpoint.parent)
    if info is not None and info.get("finished") is True:
        raise RunFolderError(f"--resume-from {folder}: the run in {checkpoint.parent} finished at step "
                             f"{info.get('steps')}: nothing to resume (export it, or use its export)")
    return checkpoint


def adopt_checkpoint(checkpoint: Path, run_dir: Path) -> Path:
    """Copy ``checkpoint`` (from another, maybe read-only, run folder) into ``run_dir`` with the earlier run's log
    (trimmed to the checkpoint on resume); return the copy. The source is only read."""
    target = run_dir / checkpoint.name
    run_dir.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(checkpoint, target, copy_function=shutil.copyfile)
    for path in [target, *target.rglob("*")]:  # writable, whatever the source's modes (a read-only mount)
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    earlier_log = checkpoint.parent / LOG_FILE
    if earlier_log.is_file():
        shutil.copyfile(earlier_log, run_dir / LOG_FILE)
    log.info(f"--resume-from: copied {checkpoint} (step {checkpoint_step(checkpoint)}) into {run_dir}")
    return target
