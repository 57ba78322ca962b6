"""Load a model and its tokenizer into one ``LoadedModel``, for inference or for training.

- Inference (``load_model``): a weights folder, a merged model or a LoRA adapter (merged into its base at load),
  never online; Unsloth on CUDA when asked for and it loads, transformers otherwise. Whether Unsloth's patched
  forward decodes right is the solver's check (``arc_kit.solve.solver.load_solver``), made after loading.
- Training (``arc_kit.models.training_model.load_training_model``): built on the shared pieces here.

Both share the tokenizer (a pad token, one token per cell; a word-level tokenizer read as it is written), the
prompt format the weights speak (``resolve_format``: the manifest, the tokenizer or the setting), ``from_pretrained``
with ``local_files_only``, the dtype rule (``precision.choose_dtype``) and the environment that keeps the libraries
offline (``offline``).

torch and transformers are imported inside functions: the runner imports this in worker processes only after it
has set ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arc_kit.config.run import SolverSettings
from arc_kit.core.formats import (
    FORMAT_NAMES,
    FormatError,
    PromptFormat,
    check_format,
    detect_format,
    format_token_ids,
    get_format,
)
from arc_kit.core.text import TokenizerError, check_tokenizer
from arc_kit.errors import ArcKitError
from arc_kit.models.manifest import MANIFEST_FILE, read_manifest, recorded_format
from arc_kit.models.offline import set_offline_env
from arc_kit.models.precision import choose_dtype
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
    prompt_format: PromptFormat  # how a task becomes text for these weights (arc_kit.core.formats)


# ------------------------------------------------------------------------------------------------------------
# Inference


def load_model(model_dir: str | Path, config: SolverSettings | None = None) -> LoadedModel:
    """Load a merged model folder (config.json) or a LoRA adapter folder (adapter_config.json), never online."""
    set_offline_env(hub=True)
    config = config or SolverSettings()
    model_dir = weights_folder(Path(model_dir))

    import torch

    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    dtype = choose_dtype(config.dtype, device)
    tokenizer, prompt_format = inference_tokenizer(model_dir, config)
    if device.startswith("cuda") and config.use_unsloth:
        loaded = _try_unsloth(model_dir, config, device, dtype, tokenizer, prompt_format)
        if loaded is not None:
            return loaded
    try:
        if (model_dir / "adapter_config.json").exists():
            model = _load_adapter(model_dir, config, dtype)
            backend = TRANSFORMERS_PEFT
        else:
            model = load_causal_lm(model_dir, dtype, local_only=True)
            backend = TRANSFORMERS
    except ModelLoadError:
        raise
    except TokenizerError as e:  # refused at load: hours of decoding with it would give nothing
        raise ModelLoadError(f"weights folder {model_dir}: {e}") from e
    except Exception as e:  # transformers raises OSError, ValueError, safetensors errors ... for a bad folder
        raise ModelLoadError(f"cannot load weights from {model_dir}: {type(e).__name__}: {e}") from e
    model.to(device).eval()
    return LoadedModel(model, tokenizer, device, backend, str(model_dir), dtype, has_lora=False,
                       prompt_format=prompt_format)


def inference_tokenizer(model_dir: Path, config: SolverSettings) -> tuple[Any, PromptFormat]:
    """The weights folder's tokenizer (an adapter without one takes its base's) and the prompt format the weights
    speak (``resolve_format`` with ``config.format``): cheap, so a command can check them before a long run."""
    try:
        if (model_dir / "adapter_config.json").exists() and not _has_tokenizer(model_dir):
            tokenizer = load_tokenizer(_adapter_base(model_dir, config), local_only=True)
        else:
            tokenizer = load_tokenizer(model_dir, local_only=True)
    except (ModelLoadError, TokenizerError):
        raise
    except Exception as e:  # OSError, ValueError ... from a broken tokenizer file
        raise ModelLoadError(f"cannot load the tokenizer of {model_dir}: {type(e).__name__}: {e}") from e
    return tokenizer, resolve_format(config.format, model_dir, tokenizer)


def resolve_format(requested: str, folder: str | Path, tokenizer: Any) -> PromptFormat:
    """The prompt format of the weights in ``folder``: the one its manifest records, else ``nvarc`` for NVARC's
    16-token tokenizer, else ``arc-kit``; a ``requested`` format (not ``auto``) must agree with the manifest, and
    the tokenizer must be able to write it. Each refusal is one line naming the folder."""
    recorded = recorded_format(Path(folder)) if Path(folder).is_dir() else None
    if recorded is not None:
        get_format(recorded)  # a manifest naming a format this kit does not know is refused, by name
    if requested != "auto" and recorded is not None and requested != recorded:
        raise FormatError(f"{folder}: format {requested!r} contradicts the weights' manifest, which records "
                          f"{recorded!r} (leave format at auto)")
    name = requested if requested != "auto" else recorded or detect_format(tokenizer) or "arc-kit"
    shrunk = shrunk_format(Path(folder), tokenizer)
    if shrunk is not None and shrunk != name:
        said = "its manifest records" if name == recorded else "the format asked for is"
        raise FormatError(f"{folder}: its vocabulary was shrunk to the {shrunk} format's tokens (arc-kit shrink-vocab), "
                          f"but {said} {name}: the weights speak {shrunk} (set prompt_format in {MANIFEST_FILE})")
    prompt_format = get_format(name)
    check_format(tokenizer, prompt_format, str(folder))
    return prompt_format


def shrunk_format(folder: Path, tokenizer: Any) -> str | None:
    """The format ``arc-kit shrink-vocab`` shrank a vocabulary to: the one whose tokens are the whole vocabulary.
    None for a folder that was not shrunk (its manifest has no ``vocabulary`` entry) or that no format fills.
    Why: a shrunk vocabulary keeps only its format's tokens, so the tokenizer itself says which format the weights
    learnt, even when the manifest was edited or copied from another folder."""
    manifest = read_manifest(folder) if folder.is_dir() else None
    if not manifest or "vocabulary" not in manifest:
        return None
    for name in FORMAT_NAMES:
        try:
            if len(set(format_token_ids(tokenizer, get_format(name)))) == len(tokenizer):
                return name
        except FormatError:  # the vocabulary cannot write this format at all
            continue
    return None


def weights_folder(folder: Path) -> Path:
    """The weights folder at or below ``folder``, by the kernel's rule (``weights.choose_weights``): the folder
    itself, else the one holding the kit's manifest, else ``merged/`` (so an export root with ``adapter/`` and
    ``merged/`` loads its merged model, as the kernel and ``upload-weights`` take it), else the only one."""
    if folder.is_file():
        raise ModelLoadError(f"weights folder {folder} is a file; give the folder holding it ({folder.parent})")
    if not folder.is_dir():
        raise ModelLoadError(f"weights folder {folder} does not exist")
    try:
        return choose_weights(folder)
    except WeightsFolderError as e:
        raise ModelLoadError(str(e)) from None


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / n).exists() for n in ("tokenizer.json", "tokenizer_config.json"))


def _adapter_base(adapter_dir: Path, config: SolverSettings) -> Path:
    """The base model folder of a LoRA adapter, offline: ``base_model`` if set, else the recorded one (as given,
    below the adapter, or beside it)."""
    recorded = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
    candidates = [config.base_model, recorded]
    if recorded:
        candidates += [adapter_dir / recorded, adapter_dir.parent / Path(recorded).name]
    base = next((Path(c) for c in candidates if c and (Path(c) / "config.json").exists()), None)
    if base is None:
        raise ModelLoadError(
            f"adapter {adapter_dir}: base model {recorded!r} not found offline; set base_model to its folder"
        )
    return base


def _load_adapter(adapter_dir: Path, config: SolverSettings, dtype: Any) -> Any:
    """Base model + adapter, merged so decoding runs at the base model's speed."""
    from peft import PeftModel

    model = load_causal_lm(_adapter_base(adapter_dir, config), dtype, local_only=True)
    model = PeftModel.from_pretrained(model, adapter_dir, local_files_only=True)
    return model.merge_and_unload()


def _try_unsloth(model_dir: Path, config: SolverSettings, device: str, dtype: Any, tokenizer: Any,
                 prompt_format: PromptFormat) -> LoadedModel | None:
    """Unsloth's fast path on CUDA; a failure to load logs and returns None so transformers takes over. The
    tokenizer is the kit's (``load_tokenizer``), not Unsloth's: the kit tokenizes and pads every prompt itself,
    and Unsloth's ``AutoTokenizer`` misreads a word-level vocabulary such as NVARC's."""
    try:
        from arc_kit.models.unsloth_backend import load_for_inference

        model, _ = load_for_inference(model_dir, config.max_length, dtype)
        return LoadedModel(model, tokenizer, device, UNSLOTH, str(model_dir), dtype, has_lora=False,
                           prompt_format=prompt_format)
    except Exception as e:  # ImportError on boxes without it, anything else from its patching
        log.warning("Unsloth unavailable for %s (%s: %s); using transformers", model_dir, type(e).__name__, e)
        return None


def context_limit(loaded: LoadedModel, config: SolverSettings) -> int:
    limit = getattr(loaded.model.config, "max_position_embeddings", None) or config.max_length
    return min(config.max_length, int(limit))


# ------------------------------------------------------------------------------------------------------------
# Shared


def load_tokenizer(source: str | Path, local_only: bool) -> Any:
    """The tokenizer of a folder or hub id, with a pad token and checked (``prepare_tokenizer``).

    A word-level ``tokenizer.json`` whose config names a class that rebuilds its model (NVARC's published files
    name ``Qwen2Tokenizer``) is read as it is written, by ``PreTrainedTokenizerFast``: transformers 5's
    ``AutoTokenizer`` builds that class from the vocabulary as a BPE model without merges, which silently drops
    ``user`` and ``assistant`` from every prompt. (The tokenizers ``shrink-vocab`` writes name
    ``PreTrainedTokenizerFast``, which ``AutoTokenizer`` reads right.)
    """
    folder = Path(source)
    if folder.is_dir():
        _check_tokenizer_files(folder)
    try:
        if _is_word_level(folder):
            tokenizer = _word_level_tokenizer(folder)
        else:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    except Exception as e:  # transformers and tokenizers raise OSError, ValueError, KeyError ... for bad files
        if local_only and not folder.exists():  # transformers says it could not reach the hub, which it never tried
            raise ModelLoadError(f"cannot load the tokenizer of {source}: no such folder (relative paths are read "
                                 f"from {Path.cwd()}), and not in the local model cache either") from e
        first = (str(e).strip().splitlines() or [""])[0]
        raise ModelLoadError(f"cannot load the tokenizer of {source}: {type(e).__name__}: {first}") from e
    return prepare_tokenizer(tokenizer)


VOCABULARY_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
"""The files a tokenizer's vocabulary can come from; a folder with none of them has no tokenizer."""


def _check_tokenizer_files(folder: Path) -> None:
    """Refuse, naming the file, a folder whose tokenizer cannot load: no vocabulary file at all, or a
    ``tokenizer.json`` that is not a JSON object (a truncated upload or copy). transformers would say so in a
    traceback, or in a paragraph about converting slow tokenizers."""
    path = folder / "tokenizer.json"
    if not any((folder / name).is_file() for name in VOCABULARY_FILES):
        raise ModelLoadError(f"{folder}: no tokenizer (none of {', '.join(VOCABULARY_FILES)}): copy the tokenizer "
                             "files beside the weights")
    if not path.is_file():
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path}: not a JSON file ({e}); the tokenizer is damaged (a truncated copy?)") from None
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ModelLoadError(f"{path}: not a tokenizer file (no model table)")


READS_TOKENIZER_JSON = ("PreTrainedTokenizerFast", "TokenizersBackend")
"""Tokenizer classes that take ``tokenizer.json`` as written (any other class may rebuild its model)."""


def _is_word_level(folder: Path) -> bool:
    """A word-level ``tokenizer.json`` whose config names a class that would rebuild it (NVARC's names
    ``Qwen2Tokenizer``)."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return False
    try:
        model = json.loads(path.read_text(encoding="utf-8")).get("model") or {}
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    except (OSError, ValueError):
        return False  # AutoTokenizer says what is wrong with the files
    return model.get("type") == "WordLevel" and config.get("tokenizer_class") not in READS_TOKENIZER_JSON


def _word_level_tokenizer(folder: Path) -> Any:
    """``tokenizer.json`` as it is, with the special tokens and chat template its other files name."""
    from transformers import PreTrainedTokenizerFast

    settings: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the config wins where both say
        path = folder / name
        if path.is_file():
            settings.update(json.loads(path.read_text(encoding="utf-8")))

    def content(token: Any) -> str | None:
        return token.get("content") if isinstance(token, dict) else token

    kwargs: dict[str, Any] = {k: content(settings[k]) for k in ("bos_token", "eos_token", "unk_token", "pad_token")
                              if content(settings.get(k))}
    extra = settings.get("additional_special_tokens") or settings.get("extra_special_tokens")
    if isinstance(extra, list) and extra:
        kwargs["additional_special_tokens"] = [content(t) for t in extra]
    if isinstance(settings.get("model_max_length"), int):
        kwargs["model_max_length"] = settings["model_max_length"]
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), name_or_path=str(folder),
                                        **kwargs)
    template = settings.get("chat_template")
    if not template and (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    if isinstance(template, str) and template:
        tokenizer.chat_template = template
    return tokenizer


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
