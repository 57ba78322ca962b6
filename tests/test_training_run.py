"""Real (tiny) training runs: LoRA train -> export -> offline reload gives the same model; kill + resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_config

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# A LoRA run of ~30 steps on the tiny model; only output_dir differs between the runs of this file.
OVERRIDES = [
    "model.full_finetuning=false", "lora.r=8", "lora.alpha=16", "train.learning_rate=1e-3",
    "data.synthetic.n_tasks=12", "data.augmentations=1", "data.eval_fraction=0.1",
    "train.per_device_train_batch_size=2", "train.save_steps=4", "train.logging_steps=2",
]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    import torch

    from arc_kit.training import run_training

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model runs several times faster on one thread when the cores are shared
    try:
        return run_training(tiny_config(tmp_path_factory.mktemp("lora-run") / "run", OVERRIDES))
    finally:
        torch.set_num_threads(threads)


def _logits(model, tokenizer, text):
    import torch

    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return model(**ids).logits.float()


def test_run_writes_log_checkpoints_and_final(lora_run):
    assert lora_run.steps == 2 * 17  # 11 train tasks x 3 examples, batch 2 -> 17 steps an epoch, 2 epochs
    records = [json.loads(line) for line in lora_run.log_path.read_text().splitlines()]
    assert any("loss" in r and "learning_rate" in r for r in records)
    assert any("eval_loss" in r for r in records) and lora_run.eval_loss is not None
    assert (lora_run.final_dir / "adapter_config.json").exists()
    info = json.loads((lora_run.output_dir / "run_info.json").read_text())
    assert info["steps"] == lora_run.steps and info["is_peft"] and info["backend"] == "peft"
    assert info["padding"]["batches"] == lora_run.steps  # every batch trained on was counted
    assert all("padding_fraction" in r for r in records if "loss" in r)


def test_export_reloads_offline_with_the_same_logits_and_answers(lora_run, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from arc_kit.config.run import SolverSettings
    from arc_kit.core.formats import ARC_KIT_FORMAT
    from arc_kit.core.synthetic import generate_tasks
    from arc_kit.models.manifest import MANIFEST_FILE
    from arc_kit.training.evaluate import greedy_answers
    from arc_kit.training.export import export_model

    run_dir = lora_run.output_dir
    merged_dir = export_model(run_dir, tmp_path / "export", dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(lora_run.final_dir, local_files_only=True)
    tasks = generate_tasks(["rot180"], 4, seed=99, n_train=2)
    text = ARC_KIT_FORMAT.render(tokenizer, tasks[0].train, tasks[0].test[0].input, tasks[0].test[0].output).text

    base = AutoModelForCausalLM.from_pretrained(run_dir / "base-model", local_files_only=True)
    base_logits = _logits(base, tokenizer, text)
    before = PeftModel.from_pretrained(base, lora_run.final_dir)
    before_logits = _logits(before, tokenizer, text)
    before_answers = greedy_answers(before, tokenizer, ARC_KIT_FORMAT, tasks, SolverSettings(max_length=2048, batch_size=16))
    assert not torch.allclose(before_logits, base_logits, atol=1e-3)  # the adapter learnt something

    merged = AutoModelForCausalLM.from_pretrained(merged_dir, local_files_only=True)
    merged_tok = AutoTokenizer.from_pretrained(merged_dir, local_files_only=True)
    assert torch.allclose(_logits(merged, merged_tok, text), before_logits, atol=1e-4)
    assert greedy_answers(merged, merged_tok, ARC_KIT_FORMAT, tasks, SolverSettings(max_length=2048, batch_size=16)) == before_answers

    fresh = AutoModelForCausalLM.from_pretrained(run_dir / "base-model", local_files_only=True)
    adapter = PeftModel.from_pretrained(fresh, tmp_path / "export" / "adapter", local_files_only=True)
    assert torch.allclose(_logits(adapter, tokenizer, text), before_logits, atol=1e-5)

    manifest = json.loads((merged_dir / MANIFEST_FILE).read_text())
    assert manifest["base_model"].endswith("base-model") and manifest["eval_loss"] == lora_run.eval_loss
    assert manifest["recipe"]["lora"]["use_rslora"] and manifest["versions"]["transformers"]
    assert manifest["data"]["num_train_examples"] == lora_run.num_train_examples

    bf16_dir = export_model(run_dir, tmp_path / "export16", write_adapter=False)  # the default, bfloat16
    bf16 = AutoModelForCausalLM.from_pretrained(bf16_dir, local_files_only=True)
    assert next(bf16.parameters()).dtype == torch.bfloat16
    assert torch.allclose(_logits(bf16, merged_tok, text), before_logits, atol=0.15)
    assert not (tmp_path / "export16" / "adapter").exists()


def _pretrain(out: Path, *extra: str, **popen) -> subprocess.Popen:
    args = [sys.executable, str(REPO / "scripts" / "pretrain.py"), "--config", "tiny-cpu"]
    for item in [*OVERRIDES, f"train.output_dir={out}"]:
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([*args, *extra], cwd=REPO, env=env, text=True, **popen)


def test_killed_run_resumes_to_the_same_step_count(lora_run, tmp_path):
    from arc_kit.training import run_training
    from arc_kit.training.trainer import RunFolderError, last_checkpoint

    out = tmp_path / "run"
    log = open(tmp_path / "first.log", "w")
    proc = _pretrain(out, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while last_checkpoint(out) is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    log.close()
    killed_at = last_checkpoint(out)
    assert killed_at is not None, (tmp_path / "first.log").read_text()[-2000:]
    assert not (out / "final").exists(), "the run finished before it could be killed"
    assert int(Path(killed_at).name.split("-")[1]) < lora_run.steps

    with pytest.raises(RunFolderError, match="--resume"):
        run_training(tiny_config(out, OVERRIDES))  # a second run into the same folder must not start silently

    done = _pretrain(out, "--resume", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = done.communicate(timeout=300)
    assert done.returncode == 0, stderr[-3000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["steps"] == lora_run.steps
    info = json.loads((out / "run_info.json").read_text())
    assert info["resumed_from"] == Path(killed_at).name
    assert info["padding"]["batches"] == lora_run.steps  # the checkpoint carried the count over the kill
    assert info["eval_loss"] == pytest.approx(lora_run.eval_loss, rel=1e-3)  # the same model as without the kill
    steps_logged = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps_logged[-1] == lora_run.steps
    assert all(a <= b for a, b in zip(steps_logged, steps_logged[1:], strict=False))  # no rows redone twice
