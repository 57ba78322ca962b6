"""A task's content digest that is the same for every rotated, flipped, recoloured or re-ordered copy of it.

Why: training mixes overlap (376 of the 400 ARC-AGI-1 evaluation tasks are in ARC-AGI-2's training file under the
same ids; RE-ARC, ConceptARC and BARC re-use ARC tasks under other names), so "held out" and "already in the mix" must
be decided by content, not by id. Two tasks that differ only by one of the 8 rotations/reflections (D8), a
permutation of the colours (background included) or the order of their train pairs get the same digest.

The canonical form, per D8 transform t: apply t to every grid; order the train pairs, then the test inputs, by each
one's own colour-relabelled form (pairs of the same pattern in every order among themselves); relabel the colours of the whole sequence by first appearance (row-major, input
before output); serialise. The digest is a hash of the smallest of the 8 serialisations. Test outputs are left out,
so a copy with or without its solutions is the same task.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from arc_kit.core.augment import dihedral
from arc_kit.core.tasks import Grid, Task

DIGEST_BYTES = 16
MAX_ORDERS = 24  # orderings of same-pattern pairs tried per transform


def _relabel(grids: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Colours renumbered 0, 1, 2, ... in order of first appearance over the grids taken in turn."""
    flat = np.concatenate([g.ravel() for g in grids])
    colours, first = np.unique(flat, return_index=True)
    table = np.zeros(10, dtype=np.int8)
    table[colours[np.argsort(first)]] = np.arange(len(colours), dtype=np.int8)
    return [table[g] for g in grids]


def _serialise(grids: Sequence[np.ndarray]) -> bytes:
    return b"".join(bytes((*g.shape,)) + g.astype(np.int8).tobytes() + b"|" for g in grids)


def _orders(items: list, key: Any) -> list[list]:
    """``items`` sorted by ``key``; items with equal keys (same pattern, other colours) in every order among
    themselves, since which comes first changes the relabelling. Capped at MAX_ORDERS orders (then as sorted)."""
    keyed = sorted(((key(x), n) for n, x in enumerate(items)), key=lambda kn: kn[0])
    groups = [[items[n] for _, n in grp] for _, grp in itertools.groupby(keyed, key=lambda kn: kn[0])]
    count = math.prod(math.factorial(len(g)) for g in groups)
    if count > MAX_ORDERS:
        return [[x for g in groups for x in g]]
    return [[x for g in combo for x in g] for combo in itertools.product(*(itertools.permutations(g) for g in groups))]


def canonical_form(task: Task) -> bytes:
    """The smallest serialisation over the 8 D8 transforms (see the module docstring)."""
    train = [(np.asarray(p.input, dtype=np.int8), np.asarray(p.output, dtype=np.int8)) for p in task.train]
    tests = [np.asarray(p.input, dtype=np.int8) for p in task.test]
    best: bytes | None = None
    for k in range(8):
        pairs = [(dihedral(i, k), dihedral(o, k)) for i, o in train]
        inputs = [dihedral(i, k) for i in tests]
        # Order pairs (and test inputs) by their own colour-free form, so a re-ordered copy lines up the same way.
        for pair_order in _orders(pairs, lambda p: _serialise(_relabel(p))):
            for input_order in _orders(inputs, lambda g: _serialise(_relabel([g]))):
                grids = [g for p in pair_order for g in p] + list(input_order)
                form = _serialise(_relabel(grids)) + b"#" + str(len(pairs)).encode()
                if best is None or form < best:
                    best = form
    assert best is not None
    return best


def task_digest(task: Task) -> str:
    """Hex digest of the canonical form: equal for copies of a task under D8, colour permutation and pair order."""
    return hashlib.blake2b(canonical_form(task), digest_size=DIGEST_BYTES).hexdigest()


def exact_digest(task: Task) -> bytes:
    """Digest of the task exactly as given (grids, order, test outputs): the cache key of the examples built."""
    h = hashlib.blake2b(digest_size=DIGEST_BYTES)
    for group in (task.train, task.test):
        for p in group:
            h.update(_grid_bytes(p.input))
            h.update(_grid_bytes(p.output) if p.output is not None else b"-")
        h.update(b"#")
    return h.digest()


def _grid_bytes(grid: Grid) -> bytes:
    return bytes((len(grid), len(grid[0]))) + bytes(v for row in grid for v in row)


def digests(tasks: Iterable[Task]) -> set[str]:
    return {task_digest(t) for t in tasks}


def _pair_digest(inp: Grid, out: Grid) -> str:
    """Canonical digest of one solved pair (D8 + colour relabelling over input then output)."""
    a, b = np.asarray(inp, dtype=np.int8), np.asarray(out, dtype=np.int8)
    form = min(_serialise(_relabel([dihedral(a, k), dihedral(b, k)])) for k in range(8))
    return hashlib.blake2b(form, digest_size=DIGEST_BYTES).hexdigest()


def answer_digests(task: Task) -> set[str]:
    """Digests of a task's solved test pairs: what must not be trained on when the task is held out."""
    return {_pair_digest(p.input, p.output) for p in task.test if p.output is not None}


def pair_digests(task: Task) -> set[str]:
    """Digests of every solved pair of a task (train and test): a training task holding a held-out answer leaks it,
    even when the rest of the task was edited (ARC-AGI-2 corrected a few ARC-AGI-1 evaluation tasks)."""
    pairs = [*task.train, *(p for p in task.test if p.output is not None)]
    return {_pair_digest(p.input, p.output) for p in pairs}


def pair_key(inp: Grid, out: Grid) -> str:
    """A cheap fingerprint of a solved pair that D8 transforms and colour permutations leave unchanged: the two
    shapes (up to a transpose of both) and, per colour, how often it appears in the input and in the output.

    Every copy of a pair has its key; different pairs rarely share one. So a pair's full ``_pair_digest`` (8
    transforms and relabellings, ~50x the cost) is computed only when a held-out pair has the same key: the
    held-out guard over millions of rows costs a key per pair."""
    shape = min((len(inp), len(inp[0]), len(out), len(out[0])), (len(inp[0]), len(inp), len(out[0]), len(out)))
    a, b = bytes(itertools.chain.from_iterable(inp)), bytes(itertools.chain.from_iterable(out))
    colours = sorted((a.count(c), b.count(c)) for c in range(10))
    return hashlib.blake2b(repr((shape, colours)).encode(), digest_size=8).hexdigest()


def solved_pairs(task: Task) -> list[tuple[Grid, Grid]]:
    """Every pair of a task whose output is known: train pairs, then solved test pairs."""
    return [(p.input, p.output) for p in (*task.train, *task.test) if p.output is not None]


def pair_digests_where(task: Task, keys: set[str]) -> set[str]:
    """``pair_digests`` of the pairs whose ``pair_key`` is in ``keys`` only."""
    return {_pair_digest(i, o) for i, o in solved_pairs(task) if pair_key(i, o) in keys}
