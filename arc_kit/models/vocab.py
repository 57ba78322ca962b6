"""Shrinking a model's vocabulary to the tokens its prompt format writes (``arc-kit shrink-vocab``,
``[model] shrink_vocab``), and NVARC's 16-token tokenizer built in code.

Why: an ARC model writes a dozen or two distinct tokens, yet its output layer scores all 151,936 of Qwen's at every
position. Those logits are what test-time training runs out of memory on: Qwen3-4B at 8,192 tokens holds 8,192 x
151,936 logits, 2.5 GB in bf16 and 5 GB once the loss upcasts them, twice again for their gradient; shrunk to
16 tokens the same tensor is 0.5 MB. NVARC (1st, 2025) shrank Qwen3-4B to 16 tokens, the ARChitects (1st, 2024)
theirs to 64; it is what let NVARC train a rank-256 LoRA in bf16 without gradient checkpointing on a 24 GB L4.

How: the kept ids (``arc_kit.core.formats.format_token_ids``: what a rendered task in the format holds, plus the
padding) select rows of the input embedding and of ``lm_head`` (one matrix when they are tied); the config's
``vocab_size`` and special ids follow. Every logit at a kept id is exactly what the full model gives, so greedy
answers are the same; a softmax (the search's probabilities, the re-scoring's NLLs) now runs over the kept tokens
only, which can only raise a kept token's probability. The tokenizer becomes a ``WordLevel`` model over the kept
tokens that keeps the source's normalizer, pre-tokenizer and decoder (for ``nvarc``: NVARC's own tokenizer, ids and
all), so every text in the format tokenizes as before, only renumbered; any other text raises. Its
``tokenizer_config.json`` names ``PreTrainedTokenizerFast`` and carries the format's chat template, so plain
``AutoTokenizer`` reads it offline with transformers 4 or 5.

Written by hand because no library shrinks a vocabulary: ``resize_token_embeddings`` keeps the first rows, not chosen
ones, and tokenizers has no way to drop tokens from a model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arc_kit.core.files import check_folder_path
from arc_kit.core.formats import (
    IM_END,
    IM_START,
    NVARC,
    NVARC_CHAT_TEMPLATE,
    NVARC_SPECIAL_TOKENS,
    NVARC_VOCAB,
    FormatError,
    PromptFormat,
    encode_text,
    format_token_ids,
    probe_task,
)
from arc_kit.errors import ArcKitError
from arc_kit.models.manifest import read_manifest, write_shrunk_manifest
from arc_kit.models.qwen_vocab import QWEN_SPLIT_PATTERN

log = logging.getLogger(__name__)

TOKENIZER_CLASS = "PreTrainedTokenizerFast"  # known to transformers 4 and 5; reads tokenizer.json as written


class VocabShrinkError(ArcKitError, ValueError):
    """The vocabulary cannot be shrunk as asked (an adapter folder, an output folder in use); the message says why."""


@dataclass
class ShrinkResult:
    out_dir: Path
    prompt_format: str
    kept: int  # rows of the shrunk vocabulary
    source_vocab_size: int
    tied: bool  # lm_head is the input embedding matrix


# ---------------------------------------------------------------------------------------------------------------
# NVARC's tokenizer


def nvarc_tokenizer_json() -> dict[str, Any]:
    """NVARC's published ``tokenizer.json``: ``WordLevel`` over 0-9, newline, ``user``, ``assistant`` (ids 0-12),
    the special tokens ``<|endoftext|>`` (13, padding), ``<|im_start|>`` and ``<|im_end|>`` (14, 15), Qwen's split
    pattern then byte-level. The unknown token is not in the vocabulary: any text outside the format raises."""
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    words = {t: i for t, i in NVARC_VOCAB.items() if t not in NVARC_SPECIAL_TOKENS}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": NVARC_VOCAB[t], "content": t, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True} for t in NVARC_SPECIAL_TOKENS],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN_SPLIT_PATTERN}, "behavior": "Isolated", "invert": False},
            byte_level]},
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "WordLevel", "vocab": words, "unk_token": NVARC_SPECIAL_TOKENS[0]},
    }


def nvarc_tokenizer() -> Any:
    """NVARC's 16-token tokenizer as a ``PreTrainedTokenizerFast`` (eos ``<|im_end|>``, pad ``<|endoftext|>``,
    NVARC's chat template), built offline."""
    return _fast_tokenizer(nvarc_tokenizer_json(), eos=IM_END, pad=NVARC_SPECIAL_TOKENS[0], bos=None,
                           specials=[IM_START, IM_END], chat_template=NVARC_CHAT_TEMPLATE)


def _fast_tokenizer(spec: dict[str, Any], *, eos: str | None, pad: str | None, bos: str | None,
                    specials: list[str], chat_template: str | None) -> Any:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    kwargs = {k: v for k, v in (("eos_token", eos), ("pad_token", pad), ("bos_token", bos)) if v is not None}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
                                        additional_special_tokens=specials, **kwargs)
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer


# ---------------------------------------------------------------------------------------------------------------
# The shrunk tokenizer


def shrink_tokenizer(tokenizer: Any, kept: list[int], prompt_format: PromptFormat) -> Any:
    """A ``WordLevel`` tokenizer over ``kept`` (source ids, new id = position), or NVARC's for ``nvarc``.

    Checked: a probe task in the format tokenizes to the source's ids renumbered, token for token; otherwise (a
    word the source splits into several tokens) a ``FormatError`` says which.
    """
    if prompt_format.name == NVARC:
        shrunk = nvarc_tokenizer()
    else:
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
        new_id = {old: new for new, old in enumerate(kept)}
        added = {a["id"]: a for a in spec.get("added_tokens", [])}
        names = tokenizer.convert_ids_to_tokens(kept)
        # Every kept token, the special ones too, is a word of the model: an added token absent from the model's
        # vocabulary is numbered after it whatever id it names, so specials kept from low source ids (the kit's
        # own tokenizer holds them first) would take the ids of the last words.
        words = {name: new_id[old] for old, name in zip(kept, names, strict=True)}
        specials = [dict(added[old], id=new_id[old]) for old in kept if old in added]
        unknown = tokenizer.pad_token if tokenizer.pad_token_id in new_id else specials[0]["content"]
        spec.update(model={"type": "WordLevel", "vocab": words, "unk_token": unknown}, added_tokens=specials,
                    truncation=None, padding=None, post_processor=_renumbered(spec.get("post_processor"), new_id))

        def kept_name(token: Any, token_id: Any) -> str | None:
            return str(token) if token is not None and token_id in new_id else None

        shrunk = _fast_tokenizer(
            spec, eos=kept_name(tokenizer.eos_token, tokenizer.eos_token_id),
            pad=kept_name(tokenizer.pad_token, tokenizer.pad_token_id),
            bos=kept_name(tokenizer.bos_token, tokenizer.bos_token_id),
            specials=[a["content"] for a in specials if a.get("special")],
            chat_template=getattr(tokenizer, "chat_template", None))
    _check_same_tokens(tokenizer, shrunk, kept, prompt_format)
    return shrunk


def _renumbered(processor: Any, new_id: dict[int, int]) -> Any:
    """A post-processor with its special tokens' ids renumbered; None when it adds a token that was dropped (the
kit
    never adds special tokens: it tokenizes rendered text with ``add_special_tokens=False``)."""
    if not isinstance(processor, dict) or "special_tokens" not in processor:
        return processor
    out = json.loads(json.dumps(processor))
    for entry in out["special_tokens"].values():
        if any(i not in new_id for i in entry.get("ids", [])):
            return None
        entry["ids"] = [new_id[i] for i in entry.get("ids", [])]
    return out


def _check_same_tokens(source: Any, shrunk: Any, kept: list[int], prompt_format: PromptFormat) -> None:
    new_id = {old: new for new, old in enumerate(kept)}
    task = probe_task()
    text = prompt_format.render(source, task.train, task.test[0].input, task.test[0].output).text
    before = encode_text(source, text)
    try:
        after = encode_text(shrunk, text)
    except Exception as e:  # the tokenizers library raises a bare Exception for a word outside the vocabulary
        raise FormatError(f"the shrunk tokenizer cannot read the {prompt_format.name} format ({e}): a word of it is "
                          "several tokens in the source tokenizer") from None
    expected = [new_id.get(t) for t in before]
    if expected != after:
        at = next(i for i in range(max(len(expected), len(after)))
                  if i >= len(expected) or i >= len(after) or expected[i] != after[i])
        word = repr(source.convert_ids_to_tokens(before[at])) if at < len(before) else "the end"
        raise FormatError(f"the shrunk tokenizer splits the {prompt_format.name} format differently from the source "
                          f"tokenizer, from token {at} on ({word})")


# ---------------------------------------------------------------------------------------------------------------
# The shrunk model


def shrink_embeddings(model: Any, kept: list[int]) -> bool:
    """Keep only the rows ``kept`` (in that order) of the input embedding and of ``lm_head``, in place; tied
    matrices stay one matrix. Returns whether they are tied."""
    import torch

    index = torch.tensor(kept, dtype=torch.long)
    old_in, old_out = model.get_input_embeddings(), model.get_output_embeddings()
    tied = old_out is not None and old_out.weight.data_ptr() == old_in.weight.data_ptr()
    with torch.no_grad():
        new_in = torch.nn.Embedding(len(kept), old_in.embedding_dim, dtype=old_in.weight.dtype,
                                    device=old_in.weight.device)
        new_in.weight.copy_(old_in.weight[index.to(old_in.weight.device)])
        model.set_input_embeddings(new_in)
        if old_out is not None:
            bias = getattr(old_out, "bias", None)
            new_out = torch.nn.Linear(old_out.in_features, len(kept), bias=bias is not None,
                                      dtype=old_out.weight.dtype, device=old_out.weight.device)
            if tied:
                new_out.weight = new_in.weight
            else:
                new_out.weight.copy_(old_out.weight[index.to(old_out.weight.device)])
            if bias is not None:
                new_out.bias.copy_(bias[index.to(bias.device)])
            model.set_output_embeddings(new_out)
    for config in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
        config.vocab_size = len(kept)
    return tied


def _renumber_special_ids(config: Any, new_id: dict[int, int], fallback: dict[str, int | None]) -> None:
    """bos/eos/pad ids of a config or generation config in the shrunk numbering: an id that was dropped takes the
    shrunk tokenizer's own (NVARC's config may still name Qwen's 151645)."""
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(config, name, None)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        renumbered = [new_id[v] for v in values if v in new_id]
        if not renumbered and fallback.get(name) is not None:
            renumbered = [fallback[name]]
        setattr(config, name, (renumbered if isinstance(value, list) else renumbered[0]) if renumbered else None)


# ---------------------------------------------------------------------------------------------------------------
# The command


def shrink_vocabulary(source: str | Path, out_dir: str | Path, requested_format: str, *,
                      local_only: bool) -> ShrinkResult:
    """Write ``out_dir``: the model in ``source`` with its vocabulary shrunk to the tokens of its prompt format
    (``requested_format``: ``auto`` or a format name, as ``resolve_format`` takes it), the shrunk tokenizer and a
    manifest recording the format. ``source`` is a merged weights folder (or an export root) or a hub id."""
    from arc_kit.models.loading import load_causal_lm, load_tokenizer, resolve_format, weights_folder

    out_dir = check_folder_path(Path(out_dir), "--out")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise VocabShrinkError(f"{out_dir} is not empty: give a new folder for the shrunk model")
    if Path(source).exists():
        source = weights_folder(Path(source))
        if (source / "adapter_config.json").exists():
            raise VocabShrinkError(f"{source} is a LoRA adapter: shrink the merged model (the export's merged/ folder)")
    tokenizer = load_tokenizer(source, local_only=local_only)
    prompt_format = resolve_format(requested_format, source, tokenizer)
    kept = format_token_ids(tokenizer, prompt_format)
    shrunk = shrink_tokenizer(tokenizer, kept, prompt_format)
    model = load_causal_lm(source, "auto", local_only=local_only)
    source_size = int(model.config.get_text_config().vocab_size)
    if max(kept) >= source_size:
        raise VocabShrinkError(f"{source}: the tokenizer's id {max(kept)} has no row in the model ({source_size} rows)")
    if kept == list(range(source_size)):
        log.warning("%s already holds only the %s format's %d tokens: nothing to drop, %s is a copy", source,
                    prompt_format.name, len(kept), out_dir)
    tied = shrink_embeddings(model, kept)
    new_id = {old: new for new, old in enumerate(kept)}
    fallback = {"bos_token_id": shrunk.bos_token_id, "eos_token_id": shrunk.eos_token_id,
                "pad_token_id": shrunk.pad_token_id}
    _renumber_special_ids(model.config, new_id, fallback)
    if getattr(model, "generation_config", None) is not None:
        _renumber_special_ids(model.generation_config, new_id, fallback)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    save_tokenizer(shrunk, out_dir)
    write_shrunk_manifest(out_dir, source=Path(str(source)), prompt_format=prompt_format.name,
                          kept_tokens=len(kept), source_vocab_size=source_size,
                          source_manifest=read_manifest(Path(source)) if Path(source).is_dir() else None)
    return ShrinkResult(out_dir, prompt_format.name, len(kept), source_size, tied)


def save_tokenizer(tokenizer: Any, out_dir: Path) -> None:
    """``save_pretrained``, then ``tokenizer_config.json`` names ``PreTrainedTokenizerFast`` (transformers 5 writes
    ``TokenizersBackend``, which transformers 4 lacks) and holds the chat template inline too (transformers 4 reads
    it there)."""
    tokenizer.save_pretrained(out_dir)
    path = out_dir / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = TOKENIZER_CLASS
    if getattr(tokenizer, "chat_template", None):
        config["chat_template"] = tokenizer.chat_template
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
