"""Unsloth, imported here and nowhere else, and only inside functions (it patches transformers/trl at import).

Used on CUDA machines: ``load_for_training`` (the training path's model + LoRA) and ``load_for_inference``
(the inference engine's loader). Neither can run on the CPU-only development machine; the CPU path builds the
same LoRA through transformers + peft in ``arc_kit.training.model``.
"""

from __future__ import annotations

import os
from typing import Any


def _import_unsloth() -> Any:
    """Import Unsloth offline-safe: no statistics call home, no hub lookups (older releases hung offline)."""
    os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
    try:
        import unsloth  # noqa: F401  (must come before transformers/trl are used, to patch them)
        from unsloth import FastLanguageModel
    except ImportError as e:
        raise RuntimeError(
            "Unsloth is not installed: on a CUDA machine `pip install 'arc-kit[gpu]'`, or set model.backend='peft'"
        ) from e
    return FastLanguageModel


def _torch_dtype(name: str | None) -> Any:
    if name in (None, "auto"):
        return None  # Unsloth picks bf16 where the GPU has it, else fp16
    import torch

    return getattr(torch, name)


def load_for_training(model_settings: Any, lora_settings: Any, seed: int = 0) -> tuple[Any, Any]:
    """(model, tokenizer) from ``FastLanguageModel.from_pretrained``, with rsLoRA adapters unless full fine-tuning.

    ``model_settings``/``lora_settings`` are ``arc_kit.config.training.ModelSettings``/``arc_kit.config.lora.LoraSpec``.
    """
    FastLanguageModel = _import_unsloth()
    m, lora = model_settings, lora_settings
    # Under torchrun / accelerate launch each process loads its own full copy on its own GPU (DDP); Unsloth's
    # default placement would put every copy on GPU 0.
    placement = {"device_map": {"": int(os.environ["LOCAL_RANK"])}} if "LOCAL_RANK" in os.environ else {}
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=m.name_or_path,
        max_seq_length=m.max_seq_length,
        dtype=_torch_dtype(m.dtype),
        load_in_4bit=m.load_in_4bit,
        full_finetuning=m.full_finetuning,
        local_files_only=m.local_files_only,
        **placement,
    )
    if m.full_finetuning:
        return model, tokenizer
    targets = list(lora.target_modules) + (["embed_tokens", "lm_head"] if lora.train_embeddings else [])
    model = FastLanguageModel.get_peft_model(
        model,
        r=lora.r,
        target_modules=targets,  # Unsloth moves embed_tokens/lm_head into modules_to_save (full matrices)
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        use_rslora=lora.use_rslora,
        use_gradient_checkpointing="unsloth",
        random_state=seed,
    )
    return model, tokenizer


def load_for_inference(model_dir: str, max_seq_length: int, dtype: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for generation from a merged model folder, offline, in Unsloth's fast inference mode.

    ``dtype``: None/"auto" lets Unsloth choose (bf16 where supported), or "bfloat16"/"float16"/"float32".
    """
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("load_for_inference needs a CUDA GPU (Unsloth); on CPU load with transformers instead")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    FastLanguageModel = _import_unsloth()
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(model_dir),
        max_seq_length=max_seq_length,
        dtype=_torch_dtype(dtype),
        load_in_4bit=False,
        local_files_only=True,
    )
    FastLanguageModel.for_inference(model)
    return model, tokenizer


def merge_lora(adapter_dir: str, out_dir: str, max_seq_length: int, load_in_4bit: bool) -> None:
    """Merge a LoRA run into 16-bit weights with Unsloth (needed when the base was trained in 4-bit).

    Unsloth reads the base model from the adapter's config, loads it as trained, and dequantizes while merging.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    FastLanguageModel = _import_unsloth()
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(adapter_dir), max_seq_length=max_seq_length, load_in_4bit=load_in_4bit,
    )
    model.save_pretrained_merged(str(out_dir), tokenizer, save_method="merged_16bit")
