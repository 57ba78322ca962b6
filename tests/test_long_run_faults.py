"""Faults a 12-hour kernel must survive: a challenges file nested deeper than the JSON reader goes, a full disk,
a tokenizer without digits, weights found somewhere other than where they were named, a killed worker, a
read-only output folder, a report that would overrun the budget, SIGTERM. Whatever happens, the output holds a
valid submission for every task id that can be read, and the run says what went wrong in one line."""

from __future__ import annotations

import errno
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arc_kit.cli.main import main as cli_main
from arc_kit.core.submission import validate_submission_file
from arc_kit.core.synthetic import generate_tasks
from arc_kit.core.tasks import write_task_files
from arc_kit.solve.solver import TaskResult

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


# -- 2. a full disk ------------------------------------------------------------------------------------------------


class Disk:
    """The output filesystem: while ``full``, every file written under ``folder`` fails as on a full disk."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch):
        self.folder, self.full = str(folder), False
        real = os.fsync

        def fsync(fd: int) -> None:
            if self.full and os.readlink(f"/proc/self/fd/{fd}").startswith(self.folder):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)


class DiskFillingSolver:
    """Answers [[1]] for every task, one at a time; the disk fills at call ``fill_at`` (frees at ``free_at``)."""

    def __init__(self, disk: Disk, fill_at: int, free_at: int | None = None):
        self.disk, self.fill_at, self.free_at, self.calls = disk, fill_at, free_at, 0

    def solve(self, tasks, stop_at=None):  # noqa: ANN001, ANN201
        self.calls += 1
        if self.calls == self.fill_at:
            self.disk.full = True
        if self.calls == self.free_at:
            self.disk.full = False
        return [TaskResult(t.task_id, [(((1,),), None)] * len(t.test), tokens=1, seconds=0.01) for t in tasks]


GREEDY = {"mode": "greedy", "views": 1, "scoring_views": 0, "batch_size": 1}
ONE_PASS = {"run": {"quick_first": False}, "solver": GREEDY}  # one result per task: calls count tasks


def kernel_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n_tasks: int, rerun: bool = False) -> Path:
    """Challenges of ``n_tasks`` one-test-input tasks under a fake /kaggle/input; the output under working/."""
    challenges = tmp_path / "input" / "competitions" / SLUG / "arc-agi_test_challenges.json"
    challenges.parent.mkdir(parents=True)
    write_task_files(generate_tasks(["flip_lr"], n_tasks, seed=3), challenges)
    monkeypatch.setenv("ARC_KIT_INPUT_ROOT", str(tmp_path / "input"))
    monkeypatch.setenv("ARC_KIT_OUTPUT", str(tmp_path / "working" / "submission.json"))
    if rerun:
        monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "1")
    else:
        monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)
    return challenges


def answered(path: Path) -> int:
    return sum(e != PLACEHOLDER for entries in json.loads(path.read_text()).values() for e in entries)


@pytest.mark.parametrize("rerun", [False, True])
def test_a_full_disk_keeps_the_last_good_file_and_the_run_going(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture,
                                                                caplog: pytest.LogCaptureFixture, rerun: bool):
    from arc_kit.run import runner
    from arc_kit.run.kernel import run_kernel

    challenges = kernel_tree(tmp_path, monkeypatch, 8, rerun)
    disk = Disk(tmp_path / "working", monkeypatch)
    solver = DiskFillingSolver(disk, fill_at=3)
    monkeypatch.setattr(runner, "load_solver_for", lambda config: solver)
    code = run_kernel({"kernel": {"model_dir": str(tmp_path)}, **ONE_PASS}, time.time())
    assert code == (0 if rerun else 1)  # valid file, but answers that never reached it: the user must hear of it
    assert solver.calls == 8, "the run stopped at the first failed write"
    output = tmp_path / "working" / "submission.json"
    assert validate_submission_file(output, challenges) == [] and answered(output) == 2
    failed = [r for r in caplog.records if "No space left" in r.getMessage() and "submission.json" in r.getMessage()]
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING  # once, not once a task
    out = capsys.readouterr().out
    assert "Traceback" not in out
    assert any(line.startswith("WARNING") and "No space left" in line and "6" in line for line in out.splitlines())


def test_a_write_that_works_again_catches_the_file_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture):
    from arc_kit.run import runner
    from arc_kit.run.kernel import run_kernel

    challenges = kernel_tree(tmp_path, monkeypatch, 8)
    disk = Disk(tmp_path / "working", monkeypatch)
    monkeypatch.setattr(runner, "load_solver_for", lambda config: DiskFillingSolver(disk, fill_at=3, free_at=6))
    assert run_kernel({"kernel": {"model_dir": str(tmp_path)}, **ONE_PASS}, time.time()) == 0
    output = tmp_path / "working" / "submission.json"
    assert validate_submission_file(output, challenges) == [] and answered(output) == 8
    assert any(line.startswith("WARNING") and "No space left" in line for line in capsys.readouterr().out.splitlines())


def test_the_dry_run_goes_on_through_a_full_disk_and_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture):
    from arc_kit.run import runner

    challenges = tmp_path / "c.json"
    write_task_files(generate_tasks(["flip_lr"], 6, seed=3), challenges)
    disk = Disk(tmp_path / "out", monkeypatch)
    solver = DiskFillingSolver(disk, fill_at=2)
    monkeypatch.setattr(runner, "load_solver_for", lambda config: solver)
    code = cli_main(["dry-run", "--model", str(tmp_path), "--challenges", str(challenges), "--out",
                     str(tmp_path / "out"), "--mode", "greedy", "--views", "1", "--scoring-views", "0",
                     "--batch-size", "1", "--no-quick-first"])
    said = capsys.readouterr()
    assert code == 1 and solver.calls == 6, said.err[-2000:]
    assert "Traceback" not in said.err and str(tmp_path / "out" / "submission.json") in said.out + said.err
    assert validate_submission_file(tmp_path / "out" / "submission.json", challenges) == []


# -- 6. smaller faults ---------------------------------------------------------------------------------------------


def test_a_read_only_output_folder_is_named_not_the_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture):
    challenges = tmp_path / "c.json"
    write_task_files(generate_tasks(["flip_lr"], 2, seed=3), challenges)
    out = tmp_path / "out"
    out.mkdir()
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - os.open's signature
        if str(path).startswith(str(out)) and flags & os.O_CREAT:  # the tests run as root: chmod would not do
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert cli_main(["dry-run", "--model", str(tmp_path), "--challenges", str(challenges), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {out / 'submission.json'}: Permission denied"



def test_an_unforeseen_fault_in_the_run_leaves_a_valid_file_and_one_line(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture,
                                                                       caplog: pytest.LogCaptureFixture):
    from arc_kit.run import kernel

    challenges = kernel_tree(tmp_path, monkeypatch, 3)

    def broken(config):  # noqa: ANN001, ANN202
        config.output.parent.mkdir(parents=True, exist_ok=True)
        config.output.write_text("{half a fi")  # as if killed mid-write by something that is not atomic
        raise RuntimeError("a bug")

    monkeypatch.setattr(kernel, "run_submission", broken)
    assert kernel.run_kernel({"kernel": {"model_dir": str(tmp_path)}}, time.time()) == 1
    assert "the run failed (RuntimeError: a bug)" in capsys.readouterr().out and "Traceback" in caplog.text
    assert validate_submission_file(tmp_path / "working" / "submission.json", challenges) == []


def test_the_entry_goes_on_when_it_cannot_write_its_placeholders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture):
    root = tmp_path / "input"
    deep_challenges(root / "competitions" / SLUG / "arc-agi_test_challenges.json")
    (tmp_path / "working").write_text("a file where the output folder should be")
    monkeypatch.setenv("ARC_KIT_INPUT_ROOT", str(root))
    monkeypatch.setenv("ARC_KIT_OUTPUT", str(tmp_path / "working" / "submission.json"))
    spec = importlib.util.spec_from_file_location("kernel_main_unwritable", MAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_placeholders()
    assert "cannot write placeholders" in capsys.readouterr().out


# -- 3. a tokenizer that cannot write the grids, a run in which every task fails ---------------------------------


def without_tokens(model_dir: Path, out: Path, tokens: list[str]) -> Path:
    """A copy of ``model_dir`` whose vocabulary lacks ``tokens`` (renamed, so the ids and the model still fit):
    each of them now reads as the unknown token."""
    import shutil

    shutil.copytree(model_dir, out)
    spec = json.loads((out / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    for token in tokens:
        vocab[f"renamed-{token}"] = vocab.pop(token)
    (out / "tokenizer.json").write_text(json.dumps(spec))
    return out


def test_a_vocabulary_without_digits_is_refused_at_load_and_the_interactive_run_fails(
        tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
        caplog: pytest.LogCaptureFixture):
    from arc_kit.core.text import TokenizerError, check_tokenizer
    from arc_kit.models.loading import load_tokenizer
    from arc_kit.run.kernel import run_kernel

    digitless = without_tokens(tiny_model_dir, tmp_path / "digitless", list("0123456789"))
    with pytest.raises(TokenizerError, match="0-9"):
        check_tokenizer(load_tokenizer(digitless, local_only=True))
    challenges = kernel_tree(tmp_path, monkeypatch, 3)
    assert run_kernel({"kernel": {"model_dir": str(digitless)}, **ONE_PASS}, time.time()) == 1
    assert "MODEL ERROR" in capsys.readouterr().out and "MODEL NOT LOADED" in caplog.text
    output = tmp_path / "working" / "submission.json"
    assert validate_submission_file(output, challenges) == [] and answered(output) == 0


class FailingSolver:
    """Loads, then fails every task (a model whose tokenizer lacks the prompt's words does that)."""

    def solve(self, tasks, stop_at=None):  # noqa: ANN001, ANN201
        return [TaskResult(t.task_id, error="TokenizerError: 'Input' is not in the vocabulary") for t in tasks]


@pytest.mark.parametrize("rerun", [False, True])
def test_a_run_in_which_every_task_failed_ends_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture, rerun: bool):
    from arc_kit.run import runner
    from arc_kit.run.kernel import run_kernel

    challenges = kernel_tree(tmp_path, monkeypatch, 3, rerun)
    monkeypatch.setattr(runner, "load_solver_for", lambda config: FailingSolver())
    assert run_kernel({"kernel": {"model_dir": str(tmp_path)}, **ONE_PASS}, time.time()) == (0 if rerun else 1)
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("WARNING") and "every one of the 3 attempted tasks failed" in line for line in lines)
    assert validate_submission_file(tmp_path / "working" / "submission.json", challenges) == []
    if not rerun:
        code = cli_main(["dry-run", "--model", str(tmp_path), "--challenges", str(challenges), "--out",
                         str(tmp_path / "out"), "--mode", "greedy", "--views", "1", "--scoring-views", "0"])
        assert code == 1
        assert "WARNING: every one of the 3 attempted tasks failed" in capsys.readouterr().out


# -- 4. weights not where they were named --------------------------------------------------------------------------


class RecordingFactory:
    """Stands in for the model: records which weights folder the run loaded, answers [[1]] everywhere."""

    def __init__(self):
        self.loaded: list[Path | None] = []

    def __call__(self, config):  # noqa: ANN001, ANN204
        from arc_kit.models.loading import ModelLoadError

        if config.model_dir is None:
            raise ModelLoadError(config.model_problem or "no weights")
        self.loaded.append(config.model_dir)
        return DiskFillingSolver(Disk.__new__(Disk), fill_at=0)


@pytest.mark.parametrize("rerun", [False, True])
def test_weights_missing_where_named_fail_the_interactive_run_and_are_said_on_the_rerun(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, rerun: bool):
    from arc_kit.run import runner
    from arc_kit.run.kernel import run_kernel

    challenges = kernel_tree(tmp_path, monkeypatch, 3, rerun)
    other = tmp_path / "input" / "datasets" / "other" / "llama-ckpt"
    other.mkdir(parents=True)
    (other / "config.json").write_text("{}")
    factory = RecordingFactory()
    monkeypatch.setattr(runner, "load_solver_for", factory)
    code = run_kernel({"kernel": {"weights_dataset": "me/weights1"}, **ONE_PASS}, time.time())
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("WARNING") and "me/weights1" in line]
    assert warnings and str(other) in warnings[0], out
    output = tmp_path / "working" / "submission.json"
    assert validate_submission_file(output, challenges) == []
    if rerun:  # the hidden run is scored with what it finds, and says so
        assert code == 0 and factory.loaded == [other] and answered(output) == 3
        report = json.loads((tmp_path / "working" / "report.json").read_text())
        assert any("me/weights1" in w and str(other) in w for w in report["warnings"])
    else:  # the user hears of it before submitting, without a whole budget spent on another model
        assert code == 1 and factory.loaded == [] and answered(output) == 0


# -- 5. a killed worker --------------------------------------------------------------------------------------------

WORKERS_SCRIPT = """
import json, logging, sys
from pathlib import Path
from arc_kit.config.run import RunSettings, SolverSettings
from arc_kit.run.job import RunJob
from arc_kit.run.runner import run_submission
import slow_solvers

if __name__ == "__main__":  # spawned workers import this file again
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = RunJob(model_dir=None, challenges=Path(sys.argv[1]), output=Path(sys.argv[2]),
                    run=RunSettings(budget_seconds=90, margin_seconds=1, workers=2),
                    solver=SolverSettings(batch_size=1, views=1), progress=False)
    report = run_submission(config, solver_factory=slow_solvers.SleepyFactory(0.25))
    full = [tid for tid, r in report.per_task.items() if r.inputs is not None and r.seconds]
    print(json.dumps({"attempted": report.tasks_attempted, "queued": report.tasks_queued, "errors": report.errors,
                      "full": len(full), "answered": report.answered, "warnings": report.warnings}))
"""


def test_a_killed_worker_is_noticed_its_tasks_go_back_and_a_replacement_starts(tmp_path: Path):
    import signal
    import subprocess
    import sys

    challenges = tmp_path / "c.json"
    write_task_files(generate_tasks(["flip_lr"], 40, seed=3), challenges)
    script = tmp_path / "run.py"
    script.write_text(WORKERS_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), str(challenges), str(tmp_path / "submission.json")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        workers: list[int] = []
        until = time.time() + 60
        while time.time() < until and len(workers) < 2:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            workers = [int(c) for c in children.read_text().split()] if children.exists() else []
            workers = [w for w in workers if b"spawn_main" in Path(f"/proc/{w}/cmdline").read_bytes()]
            time.sleep(0.2)
        assert len(workers) == 2, "the workers did not start"
        output = tmp_path / "submission.json"
        while time.time() < until and not (output.exists() and answered(output) == 40):
            time.sleep(0.1)  # phase 1 over: a worker killed now is on a task that has its phase-1 answer
        os.kill(workers[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["attempted"] == result["queued"] == 40 and result["answered"] == 40, (result, err[-3000:])
    died = [line for line in err.splitlines() if "died" in line]
    assert died and "replacement" in err, err[-3000:]
    assert any("died" in w for w in result["warnings"])
    lost = [tid for tid, why in result["errors"].items() if "died" in why]
    assert len(lost) == 1 and result["full"] == 39, result  # only the task it was on keeps its phase-1 answer
    assert validate_submission_file(tmp_path / "submission.json", challenges) == []


def test_a_dry_run_of_5000_tasks_writes_its_reports_within_the_budget(tmp_path: Path, arc_files,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture):
    """The reports are written in the margin between the deadline and the end of the budget; with 5,000 tasks
    re-reading and drawing them all once took longer than the margin."""
    import slow_solvers

    from arc_kit.run import runner

    challenges, solutions = arc_files("arc-agi-2/training")
    raw, sols = json.loads(challenges.read_text()), json.loads(solutions.read_text())
    many = {f"{tid}-{k}": task for k in range(5) for tid, task in raw.items()}
    (tmp_path / "c.json").write_text(json.dumps(many))
    (tmp_path / "s.json").write_text(json.dumps({f"{tid}-{k}": sols[tid] for k in range(5) for tid in raw}))
    monkeypatch.setattr(runner, "load_solver_for", slow_solvers.SleepyFactory(0.0))
    budget = 30.0
    began = time.time()
    code = cli_main(["dry-run", "--model", str(tmp_path), "--challenges", str(tmp_path / "c.json"), "--solutions",
                     str(tmp_path / "s.json"), "--out", str(tmp_path / "out"), "--budget-seconds", str(budget),
                     "--margin-seconds", "3", "--mode", "greedy", "--views", "1", "--scoring-views", "0",
                     "--batch-size", "1", "--workers", "1"])
    elapsed = time.time() - began
    assert code == 0, capsys.readouterr().err[-2000:]
    assert elapsed < budget, f"the dry run ended {elapsed - budget:.1f} s after its budget"
    assert "report.html" in capsys.readouterr().out
    assert (tmp_path / "out" / "report.html").stat().st_size > 0


SIGTERM_SCRIPT = """
import sys, time
import slow_solvers
from arc_kit.run import runner

if __name__ == "__main__":
    runner.load_solver_for = slow_solvers.SleepyFactory(0.3)
    if sys.argv[1] == "kernel":
        from arc_kit.run.kernel import run_kernel

        code = run_kernel({"kernel": {"model_dir": sys.argv[2]}, "run": {"quick_first": False, "workers": 1},
                           "solver": {"mode": "greedy", "views": 1, "scoring_views": 0, "batch_size": 1}},
                          time.time())
    else:
        from arc_kit.cli.main import main

        code = main(sys.argv[2:])
    sys.exit(code)
"""


@pytest.mark.parametrize("entry", ["dry-run", "kernel"])
def test_sigterm_is_logged_and_leaves_a_valid_file_and_the_reports(tmp_path: Path, entry: str):
    import signal
    import subprocess
    import sys

    challenges = tmp_path / "input" / "competitions" / SLUG / "arc-agi_test_challenges.json"
    challenges.parent.mkdir(parents=True)
    write_task_files(generate_tasks(["flip_lr"], 40, seed=3), challenges)
    out = tmp_path / "working"
    script = tmp_path / "run.py"
    script.write_text(SIGTERM_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "ARC_KIT_INPUT_ROOT": str(tmp_path / "input"), "ARC_KIT_OUTPUT": str(out / "submission.json")}
    env.pop("KAGGLE_IS_COMPETITION_RERUN", None)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "config.json").write_text("{}")  # the stand-in solver needs no model
    args = [str(tmp_path / "weights")] if entry == "kernel" else [
        "dry-run", "--model", str(tmp_path), "--challenges", str(challenges), "--out", str(out), "--mode", "greedy",
        "--views", "1", "--scoring-views", "0", "--batch-size", "1", "--no-quick-first", "--workers", "1"]
    proc = subprocess.Popen([sys.executable, str(script), entry, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        until = time.time() + 60
        while time.time() < until and not ((out / "submission.json").exists()
                                           and answered(out / "submission.json") >= 3):
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == (143 if entry == "dry-run" else 1), stderr[-2000:]
    assert "Traceback" not in stderr and "SIGTERM" in stderr, stderr[-2000:]
    assert validate_submission_file(out / "submission.json", challenges) == []
    assert 3 <= answered(out / "submission.json") < 40
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] and report["tasks_attempted"] >= 3
    if entry == "dry-run":
        assert (out / "report.html").is_file()


# -- 7. interrupts that keep coming while the run stops; workers that leave nothing behind -------------------------

# The dry run of SIGTERM_SCRIPT's stand-in, with two hooks for the test: a progress bar while "loading" (as
# transformers shows, in each worker), and report.html's drawing announced by a marker file and slowed down, so
# the test's later signals arrive while the reports are being written.
INTERRUPTS_SCRIPT = """
import sys, time
from pathlib import Path
import slow_solvers
from arc_kit.run import report, runner

if __name__ == "__main__":
    runner.load_solver_for = slow_solvers.SleepyFactory(0.2, loading_bar=True)
    marker, draw = Path(sys.argv[1]), report.write_run_report

    def slow_draw(*args, **kwargs):
        marker.touch()
        time.sleep(1.0)
        return draw(*args, **kwargs)

    report.write_run_report = slow_draw
    from arc_kit.cli.main import main

    sys.exit(main(sys.argv[2:]))
"""


def start_interruptible_run(tmp_path: Path, workers: int, n_tasks: int = 30,
                            prefix: tuple[str, ...] = ()) -> tuple[subprocess.Popen, Path]:
    """``arc-kit dry-run`` of ``n_tasks`` tasks with the stand-in solver, in a process group of its own (as a
    shell runs a job), after ``prefix`` (a ``timeout`` command, say)."""
    challenges = tmp_path / "c.json"
    write_task_files(generate_tasks(["flip_lr"], n_tasks, seed=3), challenges)
    script = tmp_path / "run.py"
    script.write_text(INTERRUPTS_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "out"
    args = [*prefix, sys.executable, str(script), str(tmp_path / "drawing"), "dry-run", "--model", str(tmp_path),
            "--challenges", str(challenges), "--out", str(out), "--mode", "greedy", "--views", "1",
            "--scoring-views", "0", "--batch-size", "1", "--no-quick-first", "--workers", str(workers)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    return proc, out


def wait_for(condition, seconds: float = 60.0) -> None:  # noqa: ANN001 - a callable returning a bool
    until = time.time() + seconds
    while time.time() < until and not condition():
        time.sleep(0.05)


def answered_at_least(output: Path, n: int) -> bool:
    try:
        return answered(output) >= n
    except (OSError, ValueError):  # not written yet
        return False


def finish(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupts_while_the_run_stops_still_leave_both_reports(tmp_path: Path, workers: int):
    """Ctrl-C in a shell signals the whole process group: under ``timeout`` the run gets SIGINT more than once
    (from the terminal and from ``timeout``), and its workers get it too; an impatient user presses it again.
    However many arrive while it stops, the run ends with exit code 130, a valid file and both reports of what
    finished."""
    proc, out = start_interruptible_run(tmp_path, workers, prefix=("timeout", "120"))
    try:
        wait_for(lambda: answered_at_least(out / "submission.json", 3))
        os.killpg(proc.pid, signal.SIGINT)
        wait_for(lambda: (tmp_path / "drawing").exists())  # report.json is written, report.html being drawn
        for _ in range(2):
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.2)
    finally:
        stdout, stderr = finish(proc)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "leaked" not in stderr, stderr[-3000:]
    assert validate_submission_file(out / "submission.json", tmp_path / "c.json") == []
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] and not report["terminated"] and report["tasks_attempted"] >= 3
    assert (out / "report.html").is_file()


def test_sigterm_with_two_workers_leaks_no_semaphore(tmp_path: Path):
    proc, out = start_interruptible_run(tmp_path, workers=2)
    try:
        wait_for(lambda: answered_at_least(out / "submission.json", 3))
        proc.send_signal(signal.SIGTERM)
    finally:
        stdout, stderr = finish(proc)
    assert proc.returncode == 143, stderr[-3000:]
    assert "leaked" not in stderr and "resource_tracker" not in stderr, stderr[-3000:]
    assert json.loads((out / "report.json").read_text())["terminated"] and (out / "report.html").is_file()


def test_a_replaced_worker_leaks_no_semaphore(tmp_path: Path):
    proc, out = start_interruptible_run(tmp_path, workers=2, n_tasks=16)
    try:
        wait_for(lambda: answered_at_least(out / "submission.json", 2))
        workers = [int(c) for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                   if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        os.kill(workers[0], signal.SIGKILL)
    finally:
        stdout, stderr = finish(proc)
    assert proc.returncode == 0, stderr[-3000:]
    assert "starting a replacement" in stderr, stderr[-3000:]
    assert "leaked" not in stderr and "resource_tracker" not in stderr, stderr[-3000:]
    assert validate_submission_file(out / "submission.json", tmp_path / "c.json") == []


def test_the_dry_runs_last_line_says_what_a_full_disk_let_it_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture):
    from arc_kit.run import runner

    challenges = tmp_path / "c.json"
    write_task_files(generate_tasks(["flip_lr"], 4, seed=3), challenges)
    disk = Disk(tmp_path / "out", monkeypatch)
    monkeypatch.setattr(runner, "load_solver_for", lambda config: DiskFillingSolver(disk, fill_at=2))
    code = cli_main(["dry-run", "--model", str(tmp_path), "--challenges", str(challenges), "--out",
                     str(tmp_path / "out"), "--mode", "greedy", "--views", "1", "--scoring-views", "0",
                     "--batch-size", "1", "--no-quick-first", "--workers", "1"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 1
    assert not last.startswith("wrote"), last
    assert "report.json" in last and "report.html" in last and "not written" in last, last
    assert "No space left on device" in last and "submission.json" in last, last
    assert validate_submission_file(tmp_path / "out" / "submission.json", challenges) == []
