"""Which floating-point type a model's weights are held in: one rule for training, inference, TTT and export.

Why one rule: bfloat16 is the right type only where the GPU computes in it, compute capability 8.0 and up (A100,
L4, H100). Kaggle also offers T4 (7.5) and P100 (6.0) GPUs, and V100s (7.0) are common elsewhere: they have no
bfloat16 units, so those get float16 (trained under a gradient scaler, with float32 master weights: see
``upcast_trainable``); a CPU gets float32 (half types are slow or unsupported in CPU kernels).
``torch.cuda.is_bf16_supported()`` is not the test: by default (``including_emulation=True``) it says True on a T4
or P100, which only emulate bfloat16, slowly, and the Trainer's bf16 mixed precision is then refused or crawls.

torch is imported inside functions: the runner imports model modules in worker processes only after it has set
``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import typing
from typing import Any

from arc_kit.config.run import Dtype

DTYPE_NAMES: tuple[str, ...] = typing.get_args(Dtype)
BF16_MIN_CAPABILITY = (8, 0)
"""The first CUDA compute capability with bfloat16 arithmetic units (Ampere)."""
AUTO = "auto"  # the training settings' word for "by the rule"; the solver's settings leave the dtype unset (None)
EXPORT_DTYPE = "bfloat16"
"""What an export stores merged weights in (half the size of float32); a loader casts them to its own choice."""


def choose_dtype(name: str | None, device: str) -> Any:
    """The torch dtype for weights on ``device`` ("cuda", "cuda:1", "cpu"): the one named, when ``name`` is one of
    ``DTYPE_NAMES``; for None or "auto", bfloat16 on a GPU that computes in it (``computes_in_bf16``), float16 on
    any other GPU, float32 on a CPU."""
    import torch

    if name not in (None, AUTO):
        return dtype_named(name)
    if not str(device).startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if computes_in_bf16(device) else torch.float16


def computes_in_bf16(device: str) -> bool:
    """Whether the CUDA ``device`` ("cuda" is the current one) has bfloat16 units: compute capability >= 8.0, or
    an AMD GPU (ROCm builds of torch report CUDA; every AMD GPU torch supports computes in bfloat16)."""
    import torch

    if torch.version.hip:
        return True
    index = torch.device(device).index
    capability = torch.cuda.get_device_capability(torch.cuda.current_device() if index is None else index)
    return tuple(capability) >= BF16_MIN_CAPABILITY


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
