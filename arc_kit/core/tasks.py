"""ARC grids, pairs and tasks; loading and validating task files.

Two layouts are read:
- the competition's: one ``*_challenges.json`` holding every task (and an optional ``*_solutions.json``);
- the ARC-AGI GitHub repos': a folder with one ``<task_id>.json`` per task, test outputs inline when known.

Every check names the file, task id, pair and field, so a broken file is fixed in one look.
"""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arc_kit.errors import ArcKitError

if TYPE_CHECKING:
    import numpy as np

Grid = tuple[tuple[int, ...], ...]
"""A grid as immutable rows of colours 0-9; hashable so answers can be voted on."""

MAX_SIDE = 30
NUM_COLOURS = 10


class TaskFileError(ArcKitError, ValueError):
    """A task file, task or grid breaks the ARC format; the message says where."""


@dataclass(frozen=True)
class Pair:
    input: Grid
    output: Grid | None = None  # None for a test input whose answer is unknown


@dataclass(frozen=True)
class Task:
    task_id: str
    train: tuple[Pair, ...]
    test: tuple[Pair, ...]

    @property
    def has_solutions(self) -> bool:
        return all(p.output is not None for p in self.test)

    def without_solutions(self) -> Task:
        return Task(self.task_id, self.train, tuple(Pair(p.input) for p in self.test))


@dataclass
class TaskSet:
    """Tasks in file order, and where they came from (for error messages and reports)."""

    tasks: dict[str, Task]
    source: str = ""
    errors: dict[str, str] = field(default_factory=dict)  # task id -> why it was skipped (lenient loads only)

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self):
        return iter(self.tasks.values())

    @property
    def num_test_inputs(self) -> int:
        return sum(len(t.test) for t in self.tasks.values())


def freeze_grid(array: np.ndarray) -> Grid:
    """A 2-D array of colours as a ``Grid``: immutable rows of Python ints (``json`` cannot write numpy's)."""
    return tuple(map(tuple, array.tolist()))


def to_grid(value: Any, where: str) -> Grid:
    """Validate a JSON grid (list of rows of ints 0-9, 1..30 per side) and freeze it."""
    if not isinstance(value, list) or not value:
        raise TaskFileError(f"{where}: grid must be a non-empty list of rows, got {_short(value)}")
    if len(value) > MAX_SIDE:
        raise TaskFileError(f"{where}: grid has {len(value)} rows, at most {MAX_SIDE} allowed")
    rows = []
    width = None
    for r, row in enumerate(value):
        if not isinstance(row, list) or not row:
            raise TaskFileError(f"{where}: row {r} must be a non-empty list, got {_short(row)}")
        if width is None:
            width = len(row)
            if width > MAX_SIDE:
                raise TaskFileError(f"{where}: grid has {width} columns, at most {MAX_SIDE} allowed")
        elif len(row) != width:
            raise TaskFileError(f"{where}: ragged grid, row {r} has {len(row)} cells, row 0 has {width}")
        for c, cell in enumerate(row):
            if isinstance(cell, bool) or not isinstance(cell, int) or not 0 <= cell < NUM_COLOURS:
                raise TaskFileError(f"{where}: cell [{r}][{c}] is {_short(cell)}, colours are ints 0-9")
        rows.append(tuple(row))
    return tuple(rows)


def grid_to_json(grid: Grid) -> list[list[int]]:
    return [list(row) for row in grid]


def parse_task(task_id: str, raw: Any, where: str, test_outputs: Any = None) -> Task:
    """Build a Task from its JSON object; ``test_outputs`` comes from a solutions file when there is one."""
    here = f"{where}: task {task_id}"
    if isinstance(raw, Unreadable):
        raise TaskFileError(f"{here}: {raw.why}")
    if not isinstance(raw, Mapping):
        raise TaskFileError(f"{here}: must be an object with 'train' and 'test', got {_short(raw)}")
    for key in ("train", "test"):
        if key not in raw:
            raise TaskFileError(f"{here}: missing field '{key}'")
        if not isinstance(raw[key], list) or not raw[key]:
            raise TaskFileError(f"{here}: field '{key}' must be a non-empty list of pairs")
    train = tuple(_parse_pair(p, f"{here}, train[{i}]", need_output=True) for i, p in enumerate(raw["train"]))
    test = [_parse_pair(p, f"{here}, test[{i}]", need_output=False) for i, p in enumerate(raw["test"])]
    if test_outputs is not None:
        if not isinstance(test_outputs, list) or len(test_outputs) != len(test):
            n = len(test_outputs) if isinstance(test_outputs, list) else _short(test_outputs)
            raise TaskFileError(f"{here}: solutions give {n} test outputs, the task has {len(test)} test inputs")
        test = [
            Pair(p.input, to_grid(out, f"{here}, solutions[{i}]")) for i, (p, out) in enumerate(zip(test, test_outputs, strict=True))
        ]
    return Task(task_id, train, tuple(test))


def _parse_pair(raw: Any, where: str, need_output: bool) -> Pair:
    if not isinstance(raw, Mapping):
        raise TaskFileError(f"{where}: must be an object with 'input'{' and output' if need_output else ''}")
    if "input" not in raw:
        raise TaskFileError(f"{where}: missing field 'input'")
    grid_in = to_grid(raw["input"], f"{where}.input")
    if "output" in raw and raw["output"] is not None:
        return Pair(grid_in, to_grid(raw["output"], f"{where}.output"))
    if need_output:
        raise TaskFileError(f"{where}: missing field 'output'")
    return Pair(grid_in)


TOO_DEEP = "JSON nested deeper than Python's reader goes (an ARC grid is two lists deep)"


def read_json(path: Path) -> Any:
    """The JSON in ``path``; a file that cannot be read or parsed (nested too deeply included) is one
    ``TaskFileError`` naming it."""
    return _read_json(path, entries_one_by_one=False)


def read_task_entries(path: Path) -> Any:
    """``read_json`` for a challenges file, except that an entry of the top-level object nested deeper than the
    JSON reader goes costs that entry only: it reads as ``Unreadable`` (its task id still gets a placeholder)."""
    return _read_json(path, entries_one_by_one=True)


def _read_json(path: Path, entries_one_by_one: bool) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise TaskFileError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise TaskFileError(f"{path}: is a folder, expected a JSON file") from None
    except UnicodeDecodeError as e:
        raise TaskFileError(f"{path}: not UTF-8 text (byte {e.start}); JSON files must be UTF-8") from None
    except OSError as e:
        raise TaskFileError(f"{path}: cannot read ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise TaskFileError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        if not entries_one_by_one:
            raise TaskFileError(f"{path}: {TOO_DEEP}") from None
    try:
        return _entries_one_by_one(path.read_text(encoding="utf-8"), path)
    except json.JSONDecodeError as e:
        raise TaskFileError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None


@dataclass(frozen=True)
class Unreadable:
    """An entry of a JSON file that could not be built (``why`` says what is wrong with it)."""

    why: str


_SPACE = re.compile(r"[ \t\n\r]*")
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


def _entries_one_by_one(text: str, path: Path) -> dict[str, Any]:
    """The top-level object of ``text`` decoded one value at a time, a value too deep for the decoder
    becoming ``Unreadable``. By hand because the standard library has no incremental reader, and the one that
    is needed must keep going past a value it cannot build."""
    decoder = json.JSONDecoder()

    def skip_space(i: int) -> int:
        return _SPACE.match(text, i).end()

    def expect(i: int, chars: str) -> int:
        if text[i : i + 1] not in tuple(chars):
            raise json.JSONDecodeError(f"expected {' or '.join(repr(c) for c in chars)}", text, i)
        return skip_space(i + 1)

    i = skip_space(0)
    if text[i : i + 1] != "{":
        raise TaskFileError(f"{path}: {TOO_DEEP}")
    entries: dict[str, Any] = {}
    i = skip_space(i + 1)
    while text[i : i + 1] != "}":
        if entries:
            i = expect(i, ",")
        key, i = decoder.raw_decode(text, i)
        if not isinstance(key, str):
            raise json.JSONDecodeError("expected a string key", text, i)
        i = expect(skip_space(i), ":")
        try:
            entries[key], i = decoder.raw_decode(text, i)
        except RecursionError:
            entries[key], i = Unreadable(TOO_DEEP), _end_of_value(text, i)
        i = skip_space(i)
    if skip_space(i + 1) != len(text):
        raise json.JSONDecodeError("extra data", text, skip_space(i + 1))
    return entries


def _end_of_value(text: str, start: int) -> int:
    """Where the array or object starting at ``start`` ends, counting brackets outside strings."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text, start):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
        elif token in ("]", "}"):
            depth -= 1
            if depth == 0:
                return match.end()
    raise json.JSONDecodeError("unterminated array or object", text, start)


def solutions_path_for(challenges: Path) -> Path | None:
    """``x_challenges.json`` -> ``x_solutions.json`` when that file exists beside it."""
    if challenges.name.endswith("_challenges.json"):
        candidate = challenges.with_name(challenges.name.replace("_challenges.json", "_solutions.json"))
        if candidate.exists():
            return candidate
    return None


def load_tasks(
    path: str | Path,
    solutions: str | Path | None = None,
    *,
    strict: bool = True,
) -> TaskSet:
    """Load a challenges file (with optional solutions) or a folder of one-JSON-per-task files.

    ``strict=False`` keeps going past a malformed task and records why in ``TaskSet.errors``: the kernel uses it so
    one bad task in the hidden file costs that task, not the run.
    """
    path = Path(path)
    if path.is_dir():
        return _load_folder(path, strict)
    raw = read_json(path)
    if not isinstance(raw, Mapping):
        raise TaskFileError(f"{path}: must be an object mapping task ids to tasks, got {_short(raw)}")
    sols: Mapping[str, Any] = {}
    sol_path = Path(solutions) if solutions else None
    if sol_path is not None:
        sols = read_json(sol_path)
        if not isinstance(sols, Mapping):
            raise TaskFileError(f"{sol_path}: must be an object mapping task ids to lists of grids")
        missing = [tid for tid in raw if tid not in sols]
        if missing and strict:
            raise TaskFileError(f"{sol_path}: no solutions for task {missing[0]} ({len(missing)} tasks missing)")
    where = str(path) if sol_path is None else f"{path} (+ {sol_path.name})"
    return parse_tasks(raw, where, sols if sol_path else None, strict=strict)


def parse_tasks(raw: Mapping[str, Any], where: str, solutions: Mapping[str, Any] | None = None, *,
                strict: bool = True) -> TaskSet:
    """Tasks from an already-read challenges object (the runner reads the file once and counts its entries too)."""
    tasks: dict[str, Task] = {}
    errors: dict[str, str] = {}
    for task_id, task_raw in raw.items():
        try:
            tasks[task_id] = parse_task(task_id, task_raw, where, solutions.get(task_id) if solutions else None)
        except TaskFileError as e:
            if strict:
                raise
            errors[task_id] = str(e)
    return TaskSet(tasks, where, errors)


def _load_folder(folder: Path, strict: bool) -> TaskSet:
    files = sorted(folder.glob("*.json"))
    if not files:
        raise TaskFileError(f"{folder}: no *.json task files in this folder")
    tasks: dict[str, Task] = {}
    errors: dict[str, str] = {}
    for file in files:
        try:
            tasks[file.stem] = parse_task(file.stem, read_json(file), str(file))
        except TaskFileError as e:
            if strict:
                raise
            errors[file.stem] = str(e)
    return TaskSet(tasks, str(folder), errors)


def task_to_json(task: Task) -> dict[str, Any]:
    """The challenge object of a task (solutions left out), as the competition file holds it."""
    return {
        "train": [{"input": grid_to_json(p.input), "output": grid_to_json(p.output)} for p in task.train],
        "test": [{"input": grid_to_json(p.input)} for p in task.test],
    }


def write_task_files(tasks: Iterable[Task], challenges: Path, solutions: Path | None = None) -> None:
    """Write tasks in the competition layout (used by the synthetic generator and tests)."""
    from arc_kit.core.files import atomic_write_json

    tasks = list(tasks)
    atomic_write_json(challenges, {t.task_id: task_to_json(t) for t in tasks})
    if solutions is not None:
        atomic_write_json(solutions, {t.task_id: [grid_to_json(p.output) for p in t.test] for t in tasks})


def _short(value: Any, limit: int = 60) -> str:
    """A value in an error message: kept short, however large or deeply nested (``reprlib`` bounds both)."""
    text = reprlib.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
