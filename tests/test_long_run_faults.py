"""Faults a 12-hour kernel must survive: a challenges file nested deeper than the JSON reader goes, a full disk,
a tokenizer without digits, weights found somewhere other than where they were named, a killed worker, a
read-only output folder, a report that would overrun the budget, SIGTERM. Whatever happens, the output holds a
valid submission for every task id that can be read, and the run says what went wrong in one line."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from arc_kit.cli.main import main as cli_main

TESTS = Path(__file__).resolve().parent
MAIN = TESTS.parent / "submission" / "main.py"
SLUG = "arc-prize-2026-arc-agi-2"
PLACEHOLDER = {"attempt_1": [[0]], "attempt_2": [[0]]}
GOOD_TASK = {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}


def deep_challenges(path: Path, depth: int = 2000, good: bool = True) -> Path:
    """Task "a" holds a grid nested ``depth`` lists deep (past Python's JSON reader); task "b" is fine."""
    deep = '{"train": [{"input": ' + "[" * depth + "]" * depth + ', "output": [[1]]}], "test": [{"input": [[1]]}]}'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"a": ' + deep + (', "b": ' + json.dumps(GOOD_TASK) if good else "") + "}")
    return path


# -- 1. deeply nested JSON -----------------------------------------------------------------------------------------


def test_the_entry_writes_placeholders_for_every_task_id_of_a_deeply_nested_file(tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "input"
    deep_challenges(root / "competitions" / SLUG / "arc-agi_test_challenges.json")
    output = tmp_path / "working" / "submission.json"
    monkeypatch.setenv("ARC_KIT_INPUT_ROOT", str(root))
    monkeypatch.setenv("ARC_KIT_OUTPUT", str(output))
    spec = importlib.util.spec_from_file_location("kernel_main_deep", MAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_placeholders()
    assert json.loads(output.read_text()) == {"a": [PLACEHOLDER], "b": [PLACEHOLDER]}


@pytest.mark.parametrize("good", [True, False])
def test_the_kernel_keeps_every_readable_task_id_of_a_deeply_nested_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, good: bool):
    from arc_kit.run.kernel import run_kernel

    challenges = deep_challenges(tmp_path / "deep.json", good=good)
    output = tmp_path / "out" / "submission.json"
    monkeypatch.setenv("ARC_KIT_INPUT_ROOT", str(tmp_path))
    monkeypatch.setenv("ARC_KIT_OUTPUT", str(output))
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)
    assert run_kernel({"kernel": {"challenges": str(challenges)}}, time.time()) == 1  # no weights either way
    expected = {"a": [PLACEHOLDER], "b": [PLACEHOLDER]} if good else {"a": [PLACEHOLDER]}
    assert json.loads(output.read_text()) == expected
    said = capsys.readouterr()
    assert "Traceback" not in said.out + said.err and "nested" in said.out + said.err


def test_dry_run_and_validate_say_in_one_line_that_a_file_is_nested_too_deeply(tmp_path: Path, tiny_model_dir: Path,
                                                                               capsys: pytest.CaptureFixture):
    challenges = deep_challenges(tmp_path / "deep.json", good=False)
    assert cli_main(["dry-run", "--model", str(tiny_model_dir), "--challenges", str(challenges),
                     "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "deep.json" in err[0] and "task a" in err[0] and "nested" in err[0], err
    shallower = deep_challenges(tmp_path / "shallower.json", depth=960, good=False)  # read, but not a grid
    assert cli_main(["dry-run", "--model", str(tiny_model_dir), "--challenges", str(shallower),
                     "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "task a" in err[0] and len(err[0]) < 300, err
    (tmp_path / "sub.json").write_text(json.dumps({"a": [PLACEHOLDER]}))
    assert cli_main(["validate", str(tmp_path / "sub.json"), str(challenges)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "deep.json" in err[0] and "nested" in err[0], err
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"b": GOOD_TASK}))
    deep_submission = tmp_path / "deep-sub.json"
    deep_submission.write_text('{"b": [{"attempt_1": ' + "[" * 5000 + "]" * 5000 + ', "attempt_2": [[0]]}]}')
    assert cli_main(["validate", str(deep_submission), str(good)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "deep-sub.json" in err and "nested" in err
