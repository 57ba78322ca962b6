"""Views: every key inverts exactly on every real grid; keys round-trip; seeds give the same views everywhere."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from conftest import all_grids

from arc_kit.core.augment import IDENTITY_COLOURS, View, random_view, views_for_task
from arc_kit.core.tasks import Pair, Task


def test_every_view_inverts_on_every_public_grid(arc_files):
    rng = random.Random(0)
    views = [View(dihedral=d) for d in range(8)] + [random_view(rng, 1, permute_background=True) for _ in range(8)]
    grids = set(all_grids(arc_files))  # the same grid often appears in several tasks
    for grid in grids:
        for view in views:
            assert view.invert_grid(view.apply_grid(grid)) == grid
    assert len(grids) > 9000  # distinct grids across ARC-AGI-1 and -2


def test_the_eight_dihedral_views_are_distinct_and_correct():
    g = ((1, 2, 3), (4, 5, 6))
    images = {View(d).apply_grid(g) for d in range(8)}
    assert len(images) == 8
    assert View(1).apply_grid(g) == ((3, 6), (2, 5), (1, 4))  # 90 degrees counter-clockwise
    assert View(4).apply_grid(g) == ((3, 2, 1), (6, 5, 4))  # mirror left-right


def test_colours_keep_background_unless_asked():
    rng = random.Random(1)
    for _ in range(50):
        assert random_view(rng, 3).colours[0] == 0
    assert any(random_view(rng, 3, permute_background=True).colours[0] != 0 for _ in range(50))


def test_geometric_only_views_keep_every_colour():
    task = Task("g", (Pair(((1, 2),), ((2, 1),)),) * 3, (Pair(((1, 2),)),))
    plain = views_for_task(task, 40, seed=3, permute_colours=False)
    assert all(v.colours == IDENTITY_COLOURS for v in plain)
    assert len(plain) == len({v.key for v in plain}) == 40  # 8 D8 x 6 demo orders = 48 distinct views to draw from
    assert {v.dihedral for v in plain} == set(range(8))
    assert len(views_for_task(task, 100, seed=3, permute_colours=False)) == 48  # no more exist
    assert any(v.colours != IDENTITY_COLOURS for v in views_for_task(task, 8, seed=3))


def test_key_round_trip_and_bad_keys():
    view = View(5, (0, 8, 9, 3, 1, 2, 4, 5, 7, 6), (2, 0, 1))
    assert view.key == "d5.c0893124576.p2-0-1"
    assert View.from_key(view.key) == view
    assert View.from_key("d0.c0123456789").is_identity
    with pytest.raises(ValueError, match="not a view key"):
        View.from_key("x3")
    with pytest.raises(ValueError, match="permutation"):
        View(0, (0, 0, 1, 2, 3, 4, 5, 6, 7, 8))


def test_apply_task_reorders_pairs_and_maps_every_grid():
    task = Task("t", (Pair(((1,),), ((2,),)), Pair(((3,),), ((4,),))), (Pair(((5,),), ((6,),)),))
    view = View(0, (0, 2, 1, 3, 4, 5, 6, 7, 8, 9), (1, 0))
    out = view.apply_task(task)
    assert [p.input for p in out.train] == [((3,),), ((2,),)]
    assert out.test[0].output == ((6,),)
    with pytest.raises(ValueError, match="pair order does not fit task t"):
        View(0, pair_order=(0, 1, 2)).apply_task(task)


def test_views_are_deterministic_across_processes():
    code = (
        "from arc_kit.core.augment import views_for_task; from arc_kit.core.tasks import Task, Pair;"
        "t = Task('abc', (Pair(((1,),), ((1,),)),) * 3, (Pair(((1,),)),));"
        "print(','.join(v.key for v in views_for_task(t, 6, seed=42)))"
    )
    runs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": str(seed), "PATH": ""}).stdout
        for seed in (1, 2)
    }
    assert len(runs) == 1
    keys = runs.pop().strip().split(",")
    assert len(keys) == 6 and len(set(keys)) == 6 and keys[0] == View().key
