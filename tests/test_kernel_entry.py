"""The kernel entry (submission/main.py) on a fake /kaggle/input tree, and the path resolution behind it."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from arc_kit.core.submission import validate_submission_file
from arc_kit.core.tasks import load_tasks, write_task_files
from arc_kit.kaggle.paths import (
    KagglePathError,
    find_challenges,
    find_model_dir,
    input_root,
    is_competition_rerun,
    output_path,
    working_dir,
)
from arc_kit.solve.prompts import task_cost

REPO = Path(__file__).resolve().parents[1]
MAIN = REPO / "submission" / "main.py"
SLUG = "arc-prize-2026-arc-agi-2"


def _touch(path: Path, text: str = "{}") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- paths ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", [f"{SLUG}", f"competitions/{SLUG}", "somewhere/else/deep"])
def test_challenges_are_found_in_every_layout(tmp_path: Path, layout: str):
    expected = _touch(tmp_path / layout / "arc-agi_test_challenges.json")
    assert find_challenges(tmp_path, SLUG) == expected


def test_a_given_challenges_path_wins_and_a_missing_one_is_named(tmp_path: Path):
    _touch(tmp_path / SLUG / "arc-agi_test_challenges.json")
    mine = _touch(tmp_path / "mine" / "x.json")
    assert find_challenges(tmp_path, SLUG, "mine/x.json") == mine
    with pytest.raises(KagglePathError, match="nope.json"):
        find_challenges(tmp_path, SLUG, tmp_path / "nope.json")
    with pytest.raises(KagglePathError, match="is the competition attached"):
        find_challenges(tmp_path / "mine", SLUG)


def test_the_kit_exported_weights_are_preferred(tmp_path: Path):
    _touch(tmp_path / "datasets" / "someone" / "other-model" / "config.json")
    kit = tmp_path / "models" / "me" / "arc" / "transformers" / "v1" / "3"
    _touch(kit / "config.json")
    _touch(kit / "arc_kit_manifest.json")
    assert find_model_dir(tmp_path) == kit


def test_weights_folder_variants(tmp_path: Path):
    with pytest.raises(KagglePathError, match="no weights folder"):
        find_model_dir(tmp_path)
    adapter = _touch(tmp_path / "lora" / "adapter_config.json").parent
    assert find_model_dir(tmp_path) == adapter
    _touch(tmp_path / "other" / "config.json")
    with pytest.raises(KagglePathError, match="several weights folders"):
        find_model_dir(tmp_path)
    assert find_model_dir(tmp_path, "other") == tmp_path / "other"
    with pytest.raises(KagglePathError, match="several weights folders"):
        find_model_dir(tmp_path, "missing")  # a missing given path falls back to the search
    # a Kaggle mount path is read below a local input root (the demo and the tests run the kernel that way)
    assert find_model_dir(tmp_path, "/kaggle/input/other") == tmp_path / "other"
    (tmp_path / "other" / "config.json").unlink()
    assert find_model_dir(tmp_path, "/kaggle/input/datasets/me/lora") == adapter  # mount paths vary: searched


def test_environment_switches():
    assert is_competition_rerun({"KAGGLE_IS_COMPETITION_RERUN": "1"})
    assert not is_competition_rerun({})
    assert input_root({}) == Path("/kaggle/input") and output_path({}) == Path("/kaggle/working/submission.json")
    assert input_root({"ARC_KIT_INPUT_ROOT": "/x"}) == Path("/x")
    assert output_path({"ARC_KIT_OUTPUT": "/y/s.json"}) == Path("/y/s.json")


def _load_main(root: Path, monkeypatch: pytest.MonkeyPatch, settings: dict | None = None):
    monkeypatch.setenv("ARC_KIT_INPUT_ROOT", str(root))
    spec = importlib.util.spec_from_file_location("kernel_main", MAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if settings is not None:
        module.KERNEL_SETTINGS = settings
    return module


def test_the_wheelhouse_is_found_on_the_2026_and_classic_mounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    module = _load_main(tmp_path, monkeypatch, {"kernel": {"wheelhouse_dataset": "me/arc-kit-wheels"}})
    assert module.find_wheelhouse() is None
    classic = _touch(tmp_path / "arc-kit-wheels" / "arc_kit-0.1.0-py3-none-any.whl", "")
    assert module.find_wheelhouse() == classic.parent
    current = _touch(tmp_path / "datasets" / "me" / "arc-kit-wheels" / "arc_kit-0.1.0-py3-none-any.whl", "")
    assert module.find_wheelhouse() == current.parent
    module.KERNEL_SETTINGS = {}  # nothing named: searched
    assert module.find_wheelhouse() in (classic.parent, current.parent)


def test_weights_are_found_from_the_attached_source_on_either_layout(tmp_path: Path):
    classic = _touch(tmp_path / "arc-weights" / "config.json").parent
    assert find_model_dir(tmp_path, dataset="me/arc-weights") == classic
    current = _touch(tmp_path / "datasets" / "me" / "arc-weights" / "config.json").parent
    assert find_model_dir(tmp_path, dataset="me/arc-weights") == current
    model = _touch(tmp_path / "models" / "me" / "arc" / "transformers" / "v1" / "2" / "config.json").parent
    assert find_model_dir(tmp_path, model="me/arc/transformers/v1/2", dataset="me/arc-weights") == model
    # a handle spells the framework as Kaggle shows it (Transformers); the mount is in lower case
    nvarc = _touch(tmp_path / "models" / "sorokin" / "qwen3_4b_grids15_sft139" / "transformers" / "bfloat16" / "1"
                   / "config.json").parent
    assert find_model_dir(tmp_path, model="sorokin/qwen3_4b_grids15_sft139/Transformers/bfloat16/1") == nvarc
    classic = _touch(tmp_path / "qwen3_2b" / "transformers" / "bfloat16" / "1" / "config.json").parent
    assert find_model_dir(tmp_path, model="sorokin/qwen3_2b/Transformers/bfloat16/1") == classic


def test_an_export_root_uploaded_whole_loads_its_merged_folder(tmp_path: Path, caplog):
    """The export holds adapter/ and merged/: merged is picked by rule and the pick is said (in the kernel's log)."""
    export = tmp_path / "datasets" / "me" / "arc-weights"
    _touch(export / "adapter" / "adapter_config.json")
    merged = _touch(export / "merged" / "config.json").parent
    assert find_model_dir(tmp_path, dataset="me/arc-weights") == merged
    assert "merged" in caplog.text
    _touch(export / "merged" / "arc_kit_manifest.json")
    assert find_model_dir(tmp_path, "/kaggle/input/datasets/me/arc-weights") == merged
    empty = tmp_path / "empty"
    _touch(empty / "readme.txt")
    with pytest.raises(KagglePathError, match="readme.txt"):  # names what it saw
        find_model_dir(tmp_path, "empty")


def test_the_entry_holds_no_defaults_of_its_own():
    lines = [line for line in MAIN.read_text().splitlines() if line.startswith("KERNEL_SETTINGS = ")]
    assert lines == ["KERNEL_SETTINGS = {}"]


# -- the entry, run as Kaggle runs it ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kaggle_tree(tmp_path_factory, arc_files, tiny_model_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("kaggle") / "input"
    tasks = sorted(load_tasks(arc_files("arc-agi-1/evaluation")[0]), key=task_cost)[:4]
    write_task_files(tasks, root / "competitions" / SLUG / "arc-agi_test_challenges.json")
    shutil.copytree(tiny_model_dir, root / "datasets" / "me" / "arc-weights")
    return root


def run_entry(tmp_path: Path, root: Path, settings: dict, **env: str) -> subprocess.CompletedProcess:
    """Rewrite the settings line as `arc-kit kernel build` does, then run the file as a script."""
    text = re.sub(r"^KERNEL_SETTINGS = .*$", "KERNEL_SETTINGS = " + repr(settings), MAIN.read_text(), flags=re.M)
    script = tmp_path / "kernel" / "main.py"
    _touch(script, text)
    full_env = {k: v for k, v in os.environ.items() if k != "KAGGLE_IS_COMPETITION_RERUN"}
    full_env.update(ARC_KIT_INPUT_ROOT=str(root), ARC_KIT_OUTPUT=str(tmp_path / "working" / "submission.json"),
                    **env)
    return subprocess.run([sys.executable, str(script)], env=full_env, capture_output=True, text=True,
                          timeout=240, cwd=tmp_path)


SETTINGS = {"kernel": {"competition": SLUG, "quick_tasks": 2, "weights_dataset": "me/arc-weights"},
            "run": {"budget_seconds": 600, "margin_seconds": 10, "task_cap_seconds": 120},
            "solver": {"mode": "greedy", "scoring_views": 0, "views": 1, "batch_size": 4},
            "ttt": {"max_samples": 8}}


@pytest.mark.slow
def test_interactive_run_does_a_quick_pass_and_writes_a_valid_file(tmp_path: Path, kaggle_tree: Path):
    proc = run_entry(tmp_path, kaggle_tree, SETTINGS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "interactive run" in proc.stdout and "quick pass on 2 tasks" in proc.stdout
    assert "(2 of 2 queued attempted)" in proc.stdout
    challenges = kaggle_tree / "competitions" / SLUG / "arc-agi_test_challenges.json"
    assert validate_submission_file(tmp_path / "working" / "submission.json", challenges) == []


@pytest.mark.slow
def test_rerun_decodes_every_task(tmp_path: Path, kaggle_tree: Path):
    proc = run_entry(tmp_path, kaggle_tree, SETTINGS, KAGGLE_IS_COMPETITION_RERUN="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "competition rerun" in proc.stdout and "(4 of 4 queued attempted)" in proc.stdout


@pytest.mark.slow
def test_missing_weights_still_write_a_valid_placeholder_file(tmp_path: Path, kaggle_tree: Path):
    no_weights = tmp_path / "input"
    shutil.copytree(kaggle_tree / "competitions", no_weights / "competitions")  # the weights dataset not attached
    settings = {**SETTINGS, "kernel": {**SETTINGS["kernel"], "model_dir": "datasets/me/not-there"}}
    proc = run_entry(tmp_path, no_weights, settings)
    assert proc.returncode == 1
    assert "weights not at" in proc.stderr and "MODEL ERROR" in proc.stdout and "it holds: competitions/" in proc.stdout
    data = json.loads((tmp_path / "working" / "submission.json").read_text())
    assert all(e == {"attempt_1": [[0]], "attempt_2": [[0]]} for entries in data.values() for e in entries)
    challenges = kaggle_tree / "competitions" / SLUG / "arc-agi_test_challenges.json"
    assert validate_submission_file(tmp_path / "working" / "submission.json", challenges) == []


@pytest.mark.slow
def test_weights_from_another_transformers_major_fail_the_interactive_run_loudly(tmp_path: Path, kaggle_tree: Path):
    root = tmp_path / "input"
    shutil.copytree(kaggle_tree / "competitions", root / "competitions")
    weights = root / "datasets" / "me" / "arc-weights"
    shutil.copytree(kaggle_tree / "datasets" / "me" / "arc-weights", weights)
    (weights / "arc_kit_manifest.json").write_text(json.dumps({"versions": {"transformers": "4.57.1"}}))
    proc = run_entry(tmp_path, root, SETTINGS)
    assert proc.returncode == 1 and "VERSION PROBLEM" in proc.stdout and "transformers>=4.0,<5" in proc.stdout
    assert validate_submission_file(tmp_path / "working" / "submission.json",
                                    root / "competitions" / SLUG / "arc-agi_test_challenges.json") == []


@pytest.mark.parametrize("content", [None, "[1, 2]"])
def test_a_missing_or_bad_challenges_file_leaves_a_file_and_one_line(tmp_path: Path, content: str | None):
    root = tmp_path / "input"
    (root / "competitions" / SLUG).mkdir(parents=True)
    if content is not None:
        (root / "competitions" / SLUG / "arc-agi_test_challenges.json").write_text(content)
    proc = run_entry(tmp_path, root, SETTINGS)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert "arc-kit kernel:" in proc.stdout
    assert json.loads((tmp_path / "working" / "submission.json").read_text()) == {}


# -- the other kinds: evaluation and training, a training kernel's output as weights -------------------------------


def training_output(folder: Path, *, export: bool, step: int = 3) -> Path:
    """A training kernel's output as it leaves it: run/checkpoint-<step>/ (and final/), plus export/ when finished."""
    _touch(folder / "run" / f"checkpoint-{step}" / "trainer_state.json", json.dumps({"global_step": step}))
    _touch(folder / "run" / f"checkpoint-{step}" / "config.json")
    _touch(folder / "run" / "final" / "config.json")
    if export:
        _touch(folder / "export" / "merged" / "config.json")
        _touch(folder / "export" / "merged" / "arc_kit_manifest.json")
        _touch(folder / "export" / "adapter" / "adapter_config.json")
    return folder


@pytest.mark.parametrize("mount", ["notebooks/me/arc-kit-train", "arc-kit-train"])
def test_a_training_kernels_output_is_taken_only_with_its_export(tmp_path: Path, mount: str):
    """Attached with --weights-kernel (2026 mount or classic): the export's merged weights, never a checkpoint; an
    output stopped at its budget is refused in one line saying so."""
    output = training_output(tmp_path / mount, export=False)
    with pytest.raises(KagglePathError) as refused:
        find_model_dir(tmp_path, kernel="me/arc-kit-train")
    assert str(refused.value) == (f"{output} holds checkpoint-3 but no export: the training kernel stopped at its "
                                  "budget; run it again to resume")
    training_output(output, export=True)
    assert find_model_dir(tmp_path, kernel="me/arc-kit-train") == output / "export" / "merged"


def test_every_kind_writes_below_the_working_folder():
    assert working_dir({}) == Path("/kaggle/working") and working_dir({"ARC_KIT_WORKING": "/w"}) == Path("/w")
    assert output_path({"ARC_KIT_WORKING": "/w"}) == Path("/w/submission.json")
    assert output_path({"ARC_KIT_WORKING": "/w", "ARC_KIT_OUTPUT": "/o/s.json"}) == Path("/o/s.json")


def test_the_entry_reads_its_kind_and_working_folder_from_its_literal_and_environment(tmp_path: Path):
    from arc_kit.kaggle.kernel_build import render_code

    for settings, kind in (({}, "submission"), ({"kind": "train", "kernel": {"wheelhouse_dataset": "me/wheels"}},
                                                 "train")):
        namespace: dict = {"__name__": "not_main"}
        env = {"ARC_KIT_WORKING": str(tmp_path / "w")}
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            mp.delenv("ARC_KIT_OUTPUT", raising=False)
            exec(compile(render_code(MAIN.read_text(), settings), "main.py", "exec"), namespace)
        assert (namespace["KIND"], namespace["OUTPUT"]) == (kind, tmp_path / "w" / "submission.json")


def test_an_unknown_kind_is_one_line(capsys):
    from arc_kit.run.entry import run_kernel_kind

    assert run_kernel_kind({"kind": "predict"}, 0.0) == 1
    assert "kind 'predict' is not one of submission, evaluate, train" in capsys.readouterr().out


def test_the_evaluation_data_is_a_named_set_or_an_attached_file_with_its_solutions(tmp_path: Path, arc_files):
    from arc_kit.config.kernels import EvaluateSettings
    from arc_kit.run.evaluate import evaluation_files

    challenges, solutions = evaluation_files(EvaluateSettings(), tmp_path)
    assert (challenges.name, solutions.name) == ("arc-agi_evaluation_challenges.json",
                                                 "arc-agi_evaluation_solutions.json")
    mine = tmp_path / "datasets" / "me" / "held-out"
    shutil.copy(arc_files("arc-agi-1/evaluation")[0], _touch(mine / "x_challenges.json"))
    given = EvaluateSettings(data="/kaggle/input/datasets/me/held-out/x_challenges.json")
    with pytest.raises(KagglePathError, match="no solutions for .*x_challenges.json: .*give evaluate.solutions"):
        evaluation_files(given, tmp_path)
    shutil.copy(arc_files("arc-agi-1/evaluation")[1], mine / "x_solutions.json")
    assert evaluation_files(given, tmp_path) == (mine / "x_challenges.json", mine / "x_solutions.json")
    with pytest.raises(KagglePathError, match="evaluate.data nope.json: no file at .*attach the dataset"):
        evaluation_files(EvaluateSettings(data="nope.json"), tmp_path)


def test_the_evaluation_kernel_leaves_a_scored_report_with_seconds_per_stage(evaluation_output: Path, capsys):
    """Its output holds what `arc-kit select` reads, the score, and where the time went per task and stage."""
    from arc_kit.cli.main import main as cli_main

    score = json.loads((evaluation_output / "score.json").read_text())
    assert score["score"] is not None and score["tasks_attempted"] == 2 and score["data"] == "arc-agi-1/evaluation"
    assert set(score["stage_seconds"]) == {"quick", "ttt", "search", "rescore", "other", "spare", "unaccounted"}
    assert score["stage_seconds"]["ttt"] > 0 and score["stage_seconds"]["search"] > 0
    assert score["worker_seconds_per_task"] > 0 and score["settings"]["evaluate"]["max_tasks"] == 2
    report = json.loads((evaluation_output / "report.json").read_text())
    staged = [t["stages"] for t in report["per_task"].values() if t["stages"]]
    assert len(staged) == 2 and all(s["ttt"] > 0 and s["search"] > 0 for s in staged)
    assert (evaluation_output / "report.html").is_file()
    assert (evaluation_output / "arc-kit-data").is_dir()  # the named set, written below the output
    capsys.readouterr()
    assert cli_main(["select", str(evaluation_output), "--solutions", "arc-agi-1/evaluation"]) == 0
    assert "nvarc (run)" in capsys.readouterr().out


def test_the_training_kernels_config_points_at_its_output_mounts_and_budget(tmp_path: Path):
    from arc_kit.config.kernels import TrainKernelConfig
    from arc_kit.config.run import SettingsError
    from arc_kit.run.train_kernel import kernel_training_config

    base = _touch(tmp_path / "models" / "qwen-lm" / "qwen-3" / "transformers" / "4b" / "1" / "config.json").parent
    kernel_config = TrainKernelConfig.from_dict({
        "kernel": {"base_model_source": "qwen-lm/qwen-3/transformers/4b/1", "budget_seconds": 3600},
        "train": {"stop_margin_seconds": 600},
        "model": {"name_or_path": "unsloth/Qwen3-4B"},
        "data": {"challenges": ["arc-agi-2/training", "/kaggle/input/datasets/me/more/x_challenges.json"]}})
    config = kernel_training_config(kernel_config, tmp_path, tmp_path / "working", 100.0)
    assert config.train.output_dir == str(tmp_path / "working" / "run")
    assert (config.model.name_or_path, config.model.local_files_only) == (str(base), True)
    assert config.data.challenges == ["arc-agi-2/training", str(tmp_path / "datasets/me/more/x_challenges.json")]
    assert config.train.max_seconds == 3600 - 100  # what is left; the run keeps stop_margin_seconds of it
    kernel_config.train.max_seconds = 900.0  # the config's own budget is kept
    assert kernel_training_config(kernel_config, tmp_path, tmp_path / "working", 100.0).train.max_seconds == 900.0
    kernel_config.train.max_seconds = None
    with pytest.raises(SettingsError, match="no time left to train: 3100 s spent .*train.stop_margin_seconds 600 s"):
        kernel_training_config(kernel_config, tmp_path, tmp_path / "working", 3100.0)
    kernel_config.kernel.base_model_source = "qwen-lm/other/transformers/4b/1"
    with pytest.raises(KagglePathError, match="kernel.base_model_source qwen-lm/other/transformers/4b/1 is not attached"):
        kernel_training_config(kernel_config, tmp_path, tmp_path / "working", 0.0)


def test_a_resumed_training_kernel_needs_a_run_stopped_at_its_budget(tmp_path: Path):
    from arc_kit.config.kernels import TrainKernelSettings
    from arc_kit.run.train_kernel import resume_source

    k = TrainKernelSettings(resume_kernel="me/arc-kit-train")
    with pytest.raises(KagglePathError, match="its output is not attached"):
        resume_source(k, tmp_path)
    output = tmp_path / "notebooks" / "me" / "arc-kit-train"
    _touch(output / "train-kernel.json")
    with pytest.raises(KagglePathError, match="holds no training output to resume"):
        resume_source(k, tmp_path)
    training_output(output, export=False)
    assert resume_source(k, tmp_path) == output
    training_output(output, export=True)
    with pytest.raises(KagglePathError, match="holds a finished run .*build the kernel without --resume-kernel"):
        resume_source(k, tmp_path)
    assert resume_source(TrainKernelSettings(), tmp_path) is None
