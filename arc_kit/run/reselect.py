"""Choosing attempts again from the candidates runs harvested (``arc-kit select``): other formulas, other weights,
several runs pooled, without decoding anything again.

Why: re-ranking is the cheapest knob a competitor has (NVARC's notebook on ARC-AGI-2's evaluation set found the
right grid among its candidates for 36-40% of test outputs but chose it for ~28%), and trying a formula should
cost seconds, not a run. ``report.json`` keeps every distinct candidate of every test input with its generation
NLLs by view and its NLL under each scoring view (``InputRecord.pool``); this module ranks those again with
``arc_kit.solve.selection``, the run's own code, so re-selecting with the run's formula and weights gives its
``submission.json`` byte for byte.

Pooling runs (two seeds, two models): a grid's generations from every run count (each run's views are its own,
keyed ``run:view``). Scoring NLLs are combined column by column: the pooled input's scoring views are every run's
scoring views side by side (run A's 8, then run B's 8), since two runs' NLLs, even under the same view key, may
come from different models. A candidate that a run did not score has no number in that run's columns; there it
takes its own mean over the columns it has. Its mean NLL is then unchanged (``nvarc``), and sums (``poe``,
``architects``) count every candidate over the same number of columns. A pooled input with a candidate that no
run scored is ranked by votes, as a run ranks an input it did not re-score; ``Reselection.voted_inputs`` counts
them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arc_kit.config.run import SelectionSettings
from arc_kit.core.submission import ATTEMPTS, Submission
from arc_kit.core.tasks import Grid, TaskFileError, grid_to_json, to_grid
from arc_kit.errors import ArcKitError


class SelectError(ArcKitError, ValueError):
    """A run folder ``arc-kit select`` cannot use; the message names the folder and what is missing."""


SELECTION_FILE = "selection.json"
"""What ``arc-kit select --out`` writes beside its ``submission.json``: the runs, formula and weights that chose
it. It also marks the folder as select's own, the one folder whose ``submission.json`` select may replace."""


@dataclass
class RunFiles:
    """One run folder: its report (as written) and its submission."""

    folder: Path
    report: dict[str, Any]
    submission: dict[str, Any]

    @property
    def formula(self) -> str:
        return self.report.get("selection", {}).get("formula", "nvarc")

    @property
    def weights(self) -> SelectionSettings:
        """The weights the run ranked with (a report that names none: the defaults)."""
        from arc_kit.config.schema import from_dict

        values = {k: v for k, v in self.report.get("selection", {}).items() if k != "formula"}
        return from_dict(SelectionSettings, values, f"{self.folder}/report.json: selection")


def read_run(folder: Path) -> RunFiles:
    """A run folder as ``arc-kit dry-run`` (or the demo) leaves it: ``report.json`` and ``submission.json``, every
    field select reads checked for its type (``check_report``)."""
    files = {}
    for name in ("report.json", "submission.json"):
        path = Path(folder) / name
        try:
            files[name] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SelectError(f"{folder}: no {name} (a run folder of arc-kit dry-run holds report.json and "
                              "submission.json)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SelectError(f"{path}: not a JSON file ({e})") from None
        except OSError as e:
            raise SelectError(f"{path}: cannot be read ({e.strerror or e})") from None
    report = files["report.json"]
    if not isinstance(report, dict) or not isinstance(report.get("per_task"), dict):
        raise SelectError(f"{folder}/report.json: no per_task table (is it a run report?)")
    check_report(report, f"{folder}/report.json")
    if not any("pool" in record for task in report["per_task"].values() for record in task.get("inputs", [])):
        raise SelectError(f"{folder}/report.json: no candidate pools (written by an arc-kit older than the "
                          "select command, or every task kept its quick-pass answer)")
    if not isinstance(files["submission.json"], dict):
        raise SelectError(f"{folder}/submission.json: must map task ids to lists of attempts, got "
                          f"{type(files['submission.json']).__name__}")
    return RunFiles(Path(folder), report, files["submission.json"])


def check_report(report: dict[str, Any], where: str) -> None:
    """Every field of ``report.json`` that select reads, with the type the run writes it in: a report edited by
    hand or from another program is refused in one line naming the task and field, not deep in the ranking."""
    from arc_kit.config.run import FORMULAS

    selection = _expect(report.get("selection", {}), dict, f"{where}: selection", "a table")
    if selection.get("formula", "nvarc") not in FORMULAS:
        raise SelectError(f"{where}: selection.formula must be one of {', '.join(FORMULAS)}, got "
                          f"{selection['formula']!r}")
    for tid, task in report["per_task"].items():
        here = f"{where}: task {tid}"
        task = _expect(task, dict, here, "a table")
        for i, record in enumerate(_expect(task.get("inputs", []), list, f"{here}: inputs", "a list")):
            at = f"{here}: inputs[{i}]"
            record = _expect(record, dict, at, "a table")
            _expect(record.get("landed", False), bool, f"{at}.landed", "true or false")
            _strings(record.get("scoring_views", []), f"{at}.scoring_views")
            for j, entry in enumerate(_expect(record.get("pool", []), list, f"{at}.pool", "a list")):
                entry = _expect(entry, dict, f"{at}.pool[{j}]", "a table")
                to_grid(entry.get("grid"), f"{at}.pool[{j}].grid")
                views = _expect(entry.get("views", {}), dict, f"{at}.pool[{j}].views",
                                "a table of view names to lists of NLLs")
                for view, nlls in views.items():
                    _numbers(nlls, f"{at}.pool[{j}].views.{view}")
                _numbers(entry.get("scoring_nlls", []), f"{at}.pool[{j}].scoring_nlls")
            for j, choice in enumerate(_expect(record.get("second_choices", []), list, f"{at}.second_choices",
                                               "a list")):
                choice = _expect(choice, dict, f"{at}.second_choices[{j}]", "a table")
                _expect(choice.get("source"), str, f"{at}.second_choices[{j}].source", "a name")
                to_grid(choice.get("grid"), f"{at}.second_choices[{j}].grid")


def _expect(value: Any, kind: type, where: str, what: str) -> Any:
    if not isinstance(value, kind):
        raise SelectError(f"{where} must be {what}, got {json.dumps(value)[:60]}")
    return value


def _numbers(value: Any, where: str) -> None:
    values = _expect(value, list, where, "a list of numbers")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
        raise SelectError(f"{where} must be a list of numbers, got {json.dumps(value)[:60]}")


def _strings(value: Any, where: str) -> None:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise SelectError(f"{where} must be a list of names, got {json.dumps(value)[:60]}")


@dataclass
class PooledInput:
    """One test input's candidates over every run, ready to rank."""

    candidates: list[Any]  # arc_kit.solve.selection.CandidateStats
    scored: bool  # every candidate has scoring NLLs (else the input is ranked by votes)
    fallbacks: list[tuple[str, Grid]]  # attempt 2's fallbacks, from the first run that recorded them


@dataclass
class Reselection:
    """A re-ranking under one formula: the submission it gives and how it fares."""

    formula: str
    submission: Submission
    inputs: int = 0  # test inputs re-ranked
    voted_inputs: int = 0  # of those, ranked by votes (no scoring NLLs for some candidate)
    changed: int = 0  # entries that differ from the first run's submission
    right_among: int | None = None  # test inputs whose right answer is a candidate (given solutions)
    score: float | None = None
    score_per_output: float | None = None
    correct_outputs: int | None = None
    test_outputs: int | None = None
    per_task: dict[str, list[bool]] = field(default_factory=dict)


def pool_runs(runs: Sequence[RunFiles]) -> dict[tuple[str, int], PooledInput]:
    """Every test input with candidates in some run (only records whose answer landed in the file), pooled."""
    from arc_kit.solve.selection import CandidateStats

    tagged = len(runs) > 1
    found: dict[tuple[str, int], list[tuple[int, dict[str, Any]]]] = {}
    for r, run in enumerate(runs):
        for tid, task in run.report["per_task"].items():
            for i, record in enumerate(task.get("inputs", [])):
                if record.get("landed") and record.get("pool"):
                    found.setdefault((tid, i), []).append((r, record))
    pooled = {}
    for key, records in found.items():
        grids: dict[Grid, CandidateStats] = {}
        columns: dict[Grid, list[float | None]] = {}  # per candidate, its NLL in every run's scoring columns
        width = sum(len(record.get("scoring_views", [])) for _, record in records)
        offset = 0
        for r, record in records:
            count = len(record.get("scoring_views", []))
            for entry in record["pool"]:
                grid = to_grid(entry["grid"], f"{runs[r].folder}/report.json: task {key[0]}")
                stats = grids.get(grid)
                if stats is None:
                    stats = grids[grid] = CandidateStats(grid)
                    columns[grid] = [None] * width
                for view, nlls in entry.get("views", {}).items():
                    for nll in nlls:
                        stats.add(f"{r}:{view}" if tagged else view, nll)
                row = columns[grid]
                for j, nll in enumerate(entry.get("scoring_nlls", [])[:count]):
                    row[offset + j] = nll
            offset += count
        scored = True
        for grid, stats in grids.items():
            row = columns[grid]
            have = [x for x in row if x is not None]
            if not have:
                scored = False
                continue
            mean = sum(have) / len(have)
            stats.scoring_nlls = [mean if x is None else x for x in row]
        candidates = list(grids.values())
        if not scored:
            for stats in candidates:
                stats.scoring_nlls = []
        first = records[0][1]
        fallbacks = [(c["source"], to_grid(c["grid"], f"{runs[records[0][0]].folder}/report.json: task {key[0]}"))
                     for c in first.get("second_choices", [])]
        pooled[key] = PooledInput(candidates, scored and width > 0, fallbacks)
    return pooled


def reselect(runs: Sequence[RunFiles], formula: str, weights: SelectionSettings,
             solutions: dict[str, Any] | None = None) -> Reselection:
    """The first run's submission with every pooled test input's attempts chosen again under ``formula``."""
    from arc_kit.core.metric import score_submission
    from arc_kit.solve.selection import choose_attempts, rank, second_attempt

    if not runs:
        raise SelectError("no run folder given")
    seen: dict[Path, Path] = {}
    for run in runs:
        key = run.folder.resolve()
        if key in seen:
            raise SelectError(f"{run.folder} is given twice (as {seen[key]} too): pooled with itself, its votes "
                              "would count twice")
        seen[key] = run.folder
    base = runs[0]
    ids = set(base.submission)
    for run in runs[1:]:
        if set(run.submission) != ids:
            raise SelectError(f"{run.folder} answered other tasks than {base.folder}: pool runs of one challenges "
                              "file")
    try:
        submission = Submission({tid: [{a: to_grid(entry[a], f"{base.folder}/submission.json: task {tid}")
                                        for a in ATTEMPTS} for entry in entries]
                                 for tid, entries in base.submission.items()})
    except TaskFileError as e:
        raise SelectError(f"{base.folder}/submission.json: not a valid submission ({e})") from None
    except (KeyError, TypeError, AttributeError) as e:
        raise SelectError(f"{base.folder}/submission.json: not a valid submission (each task maps to a list of "
                          f"{{attempt_1, attempt_2}} tables; {type(e).__name__}: {e})") from None
    out = Reselection(formula, submission)
    right = 0
    for (tid, i), pooled in pool_runs(runs).items():
        if tid not in submission.entries or i >= len(submission.entries[tid]):
            continue
        used = formula if pooled.scored else "vote"
        out.voted_inputs += used != formula
        ranked = rank(pooled.candidates, used, weights)
        first, second = choose_attempts(ranked)
        second, _source = second_attempt(first, second, pooled.fallbacks)
        before = dict(submission.entries[tid][i])
        submission.set_attempts(tid, i, first, second)
        out.changed += submission.entries[tid][i] != before
        out.inputs += 1
        truth = (solutions or {}).get(tid)
        if truth is not None and i < len(truth):
            right += any(grid_to_json(c.grid) == truth[i] for c in pooled.candidates)
    if solutions is not None:
        scored = score_submission(submission.to_json(), {t: s for t, s in solutions.items() if t in ids})
        out.right_among, out.score, out.score_per_output = right, scored.score, scored.score_per_output
        out.correct_outputs, out.test_outputs = scored.correct_outputs, scored.test_outputs
        out.per_task = {t: ts.correct for t, ts in scored.per_task.items()}
    return out


def check_out_folder(out: Path) -> None:
    """Refuse an ``--out`` whose ``submission.json`` another program made: a run folder (its report would then
    contradict the file), or any folder holding a ``submission.json`` that select did not write."""
    from arc_kit.core.files import check_folder_path

    check_folder_path(out, "--out")
    if (out / "report.json").exists():
        raise SelectError(f"--out {out}: a run folder (it holds report.json); its submission.json stays as the run "
                          "wrote it: give a new folder (nothing written)")
    if (out / "submission.json").exists() and not (out / SELECTION_FILE).is_file():
        raise SelectError(f"--out {out}: {out / 'submission.json'} exists and arc-kit select did not write it; give "
                          "a new folder (nothing written)")


def write_selection(out: Path, chosen: Reselection, runs: Sequence[RunFiles], weights: SelectionSettings) -> Path:
    """``out/submission.json`` and, first, ``out/selection.json`` saying how it was chosen."""
    from dataclasses import asdict

    from arc_kit.core.files import atomic_write_json

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / SELECTION_FILE, {"runs": [str(r.folder) for r in runs], "formula": chosen.formula,
                                             "weights": asdict(weights), "score": chosen.score}, indent=1)
    chosen.submission.write(out / "submission.json")
    return out / "submission.json"
