"""Task files: the real data loads; each kind of broken file fails with an error naming the task and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arc_kit.core.tasks import TaskFileError, load_tasks, solutions_path_for, task_to_json, write_task_files

GOOD = {"train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}], "test": [{"input": [[5, 6], [7, 8]]}]}


def write(tmp_path: Path, challenges, solutions=None) -> tuple[Path, Path | None]:
    c = tmp_path / "x_challenges.json"
    c.write_text(challenges if isinstance(challenges, str) else json.dumps(challenges))
    s = None
    if solutions is not None:
        s = tmp_path / "x_solutions.json"
        s.write_text(json.dumps(solutions))
    return c, s


def test_real_competition_files_load_with_solutions(arc2_eval):
    tasks = load_tasks(*arc2_eval)
    assert len(tasks) == 120
    assert tasks.num_test_inputs == 167
    assert all(t.has_solutions for t in tasks)


def test_solutions_file_found_beside_challenges(arc2_eval):
    assert solutions_path_for(arc2_eval[0]) == arc2_eval[1]


def test_one_json_per_task_folder(tmp_path):
    (tmp_path / "abc123.json").write_text(json.dumps({**GOOD, "test": [{"input": [[1]], "output": [[2]]}]}))
    (tmp_path / "def456.json").write_text(json.dumps(GOOD))
    tasks = load_tasks(tmp_path)
    assert list(tasks.tasks) == ["abc123", "def456"]
    assert tasks.tasks["abc123"].test[0].output == ((2,),)
    assert tasks.tasks["def456"].test[0].output is None


@pytest.mark.parametrize(
    "task, solutions, expected",
    [
        ({**GOOD, "train": [{"input": [[1, 2], [3]], "output": [[1]]}]}, None, r"t1, train\[0\]\.input: ragged grid"),
        ({**GOOD, "test": [{"input": [[1, 10]]}]}, None, r"t1, test\[0\]\.input: cell \[0\]\[1\] is 10"),
        ({**GOOD, "test": [{"input": [[0] * 31] * 31}]}, None, r"t1, test\[0\]\.input: grid has 31 rows"),
        ({**GOOD, "test": [{"input": [[0] * 31]}]}, None, r"t1, test\[0\]\.input: grid has 31 columns"),
        ({"train": GOOD["train"]}, None, r"task t1: missing field 'test'"),
        ({**GOOD, "train": []}, None, r"task t1: field 'train' must be a non-empty list"),
        ({**GOOD, "train": [{"input": [[1]]}]}, None, r"t1, train\[0\]: missing field 'output'"),
        (GOOD, {"t1": [[[1]], [[2]]]}, r"task t1: solutions give 2 test outputs, the task has 1"),
        (GOOD, {"t1": [[[1, "2"]]]}, r"t1, solutions\[0\]: cell \[0\]\[1\] is '2'"),
    ],
)
def test_bad_task_files_name_task_and_field(tmp_path, task, solutions, expected):
    c, s = write(tmp_path, {"t1": task}, solutions)
    with pytest.raises(TaskFileError, match=expected) as info:
        load_tasks(c, s)
    assert "x_challenges.json" in str(info.value)


def test_not_json_names_the_file(tmp_path):
    c, _ = write(tmp_path, '{"t1": {"train": [')
    with pytest.raises(TaskFileError, match=r"x_challenges\.json: not valid JSON"):
        load_tasks(c)


def test_missing_file_and_missing_solutions(tmp_path):
    with pytest.raises(TaskFileError, match="file not found"):
        load_tasks(tmp_path / "nope.json")
    c, s = write(tmp_path, {"t1": GOOD, "t2": GOOD}, {"t1": [[[1]]]})
    with pytest.raises(TaskFileError, match="no solutions for task t2"):
        load_tasks(c, s)


def test_lenient_load_keeps_good_tasks_and_names_the_bad(tmp_path):
    c, _ = write(tmp_path, {"good": GOOD, "bad": {**GOOD, "test": [{"input": [[1, 10]]}]}})
    tasks = load_tasks(c, strict=False)
    assert list(tasks.tasks) == ["good"]
    assert "task bad" in tasks.errors["bad"] and "cell [0][1] is 10" in tasks.errors["bad"]


def test_write_then_load_round_trip(tmp_path, arc2_eval):
    tasks = load_tasks(*arc2_eval)
    write_task_files(tasks, tmp_path / "c.json", tmp_path / "s.json")
    again = load_tasks(tmp_path / "c.json", tmp_path / "s.json")
    assert again.tasks == tasks.tasks
    first = next(iter(tasks))
    assert json.loads((tmp_path / "c.json").read_text())[first.task_id] == task_to_json(first)
