"""The synthetic task generator: deterministic, rules applied right, competition-layout files round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from arc_kit.core.synthetic import RULES, colour_map_tasks, generate_tasks, write_synthetic
from arc_kit.core.tasks import load_tasks


def test_same_seed_same_tasks_other_seed_other_tasks():
    a = generate_tasks(["rot180", "flip_lr"], 6, seed=3, sizes=(3, 4))
    b = generate_tasks(["rot180", "flip_lr"], 6, seed=3, sizes=(3, 4))
    c = generate_tasks(["rot180", "flip_lr"], 6, seed=4, sizes=(3, 4))
    assert a == b
    assert [t.train for t in a] != [t.train for t in c]
    assert a[0].task_id == "syn-rot180-s3-00000" and a[1].task_id == "syn-flip_lr-s3-00001"


@pytest.mark.parametrize(
    "rule, fn",
    [
        ("rot180", lambda a: np.rot90(a, 2)),
        ("flip_lr", np.fliplr),
        ("flip_ud", np.flipud),
        ("rot90", lambda a: np.rot90(a, 1)),
        ("transpose", lambda a: a.T),
        ("upscale2", lambda a: a.repeat(2, axis=0).repeat(2, axis=1)),
    ],
)
def test_geometric_rules_map_every_pair(rule, fn):
    for task in generate_tasks([rule], 3, seed=1, sizes=(2, 3, 5), n_train=3, n_test=2):
        assert len(task.train) == 3 and len(task.test) == 2 and task.has_solutions
        for pair in task.train + task.test:
            assert np.array_equal(np.asarray(pair.output), fn(np.asarray(pair.input)))


def test_recolour_uses_one_map_per_task_and_keeps_background():
    task = generate_tasks(["recolour"], 1, seed=5, sizes=(4,), n_train=4)[0]
    mapping: dict[int, int] = {}
    for pair in task.train + task.test:
        for row_in, row_out in zip(pair.input, pair.output, strict=True):
            for x, y in zip(row_in, row_out, strict=True):
                assert mapping.setdefault(x, y) == y
    assert mapping.get(0, 0) == 0
    assert len(set(mapping.values())) == len(mapping)  # a permutation: no two colours merge


def test_gravity_moves_cells_to_the_bottom_keeping_column_order():
    task = generate_tasks(["gravity_down"], 1, seed=2, sizes=(4,))[0]
    for pair in task.train:
        a, out = np.asarray(pair.input), np.asarray(pair.output)
        for c in range(a.shape[1]):
            colours = [v for v in a[:, c] if v]
            assert list(out[a.shape[0] - len(colours) :, c]) == colours
            assert not out[: a.shape[0] - len(colours), c].any()


def test_written_files_load_back_identically(tmp_path):
    challenges, solutions = write_synthetic(tmp_path, ["rot180", "recolour"], 5, seed=7, sizes=(3, 4))
    loaded = load_tasks(challenges, solutions)
    assert list(loaded.tasks.values()) == generate_tasks(["rot180", "recolour"], 5, seed=7, sizes=(3, 4))


def test_unknown_rule_is_named():
    with pytest.raises(ValueError, match="no_such_rule"):
        generate_tasks(["rot180", "no_such_rule"], 2)
    assert "rot180" in RULES


def test_cli_synth_writes_competition_files(tmp_path):
    from arc_kit.cli.main import main

    assert main(["synth", "--out", str(tmp_path), "--rules", "flip_lr", "--n-tasks", "4", "--sizes", "3,5"]) == 0
    tasks = load_tasks(tmp_path / "synthetic_challenges.json", tmp_path / "synthetic_solutions.json")
    assert len(tasks) == 4 and all(t.has_solutions for t in tasks)
    assert main(["synth", "--out", str(tmp_path), "--rules", "bogus"]) == 2


def test_colour_map_tasks_are_decided_by_their_demonstrations():
    tasks = colour_map_tasks(["swap", "recolour", "fill"], 30, seed=5, then="rot180", n_train=2)
    assert tasks == colour_map_tasks(["swap", "recolour", "fill"], 30, seed=5, then="rot180", n_train=2)
    for task in tasks:
        shown = {v for p in task.train for row in p.input for v in row}
        mapping = {}  # every (colour -> colour) the demonstrations show, after undoing the rotation
        for p in task.train:
            for a, b in zip(np.asarray(p.input).flat, np.rot90(np.asarray(p.output), 2).flat, strict=True):
                assert mapping.setdefault(int(a), int(b)) == int(b), task.task_id  # one map per task
        test = task.test[0]
        assert {v for row in test.input for v in row} <= shown
        expected = np.vectorize(mapping.get)(np.rot90(np.asarray(test.input), 2))
        assert expected.tolist() == [list(r) for r in test.output]
        assert test.output != tuple(map(tuple, np.rot90(np.asarray(test.input), 2).tolist()))  # copying is wrong
    with pytest.raises(ValueError, match="unknown colour-map rule"):
        colour_map_tasks(["mirror"], 1)
