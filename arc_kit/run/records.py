"""What a run records: per test input, per task and for the whole run (``report.json``), and its summary lines.

Each record is a plain dataclass, so ``report.json`` is ``asdict`` of the run's report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from arc_kit.core.tasks import TaskFileError


@dataclass
class InputRecord:
    """One test input in the report: how many candidates, where the right one ranked (given solutions), time."""

    candidates: int = 0
    rescored: bool = False
    right_among: bool | None = None  # the right answer was among the candidates
    rank_before: int | None = None  # its place by vote alone (0 = first); None when absent or unknown
    rank_after: int | None = None  # its place after re-scoring (0 = attempt_1)
    decode_seconds: float = 0.0
    score_seconds: float = 0.0
    top: list[dict[str, Any]] = field(default_factory=list)  # the best few: grid text, score, count
    landed: bool = False  # this input's answer in the file came from this record's pool
    formula: str = "vote"  # what ranked the pool (vote when it was not re-scored)
    margin: float | None = None  # the chosen grids' lead in score over the best other (None: no other)
    scoring_views: list[str] = field(default_factory=list)  # view keys, in the order of each scoring_nlls
    # Every distinct candidate, best first, with the evidence ``arc-kit select`` re-ranks: grid, generation NLLs
    # by view key, scoring NLLs (full precision: a re-ranking must reproduce the run's bit for bit).
    pool: list[dict[str, Any]] = field(default_factory=list)
    attempt_2_source: str | None = None  # ranked (the pool's second grid), phase1, test_input or placeholder
    second_choices: list[dict[str, Any]] = field(default_factory=list)  # attempt 2's fallbacks: source, grid

    @classmethod
    def of(cls, result: Any, truth: Any = None, keep: int = 3) -> InputRecord:
        """From a solver's ``InputResult``; ``truth`` is the right output grid when solutions were given."""
        from arc_kit.core.tasks import grid_to_json, to_grid

        record = cls(len(result.candidates), result.rescored, decode_seconds=round(result.decode_seconds, 3),
                     score_seconds=round(result.score_seconds, 3), formula=result.formula,
                     margin=result.margin, scoring_views=list(result.scoring_views))
        record.top = [{"grid": grid_to_json(c.grid), "score": round(c.score, 4), "count": c.count}
                      for c in result.candidates[:keep]]
        record.pool = [{"grid": grid_to_json(c.grid), "views": c.views, "scoring_nlls": c.scoring_nlls}
                       for c in result.candidates]
        try:
            right = to_grid(truth, "solution") if truth is not None else None
        except TaskFileError:
            right = None  # a malformed solution is reported when the run is scored
        if right is not None:
            place = next((i for i, c in enumerate(result.candidates) if c.grid == right), None)
            record.right_among = place is not None
            record.rank_after = place
            record.rank_before = result.candidates[place].vote_rank if place is not None else None
        return record


@dataclass
class TaskRecord:
    seconds: float = 0.0
    tokens: int = 0
    answered: int = 0
    pairs_dropped: int = 0
    unparsed: int = 0
    timed_out: bool = False  # some generation was stopped: its test input keeps the placeholder
    error: str | None = None
    correct: list[bool] | None = None  # per test input, when solutions were given
    inputs: list[InputRecord] = field(default_factory=list)  # per test input: candidates, ranks, seconds
    phase1_seconds: float | None = None  # the quick greedy pass, when the run had two phases
    phase1_correct: list[bool] | None = None  # right after the quick pass (given solutions)
    ttt: dict[str, Any] | None = None  # test-time training: steps, first and last loss, seconds
    confidence: float | None = None  # the smallest margin over its test inputs; None: no input has competitors
    spare: dict[str, Any] | None = None  # the spare-time revisit: seconds, stages, changed, landed
    stages: dict[str, float] | None = None  # where the full solve's seconds went (``stage_seconds``)


@dataclass
class RunReport:
    submission_path: str
    tasks: int
    entries: int
    answered: int = 0
    placeholders_left: int = 0
    tasks_queued: int = 0  # tasks handed to the solver (all, or the quick pass)
    tasks_attempted: int = 0  # tasks the solver returned a result for
    attempted_ids: list[str] = field(default_factory=list)  # those tasks, in the order their first result landed
    tasks_failed: int = 0  # attempted tasks whose last result is an error
    interrupted: bool = False  # stopped by Ctrl-C or SIGTERM: the file and the reports hold what finished
    terminated: bool = False  # the stop was SIGTERM
    seconds: float = 0.0
    overrun_seconds: float = 0.0  # how far past the deadline the last work ended (0: on time)
    decode_seconds: float = 0.0
    generated_tokens: int = 0
    workers: int = 1
    deadline_hit: bool = False
    model_error: str | None = None  # weights missing/corrupt: the submission is all placeholders
    warnings: list[str] = field(default_factory=list)  # what went wrong for the run as a whole, said once each
    write_failures: int = 0  # writes of the submission that failed (a full disk): the last good file was kept
    answers_not_written: int = 0  # answered entries that never reached the file (its last write failed)
    errors: dict[str, str] = field(default_factory=dict)  # task id -> what went wrong
    per_task: dict[str, TaskRecord] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # from reloading and validating the written file
    score: float | None = None  # ARC Prize metric (mean over tasks), when solutions were given
    score_per_output: float | None = None  # mean over test outputs
    correct_outputs: int | None = None
    score_attempted: float | None = None  # the score over the attempted tasks alone, when some were not (a quick pass)
    selection: dict[str, Any] = field(default_factory=dict)  # the formula and its weights that ranked the pools
    spare_revisits: int = 0  # tasks revisited in the spare-time phase (results that landed)
    spare_changed: int = 0  # of those, tasks whose answer changed
    # Seconds summed over the tasks by stage (``total_stages``), and the run's worker-seconds (workers x wall:
    # GPU-seconds when each worker holds a GPU) per attempted task: where the time went, for the GPU plan.
    stage_seconds: dict[str, float] = field(default_factory=dict)
    worker_seconds_per_task: float | None = None
    # Report files that could not be written (a full disk) -> why. Known only once report.json has been written,
    # so never in it: it is what the dry run's last line says.
    reports_not_written: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.model_error is None and not self.problems

    @property
    def every_task_failed(self) -> bool:
        """Tasks were attempted and each one failed: the model or its tokenizer does not suit the solver."""
        return self.tasks_attempted > 0 and self.tasks_failed == self.tasks_attempted

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.decode_seconds if self.decode_seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["reports_not_written"]
        out["tokens_per_second"] = self.tokens_per_second
        return out


SOLVE_STAGES = ("ttt", "search", "rescore", "other")
"""The stages of one full solve: test-time training, the search (decoding), re-scoring, the rest (prompts,
parsing, ranking)."""
STAGE_NAMES = {"quick": "quick pass", "ttt": "test-time training", "search": "search", "rescore": "re-scoring",
               "other": "other", "spare": "spare-time revisits", "unaccounted": "loading, waiting, reports"}


def stage_seconds(result: Any) -> dict[str, float]:
    """Where one solver result's seconds went (``SOLVE_STAGES``). Tasks decoded together in one batch share its
    decoding time out by prompt, so a task's search seconds are then its share."""
    ttt = float((result.ttt or {}).get("seconds", 0.0))
    search = sum(r.decode_seconds for r in result.inputs)
    rescore = sum(r.score_seconds for r in result.inputs)
    other = max(0.0, result.seconds - ttt - search - rescore)
    return {name: round(value, 3) for name, value in zip(SOLVE_STAGES, (ttt, search, rescore, other), strict=True)}


def total_stages(report: RunReport) -> dict[str, float]:
    """Seconds by stage over every task (the quick pass, the full solve's stages, the spare-time revisits) and
    what is left of the worker-seconds (``unaccounted``: loading the model, waiting, writing reports)."""
    totals = dict.fromkeys(("quick", *SOLVE_STAGES, "spare"), 0.0)
    for record in report.per_task.values():
        totals["quick"] += record.phase1_seconds or 0.0
        for name, value in (record.stages or {}).items():
            totals[name] += value
        totals["spare"] += (record.spare or {}).get("seconds", 0.0)
    totals["unaccounted"] = max(0.0, report.workers * report.seconds - sum(totals.values()))
    return {name: round(value, 3) for name, value in totals.items()}


def time_lines(report: RunReport) -> Iterator[str]:
    """Where the time went, per attempted task: what the GPU plan assumes can be checked against it."""
    if not report.tasks_attempted or not report.stage_seconds:
        return
    n = report.tasks_attempted
    parts = [f"{STAGE_NAMES[name]} {value / n:.1f}" for name, value in report.stage_seconds.items() if value]
    yield f"seconds per attempted task ({n}): " + ", ".join(parts)
    if report.worker_seconds_per_task is not None:
        yield (f"{report.worker_seconds_per_task:.1f} worker-seconds per attempted task ({report.workers} worker(s) "
               f"x {report.seconds:.1f} s; GPU-seconds when each worker holds a GPU)")


def summary_lines(report: RunReport) -> Iterator[str]:
    """A short human summary (the kernel logs it, the dry run prints it)."""
    yield (f"{report.answered}/{report.entries} entries answered over {report.tasks} tasks "
           f"({report.tasks_attempted} of {report.tasks_queued} queued attempted), {report.placeholders_left} "
           f"placeholders left, {report.seconds:.1f} s, {report.generated_tokens} tokens at "
           f"{report.tokens_per_second:.1f} tokens/s, {report.workers} worker(s)")
    yield from time_lines(report)
    if report.score is not None:
        yield (f"score {report.score:.4f} (ARC Prize, per task)  per output {report.score_per_output:.4f}  "
               f"{report.correct_outputs}/{report.entries} test outputs"
               + (f"; {report.score_attempted:.4f} over the {report.tasks_attempted} attempted tasks"
                  if report.score_attempted is not None else ""))
    if report.deadline_hit:
        yield (f"deadline reached: tasks not yet answered keep their placeholders "
               f"(overrun {report.overrun_seconds:.1f} s)")
    if report.model_error:
        yield f"MODEL ERROR: {report.model_error}"
    for warning in report.warnings:
        yield f"WARNING: {warning}"
    for tid, why in list(report.errors.items())[:10]:
        yield f"error in task {tid}: {why}"
    if len(report.errors) > 10:
        yield f"... and {len(report.errors) - 10} more errors"
    for problem in report.problems[:10]:
        yield f"INVALID SUBMISSION: {problem}"
