"""The LoRA the kit adds to a model, for pre-training (transformers + peft) and per-task test-time training alike.

Both find the same projections and build the same peft ``LoraConfig`` from one ``LoraSettings`` (``[lora]`` in
training, ``TTTSettings.lora``), so an adapter trained in one place has the layout the other expects. (Unsloth's
training path builds its own through ``FastLanguageModel.get_peft_model``, in ``unsloth_backend``.)

peft is imported inside functions: the runner imports model modules in worker processes only after it has set
``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any

from arc_kit.config.lora import LoraSettings
from arc_kit.errors import ArcKitError

EMBEDDING_MODULES = ("embed_tokens", "lm_head")
"""Trained as full matrices (peft ``modules_to_save``) with ``train_embeddings``."""


class LoraTargetError(ArcKitError, ValueError):
    """None of the configured target modules is in the model; the message names them and what the model has."""


def present_targets(model: Any, names: Sequence[str]) -> list[str]:
    """The entries of ``names`` that some module of ``model`` is called (the last part of its dotted name), in
    the order given: a list written for one model family may name projections another family lacks."""
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    return [n for n in names if n in present]


def lora_config(model: Any, lora: LoraSettings) -> Any:
    """The peft ``LoraConfig`` for ``model``: every listed projection it has, rsLoRA as set, and with
    ``train_embeddings`` full trained copies of the embeddings. A model whose ``lm_head`` is its embedding matrix
    (``tie_word_embeddings``: Qwen3-4B, the tiny model) keeps one trained copy for both, where peft can tie them."""
    from peft import LoraConfig

    targets = present_targets(model, lora.target_modules)
    if not targets:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"})
        raise LoraTargetError(f"none of target_modules {list(lora.target_modules)} is a module of this model "
                              f"(its linear layers: {', '.join(linear) or 'none'})")
    tied = bool(getattr(getattr(model, "config", None), "tie_word_embeddings", False))
    # ensure_weight_tying came with peft 0.18; older releases train two copies of a tied matrix.
    tying = lora.train_embeddings and tied and "ensure_weight_tying" in inspect.signature(LoraConfig).parameters
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        use_rslora=lora.use_rslora,
        target_modules=targets,
        modules_to_save=list(EMBEDDING_MODULES) if lora.train_embeddings else None,
        task_type="CAUSAL_LM",
        **({"ensure_weight_tying": True} if tying else {}),
    )


def add_lora(model: Any, lora: LoraSettings) -> Any:
    """``model`` wrapped by peft with the LoRA of ``lora_config`` (its initial weights drawn from torch's global
    generator: seed it first for a reproducible adapter)."""
    from peft import get_peft_model

    with warnings.catch_warnings():  # peft asks transformers a deprecated question; nothing for the user to do
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        return get_peft_model(model, lora_config(model, lora))
