"""arc-kit Kaggle kernel: install arc-kit from the attached wheelhouse, then write /kaggle/working/submission.json.

`arc-kit kernel build` copies this file and rewrites the one line that starts with ``KERNEL_SETTINGS = ``.
Everything else lives in arc_kit (arc_kit.runner.run_kernel, arc_kit.kaggle_paths), where it is tested.
"""

import os
import time

START = time.time()  # the 12 h budget counts from here
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "UNSLOTH_DISABLE_STATISTICS"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

KERNEL_SETTINGS = {"competition": "arc-prize-2026-arc-agi-2", "model_dir": None, "wheelhouse": None, "budget_seconds": 43200, "margin_seconds": 900, "task_cap_seconds": 1200, "views": 8, "quick_tasks": 8}


def find_wheelhouse(root, given=None):
    """The folder holding arc_kit's wheel: the one given, else the first found below ``root``."""
    from pathlib import Path

    if given:
        path = Path(given) if os.path.isabs(given) else Path(root) / given
        return path if path.is_dir() else None
    wheels = sorted(Path(root).glob("**/arc_kit-*.whl"))
    return wheels[0].parent if wheels else None


def ensure_arc_kit(settings):
    """Import arc_kit, installing it (and every wheel beside it) offline first when it is missing."""
    try:
        import arc_kit  # noqa: F401

        return
    except ImportError:
        pass
    import subprocess
    import sys

    root = os.environ.get("ARC_KIT_INPUT_ROOT") or "/kaggle/input"
    wheelhouse = find_wheelhouse(root, settings.get("wheelhouse"))
    if wheelhouse is None:
        raise SystemExit(f"arc_kit is not installed and no arc_kit-*.whl was found under {root}: attach the "
                         "wheelhouse dataset (arc-kit kernel build makes one)")
    wheels = sorted(str(w) for w in wheelhouse.glob("*.whl"))
    print(f"installing arc-kit and {len(wheels) - 1} other wheels from {wheelhouse}", flush=True)
    # --no-deps: the wheelhouse is pinned to what the Kaggle image lacks; resolving arc-kit's own requirements
    # against the image offline would fail or downgrade its torch/transformers.
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--find-links",
                           str(wheelhouse), "--quiet", *wheels])


def main():
    ensure_arc_kit(KERNEL_SETTINGS)
    from arc_kit.runner import run_kernel

    return run_kernel(KERNEL_SETTINGS, START)


if __name__ == "__main__":
    raise SystemExit(main())
