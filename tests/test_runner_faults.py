"""Faults of the run that cost a competitor a whole Kaggle session: workers that never end, a parent that outlives
its deadline, answers thrown away, prefills that overrun the budget, unreadable challenges files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from arc_kit.cli.main import main as cli_main
from arc_kit.config.run import RunSettings, SolverSettings
from arc_kit.core.submission import validate_submission_file
from arc_kit.core.tasks import load_tasks, write_task_files
from arc_kit.run.job import RunJob
from arc_kit.run.runner import run_submission
from arc_kit.solve.decoding import DecodeRequest, GreedyDecoder

TESTS = Path(__file__).resolve().parent

RUN_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from arc_kit.run.job import RunJob
    from arc_kit.run.runner import run_submission
    from arc_kit.config.run import SolverSettings, RunSettings
    import slow_solvers

    if __name__ == "__main__":  # spawned workers import this file again
        challenges, out, kind, budget = sys.argv[1], Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
        factory = slow_solvers.SleepyFactory(0.5) if kind == "sleepy" else slow_solvers.FailingFactory()
        config = RunJob(model_dir=None, challenges=Path(challenges), output=out,
                        run=RunSettings(budget_seconds=budget, margin_seconds=0.5, workers=2),
                        solver=SolverSettings(batch_size=1, views=1), progress=False)
        report = run_submission(config, solver_factory=factory)
        print("wrote", out, report.tasks_attempted, report.tasks_queued, report.model_error, flush=True)
""")


def run_script(tmp_path: Path, challenges: Path, factory: str, budget: float) -> tuple[subprocess.Popen, float]:
    script = tmp_path / "run.py"
    script.write_text(RUN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), str(challenges), str(tmp_path / "submission.json"),
                             factory, str(budget)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    return proc, time.time()


def finish(proc: subprocess.Popen, hang: str) -> tuple[str, str]:
    """The script's output; a hang fails the test within a minute instead of eating CI's time."""
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(hang)


@pytest.fixture(scope="module")
def many_tasks(arc_files) -> Path:
    """ARC-AGI-2 training: 1,000 tasks, several MB pickled: far more than a pipe buffer."""
    return arc_files("arc-agi-2/training")[0]


def test_two_workers_on_a_deadline_end_within_seconds_of_it(tmp_path: Path, many_tasks: Path):
    proc, began = run_script(tmp_path, many_tasks, "sleepy", budget=15.0)
    out, err = finish(proc, "the run never exited after its deadline (a queue feeder thread kept it alive)")
    elapsed = time.time() - began
    assert proc.returncode == 0, err[-2000:]
    assert elapsed < 15.0 + 12, f"exited {elapsed:.1f} s after start for a 15 s budget"
    _, _, attempted, queued, _ = out.split(maxsplit=4)
    assert 0 < int(attempted) < int(queued) == 1000, "tasks_attempted counts decoded tasks, not queued ones"
    assert validate_submission_file(tmp_path / "submission.json", many_tasks) == []


def test_two_workers_that_cannot_load_the_model_end_at_once(tmp_path: Path, many_tasks: Path):
    proc, began = run_script(tmp_path, many_tasks, "failing", budget=600.0)
    out, err = finish(proc, "the run never exited after every worker failed to load the model")
    assert proc.returncode == 0, err[-2000:]
    assert time.time() - began < 40 and "/nope does not exist" in out
    assert validate_submission_file(tmp_path / "submission.json", many_tasks) == []


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_killing_the_parent_kills_its_workers(tmp_path: Path, many_tasks: Path):
    proc, _ = run_script(tmp_path, many_tasks, "sleepy", budget=600.0)
    try:
        workers: list[int] = []
        until = time.time() + 60
        while time.time() < until and len(workers) < 2:
            workers = [c for c in _children(proc.pid) if "arc-kit" in Path(f"/proc/{c}/cmdline").read_text()
                       or "multiprocessing" in Path(f"/proc/{c}/cmdline").read_text()]
            time.sleep(0.2)
        assert len(workers) >= 2, "the workers did not start"
        time.sleep(3)  # let them import and start solving
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        until = time.time() + 10
        while time.time() < until and any(_alive(w) for w in workers):
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "workers outlived a killed parent (they would hold the GPUs)"
    finally:
        if proc.poll() is None:
            proc.kill()


# -- answers and budgets ---------------------------------------------------------------------------------------


def test_chunked_prefill_decodes_exactly_like_one_prefill(loaded):
    tokenizer = loaded.tokenizer
    prompts = ["Input:\n" + "0123456789\n" * 40, "Input:\n" + "9876\n" * 15]
    requests = [DecodeRequest(i, tuple(tokenizer(p, add_special_tokens=False)["input_ids"]), 12)
                for i, p in enumerate(prompts)]
    whole = GreedyDecoder.for_config(loaded.model, tokenizer, "cpu", SolverSettings(prefill_chunk_tokens=100_000, batch_size=2)).decode(requests)
    chunked = GreedyDecoder.for_config(loaded.model, tokenizer, "cpu", SolverSettings(prefill_chunk_tokens=64, batch_size=2)).decode(requests)
    assert [g.token_ids for g in chunked] == [g.token_ids for g in whole]


def test_no_prefill_starts_that_would_cross_the_deadline(loaded):
    tokenizer = loaded.tokenizer
    ids = tuple(tokenizer("Input:\n" + "0123456789\n" * 60, add_special_tokens=False)["input_ids"])
    decoder = GreedyDecoder.for_config(loaded.model, tokenizer, "cpu", SolverSettings(prefill_chunk_tokens=64, batch_size=1))
    decoder.stats.prefill_tokens, decoder.stats.prefill_seconds = 1000, 10.0  # measured: 100 tokens/s
    began = time.time()
    gens = decoder.decode([DecodeRequest(0, ids, 5)], stop_at=time.time() + 2.0)  # needs ~6.6 s: not started
    assert time.time() - began < 1.0 and gens[0].timed_out and decoder.stats.skipped_batches == 1
    # and a prefill already under way stops between chunks when the deadline passes
    fresh = GreedyDecoder.for_config(loaded.model, tokenizer, "cpu",
                                     SolverSettings(prefill_chunk_tokens=8, batch_size=1))
    gens = fresh.decode([DecodeRequest(0, ids, 5)], stop_at=time.time() + 0.02)
    assert gens[0].timed_out and gens[0].token_ids == []


def test_finished_test_inputs_are_kept_when_another_times_out(arc_tokenizer):
    """A deadline that stops one test input's generation costs that input only: the finished one keeps its answer."""
    from types import SimpleNamespace

    from arc_kit.core.augment import View
    from arc_kit.core.tasks import parse_task
    from arc_kit.models.loading import LoadedModel
    from arc_kit.solve.prompts import task_prompts
    from arc_kit.solve.solver import ArcSolver, _Found

    task = parse_task("t", {"train": [{"input": [[1]], "output": [[2]]}],
                            "test": [{"input": [[1]]}, {"input": [[3]]}]}, "test")
    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=8192))
    from arc_kit.core.formats import ARC_KIT_FORMAT

    solver = ArcSolver(LoadedModel(model, arc_tokenizer, "cpu", "fake", ".", dtype=None, has_lora=False,
                                   prompt_format=ARC_KIT_FORMAT),
                       SolverSettings(mode="greedy", scoring_views=0, views=1))
    prompts = task_prompts(task, arc_tokenizer, ARC_KIT_FORMAT, [View()], 8192)
    answer = tuple(arc_tokenizer("2\n<|im_end|>", add_special_tokens=False)["input_ids"])
    found = {prompts[0]: _Found([(answer, 0.5)]), prompts[1]: _Found(timed_out=True)}
    result = solver._choose(task, prompts, found, None, solver.config)
    assert result.attempts[0][0] == ((2,),) and result.attempts[1] == (None, None) and result.timed_out


# -- challenges files the kernel and the dry run cannot use ------------------------------------------------------


@pytest.mark.parametrize("content,expected", [(None, {}), ("[1, 2]", {}), ("{not json", {}),
                                              ('{"t1": {"train": [{"input": [[1]], "output": [[1]]}], "test": []}}', {"t1": []}),
                                              ('{"t1": {"train": []}, "t2": 5}', {"t1": [{"attempt_1": [[0]], "attempt_2": [[0]]}], "t2": [{"attempt_1": [[0]], "attempt_2": [[0]]}]})])
def test_a_bad_challenges_file_is_one_line_and_the_kernel_keeps_the_most_valid_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, content, expected):
    """The runner writes nothing on bad input (the dry run's user fixes the file); the kernel, which must leave a
    file Kaggle accepts, writes placeholders for every task id it can read."""
    from arc_kit.core.tasks import TaskFileError
    from arc_kit.run.kernel import run_kernel

    challenges = tmp_path / "c.json"
    if content is not None:
        challenges.write_text(content)
    output = tmp_path / "out" / "submission.json"
    config = RunJob(model_dir=None, challenges=challenges, output=output, run=RunSettings(workers=1),
                    progress=False)
    with pytest.raises(TaskFileError, match="c.json"):
        run_submission(config)
    assert not output.exists()
    monkeypatch.setenv("ARC_KIT_INPUT_ROOT", str(tmp_path))
    monkeypatch.setenv("ARC_KIT_OUTPUT", str(output))
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)
    assert run_kernel({"kernel": {"challenges": str(challenges)}}, time.time()) == 1
    said = capsys.readouterr().out.splitlines()[-1]  # after the run's header line, when the file was found
    assert "c.json" in said and ("cannot read" in said or "not found" in said)
    assert json.loads(output.read_text()) == expected


def test_dry_run_input_errors_are_one_line(tmp_path: Path, arc_files, tiny_model_dir: Path, capsys):
    tasks = sorted(load_tasks(arc_files("arc-agi-1/evaluation")[0]), key=lambda t: len(str(t)))[:2]
    folder = tmp_path / "tasks"
    folder.mkdir()
    for t in tasks:
        write_task_files([t], folder / "all.json")
        (folder / f"{t.task_id}.json").write_text(json.dumps(json.loads((folder / "all.json").read_text())[t.task_id]))
    (folder / "all.json").unlink()
    base = ["dry-run", "--model", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--views", "1"]
    assert cli_main([*base, "--challenges", str(folder), "--max-tasks", "1"]) == 0  # a folder of task files
    assert (tmp_path / "o" / "report.html").is_file() and (tmp_path / "o" / "report.json").is_file()
    sols = tmp_path / "sols.json"
    sols.write_text("[]")
    assert cli_main([*base, "--challenges", str(folder), "--solutions", str(sols)]) == 2
    err = capsys.readouterr().err
    assert "sols.json" in err and "Traceback" not in err
    (tmp_path / "afile").write_text("x")
    assert cli_main([*base[:-3], str(tmp_path / "afile"), "--challenges", str(folder)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert cli_main([*base, "--challenges", str(folder), "--budget-seconds", "-5"]) == 2
    assert "budget_seconds" in capsys.readouterr().err
