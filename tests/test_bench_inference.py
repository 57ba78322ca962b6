"""scripts/bench_inference.py runs end to end on the tiny model (the timings mean nothing here, the shape of the
output and the token-for-token comparison do) and ends with one JSON object."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_inference.py"


def test_bench_inference_compares_every_method_and_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_inference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(["--quick", "--contexts", "48", "--batch", "3", "--new-tokens", "4"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == report
    [row] = report["models"]["tiny"]["contexts"]
    assert row["identical"] and report["all_identical"]
    assert row["identical_tokens"] == {m: 3 for m in module.METHODS}
    assert row["max_nll_difference_inplace_vs_dynamic"] <= 1e-5
    for method in module.METHODS:
        assert row[method]["prefill_seconds"] > 0 and row[method]["decode_ms_per_step"] > 0
    assert set(row["decode_speedup_vs_generate_batched"]) == set(module.METHODS) - {"generate_batched"}
