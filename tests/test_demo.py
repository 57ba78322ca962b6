"""The demo's whole path on a few steps: every stage runs, and every artefact it names exists and is valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arc_kit.core.submission import validate_submission_file
from arc_kit.demo import DemoConfig, run_demo


@pytest.mark.slow
def test_demo_runs_every_stage_and_leaves_valid_artefacts(tmp_path: Path):
    result = run_demo(DemoConfig(out=tmp_path / "demo", heldout_tasks=3, read_tasks=2,
                                 overrides=["train.max_steps=4", "data.synthetic.n_tasks=24"]))
    summary, artefacts = result["summary"], {k: Path(v) for k, v in result["artefacts"].items()}
    assert summary["train steps"] == 4 and summary["held-out tasks"] == 5
    for stage in ("before", "after pre-training", "after"):  # each held-out set scored at each stage
        assert 0.0 <= summary[f"score {stage} (same rule, 3)"] <= 1.0
        assert 0.0 <= summary[f"score {stage} (rule read from the demos, 2)"] <= 1.0
    assert 0.0 <= summary["score after (held-out)"] <= 1.0
    assert 0.0 <= summary["score after pre-training (held-out)"] <= 1.0
    for path in artefacts.values():
        assert path.exists(), path
    challenges = artefacts["held-out tasks"]
    assert validate_submission_file(artefacts["submission.json (kernel run)"], challenges) == []
    kernel = artefacts["kernel folder (kaggle kernels push -p)"]
    meta = json.loads((kernel / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True
    merged = artefacts["exported model (Kaggle dataset folder)"]
    assert json.loads((merged / "dataset-metadata.json").read_text())["id"] == "demo-user/arc-kit-demo-weights"
    page = artefacts["HTML report"].read_text()
    assert "score after (held-out)" in page and "<polyline" in page
    assert json.loads((tmp_path / "demo" / "demo.json").read_text())["summary"]["train steps"] == 4
