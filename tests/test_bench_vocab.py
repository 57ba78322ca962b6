"""scripts/bench_vocab.py --quick runs end to end (the timings mean little at this size; the shape of the output,
the cut and the output comparison do) and ends with one JSON object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_vocab.py"


@pytest.mark.slow
def test_bench_vocab_quick_compares_full_and_cut_and_prints_json() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["model"]["vocab_full"] == 151936 and report["model"]["vocab_cut"] < 32
    assert [row["tokens"] for row in report["ttt"]] == [256, 512]
    for row in report["ttt"]:
        assert row["full"]["row_tokens"] == row["cut"]["row_tokens"] <= row["tokens"]
        assert row["full"]["steps"] == row["cut"]["steps"] == 2
        assert row["full"]["step_seconds"] > 0 and row["cut"]["step_seconds"] > 0
        assert row["full"]["peak_rss_mb"] > row["cut"]["peak_rss_mb"] > 0  # the logits alone see to that
    assert report["decode"]["full"]["decode_ms_per_step"] > 0 and report["decode"]["cut"]["decode_ms_per_step"] > 0
    outputs = report["outputs"]
    assert outputs["same_tokens_renumbered"] and outputs["greedy_identical"]
    assert outputs["max_logit_difference"] <= 1e-5 and report["goal_outputs_identical"]
    paper = report["qwen3_4b_l4_on_paper"]
    assert paper["weights_saved_gb"] == pytest.approx((151936 - 16) * 2560 * 2 / 1e9, abs=0.01)
    assert paper["logits_at_tokens"]["full_bf16_gb"] == pytest.approx(8192 * 151936 * 2 / 1e9, abs=0.01)
