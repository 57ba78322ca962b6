"""The foundation's commands, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

from arc_kit.cli import main
from arc_kit.submission import Submission, raw_test_counts


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "arc_kit.cli", *args], capture_output=True, text=True)


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

    from arc_kit.text import check_tokenizer

    assert main(["tiny-model", "--out", str(tmp_path / "m"), "--hidden-size", "32", "--layers", "1"]) == 0
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "m", local_files_only=True)
    check_tokenizer(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m", local_files_only=True)
    assert model.config.hidden_size == 32 and model.config.vocab_size == len(tokenizer)
