"""A task mix: several sources (Kaggle files, task folders, pair lists, chat rows, JSON-lines problems, the
generator), each with its own augmentation count and weight, de-duplicated by content, with held-out tasks refused
by content.

Why by content: the public sets overlap under different names, and the ARC-AGI-1 evaluation tasks sit in ARC-AGI-2's
training file under their own ids, so a user mixing sets must be protected from training on their own evaluation
tasks however those were renamed, rotated or recoloured (``canonical.py`` says what counts as the same task). The
published corpora are built from the public sets too (NVARC's ``arc2_evaluation6`` is the ARC-AGI-2 evaluation
tasks, re-ordered and augmented), so a task, chat row or cut of a pair list that holds any pair of a held-out task
is refused as well.

Why streaming: a corpus can hold millions of rows. Each source is read a few units at a time (``readers.py``),
parsed and digested by worker processes (``data.num_proc``), and the tasks kept go to a file on disk
(``dataset.CompactTasks``); what the main process keeps per task is a few 64-bit numbers.

The mix needs no model or tokenizer, so a run loads and checks it before loading the model.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from arc_kit.config.training import DataSettings, SourceSettings
from arc_kit.core.files import made_folder
from arc_kit.core.named_data import NAMED_SETS, resolve_task_path
from arc_kit.core.tasks import Task, TaskFileError, load_tasks, read_json, solutions_path_for
from arc_kit.errors import ArcKitError
from arc_kit.training import readers
from arc_kit.training.canonical import (
    answer_digests,
    exact_digest,
    pair_digests,
    pair_digests_where,
    pair_key,
    solved_pairs,
    task_digest,
)
from arc_kit.training.dataset import CompactTasks, hash_seed, id_hash, task_record

log = logging.getLogger(__name__)

BUILTIN_HELD_OUT = {"arc-agi-2-evaluation": "arc-agi-2-evaluation.txt"}
INLINE_UNITS = 2000  # with data.num_proc = 0, a source's first units are read in this process; past them, workers
CHUNK_UNITS = 64  # units per job sent to a worker
NAMED_BAD_ROWS = 5  # bad rows named in the log and run_info.json per source (all are counted)


class MixError(ArcKitError, ValueError):
    """A source cannot be used (a task id in two sources with different content, a source named twice)."""


@dataclass
class Source:
    """One source's tasks after the cap, the held-out refusal and de-duplication."""

    name: str
    augmentations: int
    weight: float
    tasks: CompactTasks  # reads back as Task objects
    kind: str = "synthetic"  # the layout read (readers.KINDS), as given or found
    as_given: bool = False  # rows = "as_given": one example per task, as it is
    loaded: int = 0
    refused_held_out: list[str] = field(default_factory=list)  # task ids
    duplicates: int = 0
    bad_rows: int = 0  # malformed files or rows left out (data.on_bad_row = skip)
    bad_examples: list[str] = field(default_factory=list)  # the first NAMED_BAD_ROWS reasons

    def report(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "rows": "as_given" if self.as_given else "tasks",
                "loaded": self.loaded, "kept": len(self.tasks), "duplicates": self.duplicates,
                "refused_held_out": len(self.refused_held_out), "refused_ids": self.refused_held_out[:50],
                "bad_rows": self.bad_rows, "bad_examples": self.bad_examples,
                "augmentations": self.augmentations, "weight": self.weight}


@dataclass
class HeldOut:
    """Digests of the held-out tasks (whole tasks), of their solved test pairs (answers) and of their train
    pairs, and the cheap ``pair_key`` of every one of their pairs (a pair whose key no held-out pair has is not
    digested)."""

    tasks: set[str] = field(default_factory=set)
    answers: set[str] = field(default_factory=set)
    pairs: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    names: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tasks or self.answers or self.pairs)

    def reason(self, task: Task, digest: str | None) -> str | None:
        """Why the task may not be trained on, or None. ``digest``: its ``task_digest``, or None where it was not
        computed (rows used as given): a copy of a held-out task holds its pairs, so the pair check catches it."""
        if digest is not None and digest in self.tasks:
            return "same task"
        if self.answers or self.pairs:
            found = pair_digests_where(task, self.keys) if self.keys else pair_digests(task)
            if not found.isdisjoint(self.answers | self.pairs):
                return "holds a held-out pair"
        return None

    def add(self, task: Task) -> None:
        self.tasks.add(task_digest(task))
        self.answers |= answer_digests(task)
        self.pairs |= train_pair_digests(task)
        self.keys |= {pair_key(i, o) for i, o in solved_pairs(task)}


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


def source_kind(s: SourceSettings) -> str:
    """The layout of a source: as given, or found from its path (``readers.detect_kind``)."""
    if s.path:  # a path that is neither a file, a folder nor a named set, in the kit's words
        try:
            _resolve(s.path, f"data source {source_name(s)}")
        except TaskFileError as e:
            if Path(s.path).is_absolute():
                raise
            raise TaskFileError(f"{e} (relative paths are read from {Path.cwd()})") from None
    return s.kind if s.kind != "auto" else readers.detect_kind(s.path)


# ---------------------------------------------------------------------------------------------------------------
# Reading sources


def _units(s: SourceSettings, kind: str, keep: Any = None) -> tuple[str, Iterator[readers.Unit]]:
    """(unit kind, units) of a source. The generator and challenges files are made or read here (the generator
    only the tasks ``keep`` picks; a challenges file is small) and travel as task records; the file kinds are
    walked by ``readers.iter_units``."""
    if kind == "synthetic":
        from arc_kit.core.synthetic import iter_tasks

        g = s.synthetic
        picked = (i for i in range(_synthetic_size(s)) if keep is None or keep[i])
        tasks = iter_tasks(g.rules, picked, g.seed, g.sizes, g.n_train, g.n_test)
        return "records", ((t.task_id, task_record(t)) for t in tasks)
    if kind == "challenges":
        return "records", ((t.task_id, task_record(t)) for t in _read_challenges(s))
    return kind, readers.iter_units(kind, _resolve(s.path, "data"))


def _synthetic_size(s: SourceSettings) -> int:
    return s.synthetic.n_tasks or 100


def _read_challenges(s: SourceSettings) -> list[Task]:
    path = _resolve(s.path, "data")
    if path.is_dir():
        return list(load_tasks(path))
    raw = read_json(path)
    if isinstance(raw, list):
        raise TaskFileError(f"{path}: a JSON list is a pair list, not a challenges file (kind = pair_lists)")
    solutions = _resolve(s.solutions, "data", solutions=True) if s.solutions else solutions_path_for(path)
    return list(load_tasks(path, solutions))


def _source_size(s: SourceSettings, kind: str) -> int:
    """How many tasks a source has before any cap (files are read to count)."""
    if kind == "synthetic":
        return _synthetic_size(s)
    if kind == "challenges":
        return len(_read_challenges(s))
    return readers.count_tasks(kind, _resolve(s.path, "data"), s.pairs_per_task)


def _resolve(value: str, where: str, solutions: bool = False) -> Path:
    """A path as given, or a named data set's file (``arc_kit.core.named_data``); an error names the config field."""
    try:
        return resolve_task_path(value, solutions=solutions)
    except TaskFileError as e:
        raise TaskFileError(f"{where}: {e}") from None


def read_source(s: SourceSettings) -> Iterator[Task]:
    """Every task of a small source, in order, in this process (held-out sets); a bad unit raises
    ``TaskFileError`` naming it."""
    unit_kind, units = _units(s, source_kind(s))
    for unit in units:
        yield from readers.parse_unit(unit_kind, unit, s.pairs_per_task)


def load_held_out(names: list[str]) -> HeldOut:
    """Digests of every held-out entry: a built-in digest list, a named data set, or a challenges file / folder
    (solutions found beside)."""
    held = HeldOut(names=list(names))
    for name in names:
        if name in BUILTIN_HELD_OUT:
            text = (resources.files("arc_kit") / "data" / "held_out" / BUILTIN_HELD_OUT[name]).read_text()
            sets = {"task": held.tasks, "answer": held.answers, "pair": held.pairs, "key": held.keys}
            for line in text.splitlines():
                kind, _, digest = line.partition(" ")
                sets[kind].add(digest)
            continue
        if not Path(name).exists() and name not in NAMED_SETS:
            raise TaskFileError(f"data.held_out: {name} is neither a file, a folder, a named data set "
                                f"({', '.join(NAMED_SETS)}) nor a built-in digest list ({', '.join(BUILTIN_HELD_OUT)})")
        for task in read_source(SourceSettings(path=name)):
            held.add(task)
    return held


def train_pair_digests(task: Task) -> set[str]:
    return pair_digests(type(task)(task.task_id, task.train, ()))


def write_held_out_digests(tasks: list[Task], path: Path) -> None:
    """The built-in list's format: ``task``, ``answer`` (solved test pair) and ``pair`` (train pair) lines of
    digests and ``key`` lines of ``pair_key`` hashes (no grids are stored)."""
    held = HeldOut()
    for task in tasks:
        held.add(task)
    lines = [f"{kind} {value}" for kind, values in (("task", held.tasks), ("answer", held.answers),
                                                     ("pair", held.pairs), ("key", held.keys)) for value in values]
    path.write_text("".join(line + "\n" for line in sorted(lines)), encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------------
# Checking units: parse, digest, refuse (in worker processes when there are many)


@dataclass(frozen=True)
class CheckJob:
    """What a worker needs to check the units of one source."""

    unit_kind: str
    pairs_per_task: int
    digest: bool  # compute task_digest (de-duplication needs it; rows used as given are not de-duplicated)


Checked = tuple[str, str | None, bytes, bool, str | None]  # task id, digest, exact digest, refused, record
UnitResult = tuple[str | None, list[Checked]]  # (why the unit is bad, or None), its tasks

_WORKER_HELD: HeldOut | None = None


def _init_worker(held: HeldOut) -> None:
    global _WORKER_HELD
    _WORKER_HELD = held


def check_units(job: CheckJob, units: list[readers.Unit], held: HeldOut | None = None) -> list[UnitResult]:
    """Each unit parsed into tasks, each task digested and checked against the held-out set; a task record only
    for the tasks not refused. ``held``: None in a worker (its initializer set it)."""
    held = held if held is not None else _WORKER_HELD
    out: list[UnitResult] = []
    for unit in units:
        try:
            tasks = readers.parse_unit(job.unit_kind, unit, job.pairs_per_task)
        except TaskFileError as e:
            out.append((str(e), []))
            continue
        checked = []
        for task in tasks:
            digest = task_digest(task) if job.digest else None
            refused = bool(held) and held.reason(task, digest) is not None
            checked.append((task.task_id, digest, exact_digest(task), refused, None if refused else task_record(task)))
        out.append((None, checked))
    return out


def _checked(job: CheckJob, units: Iterator[readers.Unit], held: HeldOut, workers: int,
             inline: int) -> Iterator[UnitResult]:
    """Each unit's result, in order: the first ``inline`` units in this process, the rest in ``workers``
    processes (when > 1), ``CHUNK_UNITS`` at a time with a few chunks in flight (memory stays at a few chunks)."""
    if workers <= 1:
        inline = -1
    for unit in itertools.islice(units, None if inline < 0 else inline):
        yield from check_units(job, [unit], held)
    first = next(units, None)
    if first is None:
        return
    units = itertools.chain([first], units)
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(held,)) as pool:
        pending: list[Any] = []
        for part in _chunks(units, CHUNK_UNITS):
            pending.append(pool.submit(check_units, job, part))
            if len(pending) > 2 * workers:
                yield from pending.pop(0).result()
        for future in pending:
            yield from future.result()


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while part := list(itertools.islice(it, size)):
        yield part


# ---------------------------------------------------------------------------------------------------------------
# Compact bookkeeping for millions of tasks


class U64Table:
    """A map from 64-bit keys to (64-bit value, 16-bit tag), about 18 bytes an entry: recent entries in a dict,
    merged into sorted numpy arrays every ``MERGE_AT`` entries. Why not a dict or set: at ~100 bytes an entry,
    de-duplicating a 3M-row corpus would hold a few hundred MB in the main process."""

    MERGE_AT = 1 << 16

    def __init__(self) -> None:
        import numpy as np

        self._keys = np.zeros(0, dtype=np.uint64)
        self._values = np.zeros(0, dtype=np.uint64)
        self._tags = np.zeros(0, dtype=np.uint16)
        self._recent: dict[int, tuple[int, int]] = {}

    def get(self, key: int) -> tuple[int, int] | None:
        if key in self._recent:
            return self._recent[key]
        import numpy as np

        i = int(np.searchsorted(self._keys, np.uint64(key)))
        if i < len(self._keys) and int(self._keys[i]) == key:
            return int(self._values[i]), int(self._tags[i])
        return None

    def __contains__(self, key: int) -> bool:
        return self.get(key) is not None

    def put(self, key: int, value: int = 0, tag: int = 0) -> None:
        self._recent[key] = (value, tag)
        if len(self._recent) >= self.MERGE_AT:
            self._merge()

    def put_many(self, keys: Any, values: Any, tag: int) -> None:
        """Many new keys at once (numpy uint64 arrays of keys and values), all with ``tag``."""
        import numpy as np

        self._merge()
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
        at = np.searchsorted(self._keys, keys)
        self._keys = np.insert(self._keys, at, keys)
        self._values = np.insert(self._values, at, values)
        self._tags = np.insert(self._tags, at, np.full(len(keys), tag, dtype=np.uint16))

    def _merge(self) -> None:
        """The recent entries inserted into the sorted arrays, one array at a time (a copy of one array at most
        beside the table, where a concatenate-and-sort would hold three)."""
        import numpy as np

        if not self._recent:
            return
        keys = sorted(self._recent)
        at = np.searchsorted(self._keys, np.array(keys, dtype=np.uint64))
        self._keys = np.insert(self._keys, at, np.array(keys, dtype=np.uint64))
        self._values = np.insert(self._values, at, np.array([self._recent[k][0] for k in keys], dtype=np.uint64))
        self._tags = np.insert(self._tags, at, np.array([self._recent[k][1] for k in keys], dtype=np.uint16))
        self._recent = {}


def _u64(hex_or_bytes: str | bytes) -> int:
    raw = bytes.fromhex(hex_or_bytes) if isinstance(hex_or_bytes, str) else hex_or_bytes
    return int.from_bytes(raw[:8], "little")


# ---------------------------------------------------------------------------------------------------------------
# The mix


def load_mix(d: DataSettings, *, quiet: bool = False, work_dir: str | Path | None = None) -> list[Source]:
    """Every source's tasks: capped (``max_tasks``), held-out copies refused, repeats dropped (``dedupe``), bad
    rows skipped or refused (``on_bad_row``).

    Sources are read in order; a task already kept from an earlier source is the one that stays. A task id used by
    two different tasks is an error naming both sources (ids label the eval split and the logs). ``work_dir``: where
    the tasks kept are spooled (the system's temporary folder when None).
    """
    settings = short_forms(d)
    paths = [s.path for s in settings if s.path]
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise MixError(f"data: {twice[0]} is named twice as a training source")
    kinds = [source_kind(s) for s in settings]  # every path checked before any is read
    held = load_held_out(d.held_out)
    seen = _Seen(settings)
    with made_folder(work_dir):
        out = [_load_source(i, kind, d, held, seen, quiet, work_dir) for i, kind in enumerate(kinds)]
        if not any(s.tasks for s in out):
            held = "; ".join(f"{s.name}: {s.loaded} read, {len(s.refused_held_out)} held out, {s.duplicates} "
                             f"duplicate(s), {s.bad_rows} bad row(s)" for s in out)
            raise MixError(f"data: no training tasks ({held})")
    return out


def _load_source(i: int, kind: str, d: DataSettings, held: HeldOut, seen: _Seen, quiet: bool,
                 work_dir: str | Path | None) -> Source:
    """Source ``i`` of the mix read, checked and spooled; ``seen`` holds what earlier sources kept."""
    s = seen.settings[i]
    src = Source(source_name(s), s.augmentations or d.augmentations, s.weight, CompactTasks(folder=work_dir),
                 kind=kind, as_given=s.rows == "as_given")
    keep = _cap(s, kind, i, d.seed)
    unit_kind, units = _units(s, kind, keep if kind == "synthetic" else None)
    pick_tasks = None  # the cap by task position, where a unit holds several tasks (pair lists)
    if keep is not None:
        src.loaded = len(keep)
        if unit_kind not in readers.ONE_TASK_PER_UNIT:
            pick_tasks = keep
        elif kind != "synthetic":  # one task per unit: pick the units before they are parsed
            units = (u for n, u in enumerate(units) if n < len(keep) and keep[n])
    job = CheckJob(unit_kind, s.pairs_per_task, digest=d.dedupe and not src.as_given)
    contents = array("Q") if i + 1 < len(seen.settings) else None  # kept tasks' exact digests, for later sources
    results = _checked(job, units, held, d.num_proc or min(8, os.cpu_count() or 1),
                       inline=0 if d.num_proc else INLINE_UNITS)
    position = 0
    bar = tqdm(results, desc=f"reading {src.name}", leave=False, disable=True if quiet else None,  # None: a terminal
               unit=" files" if unit_kind in ("task_files", "pair_lists") else " rows")
    for error, checked in bar:
        if error is not None:
            _bad_row(src, error, d.on_bad_row, quiet)
            continue
        for task_id, digest, exact, refused, record in checked:
            position += 1
            if pick_tasks is not None and not (position <= len(pick_tasks) and pick_tasks[position - 1]):
                continue
            if keep is None:
                src.loaded += 1
            if refused:
                src.refused_held_out.append(task_id)
            elif digest is not None and seen.duplicate(digest):
                src.duplicates += 1
            else:
                src.tasks.append_record(*seen.claim(task_id, record, exact, i))
                if contents is not None:
                    contents.append(_u64(exact))
    if contents is not None:
        seen.add_owners(i, src.tasks.id_hashes, contents)
    _report(src, quiet)
    return src


class _Seen:
    """What the mix has kept so far: canonical digests (for ``dedupe``) and which earlier source owns each task id.

    A source's own ids never repeat (each layout makes them from file paths and positions), so a source's ids are
    checked against the earlier sources' only, and registered once it is read, unless it is the last: a mix of one
    large source keeps no table of ids at all."""

    def __init__(self, settings: list[SourceSettings]) -> None:
        self.settings = settings
        self.digests = U64Table()
        self.owners = U64Table()  # id hash -> (exact digest, source index), earlier sources

    def duplicate(self, digest: str) -> bool:
        """True for a task already kept (under any id); otherwise it is recorded as kept."""
        key = _u64(digest)
        if key in self.digests:
            return True
        self.digests.put(key)
        return False

    def claim(self, task_id: str, record: str, exact: bytes, index: int) -> tuple[str, str]:
        """(record, id) to keep the task under: the same task as an earlier source's under its id (kept with dedupe
        off) gets its own id; a different task under an earlier source's id is a ``MixError`` naming both."""
        owner = self.owners.get(id_hash(task_id))
        if owner is None:
            return record, task_id
        if owner[0] != _u64(exact):
            raise MixError(f"task id {task_id} names different tasks in {source_name(self.settings[owner[1]])} "
                           f"and {source_name(self.settings[index])}: rename one (ids label the eval split)")
        renamed = f"{task_id}~{index}"
        return record.replace(_id_prefix(task_id), _id_prefix(renamed), 1), renamed

    def add_owners(self, index: int, id_hashes: array, contents: array) -> None:
        import numpy as np

        if len(id_hashes):
            self.owners.put_many(np.frombuffer(id_hashes, dtype=np.uint64).copy(),
                                 np.frombuffer(contents, dtype=np.uint64).copy(), index)


def _id_prefix(task_id: str) -> str:
    """How a ``task_record`` begins."""
    return '{"id":' + json.dumps(task_id)


def _cap(s: SourceSettings, kind: str, index: int, seed: int) -> Any:
    """A seeded choice of ``max_tasks`` positions (a numpy bool per task), or None when the source is not capped
    or not larger than the cap."""
    if not s.max_tasks:
        return None
    size = _source_size(s, kind)
    if size <= s.max_tasks:
        return None
    import numpy as np

    keep = np.zeros(size, dtype=bool)
    keep[np.random.default_rng(hash_seed(f"mix:{seed}:{index}")).choice(size, s.max_tasks, replace=False)] = True
    return keep


def _bad_row(src: Source, error: str, on_bad_row: str, quiet: bool) -> None:
    if on_bad_row == "fail":
        raise TaskFileError(f"data source {src.name}: {error} (data.on_bad_row = skip leaves such rows out)")
    src.bad_rows += 1
    if len(src.bad_examples) < NAMED_BAD_ROWS:
        src.bad_examples.append(error)
        if not quiet:
            log.warning("data source %s: skipped %s", src.name, error)


def _report(src: Source, quiet: bool) -> None:
    if quiet:
        return
    if not src.loaded and not src.bad_rows:
        log.warning("data source %s (%s): no tasks in it%s", src.name, src.kind,
                    " (is every pair list shorter than pairs_per_task?)" if src.kind == "pair_lists" else "")
        return
    if not (src.refused_held_out or src.duplicates or src.bad_rows):
        return
    ids = ", ".join(src.refused_held_out[:5]) + (", ..." if len(src.refused_held_out) > 5 else "")
    log.warning("data source %s (%s): %d held-out task(s) refused%s, %d duplicate(s) dropped, %d bad row(s) "
                "skipped, %d of %d kept", src.name, src.kind, len(src.refused_held_out), f" ({ids})" if ids else "",
                src.duplicates, src.bad_rows, len(src.tasks), src.loaded)
