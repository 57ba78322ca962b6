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

from arc_kit.errors import ArcKitError

INPUT_ROOT_ENV = "ARC_KIT_INPUT_ROOT"
OUTPUT_ENV = "ARC_KIT_OUTPUT"
DEFAULT_INPUT_ROOT = Path("/kaggle/input")
DEFAULT_OUTPUT = Path("/kaggle/working/submission.json")
TEST_CHALLENGES = "arc-agi_test_challenges.json"
MANIFEST = "arc_kit_manifest.json"
MAX_DEPTH = 7  # /kaggle/input/models/owner/model/framework/variation/version/ is 6 below the root


class KagglePathError(ArcKitError, FileNotFoundError):
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


def reroot(path: str | Path, root: Path) -> Path:
    """A ``/kaggle/input/...`` path read below ``root`` (how local runs and tests stand in for Kaggle);
    a relative path is taken below ``root``."""
    path = Path(path)
    if path.is_absolute() and path.parts[:3] == ("/", "kaggle", "input") and root != DEFAULT_INPUT_ROOT:
        return root.joinpath(*path.parts[3:])
    return path if path.is_absolute() else root / path


def dataset_folders(root: Path, ref: str) -> list[Path]:
    """Where an attached dataset ``owner/slug`` is mounted: 2026 layout first, then the classic one."""
    owner, slug = ref.split("/")[:2]
    return [root / "datasets" / owner / slug, root / slug]


def model_folders(root: Path, ref: str) -> list[Path]:
    """Where an attached model ``owner/model/framework/variation/version`` is mounted."""
    parts = ref.split("/")
    return [root / "models" / Path(*parts), root / Path(*parts[1:])]


def find_model_dir(root: Path, given: str | Path | None = None, *, dataset: str | None = None,
                   model: str | None = None) -> Path:
    """The weights folder: the path given, else the attached model or dataset at its mount path, else a search
    of ``root``. Inside a folder holding several weight folders (an export root has ``adapter/`` and ``merged/``)
    the rule in ``choose_weights`` picks one and says which."""
    places = [reroot(given, root)] if given else []
    places += model_folders(root, model) if model else []
    places += dataset_folders(root, dataset) if dataset else []
    for place in places:
        if place.is_dir():
            return choose_weights(place)
    if places:
        print(f"weights not at {', '.join(str(p) for p in places)}; searching {root}", file=sys.stderr)
    return choose_weights(root)


def choose_weights(folder: Path) -> Path:
    """The one weights folder at or below ``folder``: the folder itself; else the one holding the kit's manifest;
    else one named ``merged`` (the kit's export); else the only one. Anything else is an error naming what was
    seen."""
    if is_weights_folder(folder):
        return folder
    found = [f for f in _walk(folder) if is_weights_folder(f)]
    if len(found) == 1:
        return found[0]
    if not found:
        seen = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())[:12] if folder.is_dir() else []
        raise KagglePathError(f"no weights folder (config.json or adapter_config.json) under {folder}; it holds: "
                              f"{', '.join(seen) or 'nothing'}. Attach the exported merged/ folder as a dataset "
                              "or Kaggle Model")
    for rule, picked in (("holds " + MANIFEST, [f for f in found if (f / MANIFEST).exists()]),
                         ("the export's merged/ folder", [f for f in found if f.name == "merged"])):
        if len(picked) == 1:
            others = ", ".join(str(f) for f in found if f != picked[0])
            print(f"weights: using {picked[0]} ({rule}); also seen: {others}", file=sys.stderr)
            return picked[0]
    names = ", ".join(str(f) for f in found[:5])
    raise KagglePathError(f"several weights folders under {folder} ({names}); name one with model_dir")
