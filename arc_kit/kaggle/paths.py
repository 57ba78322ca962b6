"""Where things are inside a Kaggle kernel: competition files, the weights folder, the output; rerun or not.

Kaggle has mounted inputs at several paths over the years (``/kaggle/input/<slug>``,
``/kaggle/input/competitions/<slug>``, ``/kaggle/input/models/<owner>/<model>/<framework>/<variation>/<version>``,
a notebook's output at ``/kaggle/input/notebooks/<owner>/<slug>``), so we search rather than hard-code one.
``ARC_KIT_INPUT_ROOT`` moves the input tree, ``ARC_KIT_WORKING`` the folder every kind of kernel writes its output
to (``/kaggle/working``), ``ARC_KIT_OUTPUT`` the submission file alone: that is how the tests run the kernel entry
on a fake ``/kaggle``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from arc_kit.core.files import folders_below
from arc_kit.errors import ArcKitError
from arc_kit.models.weights import SEARCH_DEPTH, WeightsFolderError, choose_weights, export_weights

log = logging.getLogger(__name__)

INPUT_ROOT_ENV = "ARC_KIT_INPUT_ROOT"
WORKING_ENV = "ARC_KIT_WORKING"
OUTPUT_ENV = "ARC_KIT_OUTPUT"
DEFAULT_INPUT_ROOT = Path("/kaggle/input")
DEFAULT_WORKING = Path("/kaggle/working")
SUBMISSION_FILE = "submission.json"
TEST_CHALLENGES = "arc-agi_test_challenges.json"
DATA_CACHE = "arc-kit-data"  # below the working folder: the named sets a kernel reads, in the competition's layout


class KagglePathError(ArcKitError, FileNotFoundError):
    """A required input was not found; the message lists where we looked."""


def _environment(env: Any) -> Any:
    """``env``, or ``os.environ`` as it is now: looked up at each call, never bound as a default (``datasets``
    replaces the object during a multi-process ``map``, and a default bound at import would read a stale copy)."""
    return os.environ if env is None else env


def input_root(env: Mapping[str, str] | None = None) -> Path:
    return Path(_environment(env).get(INPUT_ROOT_ENV) or DEFAULT_INPUT_ROOT)


def working_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where a kernel writes what it leaves (Kaggle keeps ``/kaggle/working`` as the notebook's output)."""
    return Path(_environment(env).get(WORKING_ENV) or DEFAULT_WORKING)


def output_path(env: Mapping[str, str] | None = None) -> Path:
    """The submission file: ``ARC_KIT_OUTPUT``, else ``submission.json`` in the working folder."""
    env = _environment(env)
    return Path(env.get(OUTPUT_ENV) or working_dir(env) / SUBMISSION_FILE)


def use_working_data_cache(env: MutableMapping[str, str] | None = None) -> Path:
    """Write named data sets below the working folder (``ARC_KIT_DATA_CACHE``, unless set): the one place a kernel
    may write, and the output then holds the very files a run read."""
    from arc_kit.core.named_data import CACHE_ENV

    env = _environment(env)
    env.setdefault(CACHE_ENV, str(working_dir(env) / DATA_CACHE))
    return Path(env[CACHE_ENV])


def is_competition_rerun(env: Mapping[str, str] | None = None) -> bool:
    """Kaggle sets KAGGLE_IS_COMPETITION_RERUN when it reruns the kernel on the hidden test set."""
    return bool(_environment(env).get("KAGGLE_IS_COMPETITION_RERUN"))


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
    for folder in folders_below(root, SEARCH_DEPTH):
        if (folder / TEST_CHALLENGES).exists():
            return folder / TEST_CHALLENGES
    raise KagglePathError(
        f"no {TEST_CHALLENGES} under {root} (looked in {root / slug}, {root / 'competitions' / slug} and below); "
        "is the competition attached to the kernel?"
    )


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


def kernel_output_folders(root: Path, ref: str) -> list[Path]:
    """Where an attached notebook's output ``owner/slug`` is mounted: 2026 layout first, then the classic one."""
    owner, slug = ref.split("/")[:2]
    return [root / "notebooks" / owner / slug, root / slug]


def model_folders(root: Path, ref: str) -> list[Path]:
    """Where an attached model ``owner/model/framework/variation/version`` is mounted: 2026 layout first, then the
    classic one, each with the framework as given and in lower case (a handle says ``Transformers``, Kaggle mounts
    ``transformers``). Without a version, the variation's folder (the search below it finds the version)."""
    parts = ref.split("/")
    spellings = [parts] if len(parts) < 3 or parts[2] == parts[2].lower() else [
        parts, [*parts[:2], parts[2].lower(), *parts[3:]]]
    return [place for p in spellings for place in (root / "models" / Path(*p), root / Path(*p[1:]))]


def named_weight_places(root: Path, given: str | Path | None = None, *, dataset: str | None = None,
                        model: str | None = None, kernel: str | None = None) -> list[Path]:
    """Where the weights were named to be: the path given, then the attached model's, dataset's and notebook
    output's mounts."""
    places = [reroot(given, root)] if given else []
    places += model_folders(root, model) if model else []
    places += dataset_folders(root, dataset) if dataset else []
    places += kernel_output_folders(root, kernel) if kernel else []
    return places


def find_model_dir(root: Path, given: str | Path | None = None, *, dataset: str | None = None,
                   model: str | None = None, kernel: str | None = None) -> Path:
    """The weights folder: the path given, else the attached model, dataset or notebook output at its mount path,
    else a search of ``root``. Inside a folder holding several weight folders (an export root has ``adapter/`` and
    ``merged/``) the rule in ``arc_kit.models.weights.choose_weights`` picks one and says which. A training
    kernel's output is taken only when it holds the export: one stopped at its budget (checkpoints, no export) is
    refused in one line saying so."""
    places = named_weight_places(root, given, dataset=dataset, model=model, kernel=kernel)
    place = next((p for p in places if p.is_dir()), None)
    if place is None and places:
        log.warning(f"weights not at {', '.join(str(p) for p in places)}; searching {root}")
    try:
        if place is not None and kernel and place in kernel_output_folders(root, kernel):
            return export_weights(place)
        return choose_weights(place or root)
    except WeightsFolderError as e:
        raise KagglePathError(str(e)) from None
