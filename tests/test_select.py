"""`arc-kit select`: re-ranking a run's candidates reproduces its submission byte for byte, other formulas and
weights re-rank without decoding, and several runs pool their candidates (scoring views combined column by
column)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_cli import one_error_line

from arc_kit.cli.main import main as cli_main
from arc_kit.core.submission import validate_submission_file
from arc_kit.core.tasks import load_tasks, read_json, write_task_files
from arc_kit.solve.prompts import task_cost


@pytest.fixture(scope="module")
def three_tasks(tmp_path_factory, arc_files) -> tuple[Path, Path]:
    tasks = sorted(load_tasks(*arc_files("arc-agi-1/evaluation")), key=task_cost)[:3]
    out = tmp_path_factory.mktemp("three")
    write_task_files(tasks, out / "c.json", out / "s.json")
    return out / "c.json", out / "s.json"


def dry_run(files: tuple[Path, Path], model: Path, out: Path, *flags: str) -> None:
    code = cli_main(["dry-run", "--model", str(model), "--challenges", str(files[0]), "--solutions", str(files[1]),
                     "--out", str(out), "--device", "cpu", "--views", "3", "--min-probability", "1e-4",
                     "--max-candidates-per-view", "3", "--scoring-views", "2", "--spare-views", "2",
                     "--no-ttt-enabled", *flags])
    assert code == 0


@pytest.fixture(scope="module")
def near_uniform_model(tmp_path_factory) -> Path:
    """The tiny model with its final norm scaled down, so its next-token distribution is nearly uniform and
    differs a little from context to context: the search then finds several one-cell grids per view (the random
    tiny model prefers newlines, which parse to no grid), re-scoring has something to rank, and margins differ."""
    import torch

    from arc_kit.models.tiny import build_arc_tokenizer, build_tiny_model

    tokenizer = build_arc_tokenizer()
    model = build_tiny_model(tokenizer)
    with torch.no_grad():
        model.model.norm.weight.mul_(0.05)
    out = tmp_path_factory.mktemp("near-uniform")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def runs(three_tasks, near_uniform_model, tmp_path_factory) -> tuple[Path, Path]:
    """Two dry runs, seeds 0 and 1 (other views, other scoring views), spare time on."""
    a, b = tmp_path_factory.mktemp("run-a"), tmp_path_factory.mktemp("run-b")
    dry_run(three_tasks, near_uniform_model, a)
    dry_run(three_tasks, near_uniform_model, b, "--seed", "1")
    return a, b


def test_select_with_the_runs_formula_reproduces_its_submission(runs, three_tasks, tmp_path, capsys):
    run = runs[0]
    report = json.loads((run / "report.json").read_text())
    pooled = [r for t in report["per_task"].values() for r in t["inputs"] if r["landed"]]
    assert pooled and any(r["rescored"] and len(r["pool"]) > 1 for r in pooled)  # a real ranking to reproduce
    assert report["spare_revisits"] > 0  # the pools hold the spare-time phase's pooled candidates too
    capsys.readouterr()
    assert cli_main(["select", str(run), "--solutions", str(three_tasks[1]), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "submission.json").read_bytes() == (run / "submission.json").read_bytes()
    out = capsys.readouterr().out
    assert "nvarc (run)" in out and "poe" in out and "architects" in out and "vote" in out
    assert f"/{len(pooled)}" in out  # right among candidates, out of the inputs with candidates


def test_attempt_two_is_never_a_copy_and_the_report_says_where_it_came_from(runs):
    for run in runs:
        submission = read_json(run / "submission.json")
        report = json.loads((run / "report.json").read_text())
        for tid, entries in submission.items():
            for i, entry in enumerate(entries):
                assert entry["attempt_1"] != entry["attempt_2"], (run, tid, i)
                record = report["per_task"][tid]["inputs"][i]
                if record["landed"]:
                    assert record["attempt_2_source"] in ("ranked", "phase1", "test_input", "placeholder")
                    if record["attempt_2_source"] == "ranked":
                        assert entry["attempt_2"] == record["pool"][1]["grid"]


def test_other_weights_and_formulas_rerank_without_decoding(runs, tmp_path, capsys):
    capsys.readouterr()
    assert cli_main(["select", str(runs[0]), "--formula", "vote", "nvarc", "--vote-weight", "0", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [c["formula"] for c in summary["choices"]] == ["vote", "nvarc"] and summary["weights"]["vote_weight"] == 0
    assert cli_main(["select", str(runs[0]), "--out", str(runs[0])]) == 2  # a run folder's file is never replaced
    assert "run folder" in capsys.readouterr().err
    assert cli_main(["select", str(tmp_path)]) == 2
    assert "no report.json" in capsys.readouterr().err


def test_two_runs_pool_into_a_valid_submission(runs, three_tasks, tmp_path, capsys):
    from arc_kit.run.reselect import pool_runs, read_run

    assert cli_main(["select", *map(str, runs), "--solutions", str(three_tasks[1]), "--out", str(tmp_path)]) == 0
    assert validate_submission_file(tmp_path / "submission.json", three_tasks[0]) == []
    pooled = pool_runs([read_run(r) for r in runs])
    alone = [pool_runs([read_run(r)]) for r in runs]
    for key, entry in pooled.items():
        grids = {c.grid for c in entry.candidates}
        assert grids == {c.grid for one in alone if key in one for c in one[key].candidates}
        for c in entry.candidates:  # each run's views are its own: counts add up
            assert c.count == sum(x.count for one in alone if key in one for x in one[key].candidates
                                  if x.grid == c.grid)


def write_run(folder: Path, pool: list[dict], scoring_views: list[str], formula: str = "nvarc") -> Path:
    folder.mkdir()
    record = {"landed": True, "rescored": bool(scoring_views), "scoring_views": scoring_views, "pool": pool,
              "second_choices": [{"source": "test_input", "grid": [[9]]}]}
    (folder / "report.json").write_text(json.dumps({"selection": {"formula": formula, "vote_weight": 1.0,
                                                                  "architects_offset": 3.0},
                                                    "per_task": {"t": {"inputs": [record]}}}))
    (folder / "submission.json").write_text(json.dumps({"t": [{"attempt_1": [[0]], "attempt_2": [[0]]}]}))
    return folder


def test_scoring_views_that_differ_are_combined_column_by_column(tmp_path):
    """Run A scored X and Y under 2 views, run B scored X and Z under 1 other view: the pooled input has 3
    columns; Y lacks B's, Z lacks A's, and each takes its own mean there, so means stay and sums compare."""
    from arc_kit.run.reselect import pool_runs, read_run, reselect
    from arc_kit.solve.selection import rank

    x, y, z = [[1]], [[2]], [[3]]
    a = write_run(tmp_path / "a", [{"grid": x, "views": {"v1": [0.1]}, "scoring_nlls": [1.0, 2.0]},
                                   {"grid": y, "views": {"v2": [0.2], "v3": [0.3]}, "scoring_nlls": [0.5, 0.7]}],
                  ["s1", "s2"])
    b = write_run(tmp_path / "b", [{"grid": x, "views": {"v1": [0.4]}, "scoring_nlls": [4.0]},
                                   {"grid": z, "views": {"v9": [0.9]}, "scoring_nlls": [0.2]}], ["s7"])
    [pooled] = pool_runs([read_run(a), read_run(b)]).values()
    by = {c.grid: c for c in pooled.candidates}
    assert by[((1,),)].scoring_nlls == [1.0, 2.0, 4.0] and by[((1,),)].generated_views == ["0:v1", "1:v1"]
    assert by[((2,),)].scoring_nlls == pytest.approx([0.5, 0.7, 0.6])
    assert by[((3,),)].scoring_nlls == [0.2, 0.2, 0.2]
    assert [c.grid for c in rank(pooled.candidates, "poe")] == [((3,),), ((2,),), ((1,),)]
    # nvarc: X 2 - 7/3, Y 2 - 0.6, Z 1 - 0.2 -> Y, Z, X; attempt 2 is ranked, not the fallback
    chosen = reselect([read_run(a), read_run(b)], "nvarc", read_run(a).weights)
    assert chosen.submission.entries["t"][0] == {"attempt_1": ((2,),), "attempt_2": ((3,),)}
    assert chosen.voted_inputs == 0 and chosen.changed == 1
    # a candidate no run scored: the input is ranked by votes (X has two generations)
    c = write_run(tmp_path / "c", [{"grid": [[4]], "views": {"v5": [0.5]}, "scoring_nlls": []}], [])
    voted = reselect([read_run(a), read_run(c)], "nvarc", read_run(a).weights)
    assert voted.voted_inputs == 1 and voted.submission.entries["t"][0]["attempt_1"] == ((2,),)
    assert math.isclose(voted.submission.entries["t"][0]["attempt_2"][0][0], 1)  # X: 1 vote, best NLL 0.1


# ---- bad input: one line naming the folder, file or field, exit 2; nothing a user made is lost

POOL = [{"grid": [[1]], "views": {"v1": [0.1]}, "scoring_nlls": [1.0]},
        {"grid": [[2]], "views": {"v2": [0.2]}, "scoring_nlls": [0.5]}]


def test_select_never_writes_over_another_runs_files(tmp_path, capsys):
    a = write_run(tmp_path / "a", POOL, ["s1"])
    b = write_run(tmp_path / "b", [{"grid": [[3]], "views": {"v": [0.3]}, "scoring_nlls": [0.1]}], ["s1"])
    before = {p.name: p.read_bytes() for p in b.iterdir()}
    assert cli_main(["select", str(a), "--out", str(b)]) == 2
    one_error_line(capsys, str(b), "run folder")
    assert {p.name: p.read_bytes() for p in b.iterdir()} == before
    # a folder holding a submission.json that select did not write (a run stopped before its report) is kept too
    (b / "report.json").unlink()
    assert cli_main(["select", str(a), "--out", str(b)]) == 2
    one_error_line(capsys, str(b / "submission.json"))
    assert (b / "submission.json").read_bytes() == before["submission.json"]
    # select's own output folder is select's to rewrite: trying formulas one after another into one folder
    out = tmp_path / "chosen"
    assert cli_main(["select", str(a), "--formula", "vote", "--out", str(out)]) == 0
    assert cli_main(["select", str(a), "--formula", "poe", "--out", str(out)]) == 0
    assert json.loads((out / "selection.json").read_text())["formula"] == "poe"


def test_a_run_given_twice_is_refused_not_pooled_with_itself(tmp_path, capsys, monkeypatch):
    a = write_run(tmp_path / "a", POOL, ["s1"])
    assert cli_main(["select", str(a), str(a)]) == 2
    one_error_line(capsys, "twice")
    monkeypatch.chdir(tmp_path)
    assert cli_main(["select", "a", str(a)]) == 2  # the same folder spelt two ways
    one_error_line(capsys, "twice")


CORRUPTIONS = {
    "report is a list": lambda r: [],
    "selection not a table": lambda r: r.update(selection=3),
    "formula not a name": lambda r: r["selection"].update(formula=5),
    "formula unknown": lambda r: r["selection"].update(formula="best"),
    "weight not a number": lambda r: r["selection"].update(vote_weight="high"),
    "task not a table": lambda r: r["per_task"].update(t=[]),
    "inputs not a list": lambda r: r["per_task"]["t"].update(inputs={"a": 1}),
    "input not a table": lambda r: r["per_task"]["t"].update(inputs=[3]),
    "landed not true/false": lambda r: r["per_task"]["t"]["inputs"][0].update(landed="yes"),
    "pool not a list": lambda r: r["per_task"]["t"]["inputs"][0].update(pool={"grid": [[1]]}),
    "candidate not a table": lambda r: r["per_task"]["t"]["inputs"][0]["pool"].append("x"),
    "grid not a grid": lambda r: r["per_task"]["t"]["inputs"][0]["pool"][0].update(grid="1"),
    "views a list": lambda r: r["per_task"]["t"]["inputs"][0]["pool"][0].update(views=[0.1]),
    "view NLLs a number": lambda r: r["per_task"]["t"]["inputs"][0]["pool"][0].update(views={"v1": 0.1}),
    "view NLL a string": lambda r: r["per_task"]["t"]["inputs"][0]["pool"][0].update(views={"v1": ["a"]}),
    "scoring NLLs a number": lambda r: r["per_task"]["t"]["inputs"][0]["pool"][0].update(scoring_nlls=1.0),
    "scoring NLL a string": lambda r: r["per_task"]["t"]["inputs"][0]["pool"][0].update(scoring_nlls=["a"]),
    "scoring views a string": lambda r: r["per_task"]["t"]["inputs"][0].update(scoring_views="s1"),
    "fallbacks not a list": lambda r: r["per_task"]["t"]["inputs"][0].update(second_choices=3),
    "fallback without a grid": lambda r: r["per_task"]["t"]["inputs"][0].update(second_choices=[{"source": "x"}]),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_report_with_fields_of_the_wrong_type_is_one_line(tmp_path, capsys, corruption):
    run = write_run(tmp_path / "a", POOL, ["s1"])
    report = json.loads((run / "report.json").read_text())
    changed = CORRUPTIONS[corruption](report)
    (run / "report.json").write_text(json.dumps(report if changed is None else changed))
    assert cli_main(["select", str(run), "--out", str(tmp_path / "out")]) == 2
    one_error_line(capsys, "report.json")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("submission", [[], {"t": 3}, {"t": [[1]]}, {"t": [{"attempt_1": [[1]]}]}])
def test_a_submission_of_the_wrong_shape_is_one_line(tmp_path, capsys, submission):
    run = write_run(tmp_path / "a", POOL, ["s1"])
    (run / "submission.json").write_text(json.dumps(submission))
    assert cli_main(["select", str(run), str(write_run(tmp_path / "b", POOL, ["s1"]))]) == 2
    one_error_line(capsys, "submission.json")
