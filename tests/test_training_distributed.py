"""Two CPU processes (torchrun, gloo) train the tiny model data-parallel: each sees its own rows, both end with the
same weights, the log and run_info.json are written once, and the export holds those weights. The run is started
with the command ``distributed.launch_command`` builds (what a training kernel on T4 x2 runs). What only a GPU
decides (float16 with the gradient scaler on a T4, the backend) is checked on a faked device."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import fake_gpu

from arc_kit.config.schema import SettingsError
from arc_kit.config.training import load_config, resolve_config_path
from arc_kit.training.trainer import schedule_kwargs, steps_per_epoch

REPO = Path(__file__).resolve().parents[1]

# 11 train tasks x 2 views x 3 examples = 66 rows, batch 4 -> 17 batches, 9 steps an epoch on each of 2 processes;
# 4 steps stay inside the first epoch, so no row may be seen twice.
OVERRIDES = [
    "data.synthetic.n_tasks=12", "data.augmentations=2", "data.eval_fraction=0.1",
    "train.per_device_train_batch_size=4", "train.max_steps=4", "train.logging_steps=1", "train.save_steps=2",
    "train.debug_batches=true",
]


def test_steps_per_epoch_counts_batches_dealt_to_processes():
    assert steps_per_epoch(66, 4, 1) == 17
    assert steps_per_epoch(66, 4, 2) == 9  # 17 batches: one process gets a batch topped up from the start
    assert steps_per_epoch(64, 4, 8) == 2
    config = load_config(resolve_config_path("tiny-cpu"), ["train.num_train_epochs=2"])
    one, eight = schedule_kwargs(6400, config, 1), schedule_kwargs(6400, config, 8)
    assert one["num_decay_steps"] == 399 and eight["num_decay_steps"] == 49  # the last epoch decays either way


def test_fsdp_settings_are_checked(tmp_path):
    with pytest.raises(SettingsError, match="train.fsdp_config"):
        load_config(resolve_config_path("tiny-cpu"), ["train.fsdp=true", f"train.fsdp_config={tmp_path}/no.json"])
    with pytest.raises(SettingsError, match="Unsloth does not shard"):
        load_config(resolve_config_path("tiny-cpu"), ["train.fsdp=true", "model.backend=unsloth"])


def test_the_launch_command_starts_one_process_per_gpu():
    from arc_kit.training.distributed import launch_command

    argv = ["train", "--config", "run.toml"]
    assert launch_command(1, argv, python="py") == ["py", "-m", "arc_kit.cli", *argv]
    assert launch_command(2, argv, python="py") == [
        "py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "arc_kit.cli", *argv]
    with pytest.raises(ValueError, match="n_gpus"):
        launch_command(0, argv)


def test_two_t4s_train_in_float16_under_the_scaler_with_every_weight_used(monkeypatch, tmp_path):
    """The run's SFTConfig for a process of a T4 x2 launch: fp16 (the Trainer's gradient scaler), not bf16, on CUDA;
    DDP told every trainable weight is used each step (find_unused_parameters off: LoRA uses all of its weights,
    and Unsloth's reentrant checkpointing requires it); the schedule counts the batches of both processes."""
    import trl

    from arc_kit.training.trainer import sft_config

    fake_gpu(monkeypatch, (7, 5))
    recorded: dict = {}
    monkeypatch.setattr(trl, "SFTConfig", lambda **kwargs: recorded.update(kwargs))
    config = load_config(resolve_config_path("gpu-qwen"), [f"train.output_dir={tmp_path}"])
    sft_config(config, tmp_path, num_train=6400, has_eval=False, backend="unsloth", num_processes=2)
    assert (recorded["fp16"], recorded["bf16"], recorded["use_cpu"]) == (True, False, False)
    assert recorded["ddp_find_unused_parameters"] is False
    assert recorded["lr_scheduler_kwargs"]["num_decay_steps"] == 200 - 1  # 400 batches dealt to 2 processes


@pytest.mark.parametrize("requested, fsdp, installed, processes, backend, why", [
    ("auto", False, True, 2, "unsloth", "data-parallel over 2 GPUs"),
    ("auto", False, True, 1, "unsloth", "on a CUDA GPU"),
    ("auto", True, True, 2, "peft", "train.fsdp"),
    ("auto", False, False, 2, "peft", "not installed"),
    ("peft", False, True, 2, "peft", "model.backend"),
])
def test_the_backend_of_a_multi_gpu_run_and_why(monkeypatch, requested, fsdp, installed, processes, backend, why):
    import importlib.util

    from arc_kit.models import training_model

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (object() if installed else None) if name == "unsloth" else real(name, *a))
    got, reason = training_model.backend_choice(requested, fsdp, "cuda", processes)
    assert got == backend and why in reason
    assert training_model.choose_backend(requested, fsdp, "cuda") == backend  # the process count changes no backend


def test_float16_training_holds_what_it_trains_in_float32(tmp_path):
    """The weights of a float16 run (a T4's): frozen ones stay float16, LoRA and the trained embedding copy are
    float32 master weights, which the gradient scaler needs."""
    import torch

    from arc_kit.models.training_model import load_training_model

    config = load_config(resolve_config_path("tiny-cpu"), [
        f"train.output_dir={tmp_path / 'run'}", "model.full_finetuning=false", "model.dtype=float16",
        "lora.r=4", "lora.alpha=8", "lora.train_embeddings=true"])
    loaded = load_training_model(config, tmp_path / "run", "cpu")
    trained = {n: p.dtype for n, p in loaded.model.named_parameters() if p.requires_grad}
    frozen = {n: p.dtype for n, p in loaded.model.named_parameters() if not p.requires_grad}
    assert trained and set(trained.values()) == {torch.float32}
    assert any("embed_tokens" in n for n in trained) and any("lora_A" in n for n in trained)
    assert frozen and set(frozen.values()) == {torch.float16}


def torchrun(run_dir: Path, *extra: str, resume: bool = False) -> subprocess.CompletedProcess:
    """``arc-kit train`` on 2 CPU processes (gloo), started by the command a training kernel runs."""
    from arc_kit.training.distributed import launch_command

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "TOKENIZERS_PARALLELISM": "false"}
    sets = [*OVERRIDES, f"train.output_dir={run_dir}", *extra]
    cmd = launch_command(2, ["train", "--config", "tiny-cpu", *[a for o in sets for a in ("--set", o)],
                             *(["--resume"] if resume else [])])
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    return run_dir, torchrun(run_dir)


def _debug(run_dir: Path, rank: int) -> tuple[list[list[str]], dict]:
    lines = [json.loads(line) for line in (run_dir / "debug" / f"rank-{rank}.jsonl").read_text().splitlines()]
    return [r["rows"] for r in lines if "rows" in r], next(r["final"] for r in lines if "final" in r)


@pytest.mark.slow
def test_each_process_trains_on_its_own_rows_and_weights_stay_in_sync(ddp_run):
    run_dir, _ = ddp_run
    (rows0, final0), (rows1, final1) = _debug(run_dir, 0), _debug(run_dir, 1)
    assert len(rows0) == len(rows1) == 4 and all(len(b) == 4 for b in rows0 + rows1)
    seen0, seen1 = {r for b in rows0 for r in b}, {r for b in rows1 for r in b}
    assert len(seen0) == len(seen1) == 16 and not seen0 & seen1  # 32 different rows in 4 steps of 2 x 4
    assert final0["param_sum"] == pytest.approx(final1["param_sum"], rel=1e-6)  # DDP averaged the gradients
    assert final0["param_abs_sum"] == pytest.approx(final1["param_abs_sum"], rel=1e-6)


@pytest.mark.slow
def test_log_and_run_info_are_written_once(ddp_run):
    run_dir, proc = ddp_run
    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    loss_steps = [r["step"] for r in records if "loss" in r]
    assert loss_steps == [1, 2, 3, 4]  # one row per logging step, not one per process
    summaries = [line for line in proc.stdout.splitlines() if line.startswith('{"output_dir"')]
    assert len(summaries) == 1 and json.loads(summaries[0])["effective_batch_size"] == 8
    assert proc.stderr.count("backend peft (auto: no CUDA GPU)") == 1  # said once, by the main process
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["steps"] == 4
    assert info["parallel"] == {"num_processes": 2, "distributed_type": "MULTI_CPU", "fsdp": False,
                                "per_device_train_batch_size": 4, "effective_batch_size": 8, "steps_per_epoch": 9}
    assert info["padding"]["batches"] == 8  # counted over both processes
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]


@pytest.mark.slow
def test_export_holds_the_weights_the_processes_trained(ddp_run, tmp_path):
    import torch
    from safetensors.torch import load_file

    from arc_kit.training.export import export_model

    run_dir, _ = ddp_run
    merged = export_model(run_dir, tmp_path / "export", dtype="float32")
    final = load_file(run_dir / "final" / "model.safetensors")
    exported = load_file(merged / "model.safetensors")
    assert final.keys() == exported.keys()
    assert all(torch.equal(final[k], exported[k]) for k in final)
    _, final0 = _debug(run_dir, 0)
    # model.parameters() counts a tied lm_head once, as the saved file does
    assert sum(float(t.float().sum()) for t in final.values()) == pytest.approx(final0["param_sum"], rel=1e-5)


@pytest.mark.slow
def test_a_stopped_run_resumed_on_two_processes_ends_at_the_same_weights(ddp_run, tmp_path):
    run_dir, _ = ddp_run
    torchrun(tmp_path / "run", "train.max_steps=2")  # stops at checkpoint-2
    torchrun(tmp_path / "run", resume=True)  # on to step 4, as the uninterrupted run
    _, uninterrupted = _debug(run_dir, 0)
    for rank in (0, 1):
        lines = (tmp_path / "run" / "debug" / f"rank-{rank}.jsonl").read_text().splitlines()
        final = [json.loads(line)["final"] for line in lines if '"final"' in line][-1]
        assert final["param_sum"] == pytest.approx(uninterrupted["param_sum"], rel=1e-6)
    losses = [[(r["step"], round(r["loss"], 5)) for r in map(json.loads, (d / "train_log.jsonl").read_text()
               .splitlines()) if "loss" in r] for d in (run_dir, tmp_path / "run")]
    assert losses[0] == losses[1]


@pytest.mark.slow
def test_two_processes_stop_together_at_the_budget(tmp_path):
    """A budget already spent when training starts (half a second: loading takes longer): both processes take the
    stop after the first step together (no process left waiting at a collective), one checkpoint is saved and the
    run says it did not finish."""
    proc = torchrun(tmp_path / "run", "train.max_seconds=0.5", "train.stop_margin_seconds=0")
    summary = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith('{"output_dir"')))
    assert (summary["finished"], summary["stopped"], summary["steps"]) == (False, "max_seconds", 1)
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-1"]
    assert not (tmp_path / "run" / "final").exists()
    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    assert (info["finished"], info["stopped"], info["parallel"]["num_processes"]) == (False, "max_seconds", 2)
