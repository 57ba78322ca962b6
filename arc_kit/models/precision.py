"""Which floating-point type a model's weights are held in: one rule for training, inference, TTT and export.

Why one rule: bfloat16 is the right type only where the GPU computes in it. Kaggle also offers T4 and P100 GPUs,
which do not (torch emulates bf16 there, slowly, and the Trainer refuses bf16 mixed precision), so those get
float16; a CPU gets float32 (half types are slow or unsupported in CPU kernels).

torch is imported inside functions: the runner imports model modules in worker processes only after it has set
``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import typing
from typing import Any

from arc_kit.config.run import Dtype

DTYPE_NAMES: tuple[str, ...] = typing.get_args(Dtype)
AUTO = "auto"  # the training settings' word for "by the rule"; the solver's settings leave the dtype unset (None)
EXPORT_DTYPE = "bfloat16"
"""What an export stores merged weights in (half the size of float32); a loader casts them to its own choice."""


def choose_dtype(name: str | None, device: str) -> Any:
    """The torch dtype for weights on ``device`` ("cuda", "cuda:1", "cpu"): the one named, when ``name`` is one of
    ``DTYPE_NAMES``; for None or "auto", bfloat16 on a GPU that computes in it, float16 on any other GPU, float32
    on a CPU."""
    import torch

    if name not in (None, AUTO):
        return dtype_named(name)
    if not str(device).startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def dtype_named(name: str) -> Any:
    """The torch dtype called ``name`` (one of ``DTYPE_NAMES``)."""
    import torch

    if name not in DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_NAMES)} or {AUTO}, got {name!r}")
    return getattr(torch, name)


def upcast_trainable(model: Any) -> int:
    """Hold every trainable float16 parameter in float32; return how many were cast.

    Why: float16 training (a GPU without bfloat16) runs under a gradient scaler, which refuses float16 gradients.
    The frozen weights stay float16 (the memory that matters); what is trained (fully fine-tuned weights, full
    embedding copies; peft makes LoRA matrices float32 itself) keeps a float32 master copy. The Trainer's autocast
    lets the two types meet in one forward. bfloat16 needs no scaler and is left as it is."""
    import torch

    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype == torch.float16:
            param.data = param.data.float()
            cast += 1
    return cast
