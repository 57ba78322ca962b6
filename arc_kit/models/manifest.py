"""``arc_kit_manifest.json``, the file an export writes beside its merged weights: its name, where it lies, what it
holds, and the check of the library versions it asks for.

Why the versions: tokenizer files saved by transformers 5 name a class (``TokenizersBackend``) that transformers 4
does not have, so on an older Kaggle image every answer silently stays a placeholder. The export writes the range
into the manifest; the kernel checks it before it loads anything and says so in one line. The upload puts the
whole file into the dataset's description, and the weights-folder search prefers the folder holding it.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import platform
import time
from pathlib import Path
from typing import Any

from arc_kit.core.files import atomic_write_json

MANIFEST_FILE = "arc_kit_manifest.json"
MERGED_DIR = "merged"
"""An export's merged model (what the kernel loads); the manifest lies in it."""
ADAPTER_DIR = "adapter"
"""An export's LoRA adapter folder, beside ``MERGED_DIR`` (LoRA runs only)."""
FORMAT = "arc-kit merged model"
PROMPT_FORMAT = "arc_kit.core.text.render (chat template; tokenize with add_special_tokens=False)"
CHECKED = ("transformers",)  # the libraries whose file formats the weights folder depends on
RECORDED = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "unsloth")  # versions written down


# ---------------------------------------------------------------------------------------------------------------
# Writing


def write_manifest(merged_dir: Path, *, base_model: str, backend: str, is_lora: bool, dtype: str,
                   adapter_dir: str | None, steps: int, train_loss: float | None, eval_loss: float | None,
                   recipe: dict[str, Any], data: Any) -> Path:
    """Write the manifest into ``merged_dir``: what the weights are (base, backend, LoRA or not, dtype), how they
    were trained (steps, losses, the recipe's settings, the data), the library versions and the range the kernel
    needs to load them."""
    versions = library_versions()
    manifest = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_model": base_model,
        "backend": backend,
        "is_lora": is_lora,
        "dtype": dtype,
        "adapter_dir": adapter_dir,
        "steps": steps,
        "train_loss": train_loss,
        "eval_loss": eval_loss,
        "recipe": recipe,
        "data": data,
        "versions": versions,
        "requires": loading_requirements(versions),  # the kernel checks these before loading
        "prompt_format": PROMPT_FORMAT,
    }
    path = Path(merged_dir) / MANIFEST_FILE
    atomic_write_json(path, manifest, indent=1)
    return path


def library_versions() -> dict[str, str]:
    """arc-kit's, Python's and every installed ``RECORDED`` library's version."""
    import arc_kit

    versions = {"arc_kit": arc_kit.__version__, "python": platform.python_version()}
    versions.update({name: v for name in RECORDED if (v := installed_version(name)) is not None})
    return versions


def loading_requirements(saved_with: dict[str, str]) -> dict[str, str]:
    """The version range each checked library must be in to load what ``saved_with`` wrote: the same major."""
    out = {}
    for name in CHECKED:
        version = saved_with.get(name)
        if version and version.split(".")[0].isdigit():
            major = int(version.split(".")[0])
            out[name] = f">={major}.0,<{major + 1}"
    return out


# ---------------------------------------------------------------------------------------------------------------
# Reading


def has_manifest(folder: Path) -> bool:
    return (Path(folder) / MANIFEST_FILE).is_file()


def find_manifest(folder: Path) -> Path | None:
    """The manifest of a merged folder, or of the export root above it (its ``merged/``); None without one."""
    for place in (Path(folder), Path(folder) / MERGED_DIR):
        if has_manifest(place):
            return place / MANIFEST_FILE
    return None


def installed_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def check_model_requirements(model_dir: Path) -> list[str]:
    """One line per library whose installed version cannot load ``model_dir`` (from its manifest, if any)."""
    manifest = Path(model_dir) / MANIFEST_FILE
    if not manifest.is_file():
        return []
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [f"{manifest}: unreadable manifest, library versions not checked"]
    if not isinstance(data, dict):
        return []
    requires = data.get("requires") or loading_requirements(data.get("versions") or {})
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    problems = []
    for name, spec in requires.items():
        have = installed_version(name)
        try:
            ok = have is not None and SpecifierSet(spec).contains(have, prereleases=True)
        except InvalidSpecifier:
            problems.append(f"{manifest}: bad requirement {name}{spec}")
            continue
        if not ok:
            problems.append(f"the weights in {model_dir} need {name}{spec} (exported with "
                            f"{(data.get('versions') or {}).get(name, '?')}); this image has {have or 'none'}")
    return problems
