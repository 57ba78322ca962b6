"""Unsloth, imported here and nowhere else, and only inside functions (it patches transformers/trl at import).

Used on CUDA machines by ``arc_kit.models.training_model``: ``load_for_training`` (the training path's model +
LoRA); by ``arc_kit.models.loading``: ``load_for_inference`` (the inference loader's fast path); and by the export,
``merge_lora``. None can run on the CPU-only development machine; the CPU path builds the same LoRA through
transformers + peft (``models.lora``).
The dtype comes from ``models.precision.choose_dtype``, the environment from ``models.offline``.
"""

from __future__ import annotations

import os
from typing import Any

from arc_kit.models.lora import EMBEDDING_MODULES
from arc_kit.models.offline import set_offline_env


def _import_unsloth() -> Any:
    """Import Unsloth with its statistics call home off (older releases hung offline on it)."""
    set_offline_env(hub=False)
    try:
        import unsloth  # noqa: F401  (must come before transformers/trl are used, to patch them)
        from unsloth import FastLanguageModel
    except ImportError as e:
        raise RuntimeError(
            "Unsloth is not installed: on a CUDA machine `pip install 'arc-kit[gpu]'`, or set model.backend='peft'"
        ) from e
    return FastLanguageModel


def load_for_training(model_settings: Any, lora_settings: Any, dtype: Any, seed: int) -> tuple[Any, Any]:
    """(model, tokenizer) from ``FastLanguageModel.from_pretrained``, with rsLoRA adapters unless full fine-tuning.

    ``model_settings``/``lora_settings`` are ``arc_kit.config.training.ModelSettings``/
    ``arc_kit.config.lora.LoraSettings``; ``dtype`` is a torch dtype.
    """
    FastLanguageModel = _import_unsloth()
    m, lora = model_settings, lora_settings
    # Under torchrun / accelerate launch each process loads its own full copy on its own GPU (DDP); Unsloth's
    # default placement would put every copy on GPU 0.
    placement = {"device_map": {"": int(os.environ["LOCAL_RANK"])}} if "LOCAL_RANK" in os.environ else {}
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=m.name_or_path,
        max_seq_length=m.max_seq_length,
        dtype=dtype,
        load_in_4bit=m.load_in_4bit,
        full_finetuning=m.full_finetuning,
        local_files_only=m.local_files_only,
        **placement,
    )
    if m.full_finetuning:
        return model, tokenizer
    targets = list(lora.target_modules) + (list(EMBEDDING_MODULES) if lora.train_embeddings else [])
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


def load_for_inference(model_dir: Any, max_seq_length: int, dtype: Any) -> tuple[Any, Any]:
    """(model, tokenizer) for generation from a weights folder, offline, in Unsloth's fast inference mode;
    ``dtype`` is a torch dtype."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("load_for_inference needs a CUDA GPU (Unsloth); on CPU load with transformers instead")
    set_offline_env(hub=True)
    FastLanguageModel = _import_unsloth()
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(model_dir),
        max_seq_length=max_seq_length,
        dtype=dtype,
        load_in_4bit=False,
        local_files_only=True,
    )
    FastLanguageModel.for_inference(model)
    return model, tokenizer


def merge_lora(adapter_dir: str, out_dir: str, max_seq_length: int, load_in_4bit: bool) -> None:
    """Merge a LoRA run into 16-bit weights with Unsloth (needed when the base was trained in 4-bit).

    Unsloth reads the base model from the adapter's config, loads it as trained, and dequantizes while merging.
    """
    set_offline_env(hub=True)
    FastLanguageModel = _import_unsloth()
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(adapter_dir), max_seq_length=max_seq_length, load_in_4bit=load_in_4bit,
    )
    model.save_pretrained_merged(str(out_dir), tokenizer, save_method="merged_16bit")
