"""`arc-kit kernel check`: read a built kernel folder back and say what Kaggle will run, before a push spends
GPU quota: the sources it attaches, the machine, internet, every setting, and whether the wheelhouse installs
arc-kit on the declared image. ``kernel push`` refuses a kernel with problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from arc_kit.kaggle.kernel_build import MACHINE_SHAPES, read_build_info, read_metadata, read_plan


@dataclass
class KernelCheck:
    lines: list[str] = field(default_factory=list)  # what the kernel is, for the user to read
    warnings: list[str] = field(default_factory=list)  # may be intended; said anyway
    problems: list[str] = field(default_factory=list)  # would make the Kaggle run fail or score nothing


def check_kernel(folder: Path, wheelhouse: Path | str | None = None, image: Path | str | None = None
                 ) -> KernelCheck:
    from arc_kit.kaggle.wheelhouse import KaggleImage, check_wheelhouse

    folder = Path(folder)
    meta, plan, info = read_metadata(folder), read_plan(folder), read_build_info(folder)
    check = KernelCheck()
    shape = meta.get("machine_shape")
    check.lines += [
        f"kernel {meta.get('id')} ({meta.get('kernel_type')}, {meta.get('code_file')})",
        f"  machine: {shape or 'Kaggle default GPU (T4 x2)'}; GPU {'on' if meta.get('enable_gpu') else 'off'}; "
        f"internet {'ON' if meta.get('enable_internet') else 'off'}",
        f"  competition: {', '.join(meta.get('competition_sources') or []) or 'none'}",
        f"  datasets: {', '.join(meta.get('dataset_sources') or []) or 'none'}",
        f"  models: {', '.join(meta.get('model_sources') or []) or 'none'}",
    ]
    for group, values in plan.to_dict().items():
        check.lines.append(f"  {group}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    quick = plan.kernel.quick_tasks
    check.lines.append(f"  an interactive run decodes {f'the {quick} shortest tasks' if quick else 'every task'}; "
                       "the competition rerun decodes all")
    if meta.get("enable_internet"):
        check.problems.append("internet is on: code competitions refuse kernels with internet access")
    if not meta.get("enable_gpu"):
        check.problems.append("the GPU is off")
    if shape and shape not in MACHINE_SHAPES:
        check.problems.append(f"machine_shape {shape!r} is not one of {', '.join(MACHINE_SHAPES)}")
    elif shape != "NvidiaL4":
        check.warnings.append(f"machine {shape or 'default (T4 x2)'}: the competition box is NvidiaL4 (4x L4)")
    k = plan.kernel
    if not (k.weights_dataset or k.weights_model or k.model_dir):
        check.warnings.append("no weights attached (--weights-dataset or --weights-model): every answer will be a "
                              "placeholder")
    if not k.wheelhouse_dataset:
        check.warnings.append("no wheelhouse dataset attached (--wheelhouse-dataset): the offline kernel can "
                              "install arc-kit only if some attached dataset holds its wheel")
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
