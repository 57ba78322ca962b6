"""scripts/bench_gpu.py runs its whole path on a tiny config on the CPU, so the day a GPU is lent the one short run
measures the README's GPU plan instead of failing on a typo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_gpu.py"


@pytest.mark.slow
def test_the_gpu_bench_runs_every_stage_on_a_tiny_config():
    done = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    stages = {"phase-1 greedy", "test-time training (128 rows)", "search, 8 views one after another",
              "search, 8 views in lock-step", "re-scoring, 8 views x 4 candidates"}
    assert result["shape"] == "smoke" and len(result["rows"]) == 2 * 2 * len(stages)
    assert {row["stage"] for row in result["rows"]} == stages
    assert {(row["vocab"], row["context"]) for row in result["rows"]} == {
        (v, c) for v in ("full", "cut") for c in (96, 160)}
    assert all(row["seconds"] > 0 for row in result["rows"])
    planned = [row for row in result["rows"] if row["plan_l4_seconds"] is not None]
    assert len(planned) == len(stages) and all(row["l4_over_plan"] is not None for row in planned)
    # The budgets a worker fits to Kaggle's cards for Qwen3-4B (docs/gpu-memory.md), whatever machine runs this.
    from arc_kit.models.memory import CARDS, ModelShape, card_budgets

    cards = result["memory"]["cards"]
    assert result["memory"]["here"] is None and result["dtype"] == "float32"
    for card in ("T4", "L4"):
        for name, vocab in (("full", 151_936), ("cut", 16)):
            qwen3_4b = ModelShape(layers=36, hidden=2560, intermediate=9728, heads=32, kv_heads=8, head_dim=128,
                                  vocab=vocab, dtype_bytes=2)
            want = card_budgets(CARDS[card], qwen3_4b)
            got = cards[card][name]
            assert (got["batch_tokens"], got["score_token_budget"], got["ttt_max_length"]) == (
                want.batch_tokens, want.score_token_budget, want.ttt_max_length)
    assert cards["T4"]["full"]["free_bytes"] < cards["L4"]["full"]["free_bytes"]
