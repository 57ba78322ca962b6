"""A task mix: several sources (Kaggle files, task folders, RE-ARC pair lists, the generator), each with its own
augmentation count and weight, de-duplicated by content, with held-out tasks refused by content.

Why by content: the public sets overlap under different names, and the ARC-AGI-1 evaluation tasks sit in ARC-AGI-2's
training file under their own ids, so a user mixing sets must be protected from training on their own evaluation
tasks however those were renamed, rotated or recoloured (``canonical.py`` says what counts as the same task).

The mix needs no model or tokenizer, so a run loads and checks it before loading the model.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from arc_kit.config.training import DataSettings, SourceSettings
from arc_kit.core.named_data import NAMED_SETS, resolve_task_path
from arc_kit.core.tasks import (
    Pair,
    Task,
    TaskFileError,
    load_tasks,
    parse_task,
    read_json,
    solutions_path_for,
    to_grid,
)
from arc_kit.errors import ArcKitError
from arc_kit.training.canonical import answer_digests, pair_digests, task_digest
from arc_kit.training.dataset import CompactTasks, auto_num_proc

log = logging.getLogger(__name__)

BUILTIN_HELD_OUT = {"arc-agi-2-evaluation": "arc-agi-2-evaluation.txt"}


class MixError(ArcKitError, ValueError):
    """A source cannot be used (a task id in two sources with different content, a source named twice)."""


@dataclass
class Source:
    """One source's tasks after the cap, the held-out refusal and de-duplication."""

    name: str
    augmentations: int
    weight: float
    tasks: CompactTasks  # reads back as Task objects
    loaded: int = 0
    refused_held_out: list[str] = field(default_factory=list)  # task ids
    duplicates: int = 0

    def report(self) -> dict[str, Any]:
        return {"name": self.name, "loaded": self.loaded, "kept": len(self.tasks), "duplicates": self.duplicates,
                "refused_held_out": len(self.refused_held_out), "refused_ids": self.refused_held_out[:50],
                "augmentations": self.augmentations, "weight": self.weight}


@dataclass
class HeldOut:
    """Digests of the held-out tasks (whole tasks) and of their solved test pairs (answers)."""

    tasks: set[str] = field(default_factory=set)
    answers: set[str] = field(default_factory=set)
    names: list[str] = field(default_factory=list)

    def reason(self, task: Task, digest: str | None = None) -> str | None:
        """Why the task may not be trained on, or None. ``digest``: its ``task_digest`` when already known."""
        if (digest or task_digest(task)) in self.tasks:
            return "same task"
        if self.answers and pair_digests(task) & self.answers:
            return "holds a held-out answer"
        return None


def short_forms(d: DataSettings) -> list[SourceSettings]:
    """``data.challenges``/``solutions``/``synthetic`` as sources (they come first), then ``data.sources``."""
    out = [SourceSettings(path=c, solutions=d.solutions[i] if d.solutions else "") for i, c in enumerate(d.challenges)]
    if d.synthetic.rules:
        out.append(SourceSettings(synthetic=d.synthetic))
    return out + list(d.sources)


def source_name(s: SourceSettings) -> str:
    if s.name:
        return s.name
    if not s.path:
        return f"synthetic({','.join(s.synthetic.rules)}, seed={s.synthetic.seed})"
    return s.path if s.path in NAMED_SETS else Path(s.path).name


# ---------------------------------------------------------------------------------------------------------------
# Reading sources


def _pairs_to_tasks(pairs: list[Any], stem: str, where: str, per_task: int) -> list[Task]:
    """RE-ARC's layout: a JSON list of {input, output}, cut into tasks of ``per_task`` pairs (the last the test)."""
    parsed = []
    for i, p in enumerate(pairs):
        if not isinstance(p, dict) or "input" not in p or "output" not in p:
            raise TaskFileError(f"{where}: item {i} must be an object with 'input' and 'output'")
        parsed.append(Pair(to_grid(p["input"], f"{where}[{i}].input"), to_grid(p["output"], f"{where}[{i}].output")))
    return [Task(f"{stem}-{k // per_task:05d}", tuple(parsed[k : k + per_task - 1]), (parsed[k + per_task - 1],))
            for k in range(0, len(parsed) - per_task + 1, per_task)]


def _read_folder(folder: Path, per_task: int) -> list[Task]:
    files = sorted(folder.rglob("*.json"))
    if not files:
        raise TaskFileError(f"{folder}: no *.json task files in this folder or below it")
    tasks = []
    for file in files:
        stem = file.relative_to(folder).with_suffix("").as_posix()
        raw = read_json(file)
        if isinstance(raw, list):
            tasks += _pairs_to_tasks(raw, stem, str(file), per_task)
        else:
            tasks.append(parse_task(stem, raw, str(file)))
    return tasks


def read_source(s: SourceSettings, keep: Callable[[int], bool] | None = None) -> Iterator[Task]:
    """The tasks of one source, in a fixed order, one at a time; a broken file raises ``TaskFileError`` naming it.
    ``keep(i)`` picks tasks by position (the generator then makes only those)."""
    if not s.path:
        from arc_kit.core.synthetic import iter_tasks

        g = s.synthetic
        indices = (i for i in range(source_size(s)) if keep is None or keep(i))
        yield from iter_tasks(g.rules, indices, g.seed, g.sizes, g.n_train, g.n_test)
        return
    tasks = _read_files(s)
    yield from (t for i, t in enumerate(tasks) if keep is None or keep(i))


def source_size(s: SourceSettings) -> int:
    """How many tasks a source has before any cap (files are read to count)."""
    return (s.synthetic.n_tasks or 100) if not s.path else len(_read_files(s))


def _read_files(s: SourceSettings) -> list[Task]:
    path = _resolve(s.path, "data")
    if path.is_dir():
        return _read_folder(path, s.pairs_per_task)
    raw = read_json(path)
    if isinstance(raw, list):
        return _pairs_to_tasks(raw, path.stem, str(path), s.pairs_per_task)
    solutions = _resolve(s.solutions, "data", solutions=True) if s.solutions else solutions_path_for(path)
    return list(load_tasks(path, solutions))


def _resolve(value: str, where: str, solutions: bool = False) -> Path:
    """A path as given, or a named data set's file (``arc_kit.core.named_data``); an error names the config field."""
    try:
        return resolve_task_path(value, solutions=solutions)
    except TaskFileError as e:
        raise TaskFileError(f"{where}: {e}") from None


def load_held_out(names: list[str]) -> HeldOut:
    """Digests of every held-out entry: a built-in digest list, a named data set, or a challenges file / folder
    (solutions found beside)."""
    held = HeldOut(names=list(names))
    for name in names:
        if name in BUILTIN_HELD_OUT:
            text = (resources.files("arc_kit") / "data" / "held_out" / BUILTIN_HELD_OUT[name]).read_text()
            for line in text.splitlines():
                kind, _, digest = line.partition(" ")
                (held.tasks if kind == "task" else held.answers).add(digest)
            continue
        if not Path(name).exists() and name not in NAMED_SETS:
            raise TaskFileError(f"data.held_out: {name} is neither a file, a folder, a named data set "
                                f"({', '.join(NAMED_SETS)}) nor a built-in digest list ({', '.join(BUILTIN_HELD_OUT)})")
        for task in read_source(SourceSettings(path=name)):
            held.tasks.add(task_digest(task))
            held.answers |= answer_digests(task)
    return held


def write_held_out_digests(tasks: list[Task], path: Path) -> None:
    """The built-in list's format: ``task <digest>`` and ``answer <digest>`` lines (no grids are stored)."""
    lines = sorted({f"task {task_digest(t)}" for t in tasks} | {f"answer {a}" for t in tasks for a in answer_digests(t)})
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------------
# The mix


def _check_chunk(tasks: list[Task], held: HeldOut) -> list[tuple[str, bool]]:
    """(digest, refused) of each task: the costly part of loading a mix (8 transforms per task)."""
    out = []
    for task in tasks:
        digest = task_digest(task)
        out.append((digest, held.reason(task, digest) is not None))
    return out


def _checked(tasks: Iterable[Task], held: HeldOut, workers: int,
             chunk: int = 500) -> Iterator[tuple[Task, str, bool]]:
    """Each task with its digest and whether it is held out, in order; with ``workers`` > 1 the digests are
    computed by that many processes, ``chunk`` tasks at a time (memory stays at a few chunks)."""
    if workers <= 1:
        for task, (digest, refused) in ((t, _check_chunk([t], held)[0]) for t in tasks):
            yield task, digest, refused
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        pending: list[tuple[list[Task], Any]] = []
        for part in _chunks(tasks, chunk):
            pending.append((part, pool.submit(_check_chunk, part, held)))
            if len(pending) > 2 * workers:
                yield from _drain(pending.pop(0))
        for item in pending:
            yield from _drain(item)


def _drain(item: tuple[list[Task], Any]) -> Iterator[tuple[Task, str, bool]]:
    part, future = item
    for task, (digest, refused) in zip(part, future.result(), strict=True):
        yield task, digest, refused


def _chunks(items: Iterable[Task], size: int) -> Iterator[list[Task]]:
    part: list[Task] = []
    for item in items:
        part.append(item)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


def load_mix(d: DataSettings, *, quiet: bool = False) -> list[Source]:
    """Every source's tasks: capped (``max_tasks``), held-out copies refused, repeats dropped (``dedupe``).

    Sources are read in order; a task already kept from an earlier source is the one that stays. A task id used by
    two different tasks is an error naming both sources (ids label the eval split and the logs).
    """
    settings = short_forms(d)
    paths = [s.path for s in settings if s.path]
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise MixError(f"data: {twice[0]} is named twice as a training source")
    held = load_held_out(d.held_out)
    seen: set[str] = set()
    owner: dict[str, tuple[str, str]] = {}  # task id -> (source name, digest)
    out = []
    for i, s in enumerate(settings):
        name = source_name(s)
        files = _read_files(s) if s.path else None  # read once; the generator makes tasks one at a time
        size = len(files) if files is not None else source_size(s)
        src = Source(name, s.augmentations or d.augmentations, s.weight, CompactTasks(), loaded=size)
        picked = None
        if s.max_tasks and size > s.max_tasks:
            picked = set(random.Random(f"mix:{d.seed}:{i}").sample(range(size), s.max_tasks))
        keep = None if picked is None else picked.__contains__
        tasks = read_source(s, keep) if files is None else (t for n, t in enumerate(files) if keep is None or keep(n))
        for task, digest, refused in _checked(tasks, held, d.num_proc or auto_num_proc(size)):
            if refused:
                src.refused_held_out.append(task.task_id)
                continue
            if task.task_id in owner and owner[task.task_id][1] != digest:
                raise MixError(f"task id {task.task_id} names different tasks in {owner[task.task_id][0]} and "
                               f"{name}: rename one (ids label the eval split)")
            if d.dedupe and digest in seen:
                src.duplicates += 1
                continue
            if task.task_id in owner:  # the same task again, kept when dedupe is off: give it its own id
                task = Task(f"{task.task_id}~{i}", task.train, task.test)
            seen.add(digest)
            owner[task.task_id] = (name, digest)
            src.tasks.append(task)
        if not quiet and (src.refused_held_out or src.duplicates):
            log.info(f"data source {name}: {len(src.refused_held_out)} held-out task(s) refused "
                     f"({', '.join(src.refused_held_out[:5])}{', ...' if len(src.refused_held_out) > 5 else ''}), "
                     f"{src.duplicates} duplicate(s) dropped, {len(src.tasks)} of {src.loaded} kept")
        out.append(src)
    if not any(s.tasks for s in out):
        raise MixError("data: no training tasks left after the held-out refusal and de-duplication")
    return out
