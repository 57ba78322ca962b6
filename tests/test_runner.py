"""The runner: a valid submission at every moment, deadlines, caps, faults, workers, the dry-run command."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import fields
from pathlib import Path

import pytest

from arc_kit.cli.main import main as cli_main
from arc_kit.config.lora import LoraSettings
from arc_kit.config.run import RunSettings, SolverSettings, TTTSettings
from arc_kit.core.submission import Submission, validate_submission_file
from arc_kit.core.tasks import load_tasks, read_json, write_task_files
from arc_kit.run.job import RunJob
from arc_kit.run.runner import dry_run, run_submission
from arc_kit.run.schedule import task_groups
from arc_kit.solve.prompts import task_cost
from arc_kit.solve.solver import TaskResult


@pytest.fixture(scope="module")
def small_files(tmp_path_factory, arc_files) -> tuple[Path, Path]:
    """The 6 cheapest ARC-AGI-1 evaluation tasks, in the competition layout."""
    tasks = load_tasks(*arc_files("arc-agi-1/evaluation"))
    chosen = sorted(tasks, key=task_cost)[:6]
    out = tmp_path_factory.mktemp("small")
    write_task_files(chosen, out / "x_challenges.json", out / "x_solutions.json")
    return out / "x_challenges.json", out / "x_solutions.json"


class OracleSolver:
    """Answers from the solutions file; optionally slow, or failing for one task. Picklable for workers."""

    def __init__(self, solutions: Path, delay: float = 0.0, fail_for: str | None = None):
        self.solutions = read_json(solutions)
        self.delay, self.fail_for = delay, fail_for
        self.calls: list[list[str]] = []

    def solve(self, tasks, stop_at=None):
        self.calls.append([t.task_id for t in tasks])
        if any(t.task_id == self.fail_for for t in tasks):
            raise RuntimeError(f"injected failure in {self.fail_for}")
        results = []
        for t in tasks:
            if self.delay:
                end = time.time() + self.delay
                while time.time() < end:
                    if stop_at is not None and time.time() >= stop_at:
                        results.append(TaskResult(t.task_id, [(None, None)] * len(t.test), timed_out=True))
                        break
                    time.sleep(0.01)
                else:
                    results.append(self._answer(t))
                continue
            results.append(self._answer(t))
        return results

    def _answer(self, t):
        sols = [tuple(tuple(r) for r in g) for g in self.solutions[t.task_id]]
        return TaskResult(t.task_id, [(g, None) for g in sols], tokens=10, seconds=0.1)


class OracleFactory:
    def __init__(self, solutions: Path, **kwargs):
        self.solutions, self.kwargs = solutions, kwargs
        self.solver: OracleSolver | None = None

    def __call__(self, config: RunJob) -> OracleSolver:
        self.solver = OracleSolver(self.solutions, **self.kwargs)
        return self.solver


def config_for(files: tuple[Path, Path], out: Path, **kwargs) -> RunJob:
    solver = kwargs.pop("solver", SolverSettings(mode="greedy", scoring_views=0, batch_size=2, views=1))
    kwargs.setdefault("ttt", TTTSettings(enabled=False))  # one phase unless a test asks for two
    kwargs.setdefault("workers", 1)  # workers=None would import torch to count GPUs: seconds these tests time
    run = RunSettings(**{k: kwargs.pop(k) for k in list(kwargs) if k in {f.name for f in fields(RunSettings)}})
    return RunJob(model_dir=kwargs.pop("model_dir", None), challenges=files[0], output=out / "submission.json",
                  solutions=files[1], progress=False, solver=solver, run=run, **kwargs)


def test_groups_fill_a_batch_and_tasks_run_shortest_first(small_files):
    tasks = sorted(load_tasks(small_files[0]), key=task_cost)
    groups = task_groups(tasks, prompts_per_group=3, views=1)
    assert [t for g in groups for t in g] == tasks
    assert all(sum(len(t.test) for t in g) >= 3 for g in groups[:-1])
    assert [len(g) for g in task_groups(tasks, 8, views=8)] == [1] * len(tasks)


def test_answers_land_in_a_valid_scored_submission(small_files, tmp_path):
    factory = OracleFactory(small_files[1])
    report = run_submission(config_for(small_files, tmp_path), solver_factory=factory)
    assert validate_submission_file(tmp_path / "submission.json", small_files[0]) == []
    assert report.ok and report.placeholders_left == 0 and report.answered == report.entries
    assert report.score == 1.0 and report.score_per_output == 1.0
    sizes = [task_cost(t) for t in load_tasks(small_files[0])]
    order = [tid for call in factory.solver.calls for tid in call]
    by_id = {t.task_id: task_cost(t) for t in load_tasks(small_files[0])}
    assert [by_id[t] for t in order] == sorted(sizes)  # shortest first


def test_dry_run_writes_submission_and_report(small_files, tmp_path):
    report = dry_run(config_for(small_files, tmp_path, budget_seconds=600), solver_factory=OracleFactory(small_files[1]))
    assert report.score == 1.0 and report.tasks == 6
    assert json.loads((tmp_path / "report.json").read_text())["score"] == 1.0
    assert validate_submission_file(tmp_path / "submission.json", small_files[0]) == []


def test_the_file_is_valid_while_the_run_is_going(small_files, tmp_path):
    seen: list[list[str]] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            if (tmp_path / "submission.json").exists():
                seen.append(validate_submission_file(tmp_path / "submission.json", small_files[0]))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run_submission(config_for(small_files, tmp_path),
                       solver_factory=OracleFactory(small_files[1], delay=0.1))
    finally:
        stop.set()
        watcher.join()
    assert len(seen) > 5 and all(problems == [] for problems in seen)


def test_missing_weights_give_a_valid_placeholder_file_and_a_loud_error(small_files, tmp_path, capsys):
    report = run_submission(config_for(small_files, tmp_path, model_dir=tmp_path / "no-weights"))
    assert "does not exist" in report.model_error and not report.ok
    assert validate_submission_file(tmp_path / "submission.json", small_files[0]) == []
    assert report.placeholders_left == report.entries

    code = cli_main(["dry-run", "--model", str(tmp_path / "no-weights"), "--challenges", str(small_files[0]),
                     "--out", str(tmp_path / "dry")])
    assert code == 1
    assert "MODEL ERROR" in capsys.readouterr().out
    assert validate_submission_file(tmp_path / "dry" / "submission.json", small_files[0]) == []
    assert json.loads((tmp_path / "dry" / "report.json").read_text())["model_error"]


def test_a_task_whose_decoding_raises_costs_only_itself(small_files, tmp_path):
    victim = sorted(load_tasks(small_files[0]), key=task_cost)[1].task_id
    report = run_submission(config_for(small_files, tmp_path),
                            solver_factory=OracleFactory(small_files[1], fail_for=victim))
    assert "injected" in report.errors[victim]
    assert report.correct_outputs == report.entries - len(read_json(small_files[1])[victim])
    assert validate_submission_file(tmp_path / "submission.json", small_files[0]) == []


def test_one_malformed_task_is_named_and_the_others_answered(small_files, tmp_path):
    raw = read_json(small_files[0])
    bad_id = next(iter(raw))
    raw[bad_id]["train"][0]["output"] = [[1, 2], [3]]  # ragged
    challenges = tmp_path / "bad_challenges.json"
    challenges.write_text(json.dumps(raw))
    report = run_submission(config_for((challenges, small_files[1]), tmp_path),
                            solver_factory=OracleFactory(small_files[1]))
    assert "ragged" in report.errors[bad_id]
    assert report.placeholders_left == len(raw[bad_id]["test"])
    assert validate_submission_file(tmp_path / "submission.json", challenges) == []


def test_the_deadline_ends_the_run_with_a_valid_file(small_files, tmp_path):
    began = time.time()
    config = config_for(small_files, tmp_path, budget_seconds=1.5, margin_seconds=0.5, start_time=began)
    report = run_submission(config, solver_factory=OracleFactory(small_files[1], delay=0.4))
    assert time.time() - began < 1.5
    assert report.deadline_hit and 0 < report.placeholders_left < report.entries
    assert validate_submission_file(tmp_path / "submission.json", small_files[0]) == []


def test_a_task_over_its_cap_keeps_its_placeholder(small_files, tmp_path):
    config = config_for(small_files, tmp_path, task_cap_seconds=0.2, solver=SolverSettings(batch_size=1))
    report = run_submission(config, solver_factory=OracleFactory(small_files[1], delay=0.5))
    assert report.answered == 0 and report.placeholders_left == report.entries
    assert all(r.timed_out for r in report.per_task.values())
    assert validate_submission_file(tmp_path / "submission.json", small_files[0]) == []


def test_two_worker_processes_share_the_queue_and_merge(small_files, tmp_path):
    report = run_submission(config_for(small_files, tmp_path, workers=2),
                            solver_factory=OracleFactory(small_files[1]))
    assert report.workers == 2 and report.score == 1.0 and report.placeholders_left == 0
    assert validate_submission_file(tmp_path / "submission.json", small_files[0]) == []


@pytest.mark.slow
def test_dry_run_with_the_tiny_model(small_files, tmp_path, tiny_model_dir, capsys):
    code = cli_main(["dry-run", "--model", str(tiny_model_dir), "--challenges", str(small_files[0]),
                     "--solutions", str(small_files[1]), "--out", str(tmp_path), "--batch-size", "4",
                     "--views", "2", "--max-tasks", "4", "--ttt-max-samples", "8"])
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["score"] is not None and report["generated_tokens"] > 0 and report["tokens_per_second"] > 0
    assert set(report["per_task"]) == set(read_json(small_files[0]))
    assert validate_submission_file(tmp_path / "submission.json", small_files[0]) == []
    assert "score" in capsys.readouterr().out


@pytest.mark.slow
def test_two_cpu_workers_with_the_tiny_model(small_files, tmp_path, tiny_model_dir):
    config = config_for(small_files, tmp_path, model_dir=tiny_model_dir, workers=2,
                        solver=SolverSettings(batch_size=3, device="cpu", views=1))
    report = run_submission(config)
    assert report.ok and report.workers == 2 and report.generated_tokens > 0
    assert len([r for r in report.per_task.values() if r.tokens]) == report.tasks
    assert validate_submission_file(tmp_path / "submission.json", small_files[0]) == []


@pytest.mark.slow
def test_the_deadline_stops_the_real_decoder_mid_batch(arc_files, tmp_path, tiny_model_dir):
    began = time.time()
    config = RunJob(model_dir=tiny_model_dir, challenges=arc_files("arc-agi-1/evaluation")[0],
                    output=tmp_path / "submission.json", run=RunSettings(budget_seconds=8, margin_seconds=1),
                    start_time=began, progress=False, solver=SolverSettings(batch_size=8, device="cpu", views=1))
    report = run_submission(config)
    assert time.time() - began < 8.5
    assert report.deadline_hit and report.ok and report.placeholders_left > 0
    # work timed out: a batch mid-decode, or one not started because its prefill would cross the deadline
    assert any(r.timed_out for r in report.per_task.values()) or report.tasks_attempted < report.tasks_queued
    assert validate_submission_file(tmp_path / "submission.json", config.challenges) == []


# -- the anytime schedule: a quick greedy pass first, then the full solver task by task ---------------------------


class TwoSpeedSolver:
    """quick(): a wrong but valid answer at once; solve(): the right answer after ``delay`` (or times out at
    stop_at)."""

    def __init__(self, solutions: Path, delay: float):
        self.solutions, self.delay = read_json(solutions), delay

    def quick(self, tasks, stop_at=None):
        return [TaskResult(t.task_id, [(((1,),), None)] * len(t.test)) for t in tasks]

    def solve(self, tasks, stop_at=None):
        results = []
        for t in tasks:
            if self.delay and stop_at is not None and time.time() + self.delay > stop_at:
                time.sleep(max(0.0, stop_at - time.time()))
                results.append(TaskResult(t.task_id, [(None, None)] * len(t.test), timed_out=True))
                continue
            time.sleep(self.delay)
            sols = [tuple(tuple(r) for r in g) for g in self.solutions[t.task_id]]
            results.append(TaskResult(t.task_id, [(g, None) for g in sols]))
        return results


class TwoSpeedFactory:
    def __init__(self, solutions: Path, delay: float):
        self.solutions, self.delay = solutions, delay

    def __call__(self, config):
        return TwoSpeedSolver(self.solutions, self.delay)


def test_the_full_solver_replaces_the_quick_answers(small_files, tmp_path):
    config = config_for(small_files, tmp_path, solver=SolverSettings(batch_size=2))  # dfs: two phases
    report = run_submission(config, solver_factory=TwoSpeedFactory(small_files[1], delay=0.0))
    assert report.score == 1.0
    assert all(r.phase1_correct is not None and not any(r.phase1_correct) for r in report.per_task.values())


def test_a_full_task_over_its_cap_keeps_its_quick_answer(small_files, tmp_path):
    config = config_for(small_files, tmp_path, solver=SolverSettings(batch_size=2), task_cap_seconds=0.1)
    report = run_submission(config, solver_factory=TwoSpeedFactory(small_files[1], delay=1.0))
    assert report.placeholders_left == 0 and report.score == 0.0  # every entry holds the quick (wrong) answer
    data = read_json(tmp_path / "submission.json")
    assert all(e["attempt_1"] == [[1]] for entries in data.values() for e in entries)
    assert validate_submission_file(tmp_path / "submission.json", small_files[0]) == []


def test_the_full_solvers_cap_is_a_share_of_the_time_left(small_files):
    from arc_kit.run.schedule import MIN_TASK_CAP, Schedule

    tasks = sorted(load_tasks(small_files[0]), key=task_cost)
    config = config_for(small_files, Path("."), task_cap_seconds=1000.0, solver=SolverSettings(batch_size=2))
    schedule = Schedule(tasks, config, deadline=600.0, workers=2, two_phases=True)
    phases = []
    while (work := schedule.next(0.0)) is not None:
        phases.append((work.phase, len(work.tasks), work.cap_seconds))
    quick = len(task_groups(tasks, 2, 1))  # the quick pass batches tasks; the full solver takes them one by one
    assert [p[0] for p in phases] == ["quick"] * quick + ["full"] * 6 and all(p[1] == 1 for p in phases[quick:])
    assert phases[quick][2] == 600.0 * 2 / 6 and phases[-1][2] == 1000.0  # 200 s each while 6 are left
    schedule = Schedule(tasks, config, deadline=1.0, workers=1, two_phases=True)
    for _ in range(quick):
        schedule.next(0.0)
    assert schedule.next(0.0).cap_seconds == MIN_TASK_CAP


@pytest.mark.slow
def test_a_run_with_test_time_training_reports_each_stage(small_files, tmp_path, tiny_model_dir):
    """Phase 1 (greedy, base model) then phase 2 (TTT, then the solver) per task; the report says both."""
    config = config_for(small_files, tmp_path, model_dir=tiny_model_dir, max_tasks=2,
                        solver=SolverSettings(mode="greedy", scoring_views=0, views=1, device="cpu"),
                        ttt=TTTSettings(max_samples=4, lora=LoraSettings(r=4, alpha=32)))
    report = run_submission(config)
    assert report.ok and report.tasks_attempted == 2
    trained = [r for r in report.per_task.values() if r.ttt is not None]
    assert len(trained) == 2 and all(r.ttt["steps"] > 0 and r.phase1_correct is not None for r in trained)
    assert validate_submission_file(tmp_path / "submission.json", small_files[0]) == []


# -- the spare-time phase: revisit the least confident tasks first, pool, replace only on a better ranking ---------


class SpareSolver:
    """quick(): [[1]]; solve(): [[2]] for every test input, with the selection margin ``margins[task id]``;
    revisit(): the right answer, pooled with what it was given. Each call advances ``clock`` (when given) by its
    duration instead of sleeping, and a call that would pass its ``stop_at`` comes back timed out at it."""

    def __init__(self, solutions: Path, margins: dict[str, float | None], clock=None, full_seconds: float = 0.0,
                 revisit_seconds: dict[str, float] | None = None):
        self.solutions, self.margins, self.clock = read_json(solutions), margins, clock
        self.full_seconds, self.revisit_seconds = full_seconds, revisit_seconds or {}
        self.revisited: list[str] = []
        self.priors_seen: dict[str, object] = {}

    def _spend(self, seconds: float, stop_at) -> bool:
        if self.clock is None:
            return True
        if stop_at is not None and self.clock.now + seconds > stop_at:
            self.clock.now = max(self.clock.now, stop_at)
            return False
        self.clock.now += seconds
        return True

    def quick(self, tasks, stop_at=None):
        return [TaskResult(t.task_id, [(((1,),), None)] * len(t.test)) for t in tasks]

    def solve(self, tasks, stop_at=None):
        from arc_kit.solve.solver import InputResult, RankedCandidate

        out = []
        for t in tasks:
            if not self._spend(self.full_seconds, stop_at):
                out.append(TaskResult(t.task_id, [(None, None)] * len(t.test), timed_out=True))
                continue
            inputs = [InputResult([RankedCandidate(((2,),), 1.0, 1, 0, {"v": [0.5]}, [])], margin=self.margins[t.task_id])
                      for _ in t.test]
            out.append(TaskResult(t.task_id, [(((2,),), None)] * len(t.test), seconds=self.full_seconds,
                                  inputs=inputs))
        return out

    def revisit(self, tasks, stop_at, priors):
        from arc_kit.solve.solver import InputResult, RankedCandidate

        out = []
        for t in tasks:
            self.revisited.append(t.task_id)
            self.priors_seen[t.task_id] = priors[t.task_id]
            if not self._spend(self.revisit_seconds.get(t.task_id, self.full_seconds), stop_at):
                out.append(TaskResult(t.task_id, [(None, None)] * len(t.test), timed_out=True))
                continue
            sols = [tuple(tuple(r) for r in g) for g in self.solutions[t.task_id]]
            inputs = [InputResult([RankedCandidate(g, 2.0, 2, 0, {"w": [0.1, 0.2]}, []), *before.candidates],
                                  margin=1.0) for g, before in zip(sols, priors[t.task_id], strict=True)]
            out.append(TaskResult(t.task_id, [(g, ((2,),)) for g in sols], inputs=inputs))
        return out


class SpareFactory:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        self.solver: SpareSolver | None = None

    def __call__(self, config):
        self.solver = SpareSolver(*self.args, **self.kwargs)
        return self.solver


class FakeClock:
    """time.time() for the runner, its workers and the schedule: advanced by the solver, never by sleeping."""

    def __init__(self):
        self.now = 0.0

    def time(self) -> float:
        return self.now


def margins_for(files) -> dict[str, float | None]:
    ids = [t.task_id for t in sorted(load_tasks(files[0]), key=task_cost)]
    return dict(zip(ids, [0.5, 0.1, None, 2.0, 0.1, 0.3], strict=True))


def test_spare_time_revisits_the_least_confident_first_and_lands_better_answers(small_files, tmp_path):
    margins = margins_for(small_files)
    factory = SpareFactory(small_files[1], margins)
    config = config_for(small_files, tmp_path, solver=SolverSettings(batch_size=2))  # dfs: three phases
    report = run_submission(config, solver_factory=factory)
    order = sorted(margins, key=lambda tid: (float("inf") if margins[tid] is None else margins[tid],
                                             list(margins).index(tid)))
    assert factory.solver.revisited == order  # least confident first; no competitor at all last
    assert report.score == 1.0 and report.spare_revisits == 6 and report.spare_changed == 6
    record = report.per_task[order[0]]
    assert record.spare == {"landed": True, "seconds": 0.0, "changed": True, "confidence_before": 0.1,
                            "stages": {"ttt": 0.0, "search": 0.0, "rescore": 0.0, "other": 0.0}}
    assert record.confidence == 1.0  # the pooled ranking's margin
    assert [c.grid for c in factory.solver.priors_seen[order[0]][0].candidates] == [((2,),)]  # the full pool
    assert record.inputs[0].pool[1]["grid"] == [[2]]  # the report keeps the pooled candidates
    assert validate_submission_file(tmp_path / "submission.json", small_files[0]) == []
    off = run_submission(config_for(small_files, tmp_path / "off", solver=SolverSettings(batch_size=2),
                                    spare_time=False), solver_factory=SpareFactory(small_files[1], margins))
    assert off.spare_revisits == 0 and off.score == 0.0


def test_spare_time_keeps_the_deadline_and_the_file_valid(small_files, tmp_path, monkeypatch):
    """Mocked clock, deadline at 100 s: six full tasks of 10 s end at 60 s; revisits of 10 s land at 70 and 80 s,
    the third (25 s, started at 80 s) would pass the deadline and times out, so its task keeps its answer; the
    fourth would start at 100 s, the deadline, and does not start."""
    clock = FakeClock()
    for module in ("arc_kit.run.runner", "arc_kit.run.workers"):
        monkeypatch.setattr(f"{module}.time", clock)
    margins = margins_for(small_files)
    order = sorted(margins, key=lambda tid: (float("inf") if margins[tid] is None else margins[tid],
                                             list(margins).index(tid)))
    factory = SpareFactory(small_files[1], margins, clock=clock, full_seconds=10.0,
                           revisit_seconds={order[2]: 25.0})
    seen = []
    real_write = Submission.write

    def checked_write(self, path):
        real_write(self, path)
        seen.append(validate_submission_file(path, small_files[0]))

    monkeypatch.setattr(Submission, "write", checked_write)
    config = config_for(small_files, tmp_path, solver=SolverSettings(batch_size=2), budget_seconds=100.0,
                        margin_seconds=0.0, start_time=0.0, task_cap_seconds=1000.0)
    report = run_submission(config, solver_factory=factory)
    assert factory.solver.revisited == order[:3]
    assert report.spare_revisits == 2 and clock.now == 100.0
    assert report.per_task[order[2]].spare == {"landed": False, "seconds": 0.0, "why": "timed out (its cap or the deadline)"}
    data = read_json(tmp_path / "submission.json")
    truth = read_json(small_files[1])
    assert [data[t][0]["attempt_1"] == truth[t][0] for t in order] == [True, True, False, False, False, False]
    assert seen and all(problems == [] for problems in seen)


def test_spare_time_with_worker_processes(small_files, tmp_path):
    margins = margins_for(small_files)
    report = run_submission(config_for(small_files, tmp_path, workers=2, solver=SolverSettings(batch_size=2)),
                            solver_factory=SpareFactory(small_files[1], margins))
    assert report.workers == 2 and report.spare_revisits == 6 and report.score == 1.0
    assert validate_submission_file(tmp_path / "submission.json", small_files[0]) == []


def test_revisits_wait_for_every_full_answer_and_skip_what_cannot_finish(small_files):
    from arc_kit.run.schedule import Schedule

    tasks = sorted(load_tasks(small_files[0]), key=task_cost)
    config = config_for(small_files, Path("."), solver=SolverSettings(batch_size=2))
    schedule = Schedule(tasks, config, deadline=100.0, workers=2, two_phases=True)
    while (work := schedule.next(0.0)) is not None and work.phase == "quick":
        pass
    full = [work] + [schedule.next(0.0) for _ in range(5)]
    assert [w.phase for w in full] == ["full"] * 6 and schedule.next(0.0) is None and schedule.waiting
    for i, w in enumerate(full[:5]):
        schedule.landed("full", w.tasks[0], confidence=float(5 - i), seconds=10.0 * i, inputs=[i])
    assert schedule.next(0.0) is None and schedule.waiting  # one full task is still out
    schedule.landed("full", None)  # it came back without an answer: nothing to revisit
    assert not schedule.waiting
    revisit = schedule.next(65.0)  # 35 s left: the least confident (40 s full solve) cannot finish, skipped
    assert revisit.phase == "spare" and revisit.tasks == full[3].tasks and revisit.priors == {full[3].tasks[0].task_id: [3]}
    assert [schedule.next(65.0).tasks for _ in range(3)] == [full[2].tasks, full[1].tasks, full[0].tasks]
    assert schedule.next(65.0) is None and not schedule.waiting


def test_attempt_two_is_the_best_other_grid_never_a_copy(small_files, tmp_path):
    """One grid per test input: attempt 2 is phase 1's answer when the full solver answered, else the test input
    itself (a grid that can score, where a copy of attempt 1 cannot)."""
    two = run_submission(config_for(small_files, tmp_path / "two", solver=SolverSettings(batch_size=2),
                                    spare_time=False), solver_factory=TwoSpeedFactory(small_files[1], delay=0.0))
    data = read_json(tmp_path / "two" / "submission.json")
    assert two.score == 1.0 and all(e["attempt_2"] == [[1]] for entries in data.values() for e in entries)
    one = run_submission(config_for(small_files, tmp_path / "one"), solver_factory=OracleFactory(small_files[1]))
    data = read_json(tmp_path / "one" / "submission.json")
    tasks = {t.task_id: t for t in load_tasks(small_files[0])}
    for tid, entries in data.items():
        for i, entry in enumerate(entries):
            assert entry["attempt_1"] != entry["attempt_2"]
            assert entry["attempt_2"] == [list(row) for row in tasks[tid].test[i].input]
    assert one.score == 1.0


class EmptySolver:
    """Parses no grid for any test input (an untrained model's output): every pool is empty, in both phases."""

    def quick(self, tasks, stop_at=None):
        return self.solve(tasks, stop_at)

    def solve(self, tasks, stop_at=None):
        from arc_kit.solve.solver import InputResult

        return [TaskResult(t.task_id, [(None, None)] * len(t.test), unparsed=len(t.test),
                           inputs=[InputResult() for _ in t.test]) for t in tasks]


@pytest.mark.parametrize("two_phases", [False, True])
def test_attempt_two_is_never_a_copy_when_no_grid_was_parsed(small_files, tmp_path, two_phases):
    """Nothing parsed is no answer (the placeholder stays attempt 1, the entry counts as unanswered), yet attempt 2
    is the test input, as the report says: a grid that can score, where a second [[0]] cannot."""
    solver = SolverSettings(batch_size=2) if two_phases else SolverSettings(mode="greedy", scoring_views=0, views=1)
    report = run_submission(config_for(small_files, tmp_path, solver=solver, max_tasks=4),
                            solver_factory=lambda config: EmptySolver())
    assert report.tasks_attempted == 4 and report.answered == 0 and report.placeholders_left == report.entries
    data = read_json(tmp_path / "submission.json")
    tasks = {t.task_id: t for t in load_tasks(small_files[0])}
    for tid in report.attempted_ids:
        for i, entry in enumerate(data[tid]):
            assert entry["attempt_1"] == [[0]]
            assert entry["attempt_2"] == [list(row) for row in tasks[tid].test[i].input]
            assert report.per_task[tid].inputs[i].attempt_2_source == "test_input"
    untouched = set(data) - set(report.attempted_ids)
    assert len(untouched) == 2 and all(e == {"attempt_1": [[0]], "attempt_2": [[0]]} for t in untouched for e in data[t])
    assert validate_submission_file(tmp_path / "submission.json", small_files[0]) == []
