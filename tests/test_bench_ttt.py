"""scripts/bench_ttt.py runs end to end on two tasks (an untrained tiny model: the figures mean nothing, the shape
of the output does) and ends with one JSON object holding its rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_ttt.py"


def test_bench_ttt_prints_rows_as_json(tiny_model_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(tiny_model_dir), "--tasks", "2", "--cache", str(tmp_path),
         "--ttt-samples", "4", "--views", "2", "--scoring-views", "2"],
        capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    rows = summary["rows"]
    assert [r["row"] for r in rows] == ["greedy, no TTT", "TTT + greedy", "TTT + dfs + re-scoring"]
    for row in rows:
        assert row["model_error"] is None
        assert 0.0 <= row["top2_score"] <= 1.0 and "top2_seen" in row and "top2_unseen" in row
        assert row["seconds_per_task"] > 0
    assert rows[0]["ttt_steps"] == 0 and rows[1]["ttt_steps"] > 0  # TTT trained only where enabled
    assert "ttt_gain_points" in summary
    assert not list(tmp_path.iterdir())  # --model: nothing pre-trained into the cache
