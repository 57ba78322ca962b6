"""Facts about a tokenizer that decoding and scoring need: which ids end an answer."""

from __future__ import annotations

from typing import Any

END_MARKERS = ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>")
"""Chat end-of-turn markers of the model families the kit loads (Qwen/ChatML, Llama 2, Llama 3)."""


def end_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """Every id that ends an answer: the tokenizer's eos, the chat end markers it knows, the model's eos."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    ids.update(vocab[m] for m in END_MARKERS if m in vocab)
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update([eos] if isinstance(eos, int) else (eos or []))
    return sorted(ids)
