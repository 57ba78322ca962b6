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
SHRUNK_FORMAT = "model with its vocabulary shrunk by arc-kit shrink-vocab"
CHECKED = ("transformers",)  # the libraries whose file formats the weights folder depends on
RECORDED = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "unsloth")  # versions written down


# ---------------------------------------------------------------------------------------------------------------
# Writing


def write_manifest(merged_dir: Path, *, base_model: str, backend: str, is_lora: bool, dtype: str,
                   adapter_dir: str | None, steps: int, train_loss: float | None, eval_loss: float | None,
                   recipe: dict[str, Any], data: Any, prompt_format: str, loss_on: str | None) -> Path:
    """Write the manifest into ``merged_dir``: what the weights are (base, backend, LoRA or not, dtype, the prompt
    format they speak), how they were trained (steps, losses, what the loss learnt, the recipe's settings, the
    data), the library versions and the range the kernel needs to load them."""
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
        "prompt_format": prompt_format,  # arc_kit.core.formats: how a task becomes text for these weights
        "loss_on": loss_on,
    }
    path = Path(merged_dir) / MANIFEST_FILE
    atomic_write_json(path, manifest, indent=1)
    return path


def write_shrunk_manifest(out_dir: Path, *, source: Path, prompt_format: str, kept_tokens: int,
                          source_vocab_size: int, source_manifest: dict[str, Any] | None) -> Path:
    """The manifest of a folder whose vocabulary ``arc-kit shrink-vocab`` shrank: the source's manifest (when it
    had one) with the format, the shrunk vocabulary and this machine's library versions; else a short one naming the source."""
    versions = library_versions()
    manifest = dict(source_manifest or {"format": SHRUNK_FORMAT, "base_model": str(source)})
    manifest.update({
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "prompt_format": prompt_format,
        "vocabulary": {"cut_from": str(source), "source_vocab_size": source_vocab_size, "kept": kept_tokens},
        "versions": versions,
        "requires": loading_requirements(versions),  # the shrunk tokenizer was written by this transformers
    })
    manifest.setdefault("loss_on", None)
    path = Path(out_dir) / MANIFEST_FILE
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


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a weights folder as a dict; None without one (or an unreadable one: the kernel's version
    check says so)."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recorded_format(folder: Path) -> str | None:
    """The prompt format the manifest of ``folder`` records; for an export's ``adapter/`` folder, its sibling
    ``merged/`` one's. None without a manifest. A manifest written before formats were recorded held a sentence
    about the kit's chat template there: that is the arc-kit format."""
    folder = Path(folder)
    for place in (folder, folder.parent / MERGED_DIR if folder.name == ADAPTER_DIR else None):
        data = read_manifest(place) if place is not None else None
        if data is None:
            continue
        name = data.get("prompt_format")
        if isinstance(name, str) and name.startswith("arc_kit.core.text.render"):
            return "arc-kit"
        return name if isinstance(name, str) else None
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
