"""Stand-ins for what the training kernel needs of the training library and which it does not offer yet: telling a
training run's output that holds an export from one stopped at its budget, and the command that trains on N GPUs.
Light (no torch, no transformers): the kernel's path search imports it.

``arc_kit.run.train_kernel`` and ``arc_kit.kaggle.paths`` use only the names below; ``budget_stand_in`` is the
training command they launch (a wall-clock budget and ``--resume-from``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from arc_kit.core.files import folders_below
from arc_kit.models.manifest import MANIFEST_FILE, MERGED_DIR

EXPORT_DIR = "export"  # <working>/export/: merged/ (+ manifest) and adapter/, once training finished
RUN_DIR = "run"  # <working>/run/: the run folder (train.output_dir): checkpoints, run_info.json, final/
SEARCH_DEPTH = 4
TRAIN_MODULE_ARGS = ["-m", "arc_kit.training.budget_stand_in"]
"""How the training command is started: ``python <these> --config C [--resume-from D]``."""


@dataclass(frozen=True)
class OutputState:
    """What a training run's output holds: an export (``folder`` = its merged weights), only checkpoints
    (``folder`` = the run folder, ``checkpoint`` its newest), or nothing of a run."""

    kind: Literal["export", "checkpoints", "nothing"]
    folder: Path | None = None
    checkpoint: str | None = None

    def refusal(self, where: Path) -> str:
        """Why ``where`` holds no weights, in one line."""
        if self.kind == "checkpoints":
            return (f"{where} holds {self.checkpoint} but no export: the training kernel stopped at its budget; "
                    "run it again to resume")
        return f"{where} holds no training output (no {EXPORT_DIR}/{MERGED_DIR}/ and no checkpoint-N/)"


def newest_checkpoint(folder: Path) -> Path | None:
    """The newest complete ``checkpoint-<step>/`` at or below ``folder`` (complete: its trainer_state.json is
    there, written last)."""
    found = [f for f in folders_below(folder, SEARCH_DEPTH)
             if f.name.startswith("checkpoint-") and f.name.split("-", 1)[1].isdigit()
             and (f / "trainer_state.json").is_file()]
    return max(found, key=lambda f: int(f.name.split("-", 1)[1])) if found else None


def training_output_state(folder: Path) -> OutputState:
    """An export (a ``merged/`` folder holding the kit's manifest), else checkpoints, else nothing."""
    folder = Path(folder)
    exports = [f for f in folders_below(folder, SEARCH_DEPTH) if f.name == MERGED_DIR and (f / MANIFEST_FILE).is_file()]
    if exports:
        return OutputState("export", exports[0])
    checkpoint = newest_checkpoint(folder)
    if checkpoint is not None:
        return OutputState("checkpoints", checkpoint.parent, checkpoint.name)
    return OutputState("nothing")


def launch_command(num_processes: int, args: list[str]) -> list[str]:
    """The command that trains with ``args`` (after ``TRAIN_MODULE_ARGS``) on ``num_processes`` GPUs: one process
    as it is, several under ``accelerate launch`` (DDP, one process per GPU)."""
    if num_processes <= 1:
        return [sys.executable, *TRAIN_MODULE_ARGS, *args]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
            str(num_processes), *TRAIN_MODULE_ARGS, *args]
