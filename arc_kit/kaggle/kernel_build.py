"""Build the submission kernel folder: ``kernel-metadata.json`` and a code file generated from
``submission/main.py`` (installed with the package, ``kernel_entry``). Pure file work, no ``kaggle`` client, so a
build can be checked offline.

The code file is never hand-kept: it is ``submission/main.py`` with exactly one line rewritten,
``KERNEL_SETTINGS = ...``, so the kernel carries its settings (competition, mount paths, budget) as a literal.
"""

from __future__ import annotations

import ast
import json
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from arc_kit.config.run import KernelPlan
from arc_kit.config.schema import Settings, SettingsError, setting, validate
from arc_kit.core.files import atomic_write_text
from arc_kit.errors import ArcKitError
from arc_kit.kaggle.upload import check_ref, title_from_slug

KERNEL_ENTRIES = {"submission": "main.py"}
"""Each kind of kernel and its entry in ``submission/``, which ships inside the package as ``ENTRIES_PACKAGE``."""
ENTRIES_PACKAGE = "arc_kit.kernel_entries"
SETTINGS_PREFIX = "KERNEL_SETTINGS = "
KERNEL_METADATA = "kernel-metadata.json"
BUILD_INFO = "arc-kit-build.json"  # beside the metadata, never pushed: what `kernel check` and `push` verify
_MODEL_SOURCE = re.compile(r"^[^/]+/[^/]+/[^/]+/[^/]+/\d+$")
# Accelerators: the kaggle client's documented values (kagglesdk's SaveKernelRequest.machine_shape) and the ones
# in Kaggle's docs and public kernels. "NvidiaL4" is the 4x L4 box public ARC-AGI-2 kernels run on; Kaggle's
# default GPU (no machine_shape) is T4 x2.
MachineShape = Literal["NvidiaL4", "NvidiaL4X1", "NvidiaTeslaT4", "NvidiaTeslaP100", "NvidiaTeslaA100", "NvidiaH100",
                       "Tpu1VmV38"]
MACHINE_SHAPES: tuple[str, ...] = typing.get_args(MachineShape)


class KernelBuildError(ArcKitError, ValueError):
    """The kernel cannot be built as asked (bad id, missing settings line, ...)."""


@dataclass
class KernelSettings(Settings):
    """The kernel as Kaggle sees it: its id, the machine, extra sources. What it runs is a ``KernelPlan``."""

    owner: str = setting("", help="Kaggle user name (empty: KAGGLE_USERNAME or kaggle.json)")
    slug: str = setting("arc-kit-submission", help="kernel slug")
    extra_datasets: list[str] = setting(help="more datasets to attach", factory=list)
    kernel_type: Literal["script", "notebook"] = setting("script", help="script, or notebook (generated from it)")
    machine_shape: MachineShape = setting("NvidiaL4", help="the accelerator; NvidiaL4 is the 4x L4 competition box")
    docker_image_pinning_type: Literal["original", "latest"] = setting("original", help=(
        "original: the image the kernel was first run on, so a rerun cannot meet new package versions"))
    private: bool = setting(True, help="keep the kernel private")

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.slug}"

    @property
    def code_file(self) -> str:
        return "main.ipynb" if self.kernel_type == "notebook" else "main.py"

    def check_with(self, plan: KernelPlan) -> None:
        try:
            check_ref(self.ref, "kernel")
            for ref in (plan.kernel.weights_dataset, plan.kernel.wheelhouse_dataset, *self.extra_datasets):
                if ref:
                    check_ref(ref, "dataset")
            plan.check()
            validate(self)
        except (SettingsError, ValueError) as exc:
            raise KernelBuildError(str(exc)) from None
        model = plan.kernel.weights_model
        if model and _MODEL_SOURCE.match(model + "/1"):
            raise KernelBuildError(f"weights model {model!r} names no version: add it ({model}/1 for version 1; "
                                   "the kaggle client refuses a model source without one, and a pinned version "
                                   "keeps a rerun on the weights you tested)")
        if model and not _MODEL_SOURCE.match(model):
            raise KernelBuildError(f"weights model {model!r} must be owner/model/framework/variation/N")


def kernel_entry(kind: str) -> Path:
    """The entry file of a kind of kernel (``submission``), from the installed package: the same file whether
    the kit runs from a checkout (an editable install maps ``submission/``) or from a wheel."""
    from importlib import resources

    if kind not in KERNEL_ENTRIES:
        raise KernelBuildError(f"no kernel entry {kind!r} (known: {', '.join(KERNEL_ENTRIES)})")
    try:
        entry = resources.files(ENTRIES_PACKAGE) / KERNEL_ENTRIES[kind]
    except ModuleNotFoundError:
        entry = None
    if entry is None or not entry.is_file():
        raise KernelBuildError(f"the {kind} kernel's entry ({KERNEL_ENTRIES[kind]}) is not installed with arc_kit: "
                               "reinstall arc-kit (pip install .), or give the file with --main")
    return Path(str(entry))


def kernel_metadata(settings: KernelSettings, plan: KernelPlan) -> dict:
    """``kernel-metadata.json``: offline (internet off), GPU on, private, sources attached, the machine named."""
    settings.check_with(plan)
    k = plan.kernel
    datasets = [r for r in (k.weights_dataset, k.wheelhouse_dataset, *settings.extra_datasets) if r]
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
        "competition_sources": [k.competition],
        "kernel_sources": [],
        "model_sources": [k.weights_model] if k.weights_model else [],
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


def build_kernel(main_py: Path, out_dir: Path, settings: KernelSettings, plan: KernelPlan | None = None,
                 build_info: dict | None = None) -> dict[str, Path]:
    """Write the kernel folder; returns the paths written (``metadata``, ``code``).

    ``build_info`` (the local wheelhouse and image the kernel was built against) goes to ``arc-kit-build.json``
    beside the metadata; ``kaggle kernels push`` sends only the code file and the metadata, never that file.
    """
    main_py, out_dir = Path(main_py), Path(out_dir)
    plan = plan or KernelPlan()
    if not main_py.is_file():
        raise KernelBuildError(f"kernel entry {main_py} not found")
    meta = kernel_metadata(settings, plan)
    code = render_code(main_py.read_text(encoding="utf-8"), plan.to_dict(), str(main_py))
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
    paths = {"metadata": meta_path, "code": code_path}
    if build_info:
        paths["build_info"] = out_dir / BUILD_INFO
        atomic_write_text(paths["build_info"], json.dumps(build_info, indent=2) + "\n")
    return paths


def read_metadata(folder: Path) -> dict:
    """A built folder's ``kernel-metadata.json``."""
    path = Path(folder) / KERNEL_METADATA
    if not path.is_file():
        raise KernelBuildError(f"{path} not found: run arc-kit kernel build first")
    return json.loads(path.read_text(encoding="utf-8"))


def read_plan(folder: Path) -> KernelPlan:
    """The settings a built kernel carries, read back from its code file."""
    meta = read_metadata(folder)
    code_path = Path(folder) / meta.get("code_file", "main.py")
    text = code_path.read_text(encoding="utf-8")
    if code_path.suffix == ".ipynb":
        text = "".join(json.loads(text)["cells"][0]["source"])
    line = next((ln for ln in text.splitlines() if ln.startswith(SETTINGS_PREFIX)), None)
    if line is None:
        raise KernelBuildError(f"{code_path}: no {SETTINGS_PREFIX!r} line")
    return KernelPlan.from_dict(ast.literal_eval(line[len(SETTINGS_PREFIX):]))


def read_build_info(folder: Path) -> dict:
    path = Path(folder) / BUILD_INFO
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
