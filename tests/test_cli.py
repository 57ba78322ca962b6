"""The foundation's commands, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import one_error_line

from arc_kit.cli.main import main
from arc_kit.core.submission import Submission, raw_test_counts


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "arc_kit.cli.main", *args], capture_output=True, text=True)


def test_help_lists_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("tiny-model", "score", "validate", "tokens"):
        assert command in out.stdout


def test_validate_exit_codes(tmp_path, arc2_eval, capsys):
    path = tmp_path / "s.json"
    counts = raw_test_counts(arc2_eval[0])
    Submission.placeholders(counts).write(path)
    assert main(["validate", str(path), str(arc2_eval[0])]) == 0
    data = json.loads(path.read_text())
    data.pop(next(iter(data)))
    path.write_text(json.dumps(data))
    assert main(["validate", str(path), str(arc2_eval[0])]) == 1
    assert ": missing" in capsys.readouterr().err


def test_score_json_has_the_promised_fields(tmp_path, arc2_eval, capsys):
    solutions = json.loads(arc2_eval[1].read_text())
    perfect = {tid: [{"attempt_1": g, "attempt_2": [[0]]} for g in grids] for tid, grids in solutions.items()}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(perfect))
    assert main(["score", str(path), str(arc2_eval[1]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"score", "score_per_output", "tasks", "test_outputs", "per_task"} <= set(report)
    assert report["score"] == 1.0 and report["tasks"] == 120 and report["test_outputs"] == 167


def test_tokens_json(arc2_eval, capsys):
    assert main(["tokens", str(arc2_eval[0]), "--solutions", str(arc2_eval[1]), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["fit"] == 167 and len(stats["per_test_input"]) == 167


def test_tiny_model_loads_back_offline(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arc_kit.core.text import check_tokenizer

    assert main(["tiny-model", "--out", str(tmp_path / "m"), "--hidden-size", "32", "--layers", "1"]) == 0
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "m", local_files_only=True)
    check_tokenizer(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m", local_files_only=True)
    assert model.config.hidden_size == 32 and model.config.vocab_size == len(tokenizer)


def test_tiny_model_shape_defaults_are_the_training_settings(tmp_path):
    """`arc-kit tiny-model` and a `name_or_path = "tiny"` run build the same shape: one default, in ModelSettings."""
    import json

    from arc_kit.config.training import ModelSettings

    defaults = ModelSettings()
    assert main(["tiny-model", "--out", str(tmp_path / "m"), "--heads", "2"]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["num_attention_heads"] == 2
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_key_value_heads"],
            config["intermediate_size"]) == (defaults.tiny_hidden_size, defaults.tiny_layers,
                                             defaults.tiny_kv_heads, defaults.tiny_intermediate_size)


# ---- bad input: one line naming the file/task/field, exit 2, never a traceback

TASK = {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 4]]}]}


def test_score_with_a_task_value_that_is_not_a_list(tmp_path, capsys):
    (tmp_path / "sol.json").write_text(json.dumps({"t1": [[[1]]]}))
    (tmp_path / "sub.json").write_text(json.dumps({"t1": {"attempt_1": [[1]], "attempt_2": [[1]]}}))
    assert main(["score", str(tmp_path / "sub.json"), str(tmp_path / "sol.json")]) == 2
    one_error_line(capsys, "sub.json", "t1")
    (tmp_path / "sub.json").write_text("[]")
    assert main(["score", str(tmp_path / "sub.json"), str(tmp_path / "sol.json")]) == 2
    one_error_line(capsys, "sub.json")
    (tmp_path / "sol.json").write_text(json.dumps({"t1": {"x": 1}}))
    assert main(["score", str(tmp_path / "sol.json"), str(tmp_path / "sol.json")]) == 2
    one_error_line(capsys, "sol.json", "t1")


def write_unreadable(path: Path, content: str | bytes | None) -> Path:
    """``path`` as a bad input: missing (None), a folder ("folder"), raw bytes, or text."""
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    return path


@pytest.mark.parametrize("content", [None, "{", b"\xff\xfe{", "folder"])
def test_score_and_tokens_with_unreadable_files(tmp_path, capsys, content):
    bad = write_unreadable(tmp_path / "bad.json", content)
    (tmp_path / "ok.json").write_text(json.dumps({"t1": [[[1]]]}))
    assert main(["score", str(bad), str(tmp_path / "ok.json")]) == 2
    one_error_line(capsys, "bad.json")
    assert main(["score", str(tmp_path / "ok.json"), str(bad)]) == 2
    one_error_line(capsys, "bad.json")
    if content != "folder":  # a folder is the one-task-per-file layout for tokens
        assert main(["tokens", str(bad)]) == 2
        one_error_line(capsys, "bad.json")


def test_tokens_with_a_malformed_task_and_a_missing_tokenizer(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({"t1": {"train": [], "test": []}}))
    assert main(["tokens", str(tmp_path / "c.json")]) == 2
    one_error_line(capsys, "c.json", "t1", "train")
    (tmp_path / "c.json").write_text(json.dumps({"t1": TASK}))
    assert main(["tokens", str(tmp_path / "c.json"), "--tokenizer", str(tmp_path / "nope")]) == 2
    assert "does not exist" in one_error_line(capsys, str(tmp_path / "nope"))


@pytest.mark.parametrize("challenges", [None, "folder", "{", "[]", '{"a": 1, "b": "x"}', b"\xff{}"])
def test_validate_with_a_bad_challenges_file(tmp_path, capsys, challenges):
    path = write_unreadable(tmp_path / "c.json", challenges)
    (tmp_path / "s.json").write_text("{}")
    assert main(["validate", str(tmp_path / "s.json"), str(path)]) == 2
    one_error_line(capsys, "c.json")


def test_validate_with_a_non_utf8_submission(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({"t1": TASK}))
    (tmp_path / "s.json").write_bytes(b'{"t1": "\xff"}')
    assert main(["validate", str(tmp_path / "s.json"), str(tmp_path / "c.json")]) == 2
    one_error_line(capsys, "s.json")


def test_validate_invalid_submission_still_exits_1(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({"t1": TASK}))
    (tmp_path / "s.json").write_text("{}")
    assert main(["validate", str(tmp_path / "s.json"), str(tmp_path / "c.json")]) == 1
    assert "task t1: missing" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["missing challenges", "list submission", "bad attempt", "undecodable"])
def test_show_with_bad_files(tmp_path, capsys, bad):
    challenges = tmp_path / "c.json"
    challenges.write_text(json.dumps({"t1": TASK}))
    sub = tmp_path / "sub.json"
    sub.write_text(json.dumps({"t1": [{"attempt_1": [[4, 3]], "attempt_2": [[0]]}]}))
    if bad == "missing challenges":
        challenges.unlink()
    elif bad == "list submission":
        sub.write_text("[]")
    elif bad == "bad attempt":
        sub.write_text(json.dumps({"t1": [{"attempt_1": [[4, 3]], "attempt_2": "oops"}]}))
    else:
        sub.write_bytes(b"\xff\xfe\xfd")
    args = ["show", "t1", "--challenges", str(challenges), "--submission", str(sub),
            "--out", str(tmp_path / "t.png")]
    assert main(args) == 2
    one_error_line(capsys, challenges.name if bad == "missing challenges" else "sub.json")
    assert not (tmp_path / "t.png").exists()


def test_no_traceback_from_the_real_command(tmp_path):
    out = run_cli("score", str(tmp_path / "missing.json"), str(tmp_path / "missing.json"))
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert "missing.json" in out.stderr


def test_the_counting_tokenizer_picks_by_name_or_folder(tiny_model_dir, tmp_path):
    from arc_kit.core.text import check_tokenizer
    from arc_kit.models.token_stats import counting_tokenizer

    check_tokenizer(counting_tokenizer(None))
    assert counting_tokenizer(str(tiny_model_dir)).name_or_path == str(tiny_model_dir)
    with pytest.raises(ValueError, match="does not exist"):
        counting_tokenizer(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        counting_tokenizer(str(tmp_path / "empty"))


def _all_parsers(parser, path=("arc-kit",)):
    """(command path, parser) for the top-level parser and every sub-command below it."""
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, (*path, name))


def test_every_flag_of_every_command_is_spelt_with_hyphens():
    from arc_kit.cli.main import build_parser

    underscored = [(" ".join(path), option) for path, parser in _all_parsers(build_parser())
                   for action in parser._actions for option in action.option_strings
                   if option.startswith("--") and "_" in option]
    assert underscored == []
    commands = dict(_all_parsers(build_parser()))
    dry_run = {o for a in commands[("arc-kit", "dry-run")]._actions for o in a.option_strings}
    assert {"--max-tasks", "--budget-seconds", "--ttt-learning-rate", "--no-colour-views", "--kv-cache"} <= dry_run


def test_an_abbreviated_flag_is_refused_in_one_line(capsys):
    from arc_kit.cli.main import build_parser

    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["dry-run", "--model", "m", "--challenges", "arc-agi-1/evaluation", "--out", "o", "--budget", "5"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --budget" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--heldout", "3"])  # a prefix of --heldout-tasks


def test_a_flag_given_on_the_command_line_beats_the_settings_file_even_at_its_default(tmp_path):
    from arc_kit.cli.flags import config_from_args
    from arc_kit.cli.main import build_parser
    from arc_kit.config.run import SolverSettings

    path = tmp_path / "s.toml"
    path.write_text("[solver]\ncolour_views = false\nviews = 3\n[ttt]\ncolour_views = false\n")
    base = ["dry-run", "--model", "m", "--challenges", "arc-agi-1/evaluation", "--out", "o", "--settings", str(path)]
    assert SolverSettings().colour_views is True and SolverSettings().views == 8
    config = config_from_args(build_parser().parse_args([*base, "--colour-views", "true", "--views", "8"]))
    assert config.solver.colour_views is True and config.solver.views == 8
    assert config.ttt.colour_views is False  # not given: the file's value stands
    config = config_from_args(build_parser().parse_args([*base, "--ttt-colour-views"]))
    assert config.ttt.colour_views is True and config.solver.colour_views is False
