"""Export a finished run: the LoRA adapter folder and a merged 16-bit model folder, both loadable offline.

Layout of ``out_dir``::

    adapter/   the LoRA adapter + tokenizer (only for LoRA runs; base_model_name_or_path points at the base)
    merged/    base + adapter merged into plain weights (``dtype``), tokenizer, and ``arc_kit_manifest.json``

The merged folder is what the Kaggle kernel loads (vLLM refuses adapters that train the embeddings; a merged model
needs nothing but transformers). The manifest records the base model, recipe settings, data, losses and versions.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

from arc_kit.core.files import atomic_write_json
from arc_kit.errors import ArcKitError
from arc_kit.models.manifest import loading_requirements
from arc_kit.training.trainer import FINAL_DIR, RUN_INFO_FILE

MANIFEST_FILE = "arc_kit_manifest.json"
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"


class ExportError(ArcKitError, ValueError):
    """The export cannot start: ``out_dir`` is a file, or the run's ``run_info.json`` is unreadable."""


def read_run_info(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_INFO_FILE
    if not path.exists():
        raise ExportError(f"{path} not found: {run_dir} is not a finished arc-kit training run")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ExportError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(info, dict):
        raise ExportError(f"{path}: expected a JSON object")
    return info


def check_out_dir(out_dir: Path) -> None:
    """Refuse an ``out_dir`` that is (or lies inside) a file, before anything is loaded or written."""
    for path in (out_dir, *out_dir.parents):
        if path.exists() and not path.is_dir():
            raise ExportError(f"--out {out_dir}: {path} is a file, not a folder (nothing written)")


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    import arc_kit

    versions = {"arc_kit": arc_kit.__version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "unsloth"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return versions


def export_model(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    dtype: str = "bfloat16",
    write_adapter: bool = True,
) -> Path:
    """Write ``out_dir/merged`` (and ``out_dir/adapter`` for LoRA runs) from a run folder; return the merged folder.

    ``dtype``: the merged weights' type, ``bfloat16`` (default; what the kernel's GPUs run), ``float16`` or
    ``float32``. The merge itself is done in float32 so rounding happens once.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    check_out_dir(out_dir)
    info = read_run_info(run_dir)
    final = run_dir / FINAL_DIR
    if not final.is_dir():
        raise ExportError(f"{final} not found: the run did not finish (resume it first)")
    merged_dir = out_dir / MERGED_DIR
    if merged_dir.exists():
        shutil.rmtree(merged_dir)
    tokenizer = AutoTokenizer.from_pretrained(final, local_files_only=True)
    base = info["base_model"]
    base_local = Path(base).is_dir()

    if info["is_peft"]:
        if info["config"]["model"].get("load_in_4bit") and info["backend"] == "unsloth":
            from arc_kit.models import unsloth_backend  # a 4-bit base can only be merged by Unsloth

            unsloth_backend.merge_lora(str(final), str(merged_dir), info["config"]["model"]["max_seq_length"],
                                       load_in_4bit=True)
        else:
            from peft import PeftModel

            base_model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, local_files_only=base_local)
            model = PeftModel.from_pretrained(base_model, final, local_files_only=True)
            model = model.merge_and_unload()
            model.to(getattr(torch, dtype)).save_pretrained(merged_dir)
            tokenizer.save_pretrained(merged_dir)
        if write_adapter:
            adapter_dir = out_dir / ADAPTER_DIR
            if adapter_dir.exists():
                shutil.rmtree(adapter_dir)
            shutil.copytree(final, adapter_dir)
    else:
        model = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32, local_files_only=True)
        model.to(getattr(torch, dtype)).save_pretrained(merged_dir)
        tokenizer.save_pretrained(merged_dir)

    versions = library_versions()
    manifest = {
        "format": "arc-kit merged model",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_model": base,
        "backend": info["backend"],
        "is_lora": info["is_peft"],
        "dtype": dtype,
        "adapter_dir": ADAPTER_DIR if info["is_peft"] and write_adapter else None,
        "steps": info["steps"],
        "train_loss": info["train_loss"],
        "eval_loss": info["eval_loss"],
        "recipe": info["config"],
        "data": info["data"],
        "versions": versions,
        "requires": loading_requirements(versions),  # the kernel checks these before loading
        "prompt_format": "arc_kit.core.text.render (chat template; tokenize with add_special_tokens=False)",
    }
    atomic_write_json(merged_dir / MANIFEST_FILE, manifest, indent=1)
    return merged_dir
