"""Tiny random Qwen3-architecture models for tests, built in code.

``write_published_layout``: laid out exactly like NVARC's published checkpoint (Kaggle Model
``sorokin/qwen3_4b_grids15_sft139``): the 16-token tokenizer files as they publish them, a Qwen3 config with
``vocab_size`` 16, tied embeddings, Qwen's eos/bos ids still in the config, no arc_kit manifest.
``write_qwen3_model``: Qwen's real 151,936-row vocabulary (the tokenizer from ``arc_kit.models.qwen_vocab``), small
dimensions: what shrinking a vocabulary starts from.

The tokenizer files are written here as literal JSON, not by the kit's own builder (``arc_kit.models.vocab``), so a
test that loads this folder checks the kit against the published layout, not against itself. Their
``tokenizer_config.json`` names ``Qwen2Tokenizer``, which transformers 5's ``AutoTokenizer`` misreads (it drops
``user`` and ``assistant``): the kit must load it right anyway.
"""

from __future__ import annotations

import json
from pathlib import Path

QWEN_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
              r"""\s*[\r\n]+|\s+(?!\S)|\s+""")
WORDS = {**{str(i): i for i in range(10)}, "Ċ": 10, "user": 11, "assistant": 12}
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 13, 14, 15
QWEN_BOS, QWEN_EOS = 151643, 151645  # what Qwen3-4B's config says; the published config may still say so


def _flags(content: str) -> dict:
    return {"content": content, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
            "special": True}


def write_tokenizer_files(out: Path) -> None:
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 13 + i, **_flags(s)} for i, s in enumerate(SPECIALS)],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN_SPLIT}, "behavior": "Isolated", "invert": False},
            byte_level]},
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "WordLevel", "vocab": WORDS, "unk_token": "<|endoftext|>"},
    }
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False, indent=2))
    (out / "vocab.json").write_text(json.dumps(WORDS, ensure_ascii=False))
    (out / "added_tokens.json").write_text(json.dumps({s: 13 + i for i, s in enumerate(SPECIALS)}))
    decoder = {str(13 + i): {k: v for k, v in _flags(s).items()} for i, s in enumerate(SPECIALS)}
    (out / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": decoder,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"], "bos_token": None,
        "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>", "errors": "replace",
        "extra_special_tokens": {}, "model_max_length": 262144, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}, indent=2))
    plain = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    (out / "special_tokens_map.json").write_text(json.dumps({
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "eos_token": {"content": "<|im_end|>", **plain}, "pad_token": {"content": "<|endoftext|>", **plain}}))


def write_published_layout(out: Path, hidden_size: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """The folder: tokenizer files above plus a random Qwen3-architecture model (safetensors, bf16 like theirs)."""
    import torch
    from transformers import Qwen3ForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = qwen3_config(16, hidden_size, layers, True, bos_token_id=QWEN_BOS, eos_token_id=QWEN_EOS)
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.generation_config.bos_token_id = QWEN_BOS
    model.generation_config.eos_token_id = QWEN_EOS
    model.save_pretrained(out)
    write_tokenizer_files(out)
    return out


def qwen3_config(vocab_size: int, hidden_size: int, layers: int, tie: bool, **ids):  # noqa: ANN003, ANN201
    from transformers import Qwen3Config

    return Qwen3Config(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                       num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                       max_position_embeddings=8192, rope_theta=5_000_000.0, tie_word_embeddings=tie, **ids)


def write_qwen3_model(out: Path, tie: bool = True, hidden_size: int = 64, layers: int = 2, seed: int = 0,
                      tokenizer=None) -> Path:  # noqa: ANN001 - a transformers tokenizer
    """A random Qwen3 with Qwen's full vocabulary (151,936 rows) and its tokenizer, float32; ``tokenizer``: Qwen's,
    when the caller has it built already (the ``qwen_tokenizer`` fixture)."""
    import torch
    from transformers import Qwen3ForCausalLM

    from arc_kit.models.qwen_vocab import build_qwen_tokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer or build_qwen_tokenizer()
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(qwen3_config(151936, hidden_size, layers, tie, eos_token_id=tokenizer.eos_token_id,
                                          pad_token_id=tokenizer.pad_token_id))
    if not tie:  # a separate head, not a copy of the embedding
        torch.nn.init.normal_(model.lm_head.weight, std=0.02)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
