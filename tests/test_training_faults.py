"""Bad input to train / export / synth: a one-line `error: ...` naming the file, field or option, exit 2, before
any model is loaded, and nothing the user made is overwritten."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import one_error_line

from arc_kit.cli.main import main, notices_on_stderr
from arc_kit.config.schema import SettingsError
from arc_kit.config.training import load_config, resolve_config_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if training gets as far as loading a model."""
    import arc_kit.models.training_model as training_model

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(training_model, "load_training_model", refuse)


def train(tmp_path: Path, *sets: str) -> int:
    args = ["train", "--config", "tiny-cpu", "--set", f"train.output_dir={tmp_path / 'run'}"]
    for item in sets:
        args += ["--set", item]
    return main(args)


# -- bad task files are found before the model is loaded ---------------------------------------------------------
def test_train_refuses_a_broken_challenges_file_before_loading_the_model(tmp_path, capsys, no_model):
    bad = tmp_path / "bad_challenges.json"
    bad.write_text('{"t1": {"train": [{"input": [[1, 2]], "output": [[3, 12]]}], "test": [{"input": [[1]]}]}}')
    assert train(tmp_path, f"data.challenges={bad}") == 2
    one_error_line(capsys, str(bad), "t1")
    assert not (tmp_path / "run").exists()


def test_train_refuses_a_broken_solutions_file(tmp_path, capsys, no_model):
    challenges = tmp_path / "c.json"
    challenges.write_text('{"t1": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}}')
    solutions = tmp_path / "s.json"
    solutions.write_text('{"t1": [[[1, 2]]')  # torn JSON
    assert train(tmp_path, f"data.challenges={challenges}", f"data.solutions={solutions}") == 2
    one_error_line(capsys, str(solutions))


def test_train_refuses_a_task_id_naming_two_different_tasks(tmp_path, capsys, no_model):
    challenges, other = tmp_path / "c.json", tmp_path / "d.json"
    challenges.write_text('{"t1": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}}')
    other.write_text('{"t1": {"train": [{"input": [[1, 1]], "output": [[2]]}], "test": [{"input": [[1]]}]}}')
    assert train(tmp_path, f"data.challenges={challenges},{other}") == 2
    one_error_line(capsys, "t1", "c.json", "d.json")


def test_train_refuses_a_source_named_twice(tmp_path, capsys, no_model):
    challenges = tmp_path / "c.json"
    challenges.write_text('{"t1": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}}')
    assert train(tmp_path, f"data.challenges={challenges},{challenges}") == 2
    one_error_line(capsys, str(challenges), "twice")


# -- nonsense settings are refused at config load, naming the field ----------------------------------------------
@pytest.mark.parametrize("override, field", [
    ("train.learning_rate=-1e-4", "train.learning_rate"),
    ("train.learning_rate=0", "train.learning_rate"),
    ("train.embedding_learning_rate=0", "train.embedding_learning_rate"),
    ("train.per_device_train_batch_size=0", "train.per_device_train_batch_size"),
    ("train.per_device_eval_batch_size=0", "train.per_device_eval_batch_size"),
    ("train.num_train_epochs=0", "train.num_train_epochs"),
    ("train.weight_decay=-0.1", "train.weight_decay"),
    ("train.embedding_weight_decay=-1", "train.embedding_weight_decay"),
    ("train.max_grad_norm=-1", "train.max_grad_norm"),
    ("train.save_steps=0", "train.save_steps"),
    ("train.save_total_limit=0", "train.save_total_limit"),
    ("train.logging_steps=0", "train.logging_steps"),
    ("train.eval_steps=-1", "train.eval_steps"),
    ("train.max_steps=0", "train.max_steps"),
    ("train.dataloader_num_workers=-1", "train.dataloader_num_workers"),
    ("train.output_dir=", "train.output_dir"),
    ("lora.r=0", "lora.r"),
    ("lora.alpha=0", "lora.alpha"),
    ("lora.dropout=1.0", "lora.dropout"),
    ("model.max_seq_length=0", "model.max_seq_length"),
    ("model.tiny_layers=0", "model.tiny_layers"),
    ("data.max_length=0", "data.max_length"),
    ("data.max_eval_examples=-1", "data.max_eval_examples"),
    ("data.synthetic.n_tasks=-1", "data.synthetic.n_tasks"),
    ("data.synthetic.sizes=[0]", "data.synthetic.sizes"),
    ("data.synthetic.sizes=[31]", "data.synthetic.sizes"),
    ("data.synthetic.sizes=[]", "data.synthetic.sizes"),
    ("data.synthetic.n_train=0", "data.synthetic.n_train"),
    ("data.synthetic.n_test=0", "data.synthetic.n_test"),
    ("data.synthetic.rules=[\"no_such_rule\"]", "data.synthetic.rules"),
])
def test_nonsense_settings_are_refused_naming_the_field(override, field):
    with pytest.raises(SettingsError, match=field.replace(".", r"\.")):
        load_config(resolve_config_path("tiny-cpu"), [override])


def test_valid_edge_settings_are_accepted():
    cfg = load_config(resolve_config_path("tiny-cpu"), [
        "train.max_grad_norm=0", "train.weight_decay=0", "train.max_steps=-1", "train.max_steps=5",
        "data.synthetic.sizes=[1,30]", "lora.dropout=0.0", "train.eval_steps=0",
    ])
    assert cfg.train.max_steps == 5 and cfg.data.synthetic.sizes == [1, 30]


def test_train_cli_refuses_a_negative_learning_rate_before_loading_the_model(tmp_path, capsys, no_model):
    assert train(tmp_path, "train.learning_rate=-0.001") == 2
    one_error_line(capsys, "train.learning_rate", "tiny-cpu.toml")
    assert not (tmp_path / "run").exists()


# -- a torn train_log.jsonl on --resume ---------------------------------------------------------------------------
def _fake_checkpoint(run: Path, step: int) -> None:
    ckpt = run / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def test_resume_drops_a_torn_last_log_line(tmp_path, capsys):
    from arc_kit.training.trainer import LOG_FILE, restart_log

    run = tmp_path / "run"
    _fake_checkpoint(run, 4)
    log = run / LOG_FILE
    log.write_text('{"step": 2, "loss": 1.0}\n{"step": 4, "loss": 0.9}\n{"step": 6, "loss": 0.8}\n{"step": 8, "lo')
    with notices_on_stderr():  # as every command shows the library's notices
        restart_log(log, run / "checkpoint-4")
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [2, 4]
    assert LOG_FILE in capsys.readouterr().err  # the user is told a torn line was dropped


def test_resume_refuses_a_corrupt_line_in_the_middle_naming_file_and_line(tmp_path, capsys, no_model):
    run = tmp_path / "run"
    _fake_checkpoint(run, 4)
    log = run / "train_log.jsonl"
    text = '{"step": 2, "loss": 1.0}\n{"step": 3, "lo\n{"step": 4, "loss": 0.9}\n'
    log.write_text(text)
    assert main(["train", "--config", "tiny-cpu", "--set", f"train.output_dir={run}", "--resume"]) == 2
    one_error_line(capsys, str(log), "line 2")
    assert log.read_text() == text  # nothing the user has is rewritten


# -- --out at an existing file -------------------------------------------------------------------------------------
def test_train_refuses_an_output_dir_that_is_a_file(tmp_path, capsys, no_model):
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    assert main(["train", "--config", "tiny-cpu", "--set", f"train.output_dir={out}"]) == 2
    one_error_line(capsys, "train.output_dir", str(out))
    assert out.read_text() == "mine"


def _fake_finished_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "run_info.json").write_text(json.dumps({"base_model": "x", "is_peft": True, "backend": "peft"}))
    return run


def test_export_refuses_an_out_that_is_a_file(tmp_path, capsys):
    out = tmp_path / "export.txt"
    out.write_text("mine")
    assert main(["export", str(_fake_finished_run(tmp_path)), "--out", str(out)]) == 2
    one_error_line(capsys, "--out", str(out))
    assert out.read_text() == "mine"


def test_export_script_gives_the_same_one_line_error(tmp_path):
    out = tmp_path / "export.txt"
    out.write_text("mine")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "export.py"), str(_fake_finished_run(tmp_path)),
                           "--out", str(out)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().startswith("error: ") and "Traceback" not in done.stderr
    assert out.read_text() == "mine"


def test_synth_refuses_an_out_that_is_a_file(tmp_path, capsys):
    out = tmp_path / "data.json"
    out.write_text("mine")
    assert main(["synth", "--out", str(out), "--n-tasks", "2"]) == 2
    one_error_line(capsys, "--out", str(out))
    assert out.read_text() == "mine"


# -- synth options ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, option", [
    (["--sizes", "0"], "--sizes"),
    (["--sizes", "31"], "--sizes"),
    (["--sizes", "3,x"], "--sizes"),
    (["--sizes", ""], "--sizes"),
    (["--n-tasks", "-1"], "--n-tasks"),
    (["--n-train", "0"], "--n-train"),
    (["--n-test", "0"], "--n-test"),
    (["--rules", ","], "--rules"),
])
def test_synth_refuses_bad_options_naming_them(tmp_path, capsys, args, option):
    out = tmp_path / "synth"
    assert main(["synth", "--out", str(out), *args]) == 2
    one_error_line(capsys, option)
    assert not out.exists() or not any(out.iterdir())


def test_generate_tasks_refuses_grid_sides_outside_arc_limits():
    from arc_kit.core.synthetic import generate_tasks

    for sizes in ([0], [31], []):
        with pytest.raises(ValueError, match="sizes"):
            generate_tasks(["rot180"], 1, sizes=sizes)
    with pytest.raises(ValueError, match="n_tasks"):
        generate_tasks(["rot180"], -1)
