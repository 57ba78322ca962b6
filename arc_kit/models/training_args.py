"""The ``TrainingArguments`` both trainers build: a run's (TRL's ``SFTConfig``, ``arc_kit.training.trainer``) and
test-time training's (``arc_kit.solve.ttt``). What they share is decided here once: the precision, the device,
activation checkpointing, no gradient accumulation, and the names transformers renamed between the versions the kit
allows (>= 4.56; Unsloth pins <= 5.17; the Kaggle image has 5.x).

torch is imported inside the function; the caller passes the arguments class, which it has imported.
"""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

T = TypeVar("T")


def training_arguments(cls: type[T], *, device: str, dtype: Any, checkpointing: bool, warmup_ratio: float,
                       **settings: Any) -> T:
    """``cls`` (``TrainingArguments`` or a subclass) with the caller's ``settings`` and:

    - mixed precision in ``dtype``, the type the weights were loaded in (bf16, or fp16 on a GPU without bf16), on
      CUDA; none on the CPU;
    - ``use_cpu`` unless ``device`` is CUDA: it is also what lets a torchrun/accelerate launch of several CPU
      processes run DDP over gloo;
    - activation checkpointing when ``checkpointing``, non-reentrant (transformers 5's default; the reentrant kind
      needs inputs that require grad, which frozen embeddings under LoRA do not give);
    - ``warmup_ratio``: the share of the steps spent warming up;
    - one batch per optimiser step: the recipe has no gradient accumulation.

    Renamed arguments take the installed version's name: ``activation_checkpointing`` (``gradient_checkpointing``
    before, a deprecated alias since); a warmup share is ``warmup_ratio`` where it exists, else a float
    ``warmup_steps`` below 1, which later versions read as a share.
    """
    import torch

    taken = inspect.signature(cls).parameters
    cuda = device.startswith("cuda")
    checkpoint = "activation_checkpointing" if "activation_checkpointing" in taken else "gradient_checkpointing"
    warmup = "warmup_ratio" if "warmup_ratio" in taken else "warmup_steps"
    shared: dict[str, Any] = {
        "bf16": cuda and dtype == torch.bfloat16,
        "fp16": cuda and dtype == torch.float16,
        "use_cpu": not cuda,
        checkpoint: checkpointing,
        f"{checkpoint}_kwargs": {"use_reentrant": False},
        warmup: warmup_ratio,
        "gradient_accumulation_steps": 1,
    }
    return cls(**shared, **settings)
