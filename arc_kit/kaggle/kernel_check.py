"""`arc-kit kernel check`: read a built kernel folder back and say what Kaggle will run, before a push spends
GPU quota: its kind, the sources it attaches, the machine, internet, every setting, and whether the wheelhouse
installs arc-kit on the declared image. ``kernel push`` refuses a kernel with problems."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arc_kit.config.run import KAGGLE_SESSION_SECONDS
from arc_kit.kaggle.kernel_build import (
    KAGGLE_INPUT,
    KIND_DEFAULTS,
    MACHINE_SHAPES,
    QUOTA_WEIGHT,
    read_build_info,
    read_metadata,
    read_settings,
)


@dataclass
class KernelCheck:
    lines: list[str] = field(default_factory=list)  # what the kernel is, for the user to read
    warnings: list[str] = field(default_factory=list)  # may be intended; said anyway
    problems: list[str] = field(default_factory=list)  # would make the Kaggle run fail or score nothing


def check_kernel(folder: Path, wheelhouse: Path | str | None = None, image: Path | str | None = None
                 ) -> KernelCheck:
    from arc_kit.kaggle.wheelhouse import KaggleImage, check_wheelhouse

    folder = Path(folder)
    meta, info = read_metadata(folder), read_build_info(folder)
    kind, config = read_settings(folder)
    check = KernelCheck()
    shape = meta.get("machine_shape")
    check.lines += [
        f"{kind} kernel {meta.get('id')} ({meta.get('kernel_type')}, {meta.get('code_file')})",
        f"  machine: {shape or 'Kaggle default GPU (T4 x2)'}; GPU {'on' if meta.get('enable_gpu') else 'off'}; "
        f"internet {'ON' if meta.get('enable_internet') else 'off'}",
        f"  competition: {', '.join(meta.get('competition_sources') or []) or 'none'}",
        f"  datasets: {', '.join(meta.get('dataset_sources') or []) or 'none'}",
        f"  models: {', '.join(meta.get('model_sources') or []) or 'none'}",
        f"  notebook outputs: {', '.join(meta.get('kernel_sources') or []) or 'none'}",
    ]
    for group, values in dataclasses.asdict(config).items():
        check.lines.append(f"  {group}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    if not meta.get("enable_gpu"):
        check.problems.append("the GPU is off")
    if shape and shape not in MACHINE_SHAPES:
        check.problems.append(f"machine_shape {shape!r} is not one of {', '.join(MACHINE_SHAPES)}")
    {"submission": _submission, "evaluate": _evaluate, "train": _train}[kind](check, meta, config)
    wheelhouse_dataset = config.kernel.wheelhouse_dataset
    if not wheelhouse_dataset:
        check.warnings.append("no wheelhouse dataset attached (--wheelhouse-dataset): the kernel can install "
                              "arc-kit only if some attached dataset holds its wheel")
    wheelhouse = wheelhouse or info.get("wheelhouse")
    if not wheelhouse:
        check.warnings.append("wheelhouse not checked: pass --wheelhouse FOLDER (the one you upload)")
        return check
    declared = KaggleImage.load(Path(image) if image else (Path(info["image"]) if info.get("image") else None))
    resolution = check_wheelhouse(Path(wheelhouse), declared)
    check.lines.append(f"  wheelhouse {wheelhouse} on Python {declared.python} ({declared.source}):")
    check.lines += [f"    {r.name} {r.version} from the {r.source}" for r in resolution.plan]
    check.problems += [f"wheelhouse: {p}" for p in resolution.problems]
    return check


def _weights_named(config: Any) -> bool:
    k = config.kernel
    return bool(k.weights_dataset or k.weights_model or k.weights_kernel or k.model_dir)


NO_WEIGHTS = ("no weights attached (--weights-dataset, --weights-model or --weights-kernel): every answer will be "
              "a placeholder")


def _submission(check: KernelCheck, meta: dict, config: Any) -> None:
    quick = config.kernel.quick_tasks
    check.lines.append(f"  an interactive run decodes {f'the {quick} shortest tasks' if quick else 'every task'}; "
                       "the competition rerun decodes all")
    if meta.get("enable_internet"):
        check.problems.append("internet is on: code competitions refuse kernels with internet access")
    shape = meta.get("machine_shape")
    if shape in MACHINE_SHAPES and shape != KIND_DEFAULTS["submission"].machine_shape:
        check.warnings.append(f"machine {shape}: the competition box is NvidiaL4 (4x L4)")
    if not _weights_named(config):
        check.warnings.append(NO_WEIGHTS)


def quota_line(meta: dict, budget_seconds: float) -> str:
    """The most of the weekly GPU quota a run of ``budget_seconds`` on the metadata's machine costs."""
    shape = meta.get("machine_shape") or "NvidiaTeslaT4"
    weight = QUOTA_WEIGHT.get(shape, 1.0)
    return (f"  costs at most {budget_seconds / 3600 * weight:.1f} GPU-quota hours (a {budget_seconds / 3600:.1f} h "
            f"budget on {shape}, which counts {weight:g}x)")


def _evaluate(check: KernelCheck, meta: dict, config: Any) -> None:
    e = config.evaluate
    check.lines.append(f"  decodes {e.data} ({f'the {e.max_tasks} shortest tasks' if e.max_tasks else 'every task'})"
                       ", scores it and writes submission.json, report.json, report.html and score.json to its "
                       "output (arc-kit kernel output --kind evaluate, then arc-kit select)")
    check.lines.append(quota_line(meta, config.run.budget_seconds))
    if config.run.budget_seconds >= KAGGLE_SESSION_SECONDS:
        check.warnings.append(
            "the budget is the whole session: the run ends once every task is solved and revisited, but a run "
            "slower than planned spends up to all of it; bound it with --budget-seconds (12 h x your tasks / 240 "
            "gives each task the submission's share of time)")
    if meta.get("enable_internet"):
        check.warnings.append("internet is on: the submission runs offline, so this evaluation may not test "
                              "what it will run")
    if not _weights_named(config):
        check.warnings.append(NO_WEIGHTS + ", and the score 0")


def _train(check: KernelCheck, meta: dict, config: Any) -> None:
    k, t = config.kernel, config.train
    budget = (f"for train.max_seconds={t.max_seconds:.0f} s" if t.max_seconds is not None else
              f"for what is left of its {k.budget_seconds:.0f} s budget")
    budget += f", stopping {t.stop_margin_seconds:.0f} s before the end for the checkpoint and the export"
    check.lines.append(f"  trains {config.model.name_or_path if not k.base_model_source else k.base_model_source} "
                       f"{budget}; its output holds run/ (checkpoints), and export/ once training finished"
                       + (f"; resumes from {k.resume_kernel}'s output" if k.resume_kernel else ""))
    check.lines.append(quota_line(meta, k.budget_seconds))
    check.problems += train_source_problems(config)
    if not meta.get("enable_internet") and not k.base_model_source and config.model.name_or_path != "tiny" \
            and not config.model.name_or_path.startswith(KAGGLE_INPUT):
        check.problems.append(f"internet is off but model.name_or_path {config.model.name_or_path!r} comes from the "
                              "hub: attach the base (--base-model-source) or turn the internet on (--internet)")
    if meta.get("machine_shape") == "NvidiaL4":
        check.warnings.append("machine NvidiaL4: its hours count double against the GPU quota; NvidiaTeslaT4 "
                              "(T4 x2) trains in fp16 at half the quota cost")


def train_source_problems(config: Any) -> list[str]:
    """Paths in a training kernel's config that name files of this machine: the kernel cannot read them. Data
    comes by name (``arc-kit data list``) or from an attached dataset's mount (``/kaggle/input/...``)."""
    from arc_kit.core.named_data import NAMED_SETS
    from arc_kit.training.mix import BUILTIN_HELD_OUT

    d = config.data
    named = [(f"data.challenges[{i}]", v) for i, v in enumerate(d.challenges)]
    named += [(f"data.solutions[{i}]", v) for i, v in enumerate(d.solutions)]
    named += [(f"data.sources[{i}].path", s.path) for i, s in enumerate(d.sources)]
    named += [(f"data.sources[{i}].solutions", s.solutions) for i, s in enumerate(d.sources)]
    named += [(f"data.held_out[{i}]", v) for i, v in enumerate(d.held_out) if v not in BUILTIN_HELD_OUT]
    problems = [f"{where} {value!r} is a file of this machine, which the kernel cannot read: attach it as a "
                f"dataset (--extra-datasets) and name its mount ({KAGGLE_INPUT}/datasets/<owner>/<slug>/...), or "
                "use a named set (arc-kit data list)"
                for where, value in named if value and value not in NAMED_SETS and not value.startswith(KAGGLE_INPUT)]
    name = config.model.name_or_path
    if not config.kernel.base_model_source and (name.startswith(("/", ".")) or Path(name).exists()) \
            and not name.startswith(KAGGLE_INPUT):
        problems.append(f"model.name_or_path {name!r} is a folder of this machine: attach the base weights "
                        "(--base-model-source owner/slug or a Kaggle Model) or name a hub id")
    return problems
