"""Which folder holds the weights: a folder with ``config.json`` (a merged model) or ``adapter_config.json`` (a LoRA
adapter), found at or below a folder the user or the kernel names, by one rule for loading, the kernel and uploads.

A training run's checkpoints (``checkpoint-<step>/``, the Trainer's layout) hold weights too, but they are not an
export: a search never takes one for the weights, and a folder that holds checkpoints and no export (a training
kernel that stopped at its time budget) is refused saying so (``training_output`` tells the three cases apart).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from arc_kit.core.files import folders_below
from arc_kit.errors import ArcKitError
from arc_kit.models.manifest import MANIFEST_FILE, MERGED_DIR, has_manifest

log = logging.getLogger(__name__)

SEARCH_DEPTH = 7
"""Folders searched below the one named: /kaggle/input/models/owner/model/framework/variation/version/ is 6 below
the input root."""


class WeightsFolderError(ArcKitError, FileNotFoundError):
    """No weights folder, or several and no rule to pick one; the message says what was seen."""


CHECKPOINT = re.compile(r"checkpoint-(\d+)")
TRAINER_STATE = "trainer_state.json"
"""What the Trainer writes last into a checkpoint: a folder without it was interrupted while saving."""
RUN_INFO_FILE = "run_info.json"
FINAL_DIR = "final"
"""A training run's folder (``arc_kit.training``): its ``run_info.json``, and ``final/``, the one weights folder
in it that is the run's result (its ``checkpoint-<step>/`` and base model copies are not)."""


def is_weights_folder(folder: Path) -> bool:
    return (folder / "config.json").exists() or (folder / "adapter_config.json").exists()


def checkpoint_step(folder: Path) -> int | None:
    """The step of a ``checkpoint-<step>`` folder's name; None for any other folder."""
    match = CHECKPOINT.fullmatch(folder.name)
    return int(match.group(1)) if match else None


def is_complete_checkpoint(folder: Path) -> bool:
    """A ``checkpoint-<step>/`` whose ``trainer_state.json`` reads as JSON: a run killed while saving leaves one
    without it, which must not be resumed from."""
    if checkpoint_step(folder) is None or not folder.is_dir():
        return False
    try:
        json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint directly in ``run_dir`` (a training run's folder); None when it has none."""
    if not run_dir.is_dir():
        return None
    complete = [p for p in run_dir.iterdir() if is_complete_checkpoint(p)]
    return max(complete, key=lambda p: checkpoint_step(p) or 0) if complete else None


def is_run_folder(folder: Path) -> bool:
    """A training run's folder: it holds ``run_info.json`` or a ``checkpoint-<step>/``."""
    if (folder / RUN_INFO_FILE).is_file():
        return True
    try:
        return any(checkpoint_step(p) is not None and p.is_dir() for p in folder.iterdir())
    except OSError:
        return False


def _inside_run(folder: Path, root: Path) -> bool:
    """``folder`` (at or below ``root``) is a training run's working copy: a checkpoint, or a folder in a run folder
    other than its ``final/`` or an export (the base model a run writes beside its checkpoints, say)."""
    path = [folder, *[p for p in folder.parents if p == root or root in p.parents]]  # folder up to root
    if any(checkpoint_step(p) is not None for p in path[:-1]):
        return True
    if has_manifest(folder):  # an export, even one written into the run folder
        return False
    return any(is_run_folder(parent) and child.name != FINAL_DIR for child, parent in zip(path, path[1:], strict=False))


def choose_weights(folder: Path) -> Path:
    """The one weights folder at or below ``folder``: the folder itself; else the one holding the kit's manifest;
    else one named ``merged`` (the kit's export, whose ``adapter/`` sits beside it); else the only one. Training
    checkpoints below ``folder`` are never taken (a folder with checkpoints and no export is refused, saying so).
    Anything else is an error naming what was seen."""
    if is_weights_folder(folder):
        return folder
    below = list(folders_below(folder, SEARCH_DEPTH))
    found = [f for f in below if is_weights_folder(f) and not _inside_run(f, folder)]
    if len(found) == 1:
        return found[0]
    if not found and (run := newest_run(folder)) is not None:
        raise WeightsFolderError(checkpoints_only(folder, run))
    if not found:
        seen = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())[:12] if folder.is_dir() else []
        raise WeightsFolderError(f"no weights folder (config.json or adapter_config.json) under {folder}; it holds: "
                                 f"{', '.join(seen) or 'nothing'}. Attach the exported {MERGED_DIR}/ folder as a "
                                 "dataset or Kaggle Model")
    for rule, picked in ((f"holds {MANIFEST_FILE}", [f for f in found if has_manifest(f)]),
                         (f"the export's {MERGED_DIR}/ folder", [f for f in found if f.name == MERGED_DIR])):
        if len(picked) == 1:
            others = ", ".join(str(f) for f in found if f != picked[0])
            log.warning(f"weights: using {picked[0]} ({rule}); also seen: {others}")
            return picked[0]
    names = ", ".join(str(f) for f in found[:5])
    raise WeightsFolderError(f"several weights folders under {folder} ({names}); name one with model_dir")


# ---------------------------------------------------------------------------------------------------------------
# What a training run's output holds


EXPORT, CHECKPOINTS, NOTHING = "export", "checkpoints", "nothing"


@dataclass(frozen=True)
class TrainingOutput:
    """What a folder holding a training run's output (a training kernel's ``/kaggle/working``, attached to another
    kernel) has to offer: ``kind`` is ``EXPORT`` (``weights``: the merged model to load), ``CHECKPOINTS`` (a run
    stopped before it finished: ``run_dir`` and its newest ``checkpoint`` to resume from) or ``NOTHING``."""

    kind: str
    weights: Path | None = None
    run_dir: Path | None = None
    checkpoint: Path | None = None


def training_output(folder: Path) -> TrainingOutput:
    """What ``folder`` holds, by its layout: an export (``arc-kit export``'s ``merged/`` with the kit's manifest,
    anywhere below), else a run folder with complete checkpoints (the newest, ``newest_run``), else nothing.
    An export wins over checkpoints beside it: a finished training kernel leaves both."""
    if folder.is_dir():
        exports = [f for f in folders_below(folder, SEARCH_DEPTH)
                   if has_manifest(f) and is_weights_folder(f) and not _inside_run(f, folder)]
        if exports:
            return TrainingOutput(EXPORT, weights=choose_weights(folder) if len(exports) > 1 else exports[0])
        run = newest_run(folder)
        if run is not None:
            return TrainingOutput(CHECKPOINTS, run_dir=run.parent, checkpoint=run)
    return TrainingOutput(NOTHING)


def export_weights(folder: Path) -> Path:
    """The export's merged folder in a training run's output; ``WeightsFolderError`` in one line when it holds only
    checkpoints (the training stopped at its budget) or nothing."""
    out = training_output(folder)
    if out.kind == EXPORT and out.weights is not None:
        return out.weights
    if out.kind == CHECKPOINTS and out.checkpoint is not None:
        raise WeightsFolderError(checkpoints_only(folder, out.checkpoint))
    raise WeightsFolderError(f"{folder} holds no export ({MERGED_DIR}/ with {MANIFEST_FILE}) and no training "
                             "checkpoint: is it a training kernel's output?")


def checkpoints_only(folder: Path, checkpoint: Path) -> str:
    return (f"{folder} holds {checkpoint.name} but no export: the training kernel stopped at its budget; run it "
            "again to resume")


def newest_run(folder: Path) -> Path | None:
    """The newest complete checkpoint at or below ``folder``: in the run folder holding the highest step (a
    notebook output holds one run folder; an earlier and a later run, the later one's)."""
    checkpoints = [c for f in folders_below(folder, SEARCH_DEPTH) if (c := last_checkpoint(f)) is not None]
    return max(checkpoints, key=lambda c: (checkpoint_step(c) or 0, str(c))) if checkpoints else None
