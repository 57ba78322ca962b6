"""One training run: tasks -> dataset -> model -> TRL SFTTrainer with the recipe's schedule -> run folder.

Run folder layout (``train.output_dir``)::

    base-model/          the tiny base model, when model.name_or_path = "tiny"
    checkpoint-<step>/   every train.save_steps steps, and when train.max_seconds runs out (weights, optimiser,
                         scheduler, RNG: what --resume and --resume-from need)
    final/               the trained adapter (LoRA) or full model, with the tokenizer (only once the run finished)
    train_log.jsonl      one JSON object per log event, always with ``step``, ``epoch``, ``time`` (unix seconds):
                         train rows add ``loss``, ``learning_rate``, ``grad_norm``, ``mean_token_accuracy``,
                         ``entropy``, ``num_tokens``, ``padding_fraction`` (padded / all tokens of the batches
                         since the previous row); eval rows add ``eval_loss``, ``eval_mean_token_accuracy``,
                         ``eval_runtime``; the last row adds ``train_loss``, ``train_runtime``,
                         ``train_padding_fraction``. Plot ``loss`` and ``eval_loss`` against ``step``. A resumed
                         run drops the rows past its checkpoint.
    run_info.json        written at the start (the config, "finished": false) and at the end: config, backend,
                         base model, data counts, eval task ids, final step and losses, padding, processes and the
                         effective batch (per-device batch x processes), "finished" and why not ("stopped":
                         "max_seconds" when the time budget ran out; null and unfinished: running, or killed)
    debug/rank-<i>.jsonl with train.debug_batches: what process i trained on (row digests per step, final weights)

Several processes (``accelerate launch`` / ``torchrun``, see ``distributed.py``): every process loads the model and
builds the same examples (the main process first, so the others reuse its files), the Trainer runs DDP (or FSDP)
and gives each process its own share of every epoch's batches; only the main process writes the files above
(checkpoints: the Trainer's own rule; under FSDP every process takes part in saving).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arc_kit.config.training import TrainConfig
from arc_kit.core.files import atomic_write_json, atomic_write_text, check_folder_path
from arc_kit.models.weights import last_checkpoint
from arc_kit.training.debug_batches import DEBUG_DIR, record_final_weights
from arc_kit.training.run_folder import (
    FINAL_DIR,
    LOG_FILE,
    RUN_INFO_FILE,
    STOPPED_AT_BUDGET,
    RunFolderError,
    adopt_checkpoint,
    check_same_config,
    resume_point,
)

log = logging.getLogger(__name__)

def _now() -> float:
    """The clock ``train.max_seconds`` is counted on (unix seconds); a name of its own so a test can move it."""
    return time.time()


@dataclass
class TrainResult:
    """What a run produced; ``final_dir`` holds the adapter (or full model) and tokenizer for ``export_model``
    once the run finished (None when it stopped at its time budget: ``checkpoint`` is where to resume)."""

    output_dir: Path
    final_dir: Path | None
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
    finished: bool = True
    """False when ``train.max_seconds`` ran out first (``stopped`` says so)."""
    stopped: str | None = None
    """Why the run ended before it finished: ``"max_seconds"``; None when it finished."""
    checkpoint: Path | None = None
    """The checkpoint a stopped run saved last (what ``--resume``/``--resume-from`` continue)."""


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
# Schedule


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


def sft_config(config: TrainConfig, run_dir: Path, num_train: int, has_eval: bool, backend: str = "peft",
               num_processes: int = 1) -> Any:
    """TRL's SFTConfig for the recipe; the precision, device and checkpointing rules are the ones test-time training
    shares (``models.training_args``)."""
    from trl import SFTConfig

    from arc_kit.models.precision import choose_dtype
    from arc_kit.models.training_args import training_arguments
    from arc_kit.training.distributed import training_device

    t = config.train
    device = training_device()
    cuda = device != "cpu"
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
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        lr_scheduler_type="warmup_stable_decay",
        lr_scheduler_kwargs=schedule_kwargs(num_train, config, num_processes),
        weight_decay=t.weight_decay,
        optim=t.optim,
        max_grad_norm=t.max_grad_norm,
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
        ddp_find_unused_parameters=False,  # LoRA and full fine-tuning use every trainable weight in each step
    )
    if t.fsdp:
        kwargs["fsdp"] = True
        if t.fsdp_config:
            kwargs["fsdp_config"] = t.fsdp_config
    # The dtype load_training_model loaded the weights in; no warmup: the schedule is flat, then cosine.
    return training_arguments(SFTConfig, device=device, dtype=choose_dtype(config.model.dtype, device),
                              checkpointing=grad_ckpt, warmup_ratio=0.0, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# The run


@dataclass
class PreparedRun:
    trainer: Any
    loaded: Any  # arc_kit.models.loading.LoadedModel
    data: Any  # arc_kit.training.dataset.TrainingData
    run_dir: Path
    log_path: Path
    budget: Any = None  # the WallClockBudget callback when train.max_seconds is set


def check_output_dir(config: TrainConfig) -> Path:
    """``train.output_dir`` as a folder path; one that is a file is refused before anything is written into it."""
    return check_folder_path(config.train.output_dir, "train.output_dir")


def prepare_run(config: TrainConfig, task_sets: list[Any] | None = None, started: float | None = None) -> PreparedRun:
    """Model, data and trainer for ``config``, nothing trained yet (tests inspect the optimiser and schedule).

    The tasks are loaded and checked before the model, so a bad file fails in seconds. With ``train.max_seconds``
    the trainer stops before ``started`` (``_now()`` when the run began; default now) + max_seconds - the stop
    margin.
    """
    from arc_kit.models.training_model import load_training_model
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
        from arc_kit.models.training_model import backend_choice

        b = config.train.per_device_train_batch_size
        _, why = backend_choice(config.model.backend, config.train.fsdp, training_device(), here.num_processes)
        log.info(f"data: {len(data.train)} train examples from {data.train_stats.tasks} tasks, "
                 f"{0 if data.eval is None else len(data.eval)} eval examples from {data.eval_stats.tasks} held-out "
                 f"tasks; {data.train_stats.skipped_too_long} too long; backend {loaded.backend} ({why}), "
                 f"{loaded.dtype} weights; "
                 f"{here.num_processes} process(es) ({here.distributed_type}{', FSDP' if config.train.fsdp else ''}): "
                 f"effective batch {b} x {here.num_processes} = {b * here.num_processes} rows per step, "
                 f"{steps_per_epoch(len(data.train), b, here.num_processes)} steps per epoch")
    # Only now: trl must be imported after the model is loaded (Unsloth patches it when it is imported).
    from arc_kit.training.sft_trainer import ArcSFTTrainer, JsonlLogger, PaddingMeter, WallClockBudget

    log_path = run_dir / LOG_FILE
    meter = PaddingMeter()
    t = config.train
    budget = None
    if t.max_seconds is not None:
        budget = WallClockBudget((started if started is not None else _now()) + t.max_seconds - t.stop_margin_seconds,
                                 _now)
    trainer = ArcSFTTrainer(
        model=loaded.model,
        args=sft_config(config, run_dir, len(data.train), data.eval is not None, loaded.backend,
                        here.num_processes),
        train_dataset=data.train,
        eval_dataset=data.eval,
        processing_class=loaded.tokenizer,
        callbacks=[meter, JsonlLogger(log_path), *([budget] if budget else [])],
        arc_config=config,
        padding_meter=meter,
    )
    if config.train.fsdp and not trainer.is_fsdp_enabled and here.is_main:
        # accelerate shards only over GPUs (and other accelerators): a CPU launch runs DDP, one process no sharding
        log.warning(f"train.fsdp: not in effect on this launch ({here.num_processes} process(es), "
                    f"{trainer.accelerator.distributed_type.value}); FSDP needs several GPU processes, training "
                    "with a full copy per process instead")
    return PreparedRun(trainer, loaded, data, run_dir, log_path, budget)


def run_training(config: TrainConfig, resume: bool = False, resume_from: str | Path | None = None) -> TrainResult:
    """Train with ``config``; with ``resume``, continue from the newest complete checkpoint in ``train.output_dir``;
    with ``resume_from``, from the newest one at or below that folder (an earlier run's output, only read: the
    checkpoint and the log are copied into ``train.output_dir`` first, ``run_folder.adopt_checkpoint``).

    A resumed run ends at the same step count as an uninterrupted one (same data, schedule and seed); an earlier
    run of another config is refused (``run_folder.check_same_config``). Without either, a run folder that
    already holds checkpoints is refused so a run is never silently mixed with another. With ``train.max_seconds``
    the run may stop at its budget: a checkpoint, ``finished`` False, no ``final/``. Everything the user can get
    wrong (settings, task files, the run folder, its log, the folder to resume from) is checked before the model
    is loaded.
    """
    from arc_kit.training.distributed import launch, wait_for_everyone

    config.check()
    started = _now()
    run_dir = check_output_dir(config)
    checkpoint = last_checkpoint(run_dir)
    source = None  # a checkpoint of another run folder to go on from
    if resume_from is not None:
        source = resume_point(Path(resume_from))
        if source.parent.resolve() == run_dir.resolve():
            source, resume = None, True  # the run's own folder: --resume
        elif checkpoint:
            raise RunFolderError(f"{run_dir} already holds {checkpoint.name}: --resume-from needs a new "
                                 "train.output_dir (or pass --resume to continue the run in it)")
    elif checkpoint and not resume:
        raise RunFolderError(f"{run_dir} already holds {checkpoint.name}: pass --resume to continue that run, "
                             "or choose a new train.output_dir")
    here = launch()
    earlier = source.parent if source is not None else run_dir if resume and checkpoint else None
    if earlier is not None:
        check_same_config(earlier, config, here.num_processes, warn_unknown=source is not None)
    task_sets = load_task_sets(config)  # after the run folder's checks: it spools into the run folder
    if source is not None:
        resume, checkpoint = True, run_dir / source.name
    # the earlier run's checkpoint: its name in this folder, its path in another
    resumed_from = str(source) if source is not None else checkpoint.name if resume and checkpoint else None
    if resume and not checkpoint and here.is_main:
        log.warning(f"--resume: no complete checkpoint in {run_dir} yet, starting from step 0")
    if here.is_main:
        if source is not None:
            adopt_checkpoint(source, run_dir)
        restart_log(run_dir / LOG_FILE, checkpoint if resume and checkpoint else None)
        debug_dir = run_dir / DEBUG_DIR
        if debug_dir.is_dir() and not (resume and checkpoint):
            shutil.rmtree(debug_dir)
        atomic_write_json(run_dir / RUN_INFO_FILE, {  # a run killed later still says what it was
            "config": config.to_dict(), "finished": False, "stopped": None,
            "resumed_from": resumed_from, "parallel": {"num_processes": here.num_processes}}, indent=1)
    wait_for_everyone()  # no process starts logging before the main one has trimmed the log (and copied)
    run = prepare_run(config, task_sets, started)
    trainer, data, loaded = run.trainer, run.data, run.loaded
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if resume and checkpoint else None)
    steps = trainer.state.global_step
    stopped = STOPPED_AT_BUDGET if run.budget is not None and run.budget.stopped else None
    finished = stopped is None
    eval_loss = trainer.evaluate()["eval_loss"] if data.eval is not None and finished else None

    final_dir = run_dir / FINAL_DIR if finished else None
    if final_dir is not None:
        trainer.save_model(str(final_dir))  # every process calls it (FSDP gathers the shards); the main one writes
    else:
        log.info(f"train.max_seconds: stopped at step {steps} of {trainer.state.max_steps} with checkpoint-{steps} "
                 f"in {run_dir}; --resume (or --resume-from {run_dir} into a new folder) goes on from there")
    if config.train.debug_batches:
        record_final_weights(run_dir, here.process_index, trainer.model)
    train_loss = output.training_loss if output is not None else None
    num_eval = 0 if data.eval is None else len(data.eval)
    padding = all_processes_padding(trainer)
    batch = config.train.per_device_train_batch_size
    result = TrainResult(
        output_dir=run_dir, final_dir=final_dir, steps=steps, train_loss=train_loss, eval_loss=eval_loss,
        log_path=run.log_path, backend=loaded.backend, num_train_examples=len(data.train),
        num_eval_examples=num_eval, seconds=_now() - started, padding_fraction=padding["padding_fraction"],
        num_processes=here.num_processes, effective_batch_size=batch * here.num_processes,
        is_main_process=here.is_main, finished=finished, stopped=stopped,
        checkpoint=None if finished else run_dir / f"checkpoint-{steps}",
    )
    if not here.is_main:
        wait_for_everyone()
        return result
    if final_dir is not None:
        loaded.tokenizer.save_pretrained(str(final_dir))
    info = {
        "config": config.to_dict(),
        "finished": finished,
        "stopped": stopped,  # "max_seconds": the time budget ran out first; resume from checkpoint
        "checkpoint": None if result.checkpoint is None else result.checkpoint.name,
        "backend": loaded.backend,
        "base_model": loaded.source,
        "prompt_format": loaded.prompt_format.name,  # resolved (model.format may say auto); the export records it
        "is_peft": loaded.has_lora,
        "steps": steps,
        "max_steps": trainer.state.max_steps,
        "train_loss": train_loss,
        "eval_loss": eval_loss,
        "resumed_from": resumed_from,
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
                log.warning(f"{path}: dropped a torn last line {number} (the run was killed while writing it)")
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
