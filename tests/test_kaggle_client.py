"""The real ``kaggle`` client (2.2.x + kagglesdk) driven through arc-kit against a fake Kaggle on 127.0.0.1.

Each test asserts what the client actually sent: SaveKernel bodies, blob uploads and CreateDataset(Version)
bodies, model creation, status polling, output download, code submission, competition download. Fake
credentials only, in a tmp HOME; every endpoint is checked to be loopback before anything is sent.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import fields
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import make_export
from kaggle_fake_server import LOOPBACK, FakeKaggle

from arc_kit import COMPETITION_SLUG
from arc_kit.cli.main import run_standalone
from arc_kit.config.kernels import kernel_literal
from arc_kit.config.run import KernelSettings, SubmissionConfig
from arc_kit.kaggle import client as kaggle_client
from arc_kit.kaggle.kernel_build import KernelMetadataSettings, build_kernel, render_code
from arc_kit.kaggle.upload import upload_entries

FAKE_KEY = "fake-key-0123456789abcdef"
FAKE_TOKEN = "KGAT_fake-token-0123456789"
STAND_IN_MAIN = 'import json\n\nKERNEL_SETTINGS = None\n\nprint(json.dumps(KERNEL_SETTINGS))\n'


def _clean_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for key in list(os.environ):
        if key.startswith("KAGGLE_") or key.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(home / ".kaggle"))
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fake Kaggle on loopback, the client pointed at it in-process, fake key credentials."""
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    _clean_env(monkeypatch, home)
    monkeypatch.setenv("NO_PROXY", f"{LOOPBACK},localhost")
    monkeypatch.setenv("KAGGLE_USERNAME", "tester")
    monkeypatch.setenv("KAGGLE_KEY", FAKE_KEY)
    real_connect = socket.socket.connect

    def loopback_only(sock: socket.socket, address) -> None:  # noqa: ANN001
        host = address[0] if isinstance(address, tuple) else address
        assert host in (LOOPBACK, "::1"), f"a test tried to connect to {address}: only loopback is allowed"
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    server = FakeKaggle()
    from kagglesdk import kaggle_env

    monkeypatch.setitem(kaggle_env._env_to_endpoint, kaggle_env.KaggleEnv.LOCAL, server.base)
    api_class = kaggle_client._api_class()  # first import of `kaggle` happens here, with the env above
    monkeypatch.setattr(api_class, "args", ["--local"])  # class attributes were fixed at import time
    monkeypatch.setattr(api_class, "config_dir", str(home / ".kaggle"))
    monkeypatch.setattr(api_class, "config", str(home / ".kaggle" / "kaggle.json"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the client's resumable-upload notes
    _assert_loopback(api_class)
    yield server
    server.close()


def _assert_loopback(api_class) -> None:  # noqa: ANN001
    with api_class.build_kaggle_client_with_params(api_class.args) as kaggle:
        endpoint = kaggle.http_client()._endpoint
    assert urlsplit(endpoint).hostname == LOOPBACK, f"tests must talk to loopback only, not {endpoint}"


def test_guard_endpoint_is_loopback(fake: FakeKaggle) -> None:
    """Fails if the client would reach anything but 127.0.0.1 (a misspelt variable silently means production)."""
    api = kaggle_client.client()
    with api.build_kaggle_client() as kaggle:
        http = kaggle.http_client()
        assert urlsplit(http._endpoint).hostname == LOOPBACK
        assert http._get_request_url("kernels.KernelsApiService", "SaveKernel").startswith(fake.base + "/api/v1/")
    with pytest.raises(AssertionError, match="only loopback"):  # and the socket guard is live
        socket.create_connection(("192.0.2.1", 443), timeout=0.1)


# ---- kernels


def build(tmp_path: Path, **overrides) -> Path:
    main = tmp_path / "main.py"
    main.write_text(STAND_IN_MAIN)
    folder = tmp_path / "kernel"
    build_kernel(main, folder, *settings_and_config(**overrides))
    return folder


def settings_and_config(**overrides) -> tuple[KernelMetadataSettings, SubmissionConfig]:
    sources = dict(competition="arc-prize-2026-arc-agi-2", weights_dataset="tester/arc-kit-weights",
                   wheelhouse_dataset="tester/arc-kit-wheels")
    kernel = {k: overrides.pop(k) for k in list(overrides) if k in {f.name for f in fields(KernelSettings)}}
    return (KernelMetadataSettings(owner="tester", **overrides),
            SubmissionConfig(KernelSettings(**{**sources, **kernel})))


def test_push_sends_offline_gpu_kernel_with_sources(fake: FakeKaggle, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    folder = build(tmp_path)
    assert run_standalone(["kernel", "push"], ["--folder", str(folder)]) == 0
    (body,) = fake.bodies("SaveKernel")
    assert body["enableInternet"] is False and body["enableGpu"] is True and body["isPrivate"] is True
    assert body["competitionDataSources"] == ["arc-prize-2026-arc-agi-2"]
    assert body["datasetDataSources"] == ["tester/arc-kit-weights", "tester/arc-kit-wheels"]
    assert body["slug"] == "tester/arc-kit-submission" and body["newTitle"] == "ARC Kit Submission"
    assert body["language"] == "python" and body["kernelType"] == "script"
    assert body["dockerImagePinningType"] == "original"
    assert body["text"] == render_code(STAND_IN_MAIN, kernel_literal("submission", settings_and_config()[1]))
    out = capsys.readouterr()
    assert "version 3" in out.out and FAKE_KEY not in out.out + out.err


def test_push_with_model_source_and_notebook(fake: FakeKaggle, tmp_path: Path) -> None:
    folder = build(tmp_path, weights_dataset=None, weights_model="tester/arc-kit/transformers/default/2",
                   kernel_type="notebook", machine_shape="NvidiaL4")
    result = kaggle_client.push_kernel(folder)
    assert result.version == 3
    (body,) = fake.bodies("SaveKernel")
    assert body["modelDataSources"] == ["tester/arc-kit/transformers/default/2"]
    assert body["datasetDataSources"] == ["tester/arc-kit-wheels"] and body["machineShape"] == "NvidiaL4"
    assert body["kernelType"] == "notebook"
    notebook = json.loads(body["text"])
    assert "KERNEL_SETTINGS = {'kind': 'submission', 'kernel': {'competition': 'arc-prize-2026-arc-agi-2'" in \
        notebook["cells"][0]["source"]


def test_push_401_is_a_clear_error(fake: FakeKaggle, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fake.fail["SaveKernel"] = 401
    assert run_standalone(["kernel", "push"], ["--folder", str(build(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "KAGGLE_API_TOKEN" in err and FAKE_KEY not in err


def test_rejected_sources_are_reported_with_the_saved_version(fake: FakeKaggle, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    fake.rejected_sources = ["tester/arc-kit-wheels"]
    assert run_standalone(["kernel", "push"], ["--folder", str(build(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert "version 3 was saved" in err and "tester/arc-kit-wheels" in err and "push again" in err


def test_verbose_client_never_prints_the_auth_header(fake: FakeKaggle, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    import base64

    monkeypatch.setattr(kaggle_client._api_class(), "args", ["--local", "--verbose"])  # as VERBOSE=1 at import
    assert run_standalone(["kernel", "status"], ["tester/arc-kit-submission", "--once"]) == 0
    basic = base64.b64encode(f"tester:{FAKE_KEY}".encode()).decode()
    assert fake.calls[0].headers["Authorization"] == f"Basic {basic}"
    captured = capsys.readouterr()
    assert basic not in captured.out + captured.err and "Authorization" not in captured.out


def test_status_wait_polls_until_complete_then_output(fake: FakeKaggle, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    assert run_standalone(["kernel", "status"], ["tester/arc-kit-submission", "--poll", "0"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[-1] for line in out.splitlines()[:3]] == ["QUEUED", "RUNNING", "COMPLETE"]
    status_bodies = fake.bodies("GetKernelSessionStatus")
    assert len(status_bodies) == 3 and status_bodies[0] == {"userName": "tester", "kernelSlug": "arc-kit-submission"}
    fake.files["submission.json"] = b'{"task": [{"attempt_1": [[0]], "attempt_2": [[0]]}]}'
    assert run_standalone(["kernel", "output"], ["tester/arc-kit-submission", "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "submission.json").read_bytes() == fake.files["submission.json"]
    assert "done" in (tmp_path / "o" / "arc-kit-submission.log").read_text()


def test_wait_gives_up_after_its_timeout(fake: FakeKaggle) -> None:
    fake.kernel_states = ["RUNNING"]
    naps: list[float] = []
    with pytest.raises(kaggle_client.KaggleError, match="still RUNNING"):
        kaggle_client.wait_for_kernel("tester/arc-kit-submission", poll_seconds=60, timeout_seconds=30,
                                  sleep=naps.append)
    assert naps == [] and len(fake.bodies("GetKernelSessionStatus")) == 1


def test_status_error_reports_failure(fake: FakeKaggle, capsys: pytest.CaptureFixture) -> None:
    fake.kernel_states = ["ERROR"]
    assert run_standalone(["kernel", "status"], ["tester/arc-kit-submission", "--once"]) == 1
    assert "ERROR (Notebook Threw Exception)" in capsys.readouterr().out


def test_submit_sends_code_submission(fake: FakeKaggle, tmp_path: Path) -> None:
    folder = build(tmp_path)
    assert run_standalone(["submit"], ["--folder", str(folder), "--version", "3", "--message", "first"]) == 0
    (body,) = fake.bodies("CreateCodeSubmission")
    assert body == {"competitionName": COMPETITION_SLUG, "kernelOwner": "tester", "kernelSlug": "arc-kit-submission",
                    "kernelVersion": 3, "fileName": "submission.json", "submissionDescription": "first"}


# ---- kernel kinds: what each sends, and the evaluation kernel's output per version


KIND_FLAGS = {
    "submission": ["--weights-kernel", "tester/arc-kit-train"],
    "evaluate": ["--weights-kernel", "tester/arc-kit-train", "--machine-shape", "NvidiaTeslaT4", "--max-tasks", "30"],
    "train": ["--config", "gpu-qwen", "--base-model-source", "qwen-lm/qwen-3/transformers/4b/1",
              "--resume-kernel", "tester/arc-kit-train"],
}
KIND_SENT = {  # (machineShape, enableInternet, competitionDataSources, kernelDataSources, modelDataSources)
    "submission": ("NvidiaL4", False, [COMPETITION_SLUG], ["tester/arc-kit-train"], []),
    "evaluate": ("NvidiaTeslaT4", False, [], ["tester/arc-kit-train"], []),
    "train": ("NvidiaTeslaT4", False, [], ["tester/arc-kit-train"], ["qwen-lm/qwen-3/transformers/4b/1"]),
}


@pytest.mark.parametrize("kind", list(KIND_FLAGS))
def test_each_kind_is_built_pushed_and_followed(fake: FakeKaggle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture, kind: str) -> None:
    """The real entry built as each kind, from its default folder (kernels/arc-kit-<kind>), pushed with the
    kind's metadata, its status followed by --kind."""
    monkeypatch.chdir(tmp_path)
    assert run_standalone(["kernel", "build"], ["--kind", kind, "--wheelhouse-dataset", "tester/arc-kit-wheels",
                                                *KIND_FLAGS[kind]]) == 0
    assert (tmp_path / "kernels" / f"arc-kit-{kind}" / "main.py").is_file()
    assert run_standalone(["kernel", "push"], ["--kind", kind]) == 0
    (body,) = fake.bodies("SaveKernel")
    sent = (body["machineShape"], body["enableInternet"], *(body.get(f"{name}DataSources", [])  # [] is left out
                                                           for name in ("competition", "kernel", "model")))
    assert sent == KIND_SENT[kind] and body["enableGpu"] is True and body["slug"] == f"tester/arc-kit-{kind}"
    assert body["datasetDataSources"] == ["tester/arc-kit-wheels"]
    settings_line = next(x for x in body["text"].splitlines() if x.startswith("KERNEL_SETTINGS = "))
    assert settings_line.startswith(f"KERNEL_SETTINGS = {{'kind': '{kind}'")  # what the kernel needs is in the code
    out = capsys.readouterr().out
    assert f"pushed {kind} kernel tester/arc-kit-{kind} version 3" in out
    assert run_standalone(["kernel", "status"], ["--kind", kind, "--once"]) == 0
    assert fake.bodies("GetKernelSessionStatus") == [{"userName": "tester", "kernelSlug": f"arc-kit-{kind}"}]


def test_each_version_of_the_evaluation_output_is_fetched_into_its_folder_and_select_pools_them(
        fake: FakeKaggle, tmp_path: Path, evaluation_output: Path, capsys: pytest.CaptureFixture) -> None:
    """Two versions (seeds) of the evaluation kernel: each version's output fetched by --version into its own
    folder, which `arc-kit select` reads as it is, pooled."""
    served = {p.name: p.read_bytes() for p in evaluation_output.iterdir() if p.is_file()}
    fake.outputs = {"v1": served, "v2": served}
    folders = [tmp_path / f"v{n}" for n in (1, 2)]
    for n, folder in enumerate(folders, 1):
        assert run_standalone(["kernel", "output"], ["tester/arc-kit-evaluate", "--version", str(n), "--out",
                                                     str(folder)]) == 0
        assert {p.name for p in folder.iterdir()} >= {"submission.json", "report.json", "report.html", "score.json"}
    assert [b["versionLabel"] for b in fake.bodies("ListKernelSessionOutput")] == ["v1", "v2"]
    assert "arc-kit select" in capsys.readouterr().out
    assert run_standalone(["select"], [*map(str, folders), "--solutions", "arc-agi-1/evaluation"]) == 0
    assert "2 run(s)" in capsys.readouterr().out
    assert run_standalone(["kernel", "output"], ["tester/arc-kit-evaluate", "--version", "7", "--out",
                                                 str(tmp_path / "v7")]) == 1
    assert "HTTP 404" in capsys.readouterr().err


# ---- uploads


def expected_files(folder: Path) -> dict[str, bytes]:
    return {rel: (folder / rel).read_bytes() for rel in [rel for rel, _ in upload_entries(folder)]}


def test_new_dataset_upload_sends_every_file(fake: FakeKaggle, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    folder = make_export(tmp_path / "export", adapter=True)
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-weights"]) == 0
    assert fake.methods()[0] == "GetDatasetStatus" and fake.methods()[-1] == "CreateDataset"
    assert "CreateDatasetVersion" not in fake.methods()
    (body,) = fake.bodies("CreateDataset")
    assert body["ownerSlug"] == "tester" and body["slug"] == "arc-kit-weights" and body["isPrivate"] is True
    assert body["licenseName"] == "other" and '"steps": 3' in body["description"]
    received = fake.received_files([f["token"] for f in body["files"]])
    assert received == expected_files(folder)  # sub-folders kept (zipped by the client), bytes identical
    starts = fake.bodies("StartBlobUpload")
    assert {s["type"] for s in starts} == {"DATASET"} and all(s["contentLength"] > 0 for s in starts)
    out = capsys.readouterr()
    assert "dataset created: tester/arc-kit-weights" in out.out and FAKE_KEY not in out.out + out.err


def test_existing_dataset_gets_a_new_version(fake: FakeKaggle, tmp_path: Path) -> None:
    fake.datasets.add("tester/arc-kit-weights")
    folder = make_export(tmp_path / "export", adapter=True)
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-weights", "--dry-run"]) == 0
    assert fake.calls == []  # the dry run wrote metadata and sent nothing
    result = kaggle_client.publish_dataset(folder, "tester/arc-kit-weights", "second")
    assert result.action == "new version"
    assert "CreateDataset" not in fake.methods()
    (body,) = fake.bodies("CreateDatasetVersion")
    assert body["ownerSlug"] == "tester" and body["datasetSlug"] == "arc-kit-weights"
    assert body["body"]["versionNotes"] == "second"
    assert fake.received_files([f["token"] for f in body["body"]["files"]]) == expected_files(folder)


def test_planted_kaggle_json_is_refused_and_nothing_sent(fake: FakeKaggle, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    folder = make_export(tmp_path / "export", adapter=True)
    (folder / "adapter" / "kaggle.json").write_text(json.dumps({"username": "tester", "key": FAKE_KEY}))
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-weights"]) == 2
    err = capsys.readouterr().err
    assert "adapter/kaggle.json" in err and FAKE_KEY not in err
    assert fake.calls == [] and not (folder / "dataset-metadata.json").exists()


def test_file_holding_the_configured_key_is_refused(fake: FakeKaggle, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    folder = make_export(tmp_path / "export", adapter=True)
    (folder / "tokenizer" / "train_log.txt").write_text(f"env KAGGLE_KEY={FAKE_KEY}\n")
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-weights"]) == 2
    err = capsys.readouterr().err
    assert "tokenizer/train_log.txt: contains your Kaggle key/token" in err and FAKE_KEY not in err
    assert fake.calls == []


def test_failed_blob_upload_publishes_nothing(fake: FakeKaggle, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    fake.fail_uploads.add("model.safetensors")
    folder = make_export(tmp_path / "export", adapter=True)
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-weights"]) == 1
    err = capsys.readouterr().err
    assert "upload of model.safetensors failed" in err and "stopped before creating" in err
    assert "CreateDataset" not in fake.methods()


def test_slug_taken_is_a_clear_error(fake: FakeKaggle, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fake.taken_slugs.add("arc-kit-weights")
    folder = make_export(tmp_path / "export", adapter=True)
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-weights"]) == 1
    err = capsys.readouterr().err
    assert "already in use" in err and "nothing was published" in err


def test_someone_elses_namespace_is_refused(fake: FakeKaggle, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    folder = make_export(tmp_path / "export", adapter=True)
    assert run_standalone(["upload-weights"], [str(folder), "--id", "someone/arc-kit-weights"]) == 1
    assert "belongs to 'someone'" in capsys.readouterr().err
    assert fake.calls == []


def test_status_403_is_not_taken_as_a_free_slug(fake: FakeKaggle, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    fake.fail["GetDatasetStatus"] = 403
    folder = make_export(tmp_path / "export", adapter=True)
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-weights"]) == 1
    assert "HTTP 403" in capsys.readouterr().err
    assert fake.methods() == ["GetDatasetStatus"]


def test_upload_as_model_creates_model_and_instance(fake: FakeKaggle, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    folder = make_export(tmp_path / "export", adapter=True)
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-model", "--as-model"]) == 0
    methods = [m for m in fake.methods() if m not in ("StartBlobUpload", "PUT")]
    assert methods == ["GetModel", "CreateModel", "GetModelInstance", "CreateModelInstance", "GetModelInstance"]
    (model,) = fake.bodies("CreateModel")
    assert model["ownerSlug"] == "tester" and model["slug"] == "arc-kit-model" and model["isPrivate"] is True
    (instance,) = fake.bodies("CreateModelInstance")
    assert instance["body"]["instanceSlug"] == "default" and instance["body"]["framework"] == "MODEL_FRAMEWORK_TRANSFORMERS"
    assert fake.received_files([f["token"] for f in instance["body"]["files"]]) == expected_files(folder)
    assert "--weights-model tester/arc-kit-model/transformers/default/1" in capsys.readouterr().out


def test_failed_model_upload_mentions_the_empty_model(fake: FakeKaggle, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    fake.fail_uploads.add("model.safetensors")  # top-level files go up one by one, sub-folders as archives
    folder = make_export(tmp_path / "export", adapter=True)
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-model", "--as-model"]) == 1
    err = capsys.readouterr().err
    assert "upload of model.safetensors failed" in err and "model tester/arc-kit-model was created" in err
    assert "CreateModelInstance" not in fake.methods()


def test_second_model_upload_is_a_new_instance_version(fake: FakeKaggle, tmp_path: Path) -> None:
    fake.models.add("tester/arc-kit-model")
    fake.instances["tester/arc-kit-model/transformers/default"] = 1
    folder = make_export(tmp_path / "export", adapter=True)
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-model", "--as-model"]) == 0
    assert "CreateModel" not in fake.methods() and "CreateModelInstance" not in fake.methods()
    (version,) = fake.bodies("CreateModelInstanceVersion")
    assert fake.received_files([f["token"] for f in version["body"]["files"]]) == expected_files(folder)
    assert fake.instances["tester/arc-kit-model/transformers/default"] == 2


# ---- credentials


def test_missing_credentials_say_how_to_set_them(fake: FakeKaggle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    assert run_standalone(["kernel", "status"], ["tester/arc-kit-submission", "--once"]) == 1
    err = capsys.readouterr().err
    assert "No Kaggle credentials found" in err and "KAGGLE_API_TOKEN" in err and "kaggle.json" in err
    assert fake.calls == []


def test_access_token_is_checked_then_sent_as_bearer(fake: FakeKaggle, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", FAKE_TOKEN)
    assert run_standalone(["kernel", "status"], ["tester/arc-kit-submission", "--once"]) == 0
    assert fake.methods() == ["IntrospectToken", "GetKernelSessionStatus"]
    assert fake.calls[1].headers["Authorization"] == f"Bearer {FAKE_TOKEN}"
    assert FAKE_TOKEN not in capsys.readouterr().out


def test_inactive_token_is_a_clear_error(fake: FakeKaggle, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", FAKE_TOKEN)
    fake.token_active = False
    assert run_standalone(["kernel", "status"], ["tester/arc-kit-submission", "--once"]) == 1
    captured = capsys.readouterr()
    assert "rejected the configured credentials" in captured.err and FAKE_TOKEN not in captured.out + captured.err
    assert fake.methods() == ["IntrospectToken"]


# ---- competition data


def test_data_download_unzips_into_a_loadable_folder(fake: FakeKaggle, tmp_path: Path) -> None:
    from arc_kit.core.tasks import load_tasks

    challenges = {"t1": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}]}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("arc-agi_test_challenges.json", json.dumps(challenges))
        zf.writestr("sample_submission.json", json.dumps({"t1": [{"attempt_1": [[0]], "attempt_2": [[0]]}]}))
    fake.files[f"{COMPETITION_SLUG}.zip"] = buffer.getvalue()
    out = tmp_path / "data"
    assert run_standalone(["data", "download"], ["--out", str(out)]) == 0
    assert fake.bodies("DownloadDataFiles") == [{"competitionName": COMPETITION_SLUG}]
    assert sorted(p.name for p in out.iterdir()) == ["arc-agi_test_challenges.json", "sample_submission.json"]
    assert list(load_tasks(out / "arc-agi_test_challenges.json").tasks) == ["t1"]


def test_data_download_of_a_dataset_keeps_its_folders(fake: FakeKaggle, tmp_path: Path, capsys) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for subset in ("arc2_training", "mini"):
            zf.writestr(f"{subset}/state.json", "{}")
            zf.writestr(f"{subset}/data-00000-of-00001.arrow", b"arrow")
    fake.files["nvarc-augmented-puzzles.zip"] = buffer.getvalue()
    out = tmp_path / "corpora"
    assert run_standalone(["data", "download"], ["--dataset", "sorokin/nvarc-augmented-puzzles", "--out",
                                                 str(out)]) == 0
    (body,) = fake.bodies("DownloadDataset")
    assert (body["ownerSlug"], body["datasetSlug"]) == ("sorokin", "nvarc-augmented-puzzles")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "arc2_training/data-00000-of-00001.arrow", "arc2_training/state.json", "mini/data-00000-of-00001.arrow",
        "mini/state.json"]
    assert "4 files of sorokin/nvarc-augmented-puzzles" in capsys.readouterr().out


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("flags", [["--dataset", "sorokin/gone"], []], ids=["dataset", "competition"])
def test_failed_download_leaves_no_folder_it_made(fake: FakeKaggle, tmp_path: Path, capsys, flags) -> None:
    fake.fail["DownloadDataset"] = fake.fail["DownloadDataFiles"] = 503
    out = tmp_path / "dl_new" / "sub"
    assert run_standalone(["data", "download"], [*flags, "--out", str(out)]) == 1
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "dl_new").exists()
    # a folder that was there keeps what it held
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine.txt").write_text("mine")
    assert run_standalone(["data", "download"], [*flags, "--out", str(kept / "new")]) == 1
    assert sorted(p.name for p in kept.iterdir()) == ["mine.txt"]


@pytest.mark.parametrize(("archive", "why"), [
    (_zip({"ok.json": b"{}", "../outside.json": b"{}"}), "would land outside"),
    (_zip({"ok.json": b"{}"})[:-30], "not a zip archive")], ids=["escaping-member", "cut-short"])
def test_download_refused_after_the_archive_arrived_leaves_no_folder_it_made(fake: FakeKaggle, tmp_path: Path,
                                                                             capsys, archive: bytes,
                                                                             why: str) -> None:
    fake.files["refused.zip"] = archive
    out = tmp_path / "dl_new" / "sub"
    assert run_standalone(["data", "download"], ["--dataset", "sorokin/refused", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and why in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == []


@pytest.mark.parametrize("ref", ["noslash", "", "../x", "Owner With Space/slug", "owner/slug/0", "owner/slug/v2",
                                 "Sorokin/puzzles", "owner/under_score", "a/b/1/2", "owner//slug", "owner/slug-"])
def test_malformed_dataset_id_is_one_line_and_exit_2(fake: FakeKaggle, tmp_path: Path, capsys, ref: str) -> None:
    out = tmp_path / "dl_new"
    assert run_standalone(["data", "download"], ["--dataset", ref, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --dataset") and err.count("\n") == 1, err
    assert repr(ref) in err
    assert fake.calls == [] and not out.exists()


def test_a_dataset_id_kaggle_spells_is_accepted(fake: FakeKaggle, tmp_path: Path) -> None:
    fake.files["iris.zip"] = _zip({"iris.csv": b"1,2"})
    assert run_standalone(["data", "download"], ["--dataset", "uciml/iris/2", "--out", str(tmp_path / "d")]) == 0
    (body,) = fake.bodies("DownloadDataset")
    assert (body["ownerSlug"], body["datasetSlug"], body["datasetVersionNumber"]) == ("uciml", "iris", 2)


@pytest.mark.parametrize("competition", ["other-competition", COMPETITION_SLUG])
def test_dataset_and_competition_together_are_refused(fake: FakeKaggle, tmp_path: Path, capsys,
                                                      competition: str) -> None:
    out = tmp_path / "dl_new"
    assert run_standalone(["data", "download"], ["--dataset", "sorokin/nvarc-augmented-puzzles", "--competition",
                                                 competition, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--dataset" in err and "--competition" in err
    assert fake.calls == [] and not out.exists()


@pytest.mark.parametrize("flags", [["--dataset", "sorokin/nvarc-augmented-puzzles"], []],
                         ids=["dataset", "competition"])
def test_out_that_is_a_file_is_named_and_left_alone(fake: FakeKaggle, tmp_path: Path, capsys, flags) -> None:
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    assert run_standalone(["data", "download"], [*flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {out}") and "not a folder" in err and err.count("\n") == 1, err
    assert out.read_text() == "mine" and fake.calls == []


# ---- the same client, as a separate process through a proxy (the env-only route a user's shell would take)


def proxy_env(fake: FakeKaggle, tmp_path: Path) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path / "home"),
           "KAGGLE_CONFIG_DIR": str(tmp_path / "home" / ".kaggle"), "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
           "HTTP_PROXY": fake.base, "HTTPS_PROXY": fake.base, "KAGGLE_USERNAME": "tester", "KAGGLE_KEY": FAKE_KEY}
    assert urlsplit(env["HTTP_PROXY"]).hostname == LOOPBACK
    return env


def test_cli_subprocess_through_loopback_proxy(fake: FakeKaggle, tmp_path: Path) -> None:
    folder = build(tmp_path)
    env = proxy_env(fake, tmp_path)
    done = subprocess.run([sys.executable, "-m", "arc_kit.cli.main", "kernel", "push", "--folder", str(folder)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (body,) = fake.bodies("SaveKernel")
    assert body["enableInternet"] is False and body["enableGpu"] is True
    assert fake.calls[0].headers["Host"] == "localhost"  # the client's LOCALHOST URL, caught by the proxy
    assert FAKE_KEY not in done.stdout + done.stderr


def test_kaggle_cli_itself_accepts_the_built_kernel(fake: FakeKaggle, tmp_path: Path) -> None:
    """The folder `arc-kit kernel build` writes is pushed by the unmodified `kaggle kernels push`, without the
    client's title/slug warning."""
    folder = build(tmp_path)
    done = subprocess.run([sys.executable, "-m", "kaggle", "kernels", "push", "-p", str(folder)],
                          env=proxy_env(fake, tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "successfully pushed" in done.stdout and "does not resolve" not in done.stdout
    (body,) = fake.bodies("SaveKernel")
    assert body["enableInternet"] is False and body["enableGpu"] is True
    assert body["competitionDataSources"] == ["arc-prize-2026-arc-agi-2"]


def test_real_entry_is_built_and_pushed(fake: FakeKaggle, tmp_path: Path) -> None:
    """With the real submission/main.py: build via the CLI, push, and find the settings in the sent code."""
    main = Path(__file__).resolve().parents[1] / "submission" / "main.py"
    folder = tmp_path / "kernel"
    assert run_standalone(["kernel", "build"], ["--main", str(main), "--out", str(folder), "--owner", "tester",
                                                "--weights-dataset", "tester/arc-kit-weights",
                                                "--wheelhouse-dataset", "tester/arc-kit-wheels"]) == 0
    assert run_standalone(["kernel", "push"], ["--folder", str(folder)]) == 0
    (body,) = fake.bodies("SaveKernel")
    assert body["enableInternet"] is False and body["enableGpu"] is True
    assert body["competitionDataSources"] == [COMPETITION_SLUG]
    assert body["datasetDataSources"] == ["tester/arc-kit-weights", "tester/arc-kit-wheels"]
    settings_line = next(x for x in body["text"].splitlines() if x.startswith("KERNEL_SETTINGS = "))
    assert "'wheelhouse_dataset': 'tester/arc-kit-wheels'" in settings_line
    assert "'quick_tasks': 8" in settings_line  # an interactive push is a quick pass by default
    sent, original = body["text"].splitlines(), main.read_text().splitlines()
    assert len(sent) == len(original)
    assert [a for a, b in zip(sent, original, strict=True) if a != b] == [settings_line]  # only that line changed


def test_linked_folder_is_listed_as_the_client_sends_it(fake: FakeKaggle, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "extra.bin").write_bytes(os.urandom(200))
    folder = make_export(tmp_path / "export", adapter=True)
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    (folder / "tokenizer" / "vocab_link.json").symlink_to(folder / "tokenizer" / "tokenizer.json")
    assert {"linked/extra.bin", "tokenizer/vocab_link.json"} <= set([rel for rel, _ in upload_entries(folder)])
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-weights"]) == 0
    (body,) = fake.bodies("CreateDataset")
    assert fake.received_files([f["token"] for f in body["files"]]) == expected_files(folder)


def test_linked_kaggle_folder_is_refused_and_nothing_sent(fake: FakeKaggle, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    home = Path(os.environ["HOME"])
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "tester", "key": FAKE_KEY}))
    folder = make_export(tmp_path / "export", adapter=True)
    (folder / "creds").symlink_to(home / ".kaggle", target_is_directory=True)
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/arc-kit-weights"]) != 0
    err = capsys.readouterr().err
    assert "creds/kaggle.json" in err and FAKE_KEY not in err
    assert fake.calls == []
