"""Model policies, each in one place: the dtype rule, the offline environment, the output-folder check, the LoRA
added by training and TTT alike, and the one ``LoadedModel`` both loaders return."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
from pathlib import Path

import pytest
import torch
from conftest import fake_gpu

from arc_kit.cli.main import main as cli_main
from arc_kit.config.lora import LoraSettings
from arc_kit.config.run import SolverSettings, TTTSettings
from arc_kit.config.training import TrainConfig, load_config, resolve_config_path
from arc_kit.core.files import NotAFolderError, check_folder_path
from arc_kit.models.loading import LoadedModel, load_model
from arc_kit.models.lora import LoraTargetError, lora_config, present_targets
from arc_kit.models.offline import NO_HUB, NO_STATISTICS, set_offline_env
from arc_kit.models.precision import choose_dtype, upcast_trainable
from arc_kit.models.training_model import load_training_model

REPO = Path(__file__).resolve().parents[1]
OFFLINE_NAMES = (*NO_HUB, *NO_STATISTICS)


# -- the dtype rule ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("capability, device, expected", [
    ((7, 5), "cuda", torch.float16),  # T4: bfloat16 only emulated
    ((6, 0), "cuda", torch.float16),  # P100
    ((7, 0), "cuda:1", torch.float16),  # V100
    ((8, 0), "cuda", torch.bfloat16),  # A100
    ((8, 9), "cuda:1", torch.bfloat16),  # L4
    ((9, 0), "cuda", torch.bfloat16),  # H100
    ((8, 9), "cpu", torch.float32),  # a GPU machine told to run on its CPU
    (None, "cpu", torch.float32),
])
def test_auto_dtype_is_what_the_gpu_computes_in(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int] | None,
                                              device: str, expected: torch.dtype):
    fake_gpu(monkeypatch, capability)
    assert choose_dtype(None, device) == expected
    assert choose_dtype("auto", device) == expected


def test_the_rule_asks_the_device_it_is_given(monkeypatch: pytest.MonkeyPatch):
    """On a machine with a T4 and an L4, each device gets its own type."""
    fake_gpu(monkeypatch, (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: {0: (7, 5), 1: (8, 9)}[device])
    assert choose_dtype(None, "cuda:0") == torch.float16
    assert choose_dtype(None, "cuda:1") == torch.bfloat16
    assert choose_dtype(None, "cuda") == torch.float16  # the current device, 0


@pytest.mark.parametrize("name", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("capability, device", [((8, 9), "cuda"), ((7, 5), "cuda"), (None, "cpu")])
def test_a_named_dtype_is_honoured_everywhere(monkeypatch: pytest.MonkeyPatch, name: str,
                                              capability: tuple[int, int] | None, device: str):
    fake_gpu(monkeypatch, capability)
    assert choose_dtype(name, device) == getattr(torch, name)


def test_an_unknown_dtype_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="bfloat16, float16, float32"):
        choose_dtype("float8", "cuda")


def test_float16_training_keeps_float32_master_weights():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)).half()
    model[0].requires_grad_(False)
    assert upcast_trainable(model) == 2  # the second layer's weight and bias
    assert model[0].weight.dtype == torch.float16 and model[1].weight.dtype == torch.float32


@dataclasses.dataclass
class ArgumentsBeforeTheRenames:
    """The names a transformers 4 ``TrainingArguments`` takes (no activation_checkpointing, a warmup_ratio)."""

    output_dir: str
    bf16: bool = False
    fp16: bool = False
    use_cpu: bool = False
    gradient_checkpointing: bool = False
    gradient_checkpointing_kwargs: dict | None = None
    warmup_ratio: float = 0.0
    gradient_accumulation_steps: int = 1


def test_both_trainers_arguments_take_the_shared_rules_under_the_installed_names(tmp_path: Path):
    """Training and TTT build their TrainingArguments through one helper: mixed precision in the loaded dtype on
    CUDA only, use_cpu off CUDA, non-reentrant checkpointing and a warmup share under whichever names the installed
    transformers takes, no accumulation."""
    from transformers import TrainingArguments

    from arc_kit.models.training_args import training_arguments

    args = training_arguments(TrainingArguments, device="cpu", dtype=torch.bfloat16, checkpointing=True,
                              warmup_ratio=0.25, output_dir=str(tmp_path))
    assert args.use_cpu and not args.bf16 and not args.fp16 and args.gradient_accumulation_steps == 1
    assert args.activation_checkpointing and args.activation_checkpointing_kwargs == {"use_reentrant": False}
    assert args.warmup_steps == 0.25  # transformers 5 reads a float below 1 as a share of the steps
    old = training_arguments(ArgumentsBeforeTheRenames, device="cuda:1", dtype=torch.float16, checkpointing=True,
                             warmup_ratio=0.1, output_dir=str(tmp_path))
    assert old == ArgumentsBeforeTheRenames(str(tmp_path), bf16=False, fp16=True, use_cpu=False,
                                            gradient_checkpointing=True,
                                            gradient_checkpointing_kwargs={"use_reentrant": False}, warmup_ratio=0.1)


@pytest.mark.parametrize("capability, fp16, bf16", [((7, 5), True, False), ((8, 9), False, True)])
def test_a_t4_trains_in_float16_under_the_scaler_an_l4_in_bfloat16(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                   capability: tuple[int, int], fp16: bool,
                                                                   bf16: bool):
    """The run's SFTConfig on a faked GPU: a T4 (bfloat16 only emulated) gets fp16 mixed precision, which the
    Trainer runs under a gradient scaler; an L4 gets bf16."""
    import trl

    from arc_kit.training.trainer import sft_config

    fake_gpu(monkeypatch, capability)
    recorded: dict = {}
    monkeypatch.setattr(trl, "SFTConfig", lambda **kwargs: recorded.update(kwargs))
    config = load_config(resolve_config_path("tiny-cpu"), ["model.dtype=auto", f"train.output_dir={tmp_path}"])
    sft_config(config, tmp_path, num_train=64, has_eval=False)
    assert (recorded["fp16"], recorded["bf16"], recorded["use_cpu"]) == (fp16, bf16, False)


def test_both_loaders_load_in_the_rule_s_dtype_on_a_cpu(tiny_model_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    inference = load_model(tiny_model_dir, SolverSettings(use_unsloth=False))
    assert inference.device == "cpu" and inference.dtype == torch.float32
    assert next(inference.model.parameters()).dtype == torch.float32
    training = load_training_model(_lora_train_config(tmp_path, dtype="auto"), tmp_path / "run", "cpu")
    assert training.dtype == torch.float32 and next(training.model.parameters()).dtype == torch.float32


# -- the offline environment ---------------------------------------------------------------------------------------


def test_the_offline_environment_is_one_function():
    env: dict[str, str] = {"HF_HUB_OFFLINE": "0"}  # what the user set stays
    assert set_offline_env(hub=True, environ=env) == env
    assert env == {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                   "UNSLOTH_DISABLE_STATISTICS": "1", "TOKENIZERS_PARALLELISM": "false"}
    training: dict[str, str] = {}
    set_offline_env(hub=False, environ=training)  # training may download its base: only the statistics are off
    assert training == {"UNSLOTH_DISABLE_STATISTICS": "1"}


def test_loading_for_inference_sets_the_offline_environment(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    for name in OFFLINE_NAMES:
        monkeypatch.delenv(name, raising=False)
    load_model(tiny_model_dir, SolverSettings(device="cpu"))
    assert {name: os.environ.get(name) for name in OFFLINE_NAMES} == {**NO_HUB, **NO_STATISTICS}


def test_the_offline_environment_reaches_os_environ_after_a_library_replaced_it(monkeypatch: pytest.MonkeyPatch):
    """``datasets``' ``map(num_proc=...)`` swaps ``os.environ`` for a copy; the switches must land in the one
    the process reads afterwards."""
    from arc_kit.models.offline import set_offline_env

    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k not in OFFLINE_NAMES})
    set_offline_env(hub=True)
    assert {name: os.environ.get(name) for name in OFFLINE_NAMES} == {**NO_HUB, **NO_STATISTICS}


def test_the_kernel_entry_sets_the_offline_environment_before_the_kit_runs(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch):
    import arc_kit.run.kernel as kernel

    for name in OFFLINE_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARC_KIT_INPUT_ROOT", str(tmp_path / "input"))
    monkeypatch.setenv("ARC_KIT_OUTPUT", str(tmp_path / "out" / "submission.json"))
    seen: dict[str, str | None] = {}

    def run_kernel(settings, start):  # noqa: ANN001 - the runner's signature
        seen.update({name: os.environ.get(name) for name in OFFLINE_NAMES})
        return 0

    monkeypatch.setattr(kernel, "run_kernel", run_kernel)
    spec = importlib.util.spec_from_file_location("kernel_main", REPO / "submission" / "main.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    assert not any(os.environ.get(name) for name in OFFLINE_NAMES)  # importing the entry sets nothing yet
    assert entry.main() == 0
    assert seen == {**NO_HUB, **NO_STATISTICS}


# -- a folder to write into, not a file ----------------------------------------------------------------------------


def test_a_folder_path_that_is_or_lies_in_a_file_is_refused(tmp_path: Path):
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    assert check_folder_path(tmp_path / "new" / "deeper", "--out") == tmp_path / "new" / "deeper"
    assert check_folder_path(tmp_path, "--out") == tmp_path
    with pytest.raises(NotAFolderError, match=re.escape(f"--out {afile}: {afile} is a file, not a folder")):
        check_folder_path(afile, "--out")
    with pytest.raises(NotAFolderError, match=re.escape(f"train.output_dir {afile / 'run'}: {afile} is a file")):
        check_folder_path(afile / "run", "train.output_dir")
    assert afile.read_text() == "mine"


@pytest.mark.parametrize("command, flag", [
    (["export", "RUN", "--out", "OUT"], "--out"),
    (["synth", "--out", "OUT", "--n-tasks", "1"], "--out"),
    (["dry-run", "--model", "RUN", "--challenges", "arc-agi-1/evaluation", "--out", "OUT"], "--out"),
    (["train", "--config", "tiny-cpu", "--set", "train.output_dir=OUT"], "train.output_dir"),
])
def test_every_command_refuses_an_output_that_is_a_file_alike(tmp_path: Path, capsys, command: list[str],
                                                              flag: str):
    out = tmp_path / "taken.txt"
    out.write_text("mine")
    args = [a.replace("OUT", str(out)).replace("RUN", str(tmp_path / "run")) for a in command]
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {flag} {out}: {out} is a file, not a folder (nothing written)"
    assert out.read_text() == "mine"


# -- an export, or a run's checkpoints -----------------------------------------------------------------------------


def _run_folder(run: Path, *, steps: tuple[int, ...] = (3,), complete: bool = True) -> Path:
    """A training run's folder as the Trainer leaves it: checkpoints (LoRA adapters) and the tiny base model."""
    (run / "base-model").mkdir(parents=True)
    (run / "base-model" / "config.json").write_text("{}")
    for step in steps:
        checkpoint = run / f"checkpoint-{step}"
        checkpoint.mkdir()
        (checkpoint / "adapter_config.json").write_text("{}")
        if complete:
            (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return run


def test_a_run_with_only_checkpoints_is_no_export(tmp_path: Path):
    from arc_kit.models.weights import CHECKPOINTS, WeightsFolderError, choose_weights, training_output

    run = _run_folder(tmp_path / "out" / "run", steps=(2, 4))
    found = training_output(tmp_path / "out")
    assert (found.kind, found.run_dir, found.checkpoint) == (CHECKPOINTS, run, run / "checkpoint-4")
    with pytest.raises(WeightsFolderError, match="holds checkpoint-4 but no export: the training kernel stopped at "
                                                 "its budget; run it again to resume"):
        choose_weights(tmp_path / "out")  # neither a checkpoint nor the run's base model is taken


def test_an_export_wins_over_checkpoints_wherever_it_was_written(tmp_path: Path):
    from conftest import make_export

    from arc_kit.models.weights import EXPORT, choose_weights, export_weights, training_output

    run = _run_folder(tmp_path / "run")
    merged = make_export(run / "export" / "merged")  # exported into the run folder itself
    (run / "final").mkdir()
    (run / "final" / "adapter_config.json").write_text("{}")
    assert training_output(run).kind == EXPORT and training_output(run).weights == merged
    assert choose_weights(run) == merged == export_weights(run)


def test_a_finished_run_s_final_adapter_is_its_weights_and_an_interrupted_checkpoint_is_nothing(tmp_path: Path):
    from arc_kit.models.weights import (
        NOTHING,
        WeightsFolderError,
        choose_weights,
        export_weights,
        training_output,
    )

    run = _run_folder(tmp_path / "run", complete=False)  # killed while saving its only checkpoint
    assert training_output(tmp_path).kind == NOTHING
    with pytest.raises(WeightsFolderError, match="no export .* and no training checkpoint"):
        export_weights(tmp_path)
    (run / "final").mkdir()
    (run / "final" / "adapter_config.json").write_text("{}")
    assert choose_weights(tmp_path) == run / "final"


# -- one LoRA for training and TTT -----------------------------------------------------------------------------------


def _lora_train_config(tmp_path: Path, *, dtype: str = "float32", targets: str = "[\"q_proj\",\"v_proj\"]",
                       train_embeddings: bool = False) -> TrainConfig:
    return load_config(resolve_config_path("tiny-cpu"), [
        f"train.output_dir={tmp_path / 'run'}", "model.full_finetuning=false", f"model.dtype={dtype}",
        f"lora.target_modules={targets}", "lora.r=4", "lora.alpha=8",
        f"lora.train_embeddings={str(train_embeddings).lower()}",
    ])


def _lora_layers(model) -> list[str]:  # noqa: ANN001
    from peft.tuners.tuners_utils import BaseTunerLayer

    return sorted(name.split("model.", 1)[-1] for name, m in model.named_modules() if isinstance(m, BaseTunerLayer))


def test_training_and_ttt_add_the_same_lora_to_the_tiny_model(tiny_model_dir: Path, tmp_path: Path):
    from arc_kit.solve.ttt import TaskAdapter

    targets = ["q_proj", "not_in_llama", "v_proj"]
    config = _lora_train_config(tmp_path, targets=str(targets).replace("'", '"'), train_embeddings=True)
    config.model.name_or_path, config.model.local_files_only = str(tiny_model_dir), True
    trained = load_training_model(config, tmp_path / "run", "cpu")
    ttt = TTTSettings(lora=LoraSettings(r=4, alpha=8, target_modules=targets, train_embeddings=True))
    inference = load_model(tiny_model_dir, SolverSettings(device="cpu"))
    adapter = TaskAdapter(inference, ttt)

    assert _lora_layers(trained.model) == _lora_layers(adapter.peft_model) != []
    a, b = trained.model.peft_config["default"], adapter.peft_model.peft_config["default"]
    for field in ("r", "lora_alpha", "lora_dropout", "use_rslora", "target_modules", "modules_to_save",
                  "ensure_weight_tying"):
        assert getattr(a, field) == getattr(b, field), field
    assert a.target_modules == {"q_proj", "v_proj"} and a.ensure_weight_tying  # the tiny model ties its embeddings
    assert present_targets(trained.model, targets) == ["q_proj", "v_proj"]


def test_a_lora_with_no_target_in_the_model_is_refused_by_both(tiny_model_dir: Path, tmp_path: Path):
    from arc_kit.solve.ttt import TaskAdapter

    inference = load_model(tiny_model_dir, SolverSettings(device="cpu"))
    with pytest.raises(LoraTargetError, match=r"none of target_modules \['c_attn'\].*q_proj"):
        lora_config(inference.model, LoraSettings(target_modules=["c_attn"]))
    with pytest.raises(LoraTargetError, match="c_attn"):
        TaskAdapter(inference, TTTSettings(lora=LoraSettings(target_modules=["c_attn"])))
    config = _lora_train_config(tmp_path, targets='["c_attn"]')
    with pytest.raises(LoraTargetError, match="c_attn"):
        load_training_model(config, tmp_path / "run", "cpu")


# -- one LoadedModel -------------------------------------------------------------------------------------------------


def test_training_and_inference_return_the_same_loaded_model(tiny_model_dir: Path, tmp_path: Path):
    training = load_training_model(_lora_train_config(tmp_path), tmp_path / "run", "cpu")
    inference = load_model(tiny_model_dir, SolverSettings(device="cpu"))
    assert type(training) is type(inference) is LoadedModel
    assert (training.backend, training.has_lora, training.device) == ("peft", True, "cpu")
    assert training.source == str(tmp_path / "run" / "base-model")  # the tiny base, written into the run folder
    assert (inference.backend, inference.has_lora, inference.source) == ("transformers", False, str(tiny_model_dir))
    for loaded in (training, inference):
        assert loaded.tokenizer.pad_token_id is not None


def test_a_missing_local_model_folder_is_named_as_missing_not_as_a_hub_failure(tmp_path, monkeypatch):
    from arc_kit.models.loading import ModelLoadError, load_tokenizer

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError) as caught:
        load_tokenizer("models/nvarc", local_only=True)
    message = str(caught.value)
    assert "no such folder" in message and str(tmp_path) in message and "huggingface.co" not in message
