"""The submission file: placeholder-first, filled as answers land, written atomically, validated.

Kaggle fails the whole run on a missing task, a missing entry or a missing attempt ("scoring error"), so the file
on disk is complete from the first write: every task, one entry per test input, both attempts, ``[[0]]`` until an
answer replaces it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from arc_kit.core.files import atomic_write_json
from arc_kit.core.tasks import (
    TOO_DEEP,
    Grid,
    TaskFileError,
    grid_to_json,
    read_json,
    read_task_entries,
    to_grid,
)

PLACEHOLDER: Grid = ((0,),)
ATTEMPTS = ("attempt_1", "attempt_2")


class Submission:
    """Attempts per task and test input; ``answered`` tracks which entries hold a real answer."""

    def __init__(self, entries: dict[str, list[dict[str, Grid]]]):
        self.entries = entries
        self.answered: set[tuple[str, int]] = set()

    @classmethod
    def placeholders(cls, task_counts: Mapping[str, int]) -> Submission:
        """One placeholder entry per test input of every task (task id -> number of test inputs)."""
        return cls({tid: [dict.fromkeys(ATTEMPTS, PLACEHOLDER) for _ in range(n)] for tid, n in task_counts.items()})

    def set_attempts(self, task_id: str, test_index: int, attempt_1: Grid | None, attempt_2: Grid | None) -> None:
        """Fill one entry; a missing attempt takes the other one, and a missing pair keeps the placeholder."""
        first = attempt_1 if attempt_1 is not None else attempt_2
        second = attempt_2 if attempt_2 is not None else first
        if first is None:
            return
        self.entries[task_id][test_index] = {"attempt_1": first, "attempt_2": second}
        self.answered.add((task_id, test_index))

    @property
    def num_entries(self) -> int:
        return sum(len(v) for v in self.entries.values())

    @property
    def placeholders_left(self) -> int:
        return self.num_entries - len(self.answered)

    def to_json(self) -> dict[str, list[dict[str, list[list[int]]]]]:
        return {
            tid: [{k: grid_to_json(entry[k]) for k in ATTEMPTS} for entry in entries]
            for tid, entries in self.entries.items()
        }

    def write(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_json())


def read_raw_tasks(challenges_path: str | Path) -> dict[str, Any]:
    """Task id -> the task as written, unvalidated: a challenges file, or a folder of one-JSON-per-task files
    (an unreadable one maps to None, a task nested too deeply to read to ``Unreadable``). A file whose top level
    is not an object raises ``TaskFileError``."""
    path = Path(challenges_path)
    if path.is_dir():
        raw: Any = {}
        for file in sorted(path.glob("*.json")):
            try:
                raw[file.stem] = read_json(file)
            except TaskFileError:
                raw[file.stem] = None
        return raw
    return _task_object(read_task_entries(path), path)


def _task_object(raw: Any, path: Path) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TaskFileError(f"{path}: must be an object mapping task ids to tasks, got {type(raw).__name__}")
    return raw


def entry_counts(raw: Mapping[str, Any]) -> dict[str, int]:
    """Task id -> number of test inputs, read leniently, so a malformed task still gets placeholders.

    An empty test list has no entry to fill; a missing or malformed one gets one placeholder (a guess).
    """
    counts = {}
    for tid, task in raw.items():
        test = task.get("test") if isinstance(task, dict) else None
        counts[tid] = len(test) if isinstance(test, list) else 1
    return counts


def raw_test_counts(challenges_path: str | Path) -> dict[str, int]:
    """``entry_counts`` of a challenges file or folder (no task id, so no placeholder, for a non-object file)."""
    return entry_counts(read_raw_tasks(challenges_path))


def validate_submission(submission: Any, expected_counts: Mapping[str, int]) -> list[str]:
    """Every problem that would make Kaggle refuse the file; an empty list means valid."""
    problems: list[str] = []
    if not isinstance(submission, dict):
        return [f"submission must be an object mapping task ids to entries, got {type(submission).__name__}"]
    for tid, count in expected_counts.items():
        if tid not in submission:
            problems.append(f"task {tid}: missing")
            continue
        entries = submission[tid]
        if not isinstance(entries, list):
            problems.append(f"task {tid}: must be a list of entries, got {type(entries).__name__}")
            continue
        if len(entries) != count:
            problems.append(f"task {tid}: {len(entries)} entries, expected {count} (one per test input)")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                problems.append(f"task {tid}, entry {i}: must be an object with attempt_1 and attempt_2")
                continue
            for attempt in ATTEMPTS:
                if attempt not in entry:
                    problems.append(f"task {tid}, entry {i}: missing {attempt}")
                    continue
                try:
                    to_grid(entry[attempt], f"task {tid}, entry {i}, {attempt}")
                except TaskFileError as e:
                    problems.append(f"bad grid: {e}")
    for tid in submission:
        if tid not in expected_counts:
            problems.append(f"task {tid}: not in the challenges")
    return problems


def validate_submission_file(path: str | Path, challenges_path: str | Path) -> list[str]:
    """Problems of the submission at ``path`` (invalid JSON is one); ``TaskFileError`` when either file cannot
    be read at all or the challenges file holds no tasks, since then there is nothing to judge against."""
    path = Path(path)
    counts = _challenge_counts(Path(challenges_path))
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return [f"{path}: file not found"]
    except IsADirectoryError:
        raise TaskFileError(f"{path}: is a folder, expected a submission JSON file") from None
    except UnicodeDecodeError as e:
        raise TaskFileError(f"{path}: not UTF-8 text (byte {e.start}); a submission must be UTF-8") from None
    except json.JSONDecodeError as e:
        return [f"{path}: not valid JSON ({e.msg} at line {e.lineno})"]
    except RecursionError:
        return [f"{path}: {TOO_DEEP}"]
    return validate_submission(data, counts)


def _challenge_counts(challenges_path: Path) -> dict[str, int]:
    """``raw_test_counts`` of a challenges file (not a folder), refusing one that holds no task objects: against
    it, ``{}`` would pass."""
    raw = _task_object(read_json(challenges_path), challenges_path)
    if not any(isinstance(task, dict) for task in raw.values()):
        raise TaskFileError(f"{challenges_path}: holds no task objects (each value must be an object with "
                            "'train' and 'test')")
    return entry_counts(raw)
