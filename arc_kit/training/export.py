"""Export a finished run: the LoRA adapter folder and a merged 16-bit model folder, both loadable offline.

Layout of ``out_dir``::

    adapter/   the LoRA adapter + tokenizer (only for LoRA runs; base_model_name_or_path points at the base)
    merged/    base + adapter merged into plain weights (``dtype``), tokenizer, and ``arc_kit_manifest.json``

The merged folder is what the Kaggle kernel loads (vLLM refuses adapters that train the embeddings; a merged model
needs nothing but transformers). The manifest records the base model, recipe settings, data, losses and versions.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from arc_kit.core.files import check_folder_path
from arc_kit.errors import ArcKitError
from arc_kit.models.loading import load_causal_lm, load_tokenizer
from arc_kit.models.manifest import ADAPTER_DIR, MERGED_DIR, write_manifest
from arc_kit.models.precision import EXPORT_DTYPE, dtype_named
from arc_kit.training.run_folder import FINAL_DIR, RUN_INFO_FILE, STOPPED_AT_BUDGET


class ExportError(ArcKitError, ValueError):
    """The export cannot start: the run's ``run_info.json`` is missing or unreadable, or the run did not finish."""


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


def export_model(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    dtype: str = EXPORT_DTYPE,
    write_adapter: bool = True,
) -> Path:
    """Write ``out_dir/merged`` (and ``out_dir/adapter`` for LoRA runs) from a run folder; return the merged folder.

    ``dtype``: the merged weights' type, one of ``precision.DTYPE_NAMES``. The merge itself is done in float32 so
    rounding happens once.
    """
    import torch

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    check_folder_path(out_dir, "--out")
    saved_dtype = dtype_named(dtype)
    info = read_run_info(run_dir)
    final = run_dir / FINAL_DIR
    if info.get("stopped") == STOPPED_AT_BUDGET:
        raise ExportError(f"{run_dir} stopped at its time budget (train.max_seconds) at step {info.get('steps')}, "
                          f"before it finished: resume it (arc-kit train --resume, or --resume-from {run_dir}) and "
                          "export it once it finishes")
    if not final.is_dir() or info.get("finished") is False:
        raise ExportError(f"{final} not found: the run did not finish (resume it first)")
    merged_dir = out_dir / MERGED_DIR
    if merged_dir.exists():
        shutil.rmtree(merged_dir)
    tokenizer = load_tokenizer(final, local_only=True)
    base = info["base_model"]
    base_local = Path(base).is_dir()

    if info["is_peft"]:
        if info["config"]["model"].get("load_in_4bit") and info["backend"] == "unsloth":
            from arc_kit.models import unsloth_backend  # a 4-bit base can only be merged by Unsloth

            unsloth_backend.merge_lora(str(final), str(merged_dir), info["config"]["model"]["max_seq_length"],
                                       load_in_4bit=True)
        else:
            from peft import PeftModel

            base_model = load_causal_lm(base, torch.float32, local_only=base_local)
            model = PeftModel.from_pretrained(base_model, final, local_files_only=True)
            model = model.merge_and_unload()
            model.to(saved_dtype).save_pretrained(merged_dir)
            tokenizer.save_pretrained(merged_dir)
        if write_adapter:
            adapter_dir = out_dir / ADAPTER_DIR
            if adapter_dir.exists():
                shutil.rmtree(adapter_dir)
            shutil.copytree(final, adapter_dir)
    else:
        model = load_causal_lm(final, torch.float32, local_only=True)
        model.to(saved_dtype).save_pretrained(merged_dir)
        tokenizer.save_pretrained(merged_dir)

    write_manifest(merged_dir, base_model=base, backend=info["backend"], is_lora=info["is_peft"], dtype=dtype,
                   adapter_dir=ADAPTER_DIR if info["is_peft"] and write_adapter else None, steps=info["steps"],
                   train_loss=info["train_loss"], eval_loss=info["eval_loss"], recipe=info["config"],
                   data=info["data"], prompt_format=info.get("prompt_format", "arc-kit"),
                   loss_on=info["config"]["data"].get("loss_on", "answer"))
    return merged_dir
