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


# ---- solutions that cover none or part of the tasks scored: said, never a silent 0 or a score over part


TWO_TASKS = {tid: {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}]} for tid in ("t1", "t2")}


def test_dry_run_refuses_solutions_of_another_set_and_says_when_only_part_is_scored(tmp_path, tiny_model_dir,
                                                                                    arc_files, capsys):
    from arc_kit.cli.main import main

    (tmp_path / "c.json").write_text(json.dumps(TWO_TASKS))
    base = ["dry-run", "--model", str(tiny_model_dir), "--challenges", str(tmp_path / "c.json"), "--max-tasks", "0",
            "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "o"), "--solutions", str(arc_files("arc-agi-1/training")[1])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "arc-agi_training_solutions.json" in err[0] and "none of the 2 tasks" in err[0]
    assert not (tmp_path / "o").exists()
    (tmp_path / "s.json").write_text(json.dumps({"t1": [[[2]]]}))
    assert main([*base, "--out", str(tmp_path / "o"), "--solutions", str(tmp_path / "s.json")]) == 0
    out, err = capsys.readouterr()
    assert "score " in out and "1 of 2 tasks scored" in out + err and "t2" in out + err
    warnings = json.loads((tmp_path / "o" / "report.json").read_text())["warnings"]
    assert any("1 of 2 tasks scored" in w for w in warnings)  # the report keeps what the score leaves out


def test_select_refuses_solutions_of_another_set_and_says_when_only_part_is_scored(tmp_path, arc_files, capsys):
    from test_select import POOL, write_run

    from arc_kit.cli.main import main

    run = write_run(tmp_path / "a", POOL, ["s1"])  # one task, t
    submission = json.loads((run / "submission.json").read_text())
    (run / "submission.json").write_text(json.dumps({**submission, "u": submission["t"]}))
    assert main(["select", str(run), "--solutions", str(arc_files("arc-agi-1/training")[1])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none of the 2 tasks" in err[0]
    (tmp_path / "s.json").write_text(json.dumps({"t": [[[1]]]}))
    assert main(["select", str(run), "--solutions", str(tmp_path / "s.json"), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["choices"][0]["score"] == 1.0 and "1 of 2 tasks scored" in err and "u" in err
