"""Facts about a tokenizer that decoding and scoring need: which ids end an answer."""

from __future__ import annotations

from typing import Any

from arc_kit.core.text import marker_end_ids


def end_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """Every id that ends an answer: the tokenizer's eos, the chat end markers it knows, the model's eos.

    An id outside the vocabulary is left out: a checkpoint whose vocabulary was shrunk may still name its old eos
    (Qwen's 151645) in its generation config, and no logit exists for it.
    """
    ids = set(marker_end_ids(tokenizer))
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update([eos] if isinstance(eos, int) else (eos or []))
    size = len(tokenizer)
    rows = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(rows, int):
        size = max(size, rows)
    return sorted(i for i in ids if 0 <= i < size)
