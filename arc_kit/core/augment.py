"""Reversible task views: the 8 rotations/reflections (D8), colour permutations and train-pair order.

A view is named by a string key, e.g. ``d5.c0893124576.p2-0-1``:
- ``d5``: the D8 element (0-3 rotate by k*90 degrees counter-clockwise; 4-7 mirror left-right, then rotate by k-4);
- ``c0893124576``: colour c becomes the c-th digit (0 stays 0 by default);
- ``p2-0-1``: the train pairs in this order (omitted when unchanged).

Keys are plain text, so a prediction made under a view can be inverted later in another process, and a run can be
reproduced from its log. Random keys come from ``random.Random`` seeded with an integer (never Python's ``hash()``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from arc_kit.core.tasks import Grid, Pair, Task, freeze_grid

IDENTITY_COLOURS = tuple(range(10))


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """D8 element ``k`` of an array: 0-3 rotate by k*90 degrees counter-clockwise; 4-7 mirror left-right, then
    rotate by k-4 (the ``d`` of a view key)."""
    return np.rot90(np.fliplr(a) if k >= 4 else a, k % 4)


@dataclass(frozen=True)
class View:
    dihedral: int = 0
    colours: tuple[int, ...] = IDENTITY_COLOURS
    pair_order: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.dihedral < 8:
            raise ValueError(f"dihedral index must be 0-7, got {self.dihedral}")
        if sorted(self.colours) != list(range(10)):
            raise ValueError(f"colour map must be a permutation of 0-9, got {self.colours}")

    # -- keys ---------------------------------------------------------------------------------------------------
    @property
    def key(self) -> str:
        key = f"d{self.dihedral}.c{''.join(map(str, self.colours))}"
        if self.pair_order is not None and list(self.pair_order) != sorted(self.pair_order):
            key += ".p" + "-".join(map(str, self.pair_order))
        return key

    @classmethod
    def from_key(cls, key: str) -> View:
        dihedral, colours, order = 0, IDENTITY_COLOURS, None
        try:
            for part in key.split("."):
                if part.startswith("d"):
                    dihedral = int(part[1:])
                elif part.startswith("c"):
                    colours = tuple(int(ch) for ch in part[1:])
                elif part.startswith("p"):
                    order = tuple(int(i) for i in part[1:].split("-"))
                else:
                    raise ValueError(part)
        except ValueError:
            raise ValueError(f"not a view key: {key!r} (expected like 'd5.c0893124576.p2-0-1')") from None
        return cls(dihedral, colours, order)

    @property
    def is_identity(self) -> bool:
        return self.dihedral == 0 and self.colours == IDENTITY_COLOURS and self.pair_order is None

    # -- grids --------------------------------------------------------------------------------------------------
    def apply_grid(self, grid: Grid) -> Grid:
        a = dihedral(np.asarray(grid, dtype=np.int64), self.dihedral)
        a = np.asarray(self.colours, dtype=np.int64)[a]
        return freeze_grid(a)

    def invert_grid(self, grid: Grid) -> Grid:
        inverse = np.argsort(np.asarray(self.colours))
        a = inverse[np.asarray(grid, dtype=np.int64)]
        a = np.rot90(a, -(self.dihedral % 4))
        if self.dihedral >= 4:
            a = np.fliplr(a)
        return freeze_grid(a)

    # -- tasks --------------------------------------------------------------------------------------------------
    def apply_task(self, task: Task) -> Task:
        def pair(p: Pair) -> Pair:
            return Pair(self.apply_grid(p.input), None if p.output is None else self.apply_grid(p.output))

        train = [pair(p) for p in task.train]
        if self.pair_order is not None:
            if sorted(self.pair_order) != list(range(len(train))):
                raise ValueError(f"view {self.key}: pair order does not fit task {task.task_id} ({len(train)} pairs)")
            train = [train[i] for i in self.pair_order]
        return Task(task.task_id, tuple(train), tuple(pair(p) for p in task.test))


def random_view(rng: random.Random, num_train_pairs: int, permute_background: bool = False,
                permute_colours: bool = True) -> View:
    dihedral = rng.randrange(8)
    if not permute_colours:
        colours = list(IDENTITY_COLOURS)
    elif permute_background:
        colours = list(range(10))
        rng.shuffle(colours)
    else:
        rest = list(range(1, 10))
        rng.shuffle(rest)
        colours = [0, *rest]
    order = list(range(num_train_pairs))
    rng.shuffle(order)
    return View(dihedral, tuple(colours), tuple(order))


def views_for_task(
    task: Task,
    count: int,
    seed: int,
    include_identity: bool = True,
    permute_background: bool = False,
    shuffle_pairs: bool = True,
    permute_colours: bool = True,
) -> list[View]:
    """``count`` distinct views of a task, the first being the identity when asked; same seed, same views.

    The task id joins the seed through a stable string so each task gets its own views in any process. Without
    ``permute_colours`` the views are geometric (and pair order) only: for a model that carries a task's colour
    mapping in its weights (after test-time training) rather than reading it from the prompt. Fewer distinct views
    may exist than ``count`` (8 x orders); then all of them are returned.
    """
    rng = random.Random(f"{seed}:{task.task_id}")
    views: list[View] = [View()] if include_identity and count > 0 else []
    seen = {v.key for v in views}
    tries = 0
    while len(views) < count and tries < count * 50:
        tries += 1
        v = random_view(rng, len(task.train), permute_background, permute_colours)
        if not shuffle_pairs:
            v = View(v.dihedral, v.colours, None)
        if v.key not in seen:
            seen.add(v.key)
            views.append(v)
    return views


