"""Model + tokenizer for training: Unsloth on CUDA, transformers + peft elsewhere, with the same LoRA settings.

Only loading differs between the two paths; the dataset, trainer, schedule and checkpoints are shared.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arc_kit.config.lora import LoraSpec
from arc_kit.config.training import ModelSettings, TrainConfig
from arc_kit.core.text import check_tokenizer

TINY = "tiny"
BASE_MODEL_DIR = "base-model"  # where a run writes the tiny base it built, so export can find it later


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    backend: str  # "unsloth" or "peft"
    base_path: str  # the folder or hub id the weights came from
    is_peft: bool


def choose_backend(requested: str, fsdp: bool = False) -> str:
    """``auto``: Unsloth when a CUDA GPU and the package are both present, else transformers + peft.

    With ``train.fsdp`` auto means transformers + peft: Unsloth runs data-parallel (one full copy per GPU) only.
    """
    if requested != "auto":
        return requested
    import torch

    if not fsdp and torch.cuda.is_available() and importlib.util.find_spec("unsloth") is not None:
        return "unsloth"
    return "peft"


def resolve_base(model: ModelSettings, run_dir: Path) -> str:
    """The base model's location; for ``tiny``, write the tiny model into the run folder once and use that."""
    if model.name_or_path != TINY:
        return model.name_or_path
    from arc_kit.models.tiny import write_tiny_model

    out = run_dir / BASE_MODEL_DIR
    if not (out / "config.json").exists():
        write_tiny_model(out, tiny_config(model))
    return str(out)


def tiny_config(model: ModelSettings) -> Any:
    from arc_kit.models.tiny import TinyModelConfig

    return TinyModelConfig(
        hidden_size=model.tiny_hidden_size,
        intermediate_size=model.tiny_intermediate_size,
        num_hidden_layers=model.tiny_layers,
        num_attention_heads=model.tiny_heads,
        num_key_value_heads=model.tiny_kv_heads,
        seed=model.tiny_seed,
    )


def torch_dtype(name: str, cuda: bool) -> Any:
    import torch

    if name == "auto":
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def peft_lora_config(lora: LoraSpec, model: Any) -> Any:
    """The same adapters Unsloth's ``get_peft_model`` makes: every listed projection present in the model."""
    from peft import LoraConfig

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in lora.target_modules if t in present]
    if not targets:
        raise ValueError(f"none of lora.target_modules {lora.target_modules} is a module of this model")
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        use_rslora=lora.use_rslora,
        target_modules=targets,
        modules_to_save=["embed_tokens", "lm_head"] if lora.train_embeddings else None,
        task_type="CAUSAL_LM",
    )


def load_model(config: TrainConfig, run_dir: Path) -> LoadedModel:
    """Load the base, add LoRA (unless full fine-tuning), check the tokenizer gives one token per cell."""
    m = config.model
    backend = choose_backend(m.backend, config.train.fsdp)
    base = resolve_base(m, run_dir)
    local_only = m.local_files_only or m.name_or_path == TINY or Path(base).is_dir()
    if backend == "unsloth":
        from arc_kit.models import unsloth_backend

        settings = ModelSettings(**{**m.__dict__, "name_or_path": base, "local_files_only": local_only})
        model, tokenizer = unsloth_backend.load_for_training(settings, config.lora, config.train.seed)
    else:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if m.load_in_4bit:
            print("model.load_in_4bit is ignored on the transformers+peft path", file=sys.stderr)
        tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(
            base, dtype=torch_dtype(m.dtype, torch.cuda.is_available()), local_files_only=local_only
        )
        if not m.full_finetuning:
            from peft import get_peft_model

            model = get_peft_model(model, peft_lora_config(config.lora, model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    check_tokenizer(tokenizer)
    return LoadedModel(model, tokenizer, backend, base, is_peft=not m.full_finetuning)
