"""How many processes this run has and which one this is, from accelerate's view of the launch.

``accelerate launch`` and ``torchrun`` start one process per GPU with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set; the
Trainer then runs data-parallel (DDP, or FSDP when ``train.fsdp`` is on). Before the Trainer exists the run still
has work that only one process may do (write the tiny base model, rewrite train_log.jsonl) or that the others should
wait for (build the Arrow cache of the examples): accelerate's ``PartialState`` gives the rank, a barrier and
``main_process_first`` for that, and is the same state the Trainer builds on.

On a machine without CUDA the state is made with ``cpu=True``: otherwise accelerate takes a torchrun launch for a
single process (the "process group is initialized, but parallel_mode != ParallelMode.DISTRIBUTED" warning) and every
process trains alone on all the data. gloo is the CPU backend.

``launch_command`` builds the command line that starts a run on N GPUs (what a training kernel on Kaggle's T4 x2
runs). Each process holds a full copy of the model (DDP); on a GPU without bfloat16 (a T4) each trains in float16
under the Trainer's gradient scaler with float32 trainable weights (``models.precision``); gradients are averaged
over the processes every step with ``ddp_find_unused_parameters`` off (``trainer.sft_config``: LoRA and full
fine-tuning use every trainable weight in each step, and reentrant activation checkpointing, Unsloth's, works
under DDP only with it off).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Launch:
    """This process's place in the run."""

    num_processes: int
    process_index: int
    local_process_index: int
    distributed_type: str  # accelerate's name: NO, MULTI_GPU, MULTI_CPU, FSDP, ...

    @property
    def is_main(self) -> bool:
        return self.process_index == 0


def use_cpu() -> bool:
    """Train on the CPU: no CUDA device, or ``accelerate launch --cpu``."""
    import torch

    return not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")


def training_device() -> str:
    """"cpu" when this launch trains on the CPU (``use_cpu``), else "cuda" (the launcher gives each process its
    own GPU)."""
    return "cpu" if use_cpu() else "cuda"


def state() -> Any:
    """accelerate's ``PartialState`` for this launch (initialises the process group once, on first use)."""
    from accelerate import PartialState

    return PartialState(cpu=use_cpu())


def launch() -> Launch:
    s = state()
    return Launch(s.num_processes, s.process_index, s.local_process_index, str(s.distributed_type.value))


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """The main process runs the block first, the others after it (they then find its files and caches)."""
    with state().main_process_first():
        yield


def wait_for_everyone() -> None:
    state().wait_for_everyone()


def launch_command(n_gpus: int, argv: Sequence[str], python: str = sys.executable) -> list[str]:
    """The command that runs ``arc-kit <argv>`` (e.g. ``["train", "--config", "run.toml"]``) on ``n_gpus`` GPUs of
    this machine: one process per GPU through torchrun (``python -m torch.distributed.run --standalone``, so no
    console script or accelerate config is needed), which the Trainer runs as DDP; one GPU (or none): the command
    alone. ``python``: the interpreter of the environment the kit is installed in."""
    if n_gpus < 1:
        raise ValueError(f"n_gpus must be >= 1, got {n_gpus}")
    kit = ["-m", "arc_kit.cli", *argv]
    if n_gpus == 1:
        return [python, *kit]
    return [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n_gpus), *kit]
