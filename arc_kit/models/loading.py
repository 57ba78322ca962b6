"""Load a model and its tokenizer into one ``LoadedModel``, for inference or for training.

- Inference (``load_model``): a weights folder, a merged model or a LoRA adapter (merged into its base at load),
  never online; Unsloth on CUDA when asked for and it loads, transformers otherwise. Whether Unsloth's patched
  forward decodes right is the solver's check (``arc_kit.solve.solver.load_solver``), made after loading.
- Training (``load_training_model``): the configured base (the tiny model written into the run folder, a local
  folder or a hub id), through Unsloth or transformers + peft, with LoRA unless full fine-tuning.

Both share the tokenizer (a pad token, one token per cell), ``from_pretrained`` with ``local_files_only``, the
dtype rule (``precision.choose_dtype``) and the environment that keeps the libraries offline (``offline``).

torch and transformers are imported inside functions: the runner imports this in worker processes only after it
has set ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arc_kit.config.run import SolverConfig
from arc_kit.config.training import TrainConfig
from arc_kit.core.text import TokenizerError, check_tokenizer
from arc_kit.errors import ArcKitError
from arc_kit.models.lora import add_lora
from arc_kit.models.offline import set_offline_env
from arc_kit.models.precision import choose_dtype, upcast_trainable
from arc_kit.models.tiny import TINY, resolve_base
from arc_kit.models.weights import WeightsFolderError, choose_weights

log = logging.getLogger(__name__)

UNSLOTH = "unsloth"  # Unsloth's FastLanguageModel, for inference or training
TRANSFORMERS = "transformers"  # inference: a merged model folder
TRANSFORMERS_PEFT = "transformers+peft"  # inference: a LoRA adapter merged into its base at load
PEFT = "peft"  # training: transformers with peft's LoRA layers (the name ``model.backend`` uses)


class ModelLoadError(ArcKitError, RuntimeError):
    """The weights folder is missing, incomplete or unreadable; the message names the folder."""


@dataclass
class LoadedModel:
    """A model ready for its use: on ``device`` for inference (eval mode), or handed to the Trainer (which places
    it) for training."""

    model: Any
    tokenizer: Any  # with a pad token, checked to give one token per cell
    device: str  # "cuda", "cuda:1" or "cpu": where it decodes or trains
    backend: str  # UNSLOTH, TRANSFORMERS, TRANSFORMERS_PEFT or PEFT
    source: str  # the folder or hub id the weights came from
    dtype: Any  # the torch dtype the weights were loaded in
    has_lora: bool  # the model carries LoRA layers (training); inference merges an adapter at load


# ------------------------------------------------------------------------------------------------------------
# Inference


def load_model(model_dir: str | Path, config: SolverConfig | None = None) -> LoadedModel:
    """Load a merged model folder (config.json) or a LoRA adapter folder (adapter_config.json), never online."""
    set_offline_env(hub=True)
    config = config or SolverConfig()
    model_dir = weights_folder(Path(model_dir))

    import torch

    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    dtype = choose_dtype(config.dtype, device)
    if device.startswith("cuda") and config.use_unsloth:
        loaded = _try_unsloth(model_dir, config, device, dtype)
        if loaded is not None:
            return loaded
    try:
        if (model_dir / "adapter_config.json").exists():
            model, tokenizer = _load_adapter(model_dir, config, dtype)
            backend = TRANSFORMERS_PEFT
        else:
            tokenizer = load_tokenizer(model_dir, local_only=True)
            model = load_causal_lm(model_dir, dtype, local_only=True)
            backend = TRANSFORMERS
    except ModelLoadError:
        raise
    except TokenizerError as e:  # refused at load: hours of decoding with it would give nothing
        raise ModelLoadError(f"weights folder {model_dir}: {e}") from e
    except Exception as e:  # transformers raises OSError, ValueError, safetensors errors ... for a bad folder
        raise ModelLoadError(f"cannot load weights from {model_dir}: {type(e).__name__}: {e}") from e
    model.to(device).eval()
    return LoadedModel(model, tokenizer, device, backend, str(model_dir), dtype, has_lora=False)


def weights_folder(folder: Path) -> Path:
    """The weights folder at or below ``folder``, by the kernel's rule (``weights.choose_weights``): the folder
    itself, else the one holding the kit's manifest, else ``merged/`` (so an export root with ``adapter/`` and
    ``merged/`` loads its merged model, as the kernel and ``upload-weights`` take it), else the only one."""
    if not folder.is_dir():
        raise ModelLoadError(f"weights folder {folder} does not exist")
    try:
        return choose_weights(folder)
    except WeightsFolderError as e:
        raise ModelLoadError(str(e)) from None


def _load_adapter(adapter_dir: Path, config: SolverConfig, dtype: Any) -> tuple[Any, Any]:
    """Base model + adapter, merged so decoding runs at the base model's speed."""
    from peft import PeftModel

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
    tokenizer = load_tokenizer(adapter_dir if has_tokenizer else base, local_only=True)
    model = load_causal_lm(base, dtype, local_only=True)
    model = PeftModel.from_pretrained(model, adapter_dir, local_files_only=True)
    return model.merge_and_unload(), tokenizer


def _try_unsloth(model_dir: Path, config: SolverConfig, device: str, dtype: Any) -> LoadedModel | None:
    """Unsloth's fast path on CUDA; a failure to load logs and returns None so transformers takes over."""
    try:
        from arc_kit.models.unsloth_backend import load_for_inference

        model, tokenizer = load_for_inference(model_dir, config.max_length, dtype)
        return LoadedModel(model, prepare_tokenizer(tokenizer), device, UNSLOTH, str(model_dir), dtype,
                           has_lora=False)
    except Exception as e:  # ImportError on boxes without it, anything else from its patching
        log.warning("Unsloth unavailable for %s (%s: %s); using transformers", model_dir, type(e).__name__, e)
        return None


def context_limit(loaded: LoadedModel, config: SolverConfig) -> int:
    limit = getattr(loaded.model.config, "max_position_embeddings", None) or config.max_length
    return min(config.max_length, int(limit))


# ------------------------------------------------------------------------------------------------------------
# Training


def load_training_model(config: TrainConfig, run_dir: Path, device: str) -> LoadedModel:
    """Load the base for training on ``device``, add LoRA (unless full fine-tuning), check the tokenizer gives one
    token per cell. The tiny base is written into ``run_dir`` first (``tiny.resolve_base``)."""
    set_offline_env(hub=False)  # the base may come from the hub
    m = config.model
    backend = choose_backend(m.backend, config.train.fsdp, device)
    base = resolve_base(m, run_dir)
    local_only = m.local_files_only or m.name_or_path == TINY or Path(base).is_dir()
    dtype = choose_dtype(m.dtype, device)
    if backend == UNSLOTH:
        from arc_kit.models import unsloth_backend

        settings = dataclasses.replace(m, name_or_path=base, local_files_only=local_only)
        model, tokenizer = unsloth_backend.load_for_training(settings, config.lora, dtype, config.train.seed)
        tokenizer = prepare_tokenizer(tokenizer)
    else:
        if m.load_in_4bit:
            print("model.load_in_4bit is ignored on the transformers+peft path", file=sys.stderr)
        tokenizer = load_tokenizer(base, local_only=local_only)
        model = load_causal_lm(base, dtype, local_only=local_only)
        if not m.full_finetuning:
            model = add_lora(model, config.lora)
        upcast_trainable(model)  # float16 training keeps float32 master weights
    return LoadedModel(model, tokenizer, device, backend, base, dtype, has_lora=not m.full_finetuning)


def choose_backend(requested: str, fsdp: bool, device: str) -> str:
    """``auto``: Unsloth when training on a CUDA GPU with the package installed, else transformers + peft.

    With ``train.fsdp`` auto means transformers + peft: Unsloth runs data-parallel (one full copy per GPU) only.
    """
    if requested != "auto":
        return requested
    if not fsdp and device.startswith("cuda") and importlib.util.find_spec("unsloth") is not None:
        return UNSLOTH
    return PEFT


# ------------------------------------------------------------------------------------------------------------
# Shared


def load_tokenizer(source: str | Path, local_only: bool) -> Any:
    from transformers import AutoTokenizer

    return prepare_tokenizer(AutoTokenizer.from_pretrained(source, local_files_only=local_only))


def prepare_tokenizer(tokenizer: Any) -> Any:
    """A pad token (the eos where there is none: batches are padded, the padding masked), and a check that the
    tokenizer gives one token per cell and per newline (``check_tokenizer``) before hours are spent on it."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    check_tokenizer(tokenizer)
    return tokenizer


def load_causal_lm(source: str | Path, dtype: Any, local_only: bool) -> Any:
    """``AutoModelForCausalLM.from_pretrained`` in ``dtype``; ``local_only``: never ask the hub."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=local_only)
