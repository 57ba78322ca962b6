"""Load a weights folder offline: a merged model or a LoRA adapter, Unsloth on CUDA when it works, transformers
otherwise; and the facts about a loaded model the decoders need (its end tokens, its context).

torch and transformers are imported inside functions: the runner imports this in worker processes only after it
has set ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arc_kit.config.run import SolverConfig
from arc_kit.core.text import check_tokenizer
from arc_kit.errors import ArcKitError

log = logging.getLogger(__name__)

END_MARKERS = ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>")


class ModelLoadError(ArcKitError, RuntimeError):
    """The weights folder is missing, incomplete or unreadable; the message names the folder."""


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str
    backend: str  # "transformers", "transformers+peft" or "unsloth"
    model_dir: Path


# ------------------------------------------------------------------------------------------------------------
# Loading


def _offline() -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_model(model_dir: str | Path, config: SolverConfig | None = None) -> LoadedModel:
    """Load a merged model folder (config.json) or a LoRA adapter folder (adapter_config.json), never online."""
    _offline()
    config = config or SolverConfig()
    model_dir = weights_folder(Path(model_dir))
    is_adapter = (model_dir / "adapter_config.json").exists()

    import torch

    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    if device.startswith("cuda") and config.use_unsloth:
        loaded = _try_unsloth(model_dir, config)
        if loaded is not None:
            return loaded
    dtype = getattr(torch, config.dtype) if config.dtype else (torch.bfloat16 if device.startswith("cuda")
                                                                else torch.float32)
    try:
        if is_adapter:
            model, tokenizer = _load_adapter(model_dir, config, dtype)
            backend = "transformers+peft"
        else:
            from transformers import AutoModelForCausalLM

            tokenizer = _load_tokenizer(model_dir)
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, local_files_only=True)
            backend = "transformers"
    except ModelLoadError:
        raise
    except Exception as e:  # transformers raises OSError, ValueError, safetensors errors ... for a bad folder
        raise ModelLoadError(f"cannot load weights from {model_dir}: {type(e).__name__}: {e}") from e
    model.to(device).eval()
    check_tokenizer(tokenizer)
    return LoadedModel(model, tokenizer, device, backend, model_dir)


def weights_folder(folder: Path) -> Path:
    """The weights folder at or below ``folder``, by the kernel's rule (``kaggle_paths.choose_weights``): the
    folder itself, else the one holding the kit's manifest, else ``merged/`` (so an export root with ``adapter/``
    and ``merged/`` loads its merged model, as the kernel and ``upload-weights`` take it), else the only one."""
    from arc_kit.kaggle.paths import KagglePathError, choose_weights

    if not folder.is_dir():
        raise ModelLoadError(f"weights folder {folder} does not exist")
    try:
        return choose_weights(folder)
    except KagglePathError as e:
        raise ModelLoadError(str(e)) from None


def _load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_adapter(adapter_dir: Path, config: SolverConfig, dtype: Any) -> tuple[Any, Any]:
    """Base model + adapter, merged so decoding runs at the base model's speed."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    recorded = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
    candidates = [config.base_model, recorded]
    if recorded:
        candidates += [adapter_dir / recorded, adapter_dir.parent / Path(recorded).name]
    base = next((Path(c) for c in candidates if c and (Path(c) / "config.json").exists()), None)
    if base is None:
        raise ModelLoadError(
            f"adapter {adapter_dir}: base model {recorded!r} not found offline; set base_model to its folder"
        )
    has_tokenizer = any((adapter_dir / n).exists() for n in ("tokenizer.json", "tokenizer_config.json"))
    tokenizer = _load_tokenizer(adapter_dir if has_tokenizer else base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, local_files_only=True)
    model = PeftModel.from_pretrained(model, adapter_dir, local_files_only=True)
    return model.merge_and_unload(), tokenizer


def _try_unsloth(model_dir: Path, config: SolverConfig) -> LoadedModel | None:
    """Unsloth's fast path on CUDA; any failure logs and returns None so transformers takes over."""
    try:
        from arc_kit.models.unsloth_backend import load_for_inference

        model, tokenizer = load_for_inference(model_dir, config.max_length, dtype=None)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        check_tokenizer(tokenizer)
        # Unsloth patches the forward; make sure our loop runs on it before trusting it with 12 hours.
        probe = tuple(tokenizer("Input:\n01\n", add_special_tokens=False)["input_ids"])
        from arc_kit.solve.decoding import DecodeRequest, GreedyDecoder

        # With kv_cache = "inplace" a forward that refuses the in-place cache falls back to DynamicCache (a warning).
        GreedyDecoder(model, tokenizer, 2, "cuda", kv_cache=config.kv_cache).decode(
            [DecodeRequest(0, probe, 2), DecodeRequest(1, probe[1:], 2)])
        return LoadedModel(model, tokenizer, "cuda", "unsloth", model_dir)
    except Exception as e:  # ImportError on boxes without it, anything else from its patching
        log.warning("Unsloth unavailable for %s (%s: %s); using transformers", model_dir, type(e).__name__, e)
        return None


def context_limit(loaded: LoadedModel, config: SolverConfig) -> int:
    limit = getattr(loaded.model.config, "max_position_embeddings", None) or config.max_length
    return min(config.max_length, int(limit))


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
