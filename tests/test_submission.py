"""Submission files: placeholder-first and atomic; validate catches every broken kind Kaggle would refuse."""

from __future__ import annotations

import copy
import json
import os
import stat

import pytest

from arc_kit.core.submission import PLACEHOLDER, Submission, validate_submission, validate_submission_file

COUNTS = {"a": 2, "b": 1}


def valid():
    return Submission.placeholders(COUNTS).to_json()


def test_placeholders_are_valid_from_the_start(tmp_path):
    sub = Submission.placeholders(COUNTS)
    assert sub.num_entries == 3 and sub.placeholders_left == 3
    assert validate_submission(sub.to_json(), COUNTS) == []
    sub.set_attempts("a", 1, ((1, 2),), None)  # a lone attempt fills both
    assert sub.entries["a"][1] == {"attempt_1": ((1, 2),), "attempt_2": ((1, 2),)}
    sub.set_attempts("b", 0, None, None)  # nothing to say keeps the placeholder
    assert sub.entries["b"][0]["attempt_1"] == PLACEHOLDER and sub.placeholders_left == 2
    sub.write(tmp_path / "submission.json")
    assert json.loads((tmp_path / "submission.json").read_text())["a"][1]["attempt_2"] == [[1, 2]]
    assert [p.name for p in tmp_path.iterdir()] == ["submission.json"]  # no temp file left behind


def broken(kind):
    s = valid()
    if kind == "missing task":
        del s["b"]
    elif kind == "wrong count":
        s["a"].pop()
    elif kind == "missing attempt":
        del s["a"][0]["attempt_2"]
    elif kind == "bad grid":
        s["b"][0]["attempt_1"] = [[1, 2], [3]]
    elif kind == "bad colour":
        s["b"][0]["attempt_1"] = [[12]]
    elif kind == "empty grid":
        s["b"][0]["attempt_1"] = []
    elif kind == "extra task":
        s["zzz"] = copy.deepcopy(s["b"])
    elif kind == "entry not object":
        s["a"][0] = [[0]]
    return s


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing task", "task b: missing"),
        ("wrong count", "task a: 1 entries, expected 2"),
        ("missing attempt", "task a, entry 0: missing attempt_2"),
        ("bad grid", "task b, entry 0, attempt_1: ragged grid"),
        ("bad colour", "cell [0][0] is 12"),
        ("empty grid", "grid must be a non-empty list"),
        ("extra task", "task zzz: not in the challenges"),
        ("entry not object", "task a, entry 0: must be an object"),
    ],
)
def test_validate_catches_each_broken_kind(kind, message):
    problems = validate_submission(broken(kind), COUNTS)
    assert any(message in p for p in problems), problems


def test_validate_file_against_challenges(tmp_path, arc2_eval):
    from arc_kit.core.submission import raw_test_counts

    counts = raw_test_counts(arc2_eval[0])
    assert len(counts) == 120 and sum(counts.values()) == 167
    path = tmp_path / "s.json"
    Submission.placeholders(counts).write(path)
    assert validate_submission_file(path, arc2_eval[0]) == []
    path.write_text("{")
    assert "not valid JSON" in validate_submission_file(path, arc2_eval[0])[0]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_umask_not_0600(tmp_path, mask, mode):
    from arc_kit.core.files import atomic_write_text

    old = os.umask(mask)
    try:
        Submission.placeholders(COUNTS).write(tmp_path / "submission.json")
        existing = tmp_path / "existing.txt"
        existing.write_text("old")
        existing.chmod(0o600)
        atomic_write_text(existing, "new")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "submission.json").stat().st_mode) == mode
    assert stat.S_IMODE(existing.stat().st_mode) == mode and existing.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.txt", "submission.json"]


@pytest.mark.parametrize("challenges", ["[]", '{"a": 1, "b": "x"}', "{}", '"text"'])
def test_validate_file_refuses_a_challenges_file_without_tasks(tmp_path, challenges):
    (tmp_path / "c.json").write_text(challenges)
    (tmp_path / "s.json").write_text("{}")
    with pytest.raises(ValueError, match=r"c\.json"):
        validate_submission_file(tmp_path / "s.json", tmp_path / "c.json")


def test_validate_file_with_unreadable_files_names_them(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"t": {"train": [], "test": [{"input": [[1]]}]}}))
    (tmp_path / "s.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match=r"s\.json: not UTF-8"):
        validate_submission_file(tmp_path / "s.json", tmp_path / "c.json")
    (tmp_path / "s.json").write_text("{}")
    (tmp_path / "cdir").mkdir()
    with pytest.raises(ValueError, match=r"cdir: is a folder"):
        validate_submission_file(tmp_path / "s.json", tmp_path / "cdir")
    assert validate_submission_file(tmp_path / "s.json", tmp_path / "c.json") == ["task t: missing"]
