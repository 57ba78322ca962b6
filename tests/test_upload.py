"""What an upload would send, and the credential scan over exactly that: links followed, key-like strings
in text-like files caught, the configured key caught in UTF-16 and across read boundaries, big files not loaded."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest
from conftest import make_export

from arc_kit.cli.main import run_standalone
from arc_kit.kaggle import upload
from arc_kit.kaggle.upload import (
    CredentialFileError,
    find_credential_files,
    refuse_credentials,
    upload_entries,
)

KEY = "0123456789abcdef0123456789abcdef"  # the shape of a Kaggle API key: 32 hex characters
HF_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


@pytest.fixture
def no_kaggle_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tmp HOME holding ~/.kaggle/kaggle.json with KEY; no KAGGLE_* variables."""
    for var in [v for v in os.environ if v.startswith("KAGGLE_")]:
        monkeypatch.delenv(var)
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "tester", "key": KEY}))
    monkeypatch.setenv("HOME", str(home))
    return home


# ---- links: scan and list what the client sends


def test_linked_credentials_folder_is_listed_and_refused(tmp_path: Path, no_kaggle_env: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    folder = make_export(tmp_path / "export", manifest=False)
    (folder / "creds").symlink_to(no_kaggle_env / ".kaggle", target_is_directory=True)
    assert "creds/kaggle.json" in [rel for rel, _ in upload_entries(folder)]
    assert any(f.startswith("creds/kaggle.json:") for f in find_credential_files(folder, []))
    assert run_standalone(["upload-weights"], [str(folder), "--id", "tester/some-weights", "--dry-run"]) != 0
    out = capsys.readouterr()
    assert "creds/kaggle.json" in out.err and KEY not in out.out + out.err
    assert not (folder / "dataset-metadata.json").exists()


def test_linked_file_is_scanned_through_the_link(tmp_path: Path) -> None:
    folder = make_export(tmp_path / "export", manifest=False)
    outside = tmp_path / "outside.log"
    outside.write_text(f"KAGGLE_KEY={KEY}\n")
    (folder / "train.log").symlink_to(outside)
    assert "train.log" in [rel for rel, _ in upload_entries(folder)]
    assert find_credential_files(folder, [KEY]) == ["train.log: contains your Kaggle key/token"]


def test_link_loop_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    folder = make_export(tmp_path / "export", manifest=False)
    (folder / "tokenizer" / "again").symlink_to(folder, target_is_directory=True)
    with pytest.raises(ValueError, match="tokenizer/again.*loop"):
        [rel for rel, _ in upload_entries(folder)]
    with pytest.raises(ValueError, match="tokenizer/again.*loop"):
        refuse_credentials(folder, secrets=[])


def test_broken_link_is_neither_sent_nor_an_error(tmp_path: Path) -> None:
    folder = make_export(tmp_path / "export", manifest=False)
    (folder / "dangling").symlink_to(tmp_path / "nowhere")
    assert "dangling" not in [rel for rel, _ in upload_entries(folder)]
    refuse_credentials(folder, secrets=[KEY])


# ---- what counts as a credential


@pytest.mark.parametrize("name, text", [
    ("notes.json", f'{{"user": "someone", "k": "{KEY}"}}'),
    ("deploy.env", f"HF_TOKEN={HF_TOKEN}\n"),
    ("token", HF_TOKEN),
    ("tokenizer/my_token_backup.txt", f"key {KEY}"),
    ("Secrets.JSON", f'["{HF_TOKEN}"]'),
])
def test_key_like_strings_in_text_like_files_are_refused(tmp_path: Path, name: str, text: str) -> None:
    folder = make_export(tmp_path / "export", manifest=False)
    (folder / name).write_text(text)
    found = find_credential_files(folder, [])  # not the configured key: any key-shaped string
    assert [f.split(":")[0] for f in found] == [name]
    assert KEY not in found[0] and HF_TOKEN not in found[0]


@pytest.mark.parametrize("name, text", [
    ("config.json", '{"sha256": "' + "ab" * 32 + '"}'),  # a 64-hex digest is not a key
    ("config.json", '{"id": "' + "x" + KEY + '"}'),  # hex inside a longer word
    ("notes.txt", f"random hex {KEY}"),  # not a credential-like name: only the configured key counts here
    ("tokenizer/vocab.json", '{"hf_": 1, "hf_short": 2}'),
])
def test_ordinary_files_pass_the_pattern_scan(tmp_path: Path, name: str, text: str) -> None:
    folder = make_export(tmp_path / "export", manifest=False)
    (folder / name).write_text(text)
    assert find_credential_files(folder, []) == []


def test_a_real_tokenizer_folder_passes(tmp_path: Path, qwen_tokenizer) -> None:  # noqa: ANN001
    folder = tmp_path / "export"
    qwen_tokenizer.save_pretrained(folder)
    assert find_credential_files(folder, []) == []


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-16"])
def test_configured_key_in_utf16_is_refused(tmp_path: Path, encoding: str) -> None:
    folder = make_export(tmp_path / "export", manifest=False)
    secret = "fake-key-0123456789abcdef"
    (folder / "run.log").write_bytes(f"key: {secret}\n".encode(encoding))
    assert find_credential_files(folder, [secret]) == ["run.log: contains your Kaggle key/token"]


@pytest.mark.parametrize("offset", range(0, 80, 7))
def test_matches_across_read_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offset: int) -> None:
    monkeypatch.setattr(upload, "SCAN_CHUNK", 64)
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\0" * (offset + 40) + b"fake-key-0123456789abcdef" + b"\0" * 100)
    (folder / "a.json").write_bytes(b"x" * offset + b'"' + KEY.encode() + b'"' + b"y" * 100)
    (folder / "b.json").write_bytes(b"7" * (60 + offset) + b" " + b"0" * 64 + b" " + b"1" * 40)  # no 32-run
    found = find_credential_files(folder, ["fake-key-0123456789abcdef"])
    assert [f.split(":")[0] for f in found] == ["a.json", "weights.bin"]


def test_big_weight_file_is_not_read_into_memory(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    size = 256 * 2**20
    with open(folder / "model.safetensors", "wb") as f:  # sparse: cheap to make, read at full speed
        f.truncate(size)
        f.seek(size - 100)
        f.write(KEY.encode())
    tracemalloc.start()
    try:
        found = find_credential_files(folder, [KEY])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == ["model.safetensors: contains your Kaggle key/token"]
    assert peak < 64 * 2**20


# ---- the upload plan, without the CLI


def test_prepare_upload_writes_metadata_and_plans(tmp_path: Path, no_kaggle_env: Path) -> None:
    from arc_kit.kaggle.upload import prepare_upload

    folder = make_export(tmp_path / "export", manifest=False)
    plan = prepare_upload(folder, "tester/arc-kit-weights")
    assert plan.files == ["config.json", "model.safetensors", "tokenizer/tokenizer.json"]
    assert plan.written == [folder / "dataset-metadata.json"] and plan.written[0].is_file()
    assert plan.target == "Kaggle dataset tester/arc-kit-weights (private)"
    assert plan.total_bytes == sum((folder / f).stat().st_size for f in plan.files)
    model = prepare_upload(folder, "tester/arc-kit-model", as_model=True, instance="v1")
    assert model.target == "Kaggle model tester/arc-kit-model/transformers/v1" and len(model.written) == 2
    (folder / "keys.json").write_text(f'{{"k": "{KEY}"}}')
    with pytest.raises(CredentialFileError, match="keys.json"):
        prepare_upload(folder, "tester/arc-kit-weights")
    with pytest.raises(ValueError, match="not a folder"):
        prepare_upload(tmp_path / "missing", "tester/arc-kit-weights")


# ---- the key in any case, credentials inside archives, nothing written before the scan passes


def test_the_configured_key_is_found_in_any_case(tmp_path: Path) -> None:
    folder = make_export(tmp_path / "export", manifest=False)
    (folder / "notes.txt").write_text(f"key {KEY.upper()}\n")
    assert find_credential_files(folder, [KEY]) == ["notes.txt: contains your Kaggle key/token"]
    (folder / "notes.txt").write_bytes(f"key {KEY.upper()}\n".encode("utf-16-le"))
    assert find_credential_files(folder, [KEY]) == ["notes.txt: contains your Kaggle key/token"]


def _archive(path: Path, kind: str, members: dict[str, bytes]) -> Path:
    """``members`` (name -> bytes) packed as ``kind``: zip, tar, tar.gz, tgz, tar.bz2, tar.xz or gz (one file)."""
    import gzip
    import io
    import tarfile
    import zipfile

    if kind == "zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, data in members.items():
                z.writestr(name, data)
    elif kind == "gz":
        [(name, data)] = members.items()
        path.write_bytes(gzip.compress(data))
    else:
        mode = {"tar": "w", "tar.gz": "w:gz", "tgz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}[kind]
        with tarfile.open(path, mode) as t:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", "tgz", "tar.bz2", "tar.xz"])
def test_credentials_inside_archives_are_refused(tmp_path: Path, kind: str) -> None:
    folder = make_export(tmp_path / "export", manifest=False)
    creds = json.dumps({"username": "tester", "key": KEY}).encode()
    _archive(folder / f"backup.{kind}", kind, {"run/config.json": b"{}", "run/kaggle.json": creds})
    _archive(folder / f"logs.{kind}", kind, {"train.log": f"KAGGLE_KEY={KEY.upper()}".encode()})
    found = find_credential_files(folder, [KEY])
    assert found == [f"backup.{kind}: holds run/kaggle.json, a credential file name",
                     f"logs.{kind}: holds train.log: contains your Kaggle key/token"]
    assert all(KEY not in f.lower() for f in found)


def test_archives_inside_archives_and_compressed_files_are_opened(tmp_path: Path) -> None:
    folder = make_export(tmp_path / "export", manifest=False)
    inner = _archive(tmp_path / "inner.zip", "zip", {"deep/.env": b"KAGGLE_KEY=x"})
    _archive(folder / "outer.tar.gz", "tar.gz", {"inner.zip": inner.read_bytes(), "readme.md": b"hello"})
    _archive(folder / "kaggle.json.gz", "gz", {"kaggle.json": b"{}"})
    _archive(folder / "clean.tar.gz", "tar.gz", {"config.json": b"{}", "weights.bin": b"\0" * 1000})
    assert find_credential_files(folder, [KEY]) == [
        "kaggle.json.gz: holds kaggle.json, a credential file name",
        "outer.tar.gz: holds inner.zip: holds deep/.env, a credential file name"]


def test_archives_that_cannot_be_opened_are_refused_by_name(tmp_path: Path) -> None:
    folder = make_export(tmp_path / "export", manifest=False)
    (folder / "weights.7z").write_bytes(b"7z\xbc\xaf\x27\x1c" + b"\0" * 100)
    good = _archive(tmp_path / "good.tar.gz", "tar.gz", {"config.json": b"{}" * 1000})
    (folder / "broken.tar.gz").write_bytes(good.read_bytes()[:40])  # truncated: cannot be read to the end
    locked = bytearray(_archive(tmp_path / "locked.zip", "zip", {"notes.txt": b"hello"}).read_bytes())
    central = locked.index(b"PK\x01\x02")
    locked[central + 8] |= 0x1  # the member marked encrypted, as a password-protected zip has it
    (folder / "locked.zip").write_bytes(bytes(locked))
    found = find_credential_files(folder, [KEY])
    assert [f.split(":")[0] for f in found] == ["broken.tar.gz", "locked.zip", "weights.7z"]
    assert all("cannot be checked" in f for f in found) and "encrypted" in found[1] and "7z" in found[2]


def test_no_metadata_is_written_before_the_scan_passes(tmp_path: Path, no_kaggle_env: Path) -> None:
    from arc_kit.kaggle.upload import KaggleRefError, prepare_upload

    folder = make_export(tmp_path / "export", manifest=False)
    _archive(folder / "backup.tar.gz", "tar.gz", {"kaggle.json": b"{}"})
    for as_model in (False, True):
        with pytest.raises(CredentialFileError, match="backup.tar.gz"):
            prepare_upload(folder, "tester/arc-kit-weights", as_model=as_model)
    (folder / "backup.tar.gz").unlink()
    with pytest.raises(KaggleRefError, match="instance"):
        prepare_upload(folder, "tester/arc-kit-model", as_model=True, instance="Not A Slug")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer"]
