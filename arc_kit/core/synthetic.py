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

from arc_kit.core.files import check_folder_path
from arc_kit.core.tasks import MAX_SIDE, Pair, Task, freeze_grid, write_task_files

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


def random_grid(rng: random.Random, sizes: Sequence[int], background: float = 0.3,
                colours: Sequence[int] | None = None) -> np.ndarray:
    """A grid with sides drawn from ``sizes``; each cell is 0 with probability ``background``, else a colour of
    ``colours`` (default: any of 1-9)."""
    h, w = rng.choice(sizes), rng.choice(sizes)
    cells = [0 if rng.random() < background else rng.randint(1, 9) if colours is None else rng.choice(colours)
             for _ in range(h * w)]
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
        pairs.append(Pair(freeze_grid(a), freeze_grid(rule(a))))
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
    out_dir = check_folder_path(out_dir, "out_dir")
    tasks = generate_tasks(rule_names, n_tasks, seed, sizes, n_train, n_test)
    challenges = out_dir / f"{prefix}_challenges.json"
    solutions = out_dir / f"{prefix}_solutions.json"
    write_task_files(tasks, challenges, solutions)
    return challenges, solutions


# ---------------------------------------------------------------------------------------------------------------
# Colour-map tasks: a hidden map of colours that only the task's demonstrations show (test-time training's case)


def _identity_map(rng: random.Random, palette: Sequence[int]) -> dict[int, int]:
    return {c: c for c in range(10)}


def _swap_map(rng: random.Random, palette: Sequence[int]) -> dict[int, int]:
    a, b = palette[:2]
    return {**_identity_map(rng, palette), a: b, b: a}


def _recolour_map(rng: random.Random, palette: Sequence[int]) -> dict[int, int]:
    targets = list(range(1, 10))
    rng.shuffle(targets)
    return {0: 0, **dict(zip(range(1, 10), targets, strict=True))}


def _fill_map(rng: random.Random, palette: Sequence[int]) -> dict[int, int]:
    colour = rng.randint(1, 9)
    return {0: 0, **{c: colour for c in range(1, 10)}}


# name -> factory(rng, the task's colours) -> the task's map; 0 (the background) always stays 0.
COLOUR_MAPS: dict[str, Callable[[random.Random, Sequence[int]], dict[int, int]]] = {
    "identity": _identity_map,  # no change: teaches a model to carry each cell's colour to the output
    "swap": _swap_map,  # two of the task's colours trade places
    "recolour": _recolour_map,  # a random permutation of 1-9
    "fill": _fill_map,  # every colour becomes one colour
}


def colour_map_tasks(
    rule_names: Sequence[str],
    n_tasks: int,
    seed: int = 0,
    prefix: str = "cmap",
    then: str | None = None,
    sizes: Sequence[int] = (3,),
    n_train: int = 3,
    palette: int = 4,
    background: float = 0.2,
) -> list[Task]:
    """``n_tasks`` tasks whose rule is a colour map drawn per task (rules in turn from ``COLOUR_MAPS``), after the
    geometric rule ``then`` from ``RULES`` if given (``rot180``: rotate, then map the colours).

    Why a generator of its own: the demonstrations must decide the answer. Each task's inputs use ``palette``
    colours; every colour of the test input appears in a demonstration input, and unless the map is the identity
    at least one test colour changes, so copying (or rotating) the input is wrong. A model that cannot look the
    map up in its prompt must learn it from the demonstrations: what test-time training does.
    """
    unknown = [r for r in rule_names if r not in COLOUR_MAPS]
    if unknown or not rule_names:
        raise ValueError(f"unknown colour-map rule(s) {unknown or '(none)'}; known: {', '.join(COLOUR_MAPS)}")
    if then is not None and then not in RULES:
        raise ValueError(f"unknown synthetic rule {then!r}; known: {', '.join(sorted(RULES))}")
    if not 2 <= palette <= 9 or n_train < 1:
        raise ValueError(f"need 2 <= palette <= 9 and n_train >= 1, got {palette} and {n_train}")

    tasks = []
    for i in range(n_tasks):
        rule = rule_names[i % len(rule_names)]
        rng = random.Random(f"colour-map:{prefix}:{seed}:{i}")
        colours = rng.sample(range(1, 10), palette)
        table = np.asarray([COLOUR_MAPS[rule](rng, colours)[c] for c in range(10)])
        changed = {c for c in colours if table[c] != c}
        for _ in range(1000):  # redraw until the demonstrations show what the test input needs
            inputs = [random_grid(rng, sizes, background, colours) for _ in range(n_train + 1)]
            shown = {int(v) for a in inputs[:-1] for v in a.flat}
            needed = {int(v) for v in inputs[-1].flat}
            if needed <= shown and (not changed or changed & needed):
                break
        else:
            raise ValueError(f"grids of sides {list(sizes)} cannot show a colour map in {n_train} demonstrations")
        geometry = RULES[then](rng) if then else (lambda a: a)
        pairs = [Pair(freeze_grid(a), freeze_grid(table[geometry(a)])) for a in inputs]
        tasks.append(Task(f"{prefix}-{rule}-s{seed}-{i:05d}", tuple(pairs[:n_train]), tuple(pairs[n_train:])))
    return tasks
