"""The ARC tokenizer and a tiny randomly initialised causal LM, built from config in code.

They let every part of the kit (training, export, loading, decoding, the kernel) run offline on the real
``from_pretrained`` code paths, on a CPU, in seconds. The tokenizer gives one token per cell and per newline, knows
the few words of the prompt, and carries a ChatML template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arc_kit.config.training import ModelSettings

TINY = "tiny"
"""``model.name_or_path`` that asks for the tiny model rather than a folder or hub id."""
BASE_MODEL_DIR = "base-model"
"""Where a run (or the demo) writes the tiny base it built, so export finds it later."""

SPECIAL_TOKENS = ["<|pad|>", "<|unk|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
WORDS = ["Input", "Output", "Test", "input", "output", "user", "assistant", "system"]
CHARS = [*"0123456789", "\n", " ", ":"]

# ChatML, as Qwen uses it; the generation markers let transformers return assistant masks.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_arc_tokenizer() -> Any:
    """A word-level tokenizer over digits, newline, space, colon and the prompt's words."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *CHARS, *WORDS])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    # Words stay whole; everything else (each digit, newline, space, colon) is a token of its own.
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[A-Za-z]+|[^A-Za-z]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<|pad|>",
        unk_token="<|unk|>",
        bos_token=None,
        eos_token="<|im_end|>",
        additional_special_tokens=["<|endoftext|>", "<|im_start|>"],
        padding_side="left",
        model_max_length=32768,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@dataclass
class TinyModelShape:
    """A Llama-shaped model (a Qwen2 config beside this tokenizer would make AutoTokenizer swap in Qwen's).

    The shape has no defaults here: they are the ``tiny_*`` settings of ``ModelSettings`` (``tiny_shape``)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    seed: int
    max_position_embeddings: int = 8192
    rope_theta: float = 10000.0


def build_tiny_model(tokenizer: Any, shape: TinyModelShape | None = None) -> Any:
    """The random tiny model; ``shape`` None is the shape the settings' defaults give."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = shape or tiny_shape(ModelSettings())
    torch.manual_seed(shape.seed)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=shape.max_position_embeddings,
        rope_theta=shape.rope_theta,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(model_config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def write_tiny_model(out: str | Path, shape: TinyModelShape | None = None) -> Path:
    """Write tokenizer + model to ``out`` with ``save_pretrained``; load it back with ``from_pretrained``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_arc_tokenizer()
    model = build_tiny_model(tokenizer, shape)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_shape(model: ModelSettings) -> TinyModelShape:
    """The tiny model's shape from the training settings' ``tiny_*`` fields."""
    return TinyModelShape(
        hidden_size=model.tiny_hidden_size,
        intermediate_size=model.tiny_intermediate_size,
        num_hidden_layers=model.tiny_layers,
        num_attention_heads=model.tiny_heads,
        num_key_value_heads=model.tiny_kv_heads,
        seed=model.tiny_seed,
    )


def resolve_base(model: ModelSettings, run_dir: Path) -> str:
    """The base model's location; for ``tiny``, the tiny model written into ``run_dir`` once (a resumed run and
    the export reuse it)."""
    if model.name_or_path != TINY:
        return model.name_or_path
    out = run_dir / BASE_MODEL_DIR
    if not (out / "config.json").exists():
        write_tiny_model(out, tiny_shape(model))
    return str(out)
