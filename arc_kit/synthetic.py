"""The kit's own ARC-like tasks: simple rules on small random grids, seeded and deterministic.

They give tests, the learning check and the demo data whose answers are known, with no download. Each task applies
one rule (some rules draw a parameter per task, e.g. a colour map) to every input of the task. Grids are random
colours with a background (0) share, of sides drawn from ``sizes``.

``rot180`` and ``upscale2`` commute with every D8 view and colour permutation, so their tasks stay the same rule
under the training augmentations: a tiny model can learn them without inferring the rule in context.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from arc_kit.tasks import MAX_SIDE, Grid, Pair, Task, TaskSet, write_task_files

RuleFn = Callable[[np.ndarray], np.ndarray]


def _colour_map(rng: random.Random) -> RuleFn:
    rest = list(range(1, 10))
    rng.shuffle(rest)
    table = np.asarray([0, *rest])
    return lambda a: table[a]


def _gravity_down(a: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a)
    for c in range(a.shape[1]):
        column = [v for v in a[:, c] if v != 0]
        if column:
            out[a.shape[0] - len(column) :, c] = column
    return out


# name -> factory(rng) -> rule; a factory draws the task's parameters (if any) from the task's own rng.
RULES: dict[str, Callable[[random.Random], RuleFn]] = {
    "flip_lr": lambda rng: np.fliplr,
    "flip_ud": lambda rng: np.flipud,
    "rot90": lambda rng: lambda a: np.rot90(a, 1),
    "rot180": lambda rng: lambda a: np.rot90(a, 2),
    "rot270": lambda rng: lambda a: np.rot90(a, 3),
    "transpose": lambda rng: lambda a: a.T,
    "recolour": _colour_map,
    "upscale2": lambda rng: lambda a: np.kron(a, np.ones((2, 2), dtype=a.dtype)),
    "gravity_down": lambda rng: _gravity_down,
}


def _freeze(a: np.ndarray) -> Grid:
    return tuple(tuple(int(v) for v in row) for row in a)


def random_grid(rng: random.Random, sizes: Sequence[int], background: float = 0.3) -> np.ndarray:
    """A grid with sides drawn from ``sizes``; each cell is 0 with probability ``background``, else colour 1-9."""
    h, w = rng.choice(sizes), rng.choice(sizes)
    cells = [0 if rng.random() < background else rng.randint(1, 9) for _ in range(h * w)]
    return np.asarray(cells, dtype=np.int64).reshape(h, w)


def make_task(
    task_id: str,
    rule_name: str,
    rng: random.Random,
    sizes: Sequence[int] = (3,),
    n_train: int = 3,
    n_test: int = 1,
    background: float = 0.3,
) -> Task:
    """One task: ``n_train`` + ``n_test`` random inputs, outputs by the named rule (test outputs included)."""
    if rule_name not in RULES:
        raise ValueError(f"unknown synthetic rule {rule_name!r}; known: {', '.join(sorted(RULES))}")
    rule = RULES[rule_name](rng)
    pairs = []
    for _ in range(n_train + n_test):
        a = random_grid(rng, sizes, background)
        pairs.append(Pair(_freeze(a), _freeze(rule(a))))
    return Task(task_id, tuple(pairs[:n_train]), tuple(pairs[n_train:]))


def generate_tasks(
    rule_names: Sequence[str],
    n_tasks: int,
    seed: int = 0,
    sizes: Sequence[int] = (3,),
    n_train: int = 3,
    n_test: int = 1,
    background: float = 0.3,
) -> list[Task]:
    """``n_tasks`` tasks, rules drawn in turn from ``rule_names``; the same arguments give the same tasks.

    Ids look like ``syn-rot180-s7-00012`` (rule, seed, index), so two seeds never collide in one TaskSet.
    """
    if not rule_names:
        raise ValueError("generate_tasks needs at least one rule name")
    if n_tasks < 0:
        raise ValueError(f"n_tasks must be >= 0, got {n_tasks}")
    if not sizes or not all(1 <= s <= MAX_SIDE for s in sizes):
        raise ValueError(f"sizes must be grid sides 1..{MAX_SIDE} (ARC's limits), got {list(sizes)}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"need n_train >= 1 and n_test >= 1, got {n_train} and {n_test}")
    unknown = [r for r in rule_names if r not in RULES]
    if unknown:
        raise ValueError(f"unknown synthetic rule(s) {unknown}; known: {', '.join(sorted(RULES))}")
    return list(iter_tasks(rule_names, range(n_tasks), seed, sizes, n_train, n_test, background))


def iter_tasks(
    rule_names: Sequence[str],
    indices: Iterable[int],
    seed: int = 0,
    sizes: Sequence[int] = (3,),
    n_train: int = 3,
    n_test: int = 1,
    background: float = 0.3,
) -> Iterator[Task]:
    """The tasks ``generate_tasks`` makes at ``indices``, one at a time (a large mix never holds them all).

    Task i depends only on (seed, i), so any subset can be made without the others."""
    for i in indices:
        rule = rule_names[i % len(rule_names)]
        rng = random.Random(f"synthetic:{seed}:{i}")
        yield make_task(f"syn-{rule}-s{seed}-{i:05d}", rule, rng, sizes, n_train, n_test, background)


def task_set(tasks: Sequence[Task], source: str = "synthetic") -> TaskSet:
    return TaskSet({t.task_id: t for t in tasks}, source)


def write_synthetic(
    out_dir: str | Path,
    rule_names: Sequence[str],
    n_tasks: int,
    seed: int = 0,
    sizes: Sequence[int] = (3,),
    n_train: int = 3,
    n_test: int = 1,
    prefix: str = "synthetic",
) -> tuple[Path, Path]:
    """Write ``<prefix>_challenges.json`` and ``<prefix>_solutions.json`` (competition layout) into ``out_dir``.

    Everything is checked before the first write, so a refused call leaves ``out_dir`` as it was.
    """
    out_dir = Path(out_dir)
    for path in (out_dir, *out_dir.parents):
        if path.exists() and not path.is_dir():
            raise ValueError(f"{out_dir}: {path} is a file, not a folder (nothing written)")
    tasks = generate_tasks(rule_names, n_tasks, seed, sizes, n_train, n_test)
    challenges = out_dir / f"{prefix}_challenges.json"
    solutions = out_dir / f"{prefix}_solutions.json"
    write_task_files(tasks, challenges, solutions)
    return challenges, solutions
