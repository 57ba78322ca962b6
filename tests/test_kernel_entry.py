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

from arc_kit.kaggle_paths import (
    KagglePathError,
    find_challenges,
    find_model_dir,
    input_root,
    is_competition_rerun,
    output_path,
)
from arc_kit.runner import task_size
from arc_kit.submission import validate_submission_file
from arc_kit.tasks import load_tasks, write_task_files

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


def test_the_wheelhouse_is_found_below_the_input_root(tmp_path: Path):
    spec = importlib.util.spec_from_file_location("kernel_main", MAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.find_wheelhouse(tmp_path) is None
    wheel = _touch(tmp_path / "datasets" / "me" / "wheels" / "arc_kit-0.1.0-py3-none-any.whl", "")
    assert module.find_wheelhouse(tmp_path) == wheel.parent
    assert module.find_wheelhouse(tmp_path, "datasets/me/wheels") == wheel.parent


def test_the_settings_line_is_one_dict_literal():
    lines = [line for line in MAIN.read_text().splitlines() if line.startswith("KERNEL_SETTINGS = ")]
    assert len(lines) == 1
    settings = eval(lines[0].split("=", 1)[1])  # noqa: S307 - our own file
    assert settings["competition"] == SLUG and "model_dir" in settings and "wheelhouse" in settings


# -- the entry, run as Kaggle runs it ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kaggle_tree(tmp_path_factory, shared_data: Path, tiny_model_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("kaggle") / "input"
    d = shared_data / "arc-agi-1"
    tasks = sorted(load_tasks(d / "arc-agi_evaluation_challenges.json"), key=task_size)[:4]
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


SETTINGS = {"competition": SLUG, "model_dir": None, "wheelhouse": None, "budget_seconds": 600, "margin_seconds": 10,
            "task_cap_seconds": 120, "views": 1, "quick_tasks": 2, "batch_size": 4}


@pytest.mark.slow
def test_interactive_run_does_a_quick_pass_and_writes_a_valid_file(tmp_path: Path, kaggle_tree: Path):
    proc = run_entry(tmp_path, kaggle_tree, SETTINGS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "interactive run" in proc.stdout and "quick pass on 2 tasks" in proc.stdout
    assert "(2 attempted)" in proc.stdout
    challenges = kaggle_tree / "competitions" / SLUG / "arc-agi_test_challenges.json"
    assert validate_submission_file(tmp_path / "working" / "submission.json", challenges) == []


@pytest.mark.slow
def test_rerun_decodes_every_task(tmp_path: Path, kaggle_tree: Path):
    proc = run_entry(tmp_path, kaggle_tree, SETTINGS, KAGGLE_IS_COMPETITION_RERUN="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "competition rerun" in proc.stdout and "(4 attempted)" in proc.stdout


@pytest.mark.slow
def test_missing_weights_still_write_a_valid_placeholder_file(tmp_path: Path, kaggle_tree: Path):
    no_weights = tmp_path / "input"
    shutil.copytree(kaggle_tree / "competitions", no_weights / "competitions")  # the weights dataset not attached
    settings = {**SETTINGS, "model_dir": "datasets/me/not-there"}
    proc = run_entry(tmp_path, no_weights, settings)
    assert proc.returncode == 1
    assert "not found" in proc.stdout + proc.stderr and "MODEL ERROR" in proc.stdout
    data = json.loads((tmp_path / "working" / "submission.json").read_text())
    assert all(e == {"attempt_1": [[0]], "attempt_2": [[0]]} for entries in data.values() for e in entries)
    challenges = kaggle_tree / "competitions" / SLUG / "arc-agi_test_challenges.json"
    assert validate_submission_file(tmp_path / "working" / "submission.json", challenges) == []
