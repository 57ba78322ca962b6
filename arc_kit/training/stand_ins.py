"""Stand-ins for what the training kernel needs of the training library and which it does not offer yet, under the
names and signatures it will have there (``arc_kit.models.weights``: ``training_output``, ``export_weights``;
``arc_kit.training.distributed``: ``launch_command``): telling a training run's output that holds an export from
one stopped at its budget, and the command that trains on N GPUs. Light (no torch, no transformers): the kernel's
path search imports it. ``budget_stand_in`` is the training command ``launch_command`` starts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from arc_kit.core.files import folders_below
from arc_kit.models.manifest import MANIFEST_FILE, MERGED_DIR
from arc_kit.models.weights import SEARCH_DEPTH, WeightsFolderError

EXPORT, CHECKPOINTS, NOTHING = "export", "checkpoints", "nothing"
TRAINER_STATE = "trainer_state.json"


@dataclass(frozen=True)
class TrainingOutput:
    """What a training run's output holds: ``EXPORT`` (``weights``: the merged model), ``CHECKPOINTS`` (a run
    stopped before it finished: ``run_dir`` and its newest ``checkpoint``) or ``NOTHING``."""

    kind: str
    weights: Path | None = None
    run_dir: Path | None = None
    checkpoint: Path | None = None


def checkpoint_step(folder: Path) -> int | None:
    name = folder.name
    return int(name.split("-", 1)[1]) if name.startswith("checkpoint-") and name.split("-", 1)[1].isdigit() else None


def newest_run(folder: Path) -> Path | None:
    """The newest complete ``checkpoint-<step>/`` at or below ``folder`` (complete: its trainer_state.json, which
    the Trainer writes last, is there)."""
    found = [f for f in folders_below(folder, SEARCH_DEPTH)
             if checkpoint_step(f) is not None and (f / TRAINER_STATE).is_file()]
    return max(found, key=lambda f: checkpoint_step(f) or 0) if found else None


def training_output(folder: Path) -> TrainingOutput:
    """An export (a ``merged/`` folder holding the kit's manifest) wins over checkpoints beside it; else the newest
    checkpoint; else nothing."""
    folder = Path(folder)
    exports = [f for f in folders_below(folder, SEARCH_DEPTH) if f.name == MERGED_DIR and (f / MANIFEST_FILE).is_file()]
    if exports:
        return TrainingOutput(EXPORT, weights=exports[0])
    checkpoint = newest_run(folder)
    if checkpoint is not None:
        return TrainingOutput(CHECKPOINTS, run_dir=checkpoint.parent, checkpoint=checkpoint)
    return TrainingOutput(NOTHING)


def checkpoints_only(folder: Path, checkpoint: Path) -> str:
    return (f"{folder} holds {checkpoint.name} but no export: the training kernel stopped at its budget; run it "
            "again to resume")


def export_weights(folder: Path) -> Path:
    """The export's merged folder in a training run's output; ``WeightsFolderError`` in one line when it holds only
    checkpoints or nothing."""
    out = training_output(folder)
    if out.kind == EXPORT and out.weights is not None:
        return out.weights
    if out.kind == CHECKPOINTS and out.checkpoint is not None:
        raise WeightsFolderError(checkpoints_only(folder, out.checkpoint))
    raise WeightsFolderError(f"{folder} holds no export ({MERGED_DIR}/ with {MANIFEST_FILE}) and no training "
                             "checkpoint: is it a training kernel's output?")


def launch_command(n_gpus: int, argv: Sequence[str], python: str = sys.executable) -> list[str]:
    """The command that runs ``arc-kit <argv>`` (``["train", "--config", C, ...]``) on ``n_gpus`` GPUs: one process
    as it is, several under ``accelerate launch`` (DDP, one process per GPU). ``train`` is ``budget_stand_in``."""
    if n_gpus < 1:
        raise ValueError(f"n_gpus must be >= 1, got {n_gpus}")
    command, *rest = argv
    if command != "train":
        raise ValueError(f"the stand-in launches arc-kit train only, not {command}")
    kit = ["-m", "arc_kit.training.budget_stand_in", *rest]
    if n_gpus == 1:
        return [python, *kit]
    return [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n_gpus), *kit]
