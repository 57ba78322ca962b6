"""What the kernel entry (``submission/main.py``) calls once arc-kit is installed: the run of the kind its settings
literal names (``arc_kit.config.kernels``). The entry itself is one file for every kind; everything that differs
between kinds lives in the modules below, where it is tested."""

from __future__ import annotations

import importlib
from typing import Any

from arc_kit.config.kernels import DEFAULT_KIND, KIND_KEY

KIND_RUNS: dict[str, tuple[str, str]] = {
    "submission": ("arc_kit.run.kernel", "run_kernel"),
    "evaluate": ("arc_kit.run.evaluate", "run_evaluate_kernel"),
    "train": ("arc_kit.run.train_kernel", "run_train_kernel"),
}
"""Each kind's run: (module, function taking the config's tables and the kernel's start time, returning the exit
code)."""


def run_kernel_kind(settings: dict[str, Any], start_time: float) -> int:
    """Run the kernel of the kind ``settings`` names (a literal without one is a submission kernel)."""
    kind = settings.get(KIND_KEY, DEFAULT_KIND) if isinstance(settings, dict) else DEFAULT_KIND
    if kind not in KIND_RUNS:
        print(f"arc-kit kernel: {KIND_KEY} {kind!r} is not one of {', '.join(KIND_RUNS)}", flush=True)
        return 1
    if kind != "train":  # no network: model libraries must read the offline switches when they are first imported
        from arc_kit.models.offline import set_offline_env

        set_offline_env(hub=True)
    module, function = KIND_RUNS[kind]
    tables = {key: value for key, value in settings.items() if key != KIND_KEY} if isinstance(settings, dict) \
        else settings  # the run says what is wrong with it
    return int(getattr(importlib.import_module(module), function)(tables, start_time))
