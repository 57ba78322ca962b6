"""Build the submission kernel folder: ``kernel-metadata.json`` and a code file generated from
``submission/main.py``. Pure file work, no ``kaggle`` client, so a build can be checked offline.

The code file is never hand-kept: it is ``submission/main.py`` with exactly one line rewritten,
``KERNEL_SETTINGS = ...``, so the kernel carries its settings (competition, mount paths, budget) as a literal.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from arc_kit import COMPETITION_SLUG
from arc_kit.io_utils import atomic_write_text
from arc_kit.upload import check_ref, title_from_slug

SETTINGS_PREFIX = "KERNEL_SETTINGS = "
KERNEL_METADATA = "kernel-metadata.json"
INPUT_ROOT = "/kaggle/input"
_MODEL_SOURCE = re.compile(r"^[^/]+/[^/]+/[^/]+/[^/]+/\d+$")


class KernelBuildError(ValueError):
    """The kernel cannot be built as asked (bad id, missing settings line, ...)."""


@dataclass
class KernelSettings:
    """Everything that decides the kernel: its id, what it mounts, and the run's settings."""

    owner: str
    slug: str = "arc-kit-submission"
    competition: str = COMPETITION_SLUG
    weights_dataset: str | None = None  # owner/slug
    weights_model: str | None = None  # owner/model/framework/instance/<version>
    wheelhouse_dataset: str | None = None  # owner/slug
    extra_datasets: list[str] = field(default_factory=list)
    budget_seconds: float = 12 * 3600
    margin_seconds: float = 45 * 60
    task_cap_seconds: float = 600
    views: int = 8
    quick_tasks: int | None = None
    kernel_type: str = "script"  # or "notebook": the .ipynb is generated from the script
    machine_shape: str | None = None  # e.g. NvidiaL4; None leaves Kaggle's default for enable_gpu
    docker_image_pinning_type: str = "original"
    private: bool = True

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.slug}"

    @property
    def code_file(self) -> str:
        return "main.ipynb" if self.kernel_type == "notebook" else "main.py"

    def check(self) -> None:
        try:
            check_ref(self.ref, "kernel")
            for ref in (self.weights_dataset, self.wheelhouse_dataset, *self.extra_datasets):
                if ref:
                    check_ref(ref, "dataset")
        except ValueError as exc:
            raise KernelBuildError(str(exc)) from None
        if self.weights_model and not _MODEL_SOURCE.match(self.weights_model):
            raise KernelBuildError(f"weights model {self.weights_model!r} must be owner/model/framework/instance/N")
        if self.kernel_type not in ("script", "notebook"):
            raise KernelBuildError(f"kernel_type must be script or notebook, got {self.kernel_type!r}")
        if self.docker_image_pinning_type not in ("original", "latest"):
            raise KernelBuildError("docker_image_pinning_type must be original or latest")
        if not self.competition:
            raise KernelBuildError("a competition slug is required")


def dataset_mount(ref: str) -> str:
    """Where Kaggle mounts an attached dataset in a run (classic layout: /kaggle/input/<slug>)."""
    return f"{INPUT_ROOT}/{ref.split('/')[1]}"


def model_mount(ref: str) -> str:
    """Where Kaggle mounts an attached model instance version."""
    owner, model, framework, instance, version = ref.split("/")
    return f"{INPUT_ROOT}/models/{owner}/{model}/{framework}/{instance}/{version}"


def runtime_settings(settings: KernelSettings) -> dict:
    """The dict the kernel entry receives as ``KERNEL_SETTINGS`` (paths are best guesses: the entry should
    fall back to searching /kaggle/input when a path is absent)."""
    if settings.weights_model:
        model_dir = model_mount(settings.weights_model)
    elif settings.weights_dataset:
        model_dir = dataset_mount(settings.weights_dataset)
    else:
        model_dir = None
    return {
        "competition": settings.competition,
        "model_dir": model_dir,
        "wheelhouse": dataset_mount(settings.wheelhouse_dataset) if settings.wheelhouse_dataset else None,
        "budget_seconds": settings.budget_seconds,
        "margin_seconds": settings.margin_seconds,
        "task_cap_seconds": settings.task_cap_seconds,
        "views": settings.views,
        "quick_tasks": settings.quick_tasks,
    }


def kernel_metadata(settings: KernelSettings) -> dict:
    """``kernel-metadata.json``: offline (internet off), GPU on, private, sources attached."""
    settings.check()
    datasets = [r for r in (settings.weights_dataset, settings.wheelhouse_dataset, *settings.extra_datasets) if r]
    meta = {
        "id": settings.ref,
        "title": title_from_slug(settings.slug),
        "code_file": settings.code_file,
        "language": "python",
        "kernel_type": settings.kernel_type,
        "is_private": settings.private,
        "enable_gpu": True,
        "enable_tpu": False,
        "enable_internet": False,
        "dataset_sources": datasets,
        "competition_sources": [settings.competition],
        "kernel_sources": [],
        "model_sources": [settings.weights_model] if settings.weights_model else [],
        "docker_image_pinning_type": settings.docker_image_pinning_type,
    }
    if settings.machine_shape:
        meta["machine_shape"] = settings.machine_shape
    return meta


def render_code(main_text: str, values: dict, source: str = "submission/main.py") -> str:
    """Rewrite the single ``KERNEL_SETTINGS = `` line of ``main_text`` to ``KERNEL_SETTINGS = repr(values)``."""
    lines = main_text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.startswith(SETTINGS_PREFIX)]
    if len(hits) != 1:
        raise KernelBuildError(f"{source}: expected exactly one line starting with {SETTINGS_PREFIX!r}, "
                               f"found {len(hits)}" + (f" (lines {[i + 1 for i in hits]})" if hits else ""))
    newline = "\n" if lines[hits[0]].endswith("\n") else ""
    lines[hits[0]] = SETTINGS_PREFIX + repr(values) + newline
    return "".join(lines)


def script_to_notebook(code: str) -> str:
    """A one-cell notebook holding ``code`` (generated, never hand-kept)."""
    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                   "source": code.splitlines(keepends=True)}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 4,
    }
    return json.dumps(notebook, indent=1) + "\n"


def build_kernel(main_py: Path, out_dir: Path, settings: KernelSettings) -> dict[str, Path]:
    """Write the kernel folder; returns the paths written (``metadata``, ``code``)."""
    main_py, out_dir = Path(main_py), Path(out_dir)
    if not main_py.is_file():
        raise KernelBuildError(f"kernel entry {main_py} not found")
    meta = kernel_metadata(settings)
    code = render_code(main_py.read_text(encoding="utf-8"), runtime_settings(settings), str(main_py))
    if settings.kernel_type == "notebook":
        code = script_to_notebook(code)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("main.py", "main.ipynb"):
        if stale != settings.code_file and (out_dir / stale).exists():
            (out_dir / stale).unlink()
    code_path = out_dir / settings.code_file
    atomic_write_text(code_path, code)
    meta_path = out_dir / KERNEL_METADATA
    atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    return {"metadata": meta_path, "code": code_path}


def settings_from_metadata(folder: Path) -> dict:
    """Read back a built folder's metadata (for status/output/submit defaults)."""
    return json.loads((Path(folder) / KERNEL_METADATA).read_text(encoding="utf-8"))


def as_dict(settings: KernelSettings) -> dict:
    return asdict(settings)
