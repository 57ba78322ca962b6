"""One training run: tasks -> dataset -> model -> TRL SFTTrainer with the recipe's schedule -> run folder.

Run folder layout (``train.output_dir``)::

    base-model/          the tiny base model, when model.name_or_path = "tiny"
    checkpoint-<step>/   every train.save_steps steps (weights, optimiser, scheduler, RNG: what --resume needs)
    final/               the trained adapter (LoRA) or full model, with the tokenizer
    train_log.jsonl      one JSON object per log event, always with ``step``, ``epoch``, ``time`` (unix seconds):
                         train rows add ``loss``, ``learning_rate``, ``grad_norm``, ``mean_token_accuracy``,
                         ``entropy``, ``num_tokens``, ``padding_fraction`` (padded / all tokens of the batches
                         since the previous row); eval rows add ``eval_loss``, ``eval_mean_token_accuracy``,
                         ``eval_runtime``; the last row adds ``train_loss``, ``train_runtime``,
                         ``train_padding_fraction``. Plot ``loss`` and ``eval_loss`` against ``step``. A resumed
                         run drops the rows past its checkpoint.
    run_info.json        config, backend, base model, data counts, eval task ids, final step and losses, padding,
                         processes and the effective batch (per-device batch x processes)
    debug/rank-<i>.jsonl with train.debug_batches: what process i trained on (row digests per step, final weights)

Several processes (``accelerate launch`` / ``torchrun``, see ``distributed.py``): every process loads the model and
builds the same examples (the main process first, so the others reuse its files), the Trainer runs DDP (or FSDP)
and gives each process its own share of every epoch's batches; only the main process writes the files above
(checkpoints: the Trainer's own rule; under FSDP every process takes part in saving).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arc_kit.config.training import TrainConfig
from arc_kit.core.files import atomic_write_json, atomic_write_text, check_folder_path
from arc_kit.errors import ArcKitError

LOG_FILE = "train_log.jsonl"
RUN_INFO_FILE = "run_info.json"
FINAL_DIR = "final"
EMBEDDING_NAMES = ("embed_tokens", "lm_head", "wte", "embed_out")


@dataclass
class TrainResult:
    """What a run produced; ``final_dir`` holds the adapter (or full model) and tokenizer for ``export_model``."""

    output_dir: Path
    final_dir: Path
    steps: int
    train_loss: float | None
    eval_loss: float | None
    log_path: Path
    backend: str
    num_train_examples: int
    num_eval_examples: int
    seconds: float
    padding_fraction: float | None = None
    """Padded tokens / all tokens over the batches trained on (also in run_info.json and train_log.jsonl)."""
    num_processes: int = 1
    effective_batch_size: int = 0
    """Rows per optimiser step: per-device batch x processes (no gradient accumulation)."""
    is_main_process: bool = True


class RunFolderError(ArcKitError, ValueError):
    """The run folder cannot be used as asked: it holds checkpoints of an earlier run and --resume was not given, or
    its log is corrupt. (A run folder that is a file is ``arc_kit.core.files.NotAFolderError``.)"""


# ---------------------------------------------------------------------------------------------------------------
# Data


def load_task_sets(config: TrainConfig) -> list[Any]:
    """The config's sources as a checked mix (``mix.Source`` list): a broken file raises ``TaskFileError``, a task id
    naming two different tasks ``MixError``, both naming it; held-out copies refused and repeats dropped. Needs no
    model or tokenizer, so a run calls it before loading the model (a bad file must not cost a model load)."""
    from arc_kit.training.mix import load_mix

    return load_mix(config.data, work_dir=data_cache_dir(config))


def data_cache_dir(config: TrainConfig) -> str:
    """Where the mix spools its tasks and the examples are cached: ``data.cache_dir``, else
    ``<output_dir>/data-cache``."""
    return config.data.cache_dir or str(Path(config.train.output_dir) / "data-cache")


def build_training_data(config: TrainConfig, tokenizer: Any, prompt_format: Any, mix: list[Any]) -> Any:
    """Examples of the mix (``load_task_sets``) in ``prompt_format`` (the base's, ``LoadedModel.prompt_format``)
    through the Arrow cache in ``data.cache_dir`` (``<output_dir>/data-cache`` by default)."""
    from arc_kit.training.dataset import SourcePlan, auto_num_proc, build_datasets

    d = config.data
    sources = [SourcePlan(s.name, s.tasks, s.augmentations, s.weight, s.as_given) for s in mix]
    num_tasks = sum(len(s.tasks) for s in sources)
    cache_dir = data_cache_dir(config)
    return build_datasets(
        sources, tokenizer, prompt_format=prompt_format, loss_on=d.loss_on, augmentations=d.augmentations,
        max_length=d.max_length, seed=d.seed,
        eval_fraction=d.eval_fraction, max_eval_examples=d.max_eval_examples, use_test_pairs=d.use_test_pairs,
        leave_one_out=d.leave_one_out, permute_background=d.permute_background, cache_dir=cache_dir,
        num_proc=d.num_proc or auto_num_proc(num_tasks),
    )


# ---------------------------------------------------------------------------------------------------------------
# Schedule and optimiser


def steps_per_epoch(num_examples: int, batch_size: int, num_processes: int = 1) -> int:
    """Optimiser steps in one epoch: the batches are dealt out to the processes in turn, and a process short of a
    batch at the end is topped up from the start (accelerate's ``even_batches``), so all take the same count."""
    return math.ceil(math.ceil(num_examples / batch_size) / num_processes)


def schedule_kwargs(num_examples: int, config: TrainConfig, num_processes: int = 1) -> dict[str, Any]:
    """Warmup-stable-decay: flat for every epoch but the last, cosine over the last down to ``min_lr_ratio``.

    Update k runs at ``lr * lambda(k)``. The last epoch's first update is at the full LR (cosine progress 0), the
    decay spans ``steps_per_epoch - 1`` updates, and the final update falls just past it, at the minimum. Stable
    steps are given explicitly so ``train.max_steps`` (stopping early) does not reshape the schedule. With several
    processes an epoch has fewer (larger) steps.
    """
    t = config.train
    steps_per_epoch_ = steps_per_epoch(num_examples, t.per_device_train_batch_size, num_processes)
    total = steps_per_epoch_ * t.num_train_epochs
    decay = max(1, steps_per_epoch_ - 1)
    return {
        "num_decay_steps": decay,
        "num_stable_steps": max(0, total - decay - 1),
        "decay_type": "cosine",
        "min_lr_ratio": t.min_lr_ratio,
    }


def is_embedding_param(name: str) -> bool:
    return any(part in name for part in EMBEDDING_NAMES)


def optimizer_groups(model: Any, decay_names: set[str], config: TrainConfig) -> list[dict[str, Any]]:
    """Three groups: embeddings (their own decay, optional LR), other weights (decay), biases/norms (no decay).

    Why our own groups: the recipe decays the embeddings (ARChitects trained them with weight decay while the LoRA
    weights had none by default), which Trainer's single decay value cannot express.
    """
    t = config.train
    groups: dict[str, dict[str, Any]] = {
        "embeddings": {"params": [], "weight_decay": t.embedding_weight_decay, "name": "embeddings"},
        "decay": {"params": [], "weight_decay": t.weight_decay, "name": "decay"},
        "no_decay": {"params": [], "weight_decay": 0.0, "name": "no_decay"},
    }
    if t.embedding_learning_rate is not None:
        groups["embeddings"]["lr"] = t.embedding_learning_rate
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = "embeddings" if is_embedding_param(name) else "decay" if name in decay_names else "no_decay"
        groups[key]["params"].append(param)
    return [g for g in groups.values() if g["params"]]


def make_trainer_class() -> type:
    """SFTTrainer with the recipe's optimiser groups, length-grouped batches and a padding count (built lazily:
    Unsloth must patch trl before the import)."""
    from trl import SFTTrainer

    class ArcSFTTrainer(SFTTrainer):
        def __init__(self, *args: Any, arc_config: TrainConfig, padding_meter: Any, **kwargs: Any) -> None:
            """``arc_config``: the run's settings; ``padding_meter``: the PaddingMeter callback (also given in
            ``callbacks``) the training steps feed."""
            self.arc_config, self.padding_meter = arc_config, padding_meter
            super().__init__(*args, **kwargs)

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            if not self.arc_config.train.group_by_length:
                return super()._get_train_sampler(train_dataset)
            from arc_kit.training.dataset import LengthGroupedSampler

            dataset = self.train_dataset if train_dataset is None else train_dataset
            lengths = [len(ids) for ids in dataset["input_ids"]]
            # The dataloader cuts the sampler's index stream into batches of this same size, so they are its batches.
            return LengthGroupedSampler(lengths, self._train_batch_size, seed=self.args.seed,
                                        mega_batches=self.arc_config.train.length_group_batches)

        def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
            self.padding_meter.add(inputs)
            if self.arc_config.train.debug_batches:
                record_batch(Path(self.args.output_dir), self.args.process_index, self.state.global_step, inputs)
            return super().training_step(model, inputs, num_items_in_batch)

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if "loss" in logs:  # a training row: the padding of the batches since the previous one
                fraction = self.padding_meter.take_interval()
                if fraction is not None:
                    logs["padding_fraction"] = round(fraction, 4)
            if "train_loss" in logs:  # the end of training: the whole run's
                logs["train_padding_fraction"] = round(self.padding_meter.fraction(), 4)
            super().log(logs, start_time)

        def create_optimizer(self, model: Any = None) -> Any:
            if self.optimizer is None:
                opt_model = self.model if model is None else model
                decay_names = set(self.get_decay_parameter_names(opt_model))
                groups = optimizer_groups(opt_model, decay_names, self.arc_config)
                optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
                self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
            return self.optimizer

    return ArcSFTTrainer


def padding_meter() -> Any:
    """A callback counting real and padded tokens of the batches trained on (the trainer feeds it every batch).

    Why a callback: the Trainer saves the state of ``ExportableState`` callbacks in each checkpoint's
    ``trainer_state.json``, so a resumed run goes on counting from the checkpoint. With several GPUs it counts this
    process's batches.
    """
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState

    class PaddingMeter(TrainerCallback, ExportableState):
        def __init__(self, batches: int = 0, real_tokens: int = 0, all_tokens: int = 0) -> None:
            self.batches, self.real_tokens, self.all_tokens = batches, real_tokens, all_tokens
            self._interval = [0, 0]  # real, all tokens since the last training log row

        def add(self, inputs: dict[str, Any]) -> None:
            """Count one collated batch: ``attention_mask`` marks real tokens; padding-free batches have none."""
            ids = inputs["input_ids"]
            mask = inputs.get("attention_mask")
            real = int(mask.sum()) if mask is not None else ids.numel()
            self.batches += 1
            self.real_tokens += real
            self.all_tokens += ids.numel()
            self._interval[0] += real
            self._interval[1] += ids.numel()

        def take_interval(self) -> float | None:
            real, total = self._interval
            self._interval = [0, 0]
            return (total - real) / total if total else None

        def fraction(self) -> float:
            return (self.all_tokens - self.real_tokens) / self.all_tokens if self.all_tokens else 0.0

        def summary(self) -> dict[str, Any]:
            return {"batches": self.batches, "real_tokens": self.real_tokens, "all_tokens": self.all_tokens,
                    "padding_fraction": round(self.fraction(), 4)}

        def state(self) -> dict[str, Any]:
            return {"args": {"batches": self.batches, "real_tokens": self.real_tokens,
                             "all_tokens": self.all_tokens}, "attributes": {}}

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            """On --resume the Trainer has loaded the checkpoint's state by now: count on from its figures (a fresh
            run finds this meter's own zeros there)."""
            saved = (state.stateful_callbacks or {}).get(type(self).__name__)
            counts = saved.get("args") if isinstance(saved, dict) else None
            if isinstance(counts, dict):
                self.batches = int(counts.get("batches", 0))
                self.real_tokens = int(counts.get("real_tokens", 0))
                self.all_tokens = int(counts.get("all_tokens", 0))
            self._interval = [0, 0]

    return PaddingMeter()


DEBUG_DIR = "debug"


def row_digest(ids: Any, mask: Any = None) -> str:
    """A short digest of one row's real tokens (padding left out), to tell rows apart across processes."""
    import hashlib

    tokens = ids[mask.bool()] if mask is not None else ids
    return hashlib.sha1(",".join(map(str, tokens.tolist())).encode()).hexdigest()[:16]


def record_batch(run_dir: Path, rank: int, step: int, inputs: dict[str, Any]) -> None:
    """train.debug_batches: append this process's batch (one digest per row) to ``debug/rank-<rank>.jsonl``."""
    ids, mask = inputs["input_ids"].cpu(), inputs.get("attention_mask")
    rows = [row_digest(ids[i], None if mask is None else mask[i].cpu()) for i in range(ids.shape[0])]
    path = run_dir / DEBUG_DIR / f"rank-{rank}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, "rows": rows}) + "\n")


def record_final_weights(run_dir: Path, rank: int, model: Any) -> None:
    """train.debug_batches: the sums of this process's final weights (equal on every process under DDP)."""
    import torch

    with torch.no_grad():
        params = [p.detach().float() for p in model.parameters()]
        total = float(sum(p.sum() for p in params))
        absolute = float(sum(p.abs().sum() for p in params))
    path = run_dir / DEBUG_DIR / f"rank-{rank}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"final": {"param_sum": total, "param_abs_sum": absolute}}) + "\n")


def jsonl_logger(path: Path) -> Any:
    from transformers import TrainerCallback

    class JsonlLogger(TrainerCallback):
        """Append each log event (loss, learning_rate, eval_loss, ...) as one JSON line, tagged with the step."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            if not state.is_world_process_zero or not logs:
                return
            record = {"step": state.global_step, "epoch": state.epoch, "time": round(time.time(), 3), **logs}
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    return JsonlLogger()


def sft_config(config: TrainConfig, run_dir: Path, num_train: int, has_eval: bool, backend: str = "peft",
               num_processes: int = 1) -> Any:
    """TRL's SFTConfig for the recipe. ``use_cpu`` on a machine without CUDA is what lets a torchrun/accelerate
    launch of several CPU processes run DDP over gloo (see ``distributed.py``)."""
    import torch
    from trl import SFTConfig

    from arc_kit.models.precision import choose_dtype
    from arc_kit.training.distributed import training_device

    t = config.train
    device = training_device()
    cpu = device == "cpu"
    cuda = not cpu
    dtype = choose_dtype(config.model.dtype, device)  # what load_training_model loaded the weights in
    bf16 = cuda and dtype == torch.bfloat16
    fp16 = cuda and dtype == torch.float16
    grad_ckpt = cuda if t.gradient_checkpointing is None else t.gradient_checkpointing
    if backend == "unsloth" and not config.model.full_finetuning:
        grad_ckpt = False  # Unsloth's own checkpointing is set in get_peft_model; the Trainer's would double it
    if t.fsdp and t.fsdp_config and json.loads(Path(t.fsdp_config).read_text()).get("activation_checkpointing"):
        grad_ckpt = False  # FSDP checkpoints activations itself; transformers refuses both at once
    eval_strategy = "no" if not has_eval else ("steps" if t.eval_steps > 0 else "epoch")
    kwargs: dict[str, Any] = dict(
        output_dir=str(run_dir),
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=1,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        lr_scheduler_type="warmup_stable_decay",
        lr_scheduler_kwargs=schedule_kwargs(num_train, config, num_processes),
        warmup_steps=0,
        weight_decay=t.weight_decay,
        optim=t.optim,
        max_grad_norm=t.max_grad_norm,
        bf16=bf16,
        fp16=fp16,
        gradient_checkpointing=grad_ckpt,
        max_length=config.data.max_length,
        padding_free=t.padding_free,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        eval_strategy=eval_strategy,
        eval_steps=t.eval_steps if t.eval_steps > 0 else None,
        seed=t.seed,
        data_seed=t.seed,
        report_to=t.report_to,
        dataloader_num_workers=t.dataloader_num_workers,
        dataloader_pin_memory=cuda,
        remove_unused_columns=True,
        dataset_text_field="text",
        use_cpu=cpu,
        ddp_find_unused_parameters=False,  # LoRA and full fine-tuning use every trainable weight in each step
    )
    if t.fsdp:
        kwargs["fsdp"] = True
        if t.fsdp_config:
            kwargs["fsdp_config"] = t.fsdp_config
    return SFTConfig(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# The run


def last_checkpoint(run_dir: Path) -> str | None:
    """The newest *complete* checkpoint: a run killed while saving leaves a folder without ``trainer_state.json``
    (the Trainer writes it last), which must not be resumed from."""
    if not run_dir.is_dir():
        return None
    complete = []
    for path in run_dir.glob("checkpoint-*"):
        state = path / "trainer_state.json"
        if not path.name.split("-", 1)[1].isdigit() or not state.is_file():
            continue
        try:
            json.loads(state.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        complete.append(path)
    return str(max(complete, key=lambda p: int(p.name.split("-", 1)[1]))) if complete else None


@dataclass
class PreparedRun:
    trainer: Any
    loaded: Any  # arc_kit.models.loading.LoadedModel
    data: Any  # arc_kit.training.dataset.TrainingData
    run_dir: Path
    log_path: Path


def check_output_dir(config: TrainConfig) -> Path:
    """``train.output_dir`` as a folder path; one that is a file is refused before anything is written into it."""
    return check_folder_path(config.train.output_dir, "train.output_dir")


def prepare_run(config: TrainConfig, task_sets: list[Any] | None = None) -> PreparedRun:
    """Model, data and trainer for ``config``, nothing trained yet (tests inspect the optimiser and schedule).

    The tasks are loaded and checked before the model, so a bad file fails in seconds.
    """
    from arc_kit.models.loading import load_training_model
    from arc_kit.training.distributed import launch, main_process_first, training_device

    config.check()
    run_dir = check_output_dir(config)
    if task_sets is None:
        task_sets = load_task_sets(config)
    # We pass num_stable_steps on purpose (see schedule_kwargs); transformers warns that it wins over the total.
    warnings.filterwarnings("ignore", message="Both num_training_steps and num_stable_steps")
    here = launch()
    run_dir.mkdir(parents=True, exist_ok=True)
    with main_process_first():  # the main process writes the tiny base model and the data cache, the rest reuse them
        loaded = load_training_model(config, run_dir, training_device())
        data = build_training_data(config, loaded.tokenizer, loaded.prompt_format, task_sets)
    if here.is_main:
        b = config.train.per_device_train_batch_size
        print(f"data: {len(data.train)} train examples from {data.train_stats.tasks} tasks, "
              f"{0 if data.eval is None else len(data.eval)} eval examples from {data.eval_stats.tasks} held-out "
              f"tasks; {data.train_stats.skipped_too_long} too long, backend {loaded.backend}; "
              f"{here.num_processes} process(es) ({here.distributed_type}{', FSDP' if config.train.fsdp else ''}): "
              f"effective batch {b} x {here.num_processes} = {b * here.num_processes} rows per step, "
              f"{steps_per_epoch(len(data.train), b, here.num_processes)} steps per epoch", file=sys.stderr)
    log_path = run_dir / LOG_FILE
    meter = padding_meter()
    trainer = make_trainer_class()(
        model=loaded.model,
        args=sft_config(config, run_dir, len(data.train), data.eval is not None, loaded.backend,
                        here.num_processes),
        train_dataset=data.train,
        eval_dataset=data.eval,
        processing_class=loaded.tokenizer,
        callbacks=[meter, jsonl_logger(log_path)],
        arc_config=config,
        padding_meter=meter,
    )
    if config.train.fsdp and not trainer.is_fsdp_enabled and here.is_main:
        # accelerate shards only over GPUs (and other accelerators): a CPU launch runs DDP, one process no sharding
        print(f"train.fsdp: not in effect on this launch ({here.num_processes} process(es), "
              f"{trainer.accelerator.distributed_type.value}); FSDP needs several GPU processes, training "
              "with a full copy per process instead", file=sys.stderr)
    return PreparedRun(trainer, loaded, data, run_dir, log_path)


def run_training(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train with ``config``; with ``resume``, continue from the newest complete checkpoint in ``train.output_dir``.

    A resumed run ends at the same step count as an uninterrupted one (same data, schedule and seed). Without
    ``resume``, a run folder that already holds checkpoints is refused so a run is never silently mixed with another.
    Everything the user can get wrong (settings, task files, the run folder, its log) is checked before the model
    is loaded.
    """
    from arc_kit.training.distributed import launch, wait_for_everyone

    config.check()
    started = time.time()
    run_dir = check_output_dir(config)
    task_sets = load_task_sets(config)
    checkpoint = last_checkpoint(run_dir)
    if checkpoint and not resume:
        raise RunFolderError(f"{run_dir} already holds {Path(checkpoint).name}: pass --resume to continue that run, "
                             "or choose a new train.output_dir")
    here = launch()
    if resume and not checkpoint and here.is_main:
        print(f"--resume: no complete checkpoint in {run_dir} yet, starting from step 0", file=sys.stderr)
    if here.is_main:
        restart_log(run_dir / LOG_FILE, Path(checkpoint) if resume and checkpoint else None)
        debug_dir = run_dir / DEBUG_DIR
        if debug_dir.is_dir() and not (resume and checkpoint):
            shutil.rmtree(debug_dir)
    wait_for_everyone()  # no process starts logging before the main one has trimmed the log
    run = prepare_run(config, task_sets)
    trainer, data, loaded = run.trainer, run.data, run.loaded
    output = trainer.train(resume_from_checkpoint=checkpoint if resume else None)
    eval_loss = trainer.evaluate()["eval_loss"] if data.eval is not None else None

    final_dir = run_dir / FINAL_DIR
    trainer.save_model(str(final_dir))  # every process calls it (FSDP gathers the shards); the main one writes
    if config.train.debug_batches:
        record_final_weights(run_dir, here.process_index, trainer.model)
    steps = trainer.state.global_step
    train_loss = output.training_loss if output is not None else None
    num_eval = 0 if data.eval is None else len(data.eval)
    padding = all_processes_padding(trainer)
    batch = config.train.per_device_train_batch_size
    result = TrainResult(
        output_dir=run_dir, final_dir=final_dir, steps=steps, train_loss=train_loss, eval_loss=eval_loss,
        log_path=run.log_path, backend=loaded.backend, num_train_examples=len(data.train),
        num_eval_examples=num_eval, seconds=time.time() - started, padding_fraction=padding["padding_fraction"],
        num_processes=here.num_processes, effective_batch_size=batch * here.num_processes,
        is_main_process=here.is_main,
    )
    if not here.is_main:
        wait_for_everyone()
        return result
    loaded.tokenizer.save_pretrained(str(final_dir))
    info = {
        "config": config.to_dict(),
        "backend": loaded.backend,
        "base_model": loaded.source,
        "prompt_format": loaded.prompt_format.name,  # resolved (model.format may say auto); the export records it
        "is_peft": loaded.has_lora,
        "steps": steps,
        "train_loss": train_loss,
        "eval_loss": eval_loss,
        "resumed_from": Path(checkpoint).name if resume and checkpoint else None,
        "padding": padding,  # over every batch trained on, resumed runs included: padded tokens / all tokens
        "parallel": {
            "num_processes": here.num_processes,
            "distributed_type": str(trainer.accelerator.distributed_type.value),  # FSDP when sharded
            "fsdp": bool(trainer.is_fsdp_enabled),
            "per_device_train_batch_size": batch,
            "effective_batch_size": batch * here.num_processes,
            "steps_per_epoch": steps_per_epoch(len(data.train), batch, here.num_processes),
        },
        "data": {
            "sources": data_sources(config),
            "mix": [src.report() | built for src, built in zip(task_sets, data.sources, strict=True)],
            "held_out": config.data.held_out,
            "train": data.train_stats.to_json(),
            "eval": data.eval_stats.to_json(),
            "eval_task_ids": data.eval_task_ids,
            "num_train_examples": len(data.train),
            "num_eval_examples": num_eval,
        },
    }
    atomic_write_json(run_dir / RUN_INFO_FILE, info, indent=1)
    wait_for_everyone()  # the others return once run_info.json and final/ are complete
    return result


def all_processes_padding(trainer: Any) -> dict[str, Any]:
    """The padding meter's counts summed over every process (each counted only the batches it trained on)."""
    meter = trainer.padding_meter
    if trainer.args.world_size <= 1:
        return meter.summary()
    import torch

    counts = torch.tensor([meter.batches, meter.real_tokens, meter.all_tokens], dtype=torch.int64,
                          device=trainer.args.device)
    batches, real, total = (int(v) for v in trainer.accelerator.reduce(counts, reduction="sum").tolist())
    return {"batches": batches, "real_tokens": real, "all_tokens": total,
            "padding_fraction": round((total - real) / total, 4) if total else 0.0}


def restart_log(path: Path, checkpoint: Path | None) -> None:
    """A fresh run starts a fresh log; a resumed one drops the lines logged after its checkpoint (they are redone).

    A torn last line (the run was killed mid-write) is dropped with a note; a broken line before it is not a crash
    artefact, so it is an error naming the file and line, and the log is left as it is.
    """
    if not path.exists():
        return
    if checkpoint is None:
        path.unlink()
        return
    step = int(checkpoint.name.split("-", 1)[1])
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    kept = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            if number == len(lines):
                print(f"{path}: dropped a torn last line {number} (the run was killed while writing it)",
                      file=sys.stderr)
                continue
            raise RunFolderError(f"{path} line {number}: not a JSON object ({line[:60]!r}); fix or remove that line "
                                 "to resume")
        if record.get("step", 0) <= step:
            kept.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def data_sources(config: TrainConfig) -> list[str]:
    """What the run trained on, in words, for run_info.json and the export manifest."""
    from arc_kit.training.mix import short_forms, source_name

    out = []
    for s in short_forms(config.data):
        if s.path:
            out.append(s.path + (f" + {s.solutions}" if s.solutions else ""))
        else:
            g = s.synthetic
            out.append(f"synthetic(rules={g.rules}, n_tasks={g.n_tasks}, seed={g.seed}, sizes={g.sizes})")
        if s.name or s.weight != 1.0 or s.max_tasks or s.augmentations:
            out[-1] += f" [{source_name(s)}: weight {s.weight}, max_tasks {s.max_tasks}, views {s.augmentations}]"
    return out
