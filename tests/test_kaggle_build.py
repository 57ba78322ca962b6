"""Kaggle area, offline parts: kernel folder generation, upload metadata, credential refusal, wheelhouse commands.
No network and no ``kaggle`` import here (the client tests are in test_kaggle_client.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from slugify import slugify  # python-slugify: what the kaggle client uses to check titles

from arc_kit import COMPETITION_SLUG
from arc_kit.cli_kaggle import run_standalone
from arc_kit.kernel_build import (
    KernelBuildError,
    KernelSettings,
    build_kernel,
    kernel_metadata,
    render_code,
    runtime_settings,
)
from arc_kit.upload import (
    CredentialFileError,
    DatasetSpec,
    ModelSpec,
    credential_sources,
    credential_values,
    files_to_send,
    find_credential_files,
    refuse_credentials,
    write_dataset_metadata,
    write_model_metadata,
)
from arc_kit.wheelhouse import WheelhouseConfig, build_wheelhouse, download_command, local_wheel_command

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


def full_settings(**overrides) -> KernelSettings:
    base = dict(owner="tester", competition="arc-prize-2026-arc-agi-2", weights_dataset="tester/arc-kit-weights",
                wheelhouse_dataset="tester/arc-kit-wheels", quick_tasks=5)
    return KernelSettings(**{**base, **overrides})


# ---- kernel build


def test_kernel_metadata_is_offline_gpu_private_with_sources() -> None:
    meta = kernel_metadata(full_settings(machine_shape="NvidiaL4"))
    assert meta["id"] == "tester/arc-kit-submission"
    assert slugify(meta["title"]) == "arc-kit-submission"
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True and meta["is_private"] is True
    assert meta["competition_sources"] == ["arc-prize-2026-arc-agi-2"]
    assert meta["dataset_sources"] == ["tester/arc-kit-weights", "tester/arc-kit-wheels"]
    assert meta["language"] == "python" and meta["kernel_type"] == "script" and meta["code_file"] == "main.py"
    assert meta["docker_image_pinning_type"] == "original" and meta["machine_shape"] == "NvidiaL4"


def test_kernel_metadata_with_model_source_and_default_competition() -> None:
    meta = kernel_metadata(KernelSettings(owner="tester", weights_model="tester/arc-kit/transformers/default/2"))
    assert meta["model_sources"] == ["tester/arc-kit/transformers/default/2"]
    assert meta["competition_sources"] == [COMPETITION_SLUG]
    assert "machine_shape" not in meta
    values = runtime_settings(KernelSettings(owner="tester", weights_model="tester/arc-kit/transformers/default/2"))
    assert values["model_dir"] == "/kaggle/input/models/tester/arc-kit/transformers/default/2"


@pytest.mark.parametrize("bad", [dict(slug="ab"), dict(weights_dataset="no-owner"),
                                 dict(weights_model="tester/m/transformers/default"), dict(kernel_type="rmd")])
def test_kernel_settings_rejected(bad: dict) -> None:
    with pytest.raises(KernelBuildError):
        kernel_metadata(full_settings(**bad))


def test_build_rewrites_exactly_the_settings_line(stand_in_main: Path, tmp_path: Path) -> None:
    settings = full_settings()
    paths = build_kernel(stand_in_main, tmp_path / "kernel", settings)
    code = paths["code"].read_text()
    original, built = STAND_IN_MAIN.splitlines(), code.splitlines()
    changed = [i for i, (a, b) in enumerate(zip(original, built, strict=True)) if a != b]
    assert [original[i] for i in changed] == ['KERNEL_SETTINGS = {"competition": None}  # replaced by arc-kit kernel build']
    namespace: dict = {}
    exec(compile(code, "main.py", "exec"), namespace)  # the generated file is valid Python holding the settings
    assert namespace["KERNEL_SETTINGS"] == {
        "competition": "arc-prize-2026-arc-agi-2", "model_dir": "/kaggle/input/arc-kit-weights",
        "wheelhouse": "/kaggle/input/arc-kit-wheels", "budget_seconds": 43200, "margin_seconds": 2700,
        "task_cap_seconds": 600, "views": 8, "quick_tasks": 5}
    meta = json.loads(paths["metadata"].read_text())
    assert (tmp_path / "kernel" / meta["code_file"]).is_file()


@pytest.mark.parametrize("text,count", [("print(1)\n", 0), ("KERNEL_SETTINGS = {}\nKERNEL_SETTINGS = {}\n", 2)])
def test_settings_line_missing_or_twice_is_a_clear_error(text: str, count: int) -> None:
    with pytest.raises(KernelBuildError, match=f"exactly one line starting with 'KERNEL_SETTINGS = ', found {count}"):
        render_code(text, {}, "submission/main.py")


def test_notebook_is_generated_from_the_script(stand_in_main: Path, tmp_path: Path) -> None:
    out = tmp_path / "kernel"
    build_kernel(stand_in_main, out, full_settings())
    paths = build_kernel(stand_in_main, out, full_settings(kernel_type="notebook"))
    assert not (out / "main.py").exists(), "a stale script would be a second, drifting copy"
    notebook = json.loads(paths["code"].read_text())
    source = "".join(notebook["cells"][0]["source"])
    assert source == render_code(STAND_IN_MAIN, runtime_settings(full_settings()))
    assert json.loads(paths["metadata"].read_text())["code_file"] == "main.ipynb"


def test_real_entry_builds_when_present(tmp_path: Path) -> None:
    main = ROOT / "submission" / "main.py"
    if not main.is_file():
        pytest.skip("submission/main.py not written yet")
    paths = build_kernel(main, tmp_path / "k", full_settings())
    compile(paths["code"].read_text(), "main.py", "exec")


def test_committed_kernel_copy_matches_a_fresh_build(tmp_path: Path) -> None:
    """If someone commits a generated kernel, it must equal what build produces (else it drifts)."""
    committed = ROOT / "kernels" / "arc-kit-submission"
    if not (committed / "kernel-metadata.json").is_file() or not (ROOT / "submission" / "main.py").is_file():
        pytest.skip("no generated kernel in the tree (the intended state: it is git-ignored)")
    meta = json.loads((committed / "kernel-metadata.json").read_text())
    code = (committed / meta["code_file"]).read_text()
    line = next(x for x in code.splitlines() if x.startswith("KERNEL_SETTINGS = "))
    values = eval(line.split(" = ", 1)[1])  # noqa: S307 - a repr() of a dict of literals, written by build
    assert code == render_code((ROOT / "submission" / "main.py").read_text(), values)


def test_cli_kernel_build(stand_in_main: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    out = tmp_path / "k"
    code = run_standalone(["kernel", "build"], ["--main", str(stand_in_main), "--out", str(out),
                                                "--weights-dataset", "someone/arc-kit-weights",
                                                "--competition", "arc-prize-2025", "--quick-tasks", "3"])
    assert code == 0
    meta = json.loads((out / "kernel-metadata.json").read_text())
    assert meta["id"] == "someone/arc-kit-submission" and meta["competition_sources"] == ["arc-prize-2025"]
    assert "no wheelhouse attached" in capsys.readouterr().err
    (tmp_path / "bad.py").write_text("print('no settings line')\n")
    assert run_standalone(["kernel", "build"], ["--main", str(tmp_path / "bad.py"), "--out", str(out)]) == 1
    assert "KERNEL_SETTINGS" in capsys.readouterr().err


# ---- upload metadata and credential refusal


def make_export(folder: Path) -> Path:
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"\0weights" * 100)
    (folder / "tokenizer" / "tokenizer.json").write_text('{"version": "1.0"}')
    (folder / "arc_kit_manifest.json").write_text('{"base_model": "tiny", "steps": 3}')
    return folder


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
    assert files_to_send(folder) == ["arc_kit_manifest.json", "config.json", "model.safetensors",
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
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-weights", "--dry-run"]) == 1
    assert "kaggle.json" in capsys.readouterr().err


def test_the_kit_works_without_the_client_imported(tmp_path: Path) -> None:
    """`import kaggle` authenticates at import: the CLI parser, builds and dry runs must not trigger it."""
    folder = make_export(tmp_path / "export")
    script = (
        "import sys\n"
        "from arc_kit.cli import build_parser\n"
        "from arc_kit.cli_kaggle import run_standalone\n"
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


def test_download_command_targets_the_kernel_interpreter(tmp_path: Path) -> None:
    cmd = download_command(WheelhouseConfig(python_version="3.12", packages=("unsloth==2026.10.5",)), tmp_path)
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert "--only-binary=:all:" in cmd and "--no-deps" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.12" and cmd[cmd.index("--implementation") + 1] == "cp"
    assert "cp312" in cmd and "manylinux2014_x86_64" in cmd and cmd[-1] == "unsloth==2026.10.5"
    with pytest.raises(ValueError, match="pinned"):
        download_command(WheelhouseConfig(packages=("unsloth",)), tmp_path)


def test_wheelhouse_builds_the_arc_kit_wheel_offline(tmp_path: Path) -> None:
    """Builds the real arc_kit wheel (pip wheel --no-deps --no-build-isolation); the download step is recorded,
    not run."""
    recorded: list[list[str]] = []

    def run(cmd):  # noqa: ANN001
        recorded.append(list(cmd))
        if "wheel" in cmd:
            subprocess.run(list(cmd), check=True, capture_output=True)

    dest = tmp_path / "wheels"
    result = build_wheelhouse(ROOT, dest, WheelhouseConfig(), run=run)
    built_from = Path(recorded[0][-1])
    assert recorded[0] == local_wheel_command(built_from, dest) and "--no-build-isolation" in recorded[0]
    assert built_from != ROOT and not built_from.exists(), "built from a staged copy, removed afterwards"
    assert recorded[1] == download_command(WheelhouseConfig(), dest)
    with zipfile.ZipFile(result.arc_kit_wheel) as wheel:
        names = wheel.namelist()
    assert "arc_kit/kaggle_io.py" in names and "arc_kit/kernel_build.py" in names
    assert not any(name.startswith(("tests/", "kernels/", "submission/")) for name in names)
    assert (dest / "requirements.txt").read_text().splitlines()[0] == "arc-kit"
