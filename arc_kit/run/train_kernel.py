"""The training kernel: the kit's training on Kaggle's GPUs, within one notebook session, resumable.

The config travels inside the code file (``TrainKernelConfig``'s literal); the kernel writes it to
``train-config.json`` in its output and runs ``arc-kit train`` on it, one process per visible GPU (DDP on T4 x2,
``launch_command``; the precision follows the GPU). What the kernel sets in the config:

- ``train.output_dir``: ``<working>/run`` (``/kaggle/working``, ``ARC_KIT_WORKING``: the notebook's output);
- ``model.name_or_path``: the attached base model's mount (``kernel.base_model_source``), read offline;
- ``train.max_seconds``, when the config leaves it unset: what remains of ``kernel.budget_seconds`` once arc-kit
  is installed, so the run saves a checkpoint and stops ``train.stop_margin_seconds`` before the session ends,
  leaving that time for the export (its learning-rate schedule still the full run's);
- every ``/kaggle/input/...`` path read below the input root (``ARC_KIT_INPUT_ROOT``).

A finished run is exported (``<working>/export/``: ``merged/`` with its manifest, and ``adapter/``), which the
submission and evaluation kernels load with ``--weights-kernel OWNER/SLUG``. A run stopped at its budget leaves
its newest checkpoint; the next version, built with ``--resume-kernel OWNER/SLUG``, finds it by its layout in the
attached output and continues. Either way ``train-kernel.json`` says what happened and what to do next.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from arc_kit.config.kernels import TrainKernelConfig, TrainKernelSettings
from arc_kit.config.run import SettingsError
from arc_kit.config.schema import from_dict
from arc_kit.config.training import TrainConfig

log = logging.getLogger(__name__)

CONFIG_FILE = "train-config.json"  # the config the run read, in the output
SUMMARY_FILE = "train-kernel.json"  # what happened: finished or stopped, steps, the export, the next step
RUN_DIR = "run"  # the run folder (train.output_dir): the newest checkpoint, run_info.json, the log, final/
EXPORT_DIR = "export"  # once training finished: merged/ (with the manifest) and adapter/


def resume_source(k: TrainKernelSettings, root: Path) -> Path | None:
    """The attached output of ``kernel.resume_kernel``, when it holds a run stopped at its budget; one that holds
    a finished run or no run is refused in one line."""
    from arc_kit.kaggle.paths import KagglePathError, kernel_output_folders
    from arc_kit.models.weights import CHECKPOINTS, EXPORT, training_output

    if not k.resume_kernel:
        return None
    places = kernel_output_folders(root, k.resume_kernel)
    place = next((p for p in places if p.is_dir()), None)
    if place is None:
        raise KagglePathError(f"kernel.resume_kernel {k.resume_kernel}: its output is not attached (not at "
                              f"{', '.join(map(str, places))})")
    output = training_output(place)
    if output.kind == EXPORT:
        raise KagglePathError(f"{place} holds a finished run (its export, {output.weights}): nothing to resume; "
                              "build the kernel without --resume-kernel to train afresh, or load the export with "
                              "--weights-kernel")
    if output.kind != CHECKPOINTS:
        raise KagglePathError(f"{place} holds no training output to resume (no checkpoint-<step>/)")
    return place


def kernel_training_config(kernel_config: TrainKernelConfig, root: Path, working: Path,
                           seconds_spent: float) -> TrainConfig:
    """The config the run reads: ``kernel_config``'s training config, with the output folder, the attached base
    model, the input paths and the budget set as the kernel sets them (see the module's docstring)."""
    from arc_kit.kaggle.kernel_build import KAGGLE_INPUT
    from arc_kit.kaggle.paths import reroot

    k = kernel_config.kernel
    raw = kernel_config.training_config().to_dict()
    model, data, train = raw["model"], raw["data"], raw["train"]
    train["output_dir"] = str(working / RUN_DIR)
    if k.base_model_source:
        model["name_or_path"], model["local_files_only"] = str(attached_base_model(k.base_model_source, root)), True
    elif model["name_or_path"].startswith(KAGGLE_INPUT):
        model["name_or_path"], model["local_files_only"] = str(reroot(model["name_or_path"], root)), True

    def inside(path: str) -> str:
        return str(reroot(path, root)) if path.startswith(KAGGLE_INPUT) else path

    for key in ("challenges", "solutions", "held_out"):
        data[key] = [inside(p) for p in data[key]]
    for source in data["sources"]:
        source["path"], source["solutions"] = inside(source["path"]), inside(source["solutions"])
    if train["max_seconds"] is None:
        left = k.budget_seconds - seconds_spent
        if left <= train["stop_margin_seconds"]:
            raise SettingsError(f"no time left to train: {seconds_spent:.0f} s spent before training of "
                                f"kernel.budget_seconds {k.budget_seconds:.0f} s, and train.stop_margin_seconds "
                                f"{train['stop_margin_seconds']:.0f} s kept for the checkpoint and the export")
        train["max_seconds"] = round(left, 1)
    return from_dict(TrainConfig, raw, "the training kernel's config")


def attached_base_model(ref: str, root: Path) -> Path:
    """The weights folder of the base model attached as ``ref`` (a Kaggle Model or a dataset), at its mount: never
    another folder found by searching, since training from another base than the one named is never wanted."""
    from arc_kit.kaggle.paths import KagglePathError, named_weight_places
    from arc_kit.models.weights import WeightsFolderError, choose_weights

    places = named_weight_places(root, **{"model" if ref.count("/") >= 2 else "dataset": ref})
    place = next((p for p in places if p.is_dir()), None)
    if place is None:
        raise KagglePathError(f"kernel.base_model_source {ref} is not attached (not at "
                              f"{', '.join(map(str, places))})")
    try:
        return choose_weights(place)
    except WeightsFolderError as e:
        raise KagglePathError(f"kernel.base_model_source {ref}: {e}") from None


def keep_newest_checkpoint(run_dir: Path) -> str | None:
    """Remove all but the newest complete checkpoint (a notebook's output holds 20 GB); its name, or None."""
    from arc_kit.models.weights import newest_run

    newest = newest_run(run_dir)
    for folder in run_dir.glob("checkpoint-*"):
        if newest is not None and folder != newest and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
    return newest.name if newest is not None else None


def run_train_kernel(settings: dict[str, Any], start_time: float) -> int:
    """The training kernel: 0 when the run finished and was exported, or stopped cleanly at its budget."""
    from arc_kit.core.files import atomic_write_json
    from arc_kit.kaggle.kernel_build import train_needs_internet
    from arc_kit.kaggle.paths import KagglePathError, input_root, use_working_data_cache, working_dir
    from arc_kit.models.offline import set_offline_env

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    root, working = input_root(), working_dir()
    use_working_data_cache()
    try:
        kernel_config = TrainKernelConfig.from_dict(settings)
        resume_from = resume_source(kernel_config.kernel, root)
        config = kernel_training_config(kernel_config, root, working, time.time() - start_time)
    except (SettingsError, KagglePathError) as e:
        print(f"arc-kit train kernel: {e}", flush=True)
        return 1
    set_offline_env(hub=not train_needs_internet(kernel_config))  # before anything imports the hub's client
    summary = _train(config, working, resume_from)
    atomic_write_json(working / SUMMARY_FILE, summary, indent=1)
    print(f"arc-kit train kernel: {summary['said']}", flush=True)
    return 0 if summary["ok"] else 1


def _train(config: TrainConfig, working: Path, resume_from: Path | None) -> dict[str, Any]:
    """Run the training command, then export a finished run; what happened, as ``train-kernel.json`` says it."""
    from arc_kit.core.files import atomic_write_json
    from arc_kit.run.workers import visible_gpus
    from arc_kit.training.distributed import launch_command

    run_dir = Path(config.train.output_dir)
    working.mkdir(parents=True, exist_ok=True)
    config_path = working / CONFIG_FILE
    atomic_write_json(config_path, config.to_dict(), indent=1)
    args = ["train", "--config", str(config_path), *(["--resume-from", str(resume_from)] if resume_from else [])]
    command = launch_command(max(1, visible_gpus()), args)
    summary: dict[str, Any] = {"command": command, "resumed_from": None if resume_from is None else str(resume_from),
                               "max_seconds": config.train.max_seconds, "finished": False, "export": None}
    print(f"arc-kit train kernel: {' '.join(command)}", flush=True)
    began = time.time()
    done = subprocess.run(command, env=dict(os.environ))
    summary["train_seconds"] = round(time.time() - began, 1)
    info = _run_info(run_dir)
    summary.update(steps=info.get("steps"), finished=bool(info.get("finished")), stopped=info.get("stopped"),
                   checkpoint=keep_newest_checkpoint(run_dir) if run_dir.is_dir() else None)
    if done.returncode != 0 or not info:
        why = f"exit {done.returncode}" if done.returncode else f"no {run_dir}/run_info.json"
        return {**summary, "ok": False, "said": f"training failed ({why}); {run_dir} keeps the checkpoints written "
                f"({summary['checkpoint'] or 'none'})"}
    if not summary["finished"]:
        return {**summary, "ok": True, "said": (
            f"stopped at its budget ({summary['stopped']}) after {summary['steps']} steps, {summary['checkpoint']} "
            "saved; push it again built with --resume-kernel OWNER/SLUG (this kernel's id) to continue")}
    return {**summary, **_export(run_dir, working / EXPORT_DIR, summary["steps"])}


def _export(run_dir: Path, out: Path, steps: int) -> dict[str, Any]:
    from arc_kit.training.export import export_model

    try:
        merged = export_model(run_dir, out)
    except Exception as e:  # the run is kept: a failed export can be redone from the fetched output
        log.exception("the export failed")
        return {"ok": False, "said": f"training finished after {steps} steps but the export failed "
                f"({type(e).__name__}: {e}); {run_dir} holds the run: arc-kit export {run_dir} --out DIR"}
    return {"ok": True, "export": str(merged), "said": (
        f"finished after {steps} steps; export written to {merged}: load it in the submission and evaluation "
        "kernels with --weights-kernel OWNER/SLUG (this kernel's id)")}


def _run_info(run_dir: Path) -> dict[str, Any]:
    try:
        info = json.loads((run_dir / "run_info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
