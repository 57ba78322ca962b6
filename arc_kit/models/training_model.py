"""Load the base a training run starts from: the configured model (the tiny model written into the run folder, a
local folder or a hub id), its vocabulary shrunk first with ``model.shrink_vocab``, through Unsloth or transformers +
peft, with LoRA unless full fine-tuning.

It builds on ``loading`` (the tokenizer, the prompt format, ``from_pretrained``) and on ``vocab`` (the shrinking),
which itself loads through ``loading``; so this sits above both. torch and transformers are imported inside functions.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from pathlib import Path

from arc_kit.config.training import TrainConfig
from arc_kit.models.loading import PEFT, UNSLOTH, LoadedModel, load_causal_lm, load_tokenizer, resolve_format
from arc_kit.models.lora import add_lora
from arc_kit.models.offline import set_offline_env
from arc_kit.models.precision import choose_dtype, upcast_trainable
from arc_kit.models.tiny import TINY, resolve_base

log = logging.getLogger(__name__)


def load_training_model(config: TrainConfig, run_dir: Path, device: str) -> LoadedModel:
    """Load the base for training on ``device``, add LoRA (unless full fine-tuning), check the tokenizer gives one
    token per cell and writes the base's prompt format. The tiny base is written into ``run_dir`` first
    (``tiny.resolve_base``); with ``model.shrink_vocab`` the base's vocabulary is shrunk to its format's tokens
    into ``run_dir`` once (``SHRUNK_BASE_DIR``), and training starts from that."""
    set_offline_env(hub=False)  # the base may come from the hub
    m = config.model
    backend = choose_backend(m.backend, config.train.fsdp, device)
    base = resolve_base(m, run_dir)
    local_only = m.local_files_only or m.name_or_path == TINY or Path(base).is_dir()
    if m.shrink_vocab:
        base, local_only = shrunk_base(base, m.format, run_dir, local_only), True
    tokenizer = load_tokenizer(base, local_only=local_only)
    prompt_format = resolve_format(m.format, base, tokenizer)
    dtype = choose_dtype(m.dtype, device)
    if backend == UNSLOTH:
        from arc_kit.models import unsloth_backend

        settings = dataclasses.replace(m, name_or_path=base, local_files_only=local_only)
        # The kit's tokenizer, not Unsloth's: rows are tokenized by the kit, and Unsloth's AutoTokenizer misreads a
        # word-level vocabulary (NVARC's).
        model, _ = unsloth_backend.load_for_training(settings, config.lora, dtype, config.train.seed)
    else:
        if m.load_in_4bit:
            log.warning("model.load_in_4bit is ignored on the transformers+peft path")
        model = load_causal_lm(base, dtype, local_only=local_only)
        if not m.full_finetuning:
            model = add_lora(model, config.lora)
    upcast_trainable(model)  # float16 training keeps float32 master weights (the gradient scaler needs them)
    return LoadedModel(model, tokenizer, device, backend, base, dtype, has_lora=not m.full_finetuning,
                       prompt_format=prompt_format)


SHRUNK_BASE_DIR = "base-model-shrunk"
"""Where a run with ``model.shrink_vocab`` writes its base with the vocabulary shrunk (the export merges onto it,
and a resumed run, one from an earlier kernel version's output included, finds it by this name)."""


def shrunk_base(base: str, requested_format: str, run_dir: Path, local_only: bool) -> str:
    """``base`` with its vocabulary shrunk to its format's tokens, written into ``run_dir`` once (a resumed run and
    the export reuse it)."""
    out = run_dir / SHRUNK_BASE_DIR
    if not (out / "config.json").exists():
        from arc_kit.models.vocab import shrink_vocabulary

        shrink_vocabulary(base, out, requested_format, local_only=local_only)
    return str(out)


def choose_backend(requested: str, fsdp: bool, device: str) -> str:
    """``auto``: Unsloth when training on a CUDA GPU with the package installed, else transformers + peft.

    With ``train.fsdp`` auto means transformers + peft: Unsloth runs data-parallel (one full copy per GPU) only.
    Several processes (DDP) keep Unsloth: its releases the kit allows (2026.x) train under ``torchrun``/``accelerate
    launch`` with one copy per GPU (each placed on its process's GPU, ``unsloth_backend.load_for_training``).
    """
    return backend_choice(requested, fsdp, device)[0]


def backend_choice(requested: str, fsdp: bool, device: str, num_processes: int = 1) -> tuple[str, str]:
    """The backend ``choose_backend`` picks and why, in words (the run's log line says it)."""
    if requested != "auto":
        return requested, "model.backend"
    if not device.startswith("cuda"):
        return PEFT, "auto: no CUDA GPU"
    if fsdp:
        return PEFT, "auto: train.fsdp shards the model, which Unsloth does not"
    if importlib.util.find_spec("unsloth") is None:
        return PEFT, "auto: Unsloth is not installed"
    if num_processes > 1:
        return UNSLOTH, f"auto: Unsloth, data-parallel over {num_processes} GPUs (a full copy on each)"
    return UNSLOTH, "auto: Unsloth on a CUDA GPU"
