"""Where things are inside a Kaggle kernel: competition files, the weights folder, the output; rerun or not.

Kaggle has mounted inputs at several paths over the years (``/kaggle/input/<slug>``,
``/kaggle/input/competitions/<slug>``, ``/kaggle/input/models/<owner>/<model>/<framework>/<variation>/<version>``),
so we search rather than hard-code one. ``ARC_KIT_INPUT_ROOT`` and ``ARC_KIT_OUTPUT`` move the whole tree, which
is how the tests run the kernel entry on a fake ``/kaggle/input``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

INPUT_ROOT_ENV = "ARC_KIT_INPUT_ROOT"
OUTPUT_ENV = "ARC_KIT_OUTPUT"
DEFAULT_INPUT_ROOT = Path("/kaggle/input")
DEFAULT_OUTPUT = Path("/kaggle/working/submission.json")
TEST_CHALLENGES = "arc-agi_test_challenges.json"
MANIFEST = "arc_kit_manifest.json"
MAX_DEPTH = 7  # /kaggle/input/models/owner/model/framework/variation/version/ is 6 below the root


class KagglePathError(FileNotFoundError):
    """A required input was not found; the message lists where we looked."""


def input_root(env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get(INPUT_ROOT_ENV) or DEFAULT_INPUT_ROOT)


def output_path(env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get(OUTPUT_ENV) or DEFAULT_OUTPUT)


def is_competition_rerun(env: Mapping[str, str] = os.environ) -> bool:
    """Kaggle sets KAGGLE_IS_COMPETITION_RERUN when it reruns the kernel on the hidden test set."""
    return bool(env.get("KAGGLE_IS_COMPETITION_RERUN"))


def _walk(root: Path, max_depth: int = MAX_DEPTH):
    """Folders below ``root`` (root included), breadth first, sorted, not following hidden folders."""
    level = [root]
    for _ in range(max_depth + 1):
        nxt = []
        for folder in level:
            yield folder
            try:
                nxt += sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
        level = nxt


def find_challenges(root: Path, slug: str, given: str | Path | None = None) -> Path:
    """The test challenges file: a path given, else under the slug's folder, else anywhere below ``root``."""
    if given:
        path = Path(given)
        path = path if path.is_absolute() or path.exists() else root / path
        if path.is_dir():
            path = path / TEST_CHALLENGES
        if not path.exists():
            raise KagglePathError(f"challenges file {path} not found")
        return path
    for candidate in (root / slug / TEST_CHALLENGES, root / "competitions" / slug / TEST_CHALLENGES):
        if candidate.exists():
            return candidate
    for folder in _walk(root):
        if (folder / TEST_CHALLENGES).exists():
            return folder / TEST_CHALLENGES
    raise KagglePathError(
        f"no {TEST_CHALLENGES} under {root} (looked in {root / slug}, {root / 'competitions' / slug} and below); "
        "is the competition attached to the kernel?"
    )


def is_weights_folder(folder: Path) -> bool:
    return (folder / "config.json").exists() or (folder / "adapter_config.json").exists()


def find_model_dir(root: Path, given: str | Path | None = None) -> Path:
    """The weights folder: a path given (absolute, or relative to ``root``), else the one the kit exported
    (it holds ``arc_kit_manifest.json``), else the only folder below ``root`` that holds weights."""
    if given:
        path = Path(given)
        if path.is_absolute() and path.parts[:3] == ("/", "kaggle", "input") and root != Path("/kaggle/input"):
            path = root.joinpath(*path.parts[3:])  # a Kaggle mount path, read below a local input root
        path = path if path.is_absolute() else root / path
        if not path.is_dir():
            # Mount paths vary (/kaggle/input/<slug>, .../datasets/<owner>/<slug>, models/...): search instead.
            print(f"weights folder {path} not found; searching {root}", file=sys.stderr)
            return find_model_dir(root)
        if not is_weights_folder(path):
            inner = [f for f in _walk(path) if is_weights_folder(f)]
            if len(inner) == 1:
                return inner[0]
            raise KagglePathError(f"{path} holds no config.json or adapter_config.json")
        return path
    found = [f for f in _walk(root) if is_weights_folder(f)]
    kit = [f for f in found if (f / MANIFEST).exists()]
    if len(kit) == 1 or (kit and len(found) > 1):
        return kit[0]
    if len(found) == 1:
        return found[0]
    if not found:
        raise KagglePathError(f"no weights folder (config.json or adapter_config.json) under {root}; "
                              "attach the model dataset or Kaggle Model to the kernel")
    names = ", ".join(str(f) for f in found[:5])
    raise KagglePathError(f"several weights folders under {root} ({names}); name one with model_dir")
