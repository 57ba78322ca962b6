"""The demo's whole path on a few steps: every stage runs, and every artefact it names exists and is valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arc_kit.core.submission import validate_submission_file
from arc_kit.demo import DemoSettings, run_demo


@pytest.mark.slow
def test_demo_runs_every_stage_and_leaves_valid_artefacts(tmp_path: Path):
    result = run_demo(DemoSettings(out=tmp_path / "demo", heldout_tasks=3, read_tasks=2,
                                   overrides=["train.max_steps=4", "train.logging_steps=1",
                                              "data.synthetic.n_tasks=24"]))
    summary, artefacts = result["summary"], {k: Path(v) for k, v in result["artefacts"].items()}
    assert summary["train steps"] == 4 and summary["held-out tasks"] == 5
    # An untrained model scores nothing (a placeholder or a copied input counted as right would show here), and the
    # four steps do train: the logged loss falls. Learning the rule takes the real demo's minutes, not a test's.
    assert summary["score before (held-out)"] == 0.0
    assert summary["score before (same rule, 3)"] == summary["score before (rule read from the demos, 2)"] == 0.0
    log = [json.loads(line) for line in (artefacts["training run (checkpoints, train_log.jsonl)"] / "train_log.jsonl")
           .read_text().splitlines()]
    losses = [row["loss"] for row in log if "loss" in row]
    assert len(losses) >= 2 and losses[-1] < losses[0]
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


@pytest.mark.parametrize("before, after, code", [(0.0, 0.5, 0), (0.0, 0.0, 1), (0.2, 0.1, 1)])
def test_the_demo_command_succeeds_only_when_training_raised_the_score(monkeypatch, tmp_path: Path, before, after,
                                                                       code):
    """`arc-kit demo` is the kit's proof that it works: it exits 1 unless the held-out score after training beats
    the score before."""
    import arc_kit.demo
    from arc_kit.cli.main import main

    seen = {}

    def fake_run_demo(demo, config):  # noqa: ANN001, ANN202
        seen["out"] = demo.out
        return {"summary": {"score before (held-out)": before, "score after (held-out)": after}}

    monkeypatch.setattr(arc_kit.demo, "run_demo", fake_run_demo)
    assert main(["demo", "--out", str(tmp_path / "d")]) == code
    assert seen["out"] == tmp_path / "d"
