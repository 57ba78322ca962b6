"""The scorer agrees with an independent implementation on random submissions."""

from __future__ import annotations

import json
import random

import pytest

from arc_kit.core.metric import score_submission


def reference_score(submission, solutions):
    """Written apart from arc_kit.core.metric: ARC Prize's per-task average, then the mean over tasks."""
    task_scores, hits, total = [], 0, 0
    for task_id, truths in solutions.items():
        good = 0
        for i, truth in enumerate(truths):
            try:
                attempts = submission[task_id][i]
                ok = truth in (attempts["attempt_1"], attempts["attempt_2"])
            except (KeyError, IndexError):
                ok = False
            good += ok
        task_scores.append(good / len(truths))
        hits += good
        total += len(truths)
    return sum(task_scores) / len(task_scores), hits / total


def random_grid(rng):
    return [[rng.randrange(3) for _ in range(rng.randint(1, 2))] for _ in range(rng.randint(1, 2))]


def test_agrees_with_reference_on_random_submissions():
    rng = random.Random(7)
    for _ in range(200):
        solutions = {f"t{i}": [random_grid(rng) for _ in range(rng.randint(1, 3))] for i in range(rng.randint(1, 6))}
        submission = {}
        for tid, truths in solutions.items():
            if rng.random() < 0.1:
                continue  # a missing task scores 0
            submission[tid] = [
                {"attempt_1": t if rng.random() < 0.3 else random_grid(rng),
                 "attempt_2": t if rng.random() < 0.3 else random_grid(rng)}
                for t in truths
            ]
        report = score_submission(submission, solutions)
        expected_task, expected_output = reference_score(submission, solutions)
        assert abs(report.score - expected_task) < 1e-12
        assert abs(report.score_per_output - expected_output) < 1e-12


def test_per_task_and_per_output_differ_as_they_should():
    solutions = {"a": [[[1]], [[2]]], "b": [[[3]]]}
    submission = {
        "a": [{"attempt_1": [[1]], "attempt_2": [[0]]}, {"attempt_1": [[0]], "attempt_2": [[0]]}],
        "b": [{"attempt_1": [[0]], "attempt_2": ((3,),)}],  # tuples count like lists; attempt_2 counts
    }
    report = score_submission(submission, solutions)
    assert report.score == 0.75  # (1/2 + 1) / 2
    assert abs(report.score_per_output - 2 / 3) < 1e-12
    assert report.per_task["a"].correct == [True, False]
    assert report.to_json()["per_task"]["b"]["score"] == 1.0


@pytest.mark.parametrize("submission, solutions, where", [
    ({"a": {"0": {"attempt_1": [[1]]}}}, {"a": [[[1]]]}, "submission: task a"),
    ({"a": None}, {"a": [[[1]]]}, "submission: task a"),
    ([], {"a": [[[1]]]}, "submission"),
    ({}, {"a": {"x": 1}}, "solutions: task a"),
    ({}, [[[1]]], "solutions"),
])
def test_malformed_shapes_are_a_clear_error(submission, solutions, where):
    with pytest.raises(ValueError, match=f"^{where}"):
        score_submission(submission, solutions)


def test_score_files_names_the_file(tmp_path):
    from arc_kit.core.metric import score_files

    (tmp_path / "sol.json").write_text(json.dumps({"a": [[[1]]]}))
    (tmp_path / "sub.json").write_text(json.dumps({"a": {"0": 1}}))
    with pytest.raises(ValueError, match=r"sub\.json: task a: must be a list"):
        score_files(tmp_path / "sub.json", tmp_path / "sol.json")
    (tmp_path / "sub.json").write_text(json.dumps({"a": [{"attempt_1": [[1]], "attempt_2": [[0]]}]}))
    assert score_files(tmp_path / "sub.json", tmp_path / "sol.json").score == 1.0
