"""Readers for the published layouts of ARC training corpora, a few tasks at a time.

The layouts (``[[data.sources]] kind``; ``auto`` finds it from the path, ``detect_kind``):

- ``challenges``: a Kaggle-layout challenges file (solutions beside it) or a named data set.
- ``task_files``: a folder of one task object per JSON file, searched recursively (the ARC-AGI repositories,
  ConceptARC's ``corpus/<concept>/<id>.json``, MINI-ARC). A task's id is its path below the folder.
- ``pair_lists``: JSON lists of ``{"input", "output"}``, one file or a folder of them searched recursively (RE-ARC's
  ``tasks/<id>.json``, NVARC's synthetic puzzles in folders by subset and seed), each cut into tasks of
  ``pairs_per_task`` pairs, the last one the test pair.
- ``chat``: a ``datasets`` folder saved with ``save_to_disk`` whose rows are ``{"puzzle_name", "messages": [{"role",
  "content"}, ...]}``, user and assistant turns in turn, each a grid as digit rows joined by newlines (NVARC's
  augmented puzzles); or a folder holding several such folders (read in name order). A row is a task: its last
  user/assistant pair is the test pair.
- ``jsonl``: JSON lines, one problem each, ``{"examples": [[input, output], ...]}`` (BARC's ARC-Heavy; ``source``,
  ``seeds`` and other fields are ignored), plain or ``.gz``, one file or a folder of them. The last example is the
  test pair.

Reading is split in two so that millions of rows never sit in memory at once: ``iter_units`` walks the source in
the main process and hands out small units of work (a file path, a line, a chat row), and ``parse_unit`` turns a
unit into tasks, in worker processes when there are many (``mix.load_mix``). A unit that cannot be parsed raises
``TaskFileError`` whose message names the file, line or row, so a bad one costs one line (``data.on_bad_row``).

Chat folders are read with pyarrow's stream reader rather than ``datasets.load_from_disk``: the latter maps the
whole folder into memory, and every page of a map that a process has read counts in its resident memory, which for
a 3.2M-row corpus is gigabytes. The stream reader holds one record batch at a time.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from arc_kit.core.named_data import NAMED_SETS
from arc_kit.core.tasks import MAX_SIDE, Pair, Task, TaskFileError, parse_task, read_json, to_grid
from arc_kit.training.dataset import task_from_record

KINDS = ("challenges", "task_files", "pair_lists", "chat", "jsonl", "synthetic")
# Kinds whose every unit is exactly one task: a seeded max_tasks cap can pick units before they are parsed.
ONE_TASK_PER_UNIT = frozenset({"records", "task_files", "chat", "jsonl"})
DATASET_MARKERS = ("state.json", "dataset_info.json")  # what save_to_disk writes beside its Arrow files
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson")
DETECT_SAMPLE = 20  # files looked at to tell task files from pair lists

Unit = tuple[str, Any]  # (where, payload): where names the file, line or row for error messages


# ---------------------------------------------------------------------------------------------------------------
# Which layout


def detect_kind(path: str) -> str:
    """The layout of a source path (see the module docstring); a path none fits is one ``TaskFileError``."""
    if not path:
        return "synthetic"
    if path in NAMED_SETS:
        return "challenges"
    p = Path(path)
    if not p.exists():
        raise TaskFileError(f"{path}: no such file or folder (and not a named data set: "
                            f"{', '.join(NAMED_SETS)})")
    if p.is_file():
        if p.name.endswith(JSONL_SUFFIXES):
            return "jsonl"
        return "pair_lists" if _first_char(p) == "[" else "challenges"
    if _dataset_folders(p, first_only=True):
        return "chat"
    shapes = []
    for file in _walk(p, (".json", *JSONL_SUFFIXES)):
        if file.name.endswith(JSONL_SUFFIXES):
            return "jsonl"
        shape = _json_shape(file)
        if shape:
            shapes.append(shape)
        if len(shapes) >= DETECT_SAMPLE:
            break
    if not shapes:
        raise TaskFileError(f"{path}: no task files, pair lists, JSON lines or saved datasets in this folder or "
                            "below it")
    return max(("task_files", "pair_lists"), key=shapes.count)


def _first_char(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read(256).lstrip()[:1]


def _json_shape(path: Path) -> str | None:
    """task_files for a task object, pair_lists for a list, None for anything else (metadata, broken JSON)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(raw, list):
        return "pair_lists"
    return "task_files" if isinstance(raw, dict) and "train" in raw else None


def _walk(folder: Path, suffixes: tuple[str, ...]) -> Iterator[Path]:
    """Files below ``folder`` ending in one of ``suffixes``, in the order of their sorted paths, found one folder
    at a time (a listing of 100k files is never held whole)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        raise TaskFileError(f"{folder}: cannot list this folder ({e.strerror or e})") from None
    for entry in entries:
        if entry.is_dir():
            yield from _walk(Path(entry.path), suffixes)
        elif entry.name.endswith(suffixes):
            yield Path(entry.path)


def _dataset_folders(folder: Path, first_only: bool = False) -> list[Path]:
    """The ``save_to_disk`` folders at or below ``folder`` (a folder that is one is not searched further), in
    name order; a ``DatasetDict``'s splits in the order it lists them."""
    if any((folder / m).is_file() for m in DATASET_MARKERS):
        return [folder]
    if (folder / "dataset_dict.json").is_file():
        raw = read_json(folder / "dataset_dict.json")
        splits = raw.get("splits") if isinstance(raw, dict) else None
        if not isinstance(splits, list) or not all(isinstance(s, str) and "/" not in s and s not in ("", ".", "..")
                                                   for s in splits):
            raise TaskFileError(f"{folder / 'dataset_dict.json'}: 'splits' must list the split folders' names")
        return [folder / s for s in splits]
    found: list[Path] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        found += _dataset_folders(sub, first_only)
        if found and first_only:
            break
    return found


# ---------------------------------------------------------------------------------------------------------------
# Units of work, in the main process


def iter_units(kind: str, path: Path) -> Iterator[Unit]:
    """The units of a source of one of the file kinds, in a fixed order."""
    if kind in ("task_files", "pair_lists"):
        for file in _walk(path, (".json",)) if path.is_dir() else iter([path]):
            yield str(file), (str(file), _stem(file, path))
    elif kind == "jsonl":
        yield from _jsonl_units(path)
    elif kind == "chat":
        yield from _chat_units(path)
    else:
        raise ValueError(f"no units for kind {kind!r}")


def _stem(file: Path, root: Path) -> str:
    """A file's name below its source, less a ``.json`` or ``.jsonl`` suffix: ``a.jsonl``, ``a.jsonl.gz`` and
    ``a.ndjson`` in one folder keep apart ids."""
    name = file.name if file == root else file.relative_to(root).as_posix()
    for suffix in (".json", ".jsonl"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def _jsonl_units(path: Path) -> Iterator[Unit]:
    """Each non-blank line of each JSON-lines file, as bytes: a line that is not UTF-8 is a bad row of its own
    (``task_from_problem`` names it), not the end of the file."""
    files = list(_walk(path, JSONL_SUFFIXES)) if path.is_dir() else [path]
    if not files:
        raise TaskFileError(f"{path}: no JSON-lines files (*.jsonl, *.jsonl.gz) in this folder or below it")
    for file in files:
        stem = _stem(file, path)
        opener = gzip.open if file.name.endswith(".gz") else open
        try:
            with opener(file, "rb") as f:
                for number, line in enumerate(f, 1):
                    if line.strip():
                        yield f"{file} line {number}", (line, f"{stem}/{number}")
        except (OSError, EOFError, zlib.error) as e:
            raise TaskFileError(f"{file}: cannot read ({getattr(e, 'strerror', None) or e})") from None


def _chat_units(path: Path) -> Iterator[Unit]:
    folders = _dataset_folders(path) if path.is_dir() else []
    if not folders:
        raise TaskFileError(f"{path}: not a datasets folder saved with save_to_disk (no state.json or "
                            "dataset_info.json in it or in a folder below it)")
    for folder in folders:
        row = 0
        name = folder.relative_to(path).as_posix() if folder != path else folder.name  # unique in the source
        for file in _arrow_files(folder):
            for batch in _record_batches(file):
                if "messages" not in batch.schema.names:
                    raise TaskFileError(f"{folder}: rows have no 'messages' column (columns: "
                                        f"{', '.join(batch.schema.names)}); a chat source needs "
                                        "{puzzle_name, messages: [{role, content}]} rows")
                columns = [c for c in ("puzzle_name", "messages") if c in batch.schema.names]
                for record in batch.select(columns).to_pylist():
                    puzzle = str(record.get("puzzle_name") or "row")
                    yield f"{folder} row {row}", (record["messages"], f"{name}/{puzzle}/{row}")
                    row += 1


def _record_batches(file: Path) -> Iterator[Any]:
    """The record batches of one Arrow stream file, one at a time; a missing or damaged file is one
    ``TaskFileError`` naming it."""
    import pyarrow as pa

    try:
        with pa.OSFile(str(file)) as source:
            yield from pa.ipc.open_stream(source)
    except (OSError, pa.ArrowException) as e:
        raise TaskFileError(f"{file}: not a readable Arrow file ({e})") from None


def _arrow_files(folder: Path) -> list[Path]:
    state = folder / "state.json"
    if state.is_file():
        files = read_json(state).get("_data_files") or []
        named = [folder / f["filename"] for f in files if isinstance(f, dict) and "filename" in f]
        if named:
            return named
    found = sorted(folder.glob("*.arrow"))
    if not found:
        raise TaskFileError(f"{folder}: no Arrow files (data-*.arrow) in this datasets folder")
    return found


def count_tasks(kind: str, path: Path, pairs_per_task: int) -> int:
    """How many tasks a source of one of the file kinds holds, for a seeded ``max_tasks`` pick (a bad unit
    counts as none; the reading pass names it)."""
    if kind in ONE_TASK_PER_UNIT:
        if kind == "chat":
            return sum(_chat_rows(folder) for folder in _dataset_folders(path))
        return sum(1 for _ in iter_units(kind, path))
    total = 0
    for _, (file, _stem) in iter_units(kind, path):
        try:
            raw = read_json(Path(file))
        except TaskFileError:
            continue
        total += len(raw) // pairs_per_task if isinstance(raw, list) else 0
    return total


def _chat_rows(folder: Path) -> int:
    """Rows of a saved dataset, counted from its Arrow files (``dataset_info.json`` may describe the dataset
    before a ``select`` or ``filter``)."""
    return sum(batch.num_rows for file in _arrow_files(folder) for batch in _record_batches(file))


# ---------------------------------------------------------------------------------------------------------------
# Parsing, in worker processes


def parse_unit(kind: str, unit: Unit, pairs_per_task: int) -> list[Task]:
    """The tasks of one unit; a malformed one raises ``TaskFileError`` naming it."""
    where, payload = unit
    if kind == "records":
        return [task_from_record(payload)]
    if kind == "task_files":
        file, stem = payload
        return [parse_task(stem, read_json(Path(file)), file)]
    if kind == "pair_lists":
        file, stem = payload
        raw = read_json(Path(file))
        if not isinstance(raw, list):
            raise TaskFileError(f"{file}: not a pair list (a JSON list of {{input, output}}), got a "
                                f"{type(raw).__name__}")
        return pairs_to_tasks(raw, stem, file, pairs_per_task)
    if kind == "jsonl":
        line, task_id = payload
        return [task_from_problem(line, task_id, where)]
    if kind == "chat":
        messages, task_id = payload
        return [task_from_messages(messages, task_id, where)]
    raise ValueError(f"unknown unit kind {kind!r}")


def pairs_to_tasks(pairs: list[Any], stem: str, where: str, per_task: int) -> list[Task]:
    """A list of {input, output} cut into tasks of ``per_task`` pairs (the last the test); a short tail is left
    out."""
    parsed = []
    for i, p in enumerate(pairs):
        if not isinstance(p, dict) or "input" not in p or "output" not in p:
            raise TaskFileError(f"{where}: item {i} must be an object with 'input' and 'output'")
        parsed.append(Pair(to_grid(p["input"], f"{where}[{i}].input"), to_grid(p["output"], f"{where}[{i}].output")))
    return [Task(f"{stem}-{k // per_task:05d}", tuple(parsed[k : k + per_task - 1]), (parsed[k + per_task - 1],))
            for k in range(0, len(parsed) - per_task + 1, per_task)]


def task_from_problem(line: bytes | str, task_id: str, where: str) -> Task:
    """One JSON line: ``{"examples": [[input, output], ...]}`` (BARC), or a task object with train and test."""
    try:
        raw = json.loads(line.decode("utf-8-sig") if isinstance(line, bytes) else line)
    except UnicodeDecodeError as e:
        raise TaskFileError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except ValueError as e:
        raise TaskFileError(f"{where}: not JSON ({e})") from None
    except RecursionError:
        raise TaskFileError(f"{where}: not a problem (JSON nested too deep to read)") from None
    if isinstance(raw, dict) and "train" in raw:
        return parse_task(task_id, raw, where)
    examples = raw.get("examples") if isinstance(raw, dict) else None
    if not isinstance(examples, list) or len(examples) < 2:
        raise TaskFileError(f"{where}: a problem needs 'examples', a list of at least 2 [input, output] pairs")
    pairs = []
    for i, ex in enumerate(examples):
        if isinstance(ex, dict) and "input" in ex and "output" in ex:
            inp, out = ex["input"], ex["output"]
        elif isinstance(ex, list) and len(ex) == 2:
            inp, out = ex
        else:
            raise TaskFileError(f"{where}: examples[{i}] must be [input, output]")
        pairs.append(Pair(to_grid(inp, f"{where}: examples[{i}][0]"), to_grid(out, f"{where}: examples[{i}][1]")))
    return Task(task_id, tuple(pairs[:-1]), (pairs[-1],))


def task_from_messages(messages: Any, task_id: str, where: str) -> Task:
    """A chat row's turns as a task: user/assistant pairs in order (system turns skipped), the last pair the
    test."""
    if not isinstance(messages, list):
        raise TaskFileError(f"{where}: 'messages' must be a list of {{role, content}}")
    turns = [m for m in messages if not (isinstance(m, dict) and m.get("role") == "system")]
    if len(turns) < 4 or len(turns) % 2:
        raise TaskFileError(f"{where}: needs user/assistant turns in pairs, at least 2 pairs; got {len(turns)} "
                            "turns")
    pairs = []
    for i in range(0, len(turns), 2):
        user, assistant = turns[i], turns[i + 1]
        roles = (user.get("role") if isinstance(user, dict) else None,
                 assistant.get("role") if isinstance(assistant, dict) else None)
        if roles != ("user", "assistant"):
            raise TaskFileError(f"{where}: turns {i} and {i + 1} must be user then assistant, got {roles}")
        pairs.append(Pair(grid_from_text(user.get("content"), f"{where}: turn {i}"),
                          grid_from_text(assistant.get("content"), f"{where}: turn {i + 1}")))
    return Task(task_id, tuple(pairs[:-1]), (pairs[-1],))


def grid_from_text(text: Any, where: str) -> tuple[tuple[int, ...], ...]:
    """A grid written as digit rows joined by newlines (NVARC's layout)."""
    if not isinstance(text, str) or not text.strip():
        raise TaskFileError(f"{where}: a grid must be digit rows joined by newlines, got {str(text)[:40]!r}")
    rows = text.strip().split("\n")
    width = len(rows[0])
    if len(rows) > MAX_SIDE or width > MAX_SIDE:
        raise TaskFileError(f"{where}: grid is {len(rows)}x{width}, at most {MAX_SIDE}x{MAX_SIDE} allowed")
    for r, row in enumerate(rows):
        if len(row) != width or not row.isdigit() or not row.isascii():
            raise TaskFileError(f"{where}: row {r} ({row[:40]!r}) is not {width} digits")
    return tuple(tuple(map(int, row)) for row in rows)


def task_to_messages(task: Task) -> list[dict[str, str]]:
    """A task as a chat row's turns in NVARC's layout (``task_from_messages`` reads it back): a user turn per
    input, an assistant turn per output, train pairs then test pairs. Benchmarks and tests write corpora with it."""
    def text(grid: Any) -> str:
        return "\n".join("".join(map(str, row)) for row in grid)

    turns = []
    for pair in (*task.train, *task.test):
        turns += [{"role": "user", "content": text(pair.input)}, {"role": "assistant", "content": text(pair.output)}]
    return turns
