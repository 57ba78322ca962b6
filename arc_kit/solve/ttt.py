"""Per-task test-time training (TTT): a fresh LoRA trained on one task's demonstration pairs before it is solved.

Why: the strongest 2024-2025 entries gain most of their score here (NVARC, 1st in 2025; the ARChitects' Table 1:
26.0 -> 40.5 on 100 ARC-AGI-1 evaluation tasks). A hidden task has no answer, but its demonstration pairs are
solved puzzles of the same rule, so each can be a target with the others as context (leave-one-out).

How it fits the kit:

- ``ttt_examples(task, tokenizer, prompt_format, config)``: the task's training rows, from its demonstration pairs only (the test
  inputs are never seen), under random views (D8 x colour permutation x demo order), fitted to ``max_length``.
- ``TaskAdapter(loaded, config)``: adds one LoRA to the loaded (merged) model in place and snapshots it;
  ``train(task, stop_at)`` restores the snapshot, trains on the task's rows with a fresh optimiser and schedule,
  and leaves the model in eval mode with the adapter active, so an ``ArcSolver`` built on the same ``LoadedModel``
  decodes with the adapted weights; ``reset()`` puts the snapshot back bit for bit (the base answers again).

The model is always a merged one: ``arc_kit.models.loading.load_model`` merges an adapter folder (a LoRA export) into
its base at load time, so TTT adds its LoRA on top of the merged weights; a ``PeftModel`` handed in directly is
merged first (``TaskAdapter`` says so in the log). The adapter is never merged, since ``reset`` needs it separate.

On CUDA the same code runs on a transformers-loaded model (mixed precision in the dtype it was loaded in: bf16, or
fp16 on a GPU without bf16, by ``arc_kit.models.precision.choose_dtype``; gradient checkpointing). A model loaded
through Unsloth (``backend == "unsloth"``) is in Unsloth's inference mode; this module adds a plain peft LoRA and
trains through the patched forward without Unsloth's own ``get_peft_model``/``for_training``; this path has not
run on a GPU in the kit's tests. If it misbehaves there, load with ``use_unsloth = False``.

torch, transformers and peft are imported inside functions: the runner imports solver modules in worker processes
only after it has set ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from arc_kit.config.run import CPU_TTT_MAX_LENGTH, TTTSettings
from arc_kit.core.augment import View, views_for_task
from arc_kit.core.examples import IGNORE_INDEX, tokenize_example
from arc_kit.core.formats import PromptFormat, fit_for_tokenizer
from arc_kit.core.tasks import Task
from arc_kit.errors import ArcKitError
from arc_kit.models.lora import add_lora

log = logging.getLogger(__name__)

ROW_KEYS = ("input_ids", "labels")  # what the trainer sees of a row; the rest is metadata for checks and reports


def _now() -> float:
    """The clock ``stop_at`` is compared with (unix seconds, as the solver's deadlines); a name of its own so a test
    can move it."""
    return time.time()


class TTTError(ArcKitError, ValueError):
    """A TTT setting cannot work, or the model cannot take a TTT adapter; the message names the field or why."""


# ---------------------------------------------------------------------------------------------------------------
# Data


def ttt_examples(task: Task, tokenizer: Any, prompt_format: PromptFormat,
                 config: TTTSettings | None = None) -> list[dict[str, Any]]:
    """The training rows for one task in ``prompt_format``, in training order, at most ``config.max_samples``.

    Each row holds ``input_ids`` and ``labels`` (-100 on the prompt: the query's output grid and the end of turn
    are learnt, and with ``loss_on = "all_outputs"`` every context output too, which makes a row NVARC's: all the
    demonstrations as one chat, loss on every output) and metadata to check it by: ``task_id``, ``view`` (the view key), ``query_index`` (the
    demonstration pair that is the target, as indexed in ``task.train``), ``context_indices`` (the demonstration
    pairs in the prompt, in prompt order, same indexing) and ``length``.

    Why this shape:
    - only ``task.train`` is used, so no test input can be a target or even appear in a prompt;
    - leave-one-out (the query is never in its own context): each view yields one row per demonstration pair, so
      every pair is the query about equally often; a task with a single pair has nothing to leave out: [] (no TTT);
    - views come from ``views_for_task`` seeded by the task id and ``config.seed`` (a stable string, never
      ``hash()``), the first being the task as given, the rest a D8 element, a colour permutation (0 kept; none
      without ``colour_views``) and a shuffled demo order, so the same task gets the same rows in any process;
    - each prompt is fitted to ``max_length`` by dropping context pairs (largest first) with the real answer length
      reserved; a row that cannot fit even one context pair is left out. ``max_length`` unset (a ``TaskAdapter``
      fits it to its GPU first): ``CPU_TTT_MAX_LENGTH``;
    - the rows are shuffled with a seeded generator, so the first ``max_samples`` rows and the
      sequential training order mix views and queries.
    """
    config = config or TTTSettings()
    if config.max_length is None:
        config = dataclasses.replace(config, max_length=CPU_TTT_MAX_LENGTH)
    demos = task.train
    if len(demos) < 2:
        return []
    demo_task = Task(task.task_id, demos, ())
    n_views = math.ceil(config.max_samples / len(demos))
    rows: list[dict[str, Any]] = []
    for view in views_for_task(demo_task, n_views, config.seed, permute_colours=config.colour_views):
        rows += _view_rows(demo_task, view, tokenizer, prompt_format, config)
    random.Random(f"ttt-rows:{config.seed}:{task.task_id}").shuffle(rows)
    return rows[: config.max_samples]


def _view_rows(demo_task: Task, view: View, tokenizer: Any, prompt_format: PromptFormat,
               config: TTTSettings) -> list[dict[str, Any]]:
    """One row per demonstration pair as the query under ``view``, the other pairs (in the view's order) as
    context."""
    seen = view.apply_task(demo_task)
    order = view.pair_order or tuple(range(len(demo_task.train)))  # seen.train[k] is demo_task.train[order[k]]
    rows = []
    for k, query in enumerate(seen.train):
        context = seen.train[:k] + seen.train[k + 1 :]
        problem = Task(demo_task.task_id, context, (query,))
        fitted = fit_for_tokenizer(tokenizer, prompt_format, problem, 0, config.max_length, answer=query.output)
        if not fitted.fits:
            continue
        # Which pairs were kept, by identity (a task may hold two equal pairs).
        kept = [next(j for j, p in enumerate(seen.train) if p is q) for q in fitted.train]
        row = tokenize_example(tokenizer, prompt_format, fitted.train, query, loss_on=config.loss_on)
        del row["text"]
        row.update(task_id=demo_task.task_id, view=view.key, query_index=order[k],
                   context_indices=tuple(order[j] for j in kept))
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Training


@dataclass
class TTTStats:
    """What one task's training did (``TaskResult.ttt`` takes ``to_dict()``)."""

    steps: int = 0
    loss_first: float | None = None  # the first step's loss (before any update had an effect)
    loss_last: float | None = None  # the last step's loss
    seconds: float = 0.0
    stopped_early: bool = False  # stop_at came before the last step
    samples: int = 0  # rows built for the task (0: one demonstration pair, or none fits: no training)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_precision(dtype: Any, config: TTTSettings) -> None:
    """Refuse trained embeddings on a model held in float16 (a GPU without bfloat16: T4, P100, V100): the gradient
    scaler needs them in float32, and a float32 embedding copy would then feed float32 activations into the
    float16 layers when the solver decodes (no autocast there). LoRA matrices are float32 already (peft)."""
    import torch

    if config.enabled and config.lora.train_embeddings and dtype == torch.float16:
        raise TTTError("ttt.lora.train_embeddings needs a GPU that computes in bfloat16 (compute capability >= 8.0: "
                       "L4, A100, H100); this model is held in float16: set ttt.lora.train_embeddings = false")


class TaskAdapter:
    """One LoRA on a loaded model, trained afresh for each task.

    Why one adapter, snapshot and restore (NVARC's scheme) rather than a new adapter per task: adding and removing
    peft layers per task rebuilds modules and leaks memory on long runs; copying the snapshot back is a few tensor
    copies and restores the initial weights bit for bit, so a task's training never depends on the tasks before it.

    Why the transformers ``Trainer`` rather than a loop of our own: it costs about 0.3 s per task over a plain
    AdamW + cosine + clipping loop on a CPU (mostly the ``gc.collect`` at the start of ``train()``), nothing against
    the tens of seconds a task's training takes on a GPU, and gives the same losses. Plain ``Trainer`` rather than
    ``SFTTrainer``: the rows are already tokenised and labelled, and SFTTrainer's per-step metrics would only cost
    time.
    """

    def __init__(self, loaded: Any, config: TTTSettings | None = None) -> None:
        """``loaded``: an ``arc_kit.models.loading.LoadedModel``; its ``model`` gets the LoRA in place (the same
        object, so solvers already built on it see the adapter too). ``config.max_length`` unset is fitted to the
        memory the model's device has free now (``models.memory.fit_settings``; a solver passes it set)."""
        from arc_kit.models.memory import fit_settings

        self.loaded = loaded
        config = (config or TTTSettings()).check()
        check_precision(loaded.dtype, config)
        if config.max_length is None:
            _, config = fit_settings(None, config, loaded)
        self.config = config
        self.peft_model = self._add_lora()
        self._snapshot = self.adapter_state()
        self.peft_model.eval()

    # -- the adapter

    def _add_lora(self) -> Any:
        import torch
        from peft import PeftModel
        from peft.tuners.tuners_utils import BaseTunerLayer

        model = self.loaded.model
        if isinstance(model, PeftModel):
            log.warning("TTT: the loaded model carries a peft adapter; merging it so TTT adds its own on top")
            model = model.merge_and_unload()
            self.loaded.model = model
        if any(isinstance(m, BaseTunerLayer) for m in model.modules()):
            raise TTTError("the model already holds LoRA layers (a TaskAdapter was made on it before?): make one "
                           "TaskAdapter per loaded model")
        c = self.config
        with torch.random.fork_rng(devices=[]):
            # The LoRA's initial weights come from the seed; the global RNG is left as it was.
            torch.manual_seed(c.seed)
            return add_lora(model, c.lora)

    def trainable(self) -> dict[str, Any]:
        """The parameters training changes, by name: LoRA A/B matrices and, with ``lora.train_embeddings``, the trained
        copies of ``embed_tokens`` and ``lm_head``."""
        return {n: p for n, p in self.peft_model.named_parameters() if p.requires_grad}

    def adapter_state(self) -> dict[str, Any]:
        """A detached copy of every trainable parameter (what the snapshot holds)."""
        import torch

        with torch.no_grad():
            return {n: p.detach().clone() for n, p in self.trainable().items()}

    def reset(self) -> None:
        """Put the snapshot taken at creation back, bit for bit, and leave the model in eval mode: with B = 0 the
        LoRA adds nothing, so the model answers as the base does."""
        import torch

        params = self.trainable()
        if params.keys() != self._snapshot.keys():
            raise TTTError("the adapter's trainable parameters changed since the snapshot")
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(self._snapshot[name])
        self.peft_model.eval()

    # -- training

    def train(self, task: Task, stop_at: float | None = None) -> TTTStats:
        """Reset, then train on ``ttt_examples(task)`` for ``config.epochs`` with a fresh optimiser and schedule.

        ``stop_at`` (unix seconds) is checked before the first step and after every step; training stops there
        cleanly, keeping the updates made (the schedule stays the full run's). Afterwards the model is in eval
        mode with the adapter active. A task with one demonstration pair, a ``stop_at`` already past, or
        ``enabled = False`` trains 0 steps and leaves the reset model, which answers as the base does.
        The ``Trainer`` seeds Python's, numpy's and torch's global generators with ``config.seed`` (as it always
        does); the solver draws its views from its own seeded generators, so answers do not change with that.
        """
        began = time.time()
        self.reset()
        if not self.config.enabled:
            return TTTStats(seconds=time.time() - began)
        rows = ttt_examples(task, self.loaded.tokenizer, self.loaded.prompt_format, self.config)
        stats = TTTStats(samples=len(rows))
        if not rows or (stop_at is not None and _now() >= stop_at):
            stats.stopped_early = bool(rows)
            stats.seconds = time.time() - began
            return stats
        model = self.peft_model
        use_cache = getattr(model.config, "use_cache", None)
        trainer = self._trainer(rows, stats, stop_at)
        try:
            trainer.train()
        finally:
            # Free the AdamW moments now (the Trainer's objects hold cycles that only the next gc.collect, at the
            # next task's train(), would break); accelerator.free_memory() would cost a gc.collect per task.
            optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
            if optimizer is not None:
                optimizer.state.clear()
            del trainer, optimizer
            if use_cache is not None:
                model.config.use_cache = use_cache
            model.eval()
        total = math.ceil(len(rows) / self.config.batch_size) * self.config.epochs
        stats.stopped_early = stats.steps < total
        stats.seconds = time.time() - began
        return stats

    def _trainer(self, rows: Sequence[dict[str, Any]], stats: TTTStats, stop_at: float | None) -> Any:
        import tempfile

        from transformers import PrinterCallback, ProgressCallback, TrainingArguments

        from arc_kit.models.training_args import training_arguments
        from arc_kit.solve.ttt_trainer import SequentialTrainer, Watch

        c = self.config
        device = str(self.loaded.device)
        args = training_arguments(
            TrainingArguments,
            device=device,
            dtype=self.loaded.dtype,  # mixed precision in the type the weights were loaded in
            checkpointing=device.startswith("cuda") and c.gradient_checkpointing,
            warmup_ratio=c.warmup_ratio,
            output_dir=tempfile.gettempdir(),  # nothing is saved (save_strategy "no"); the argument is required
            per_device_train_batch_size=c.batch_size,
            num_train_epochs=c.epochs,
            learning_rate=c.learning_rate,
            lr_scheduler_type=c.lr_scheduler,
            weight_decay=c.weight_decay,
            optim=c.optim,
            max_grad_norm=c.max_grad_norm,
            seed=c.seed,
            data_seed=c.seed,
            logging_steps=1,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            remove_unused_columns=False,
            label_names=["labels"],
        )
        pad_id = self.loaded.tokenizer.pad_token_id
        trainer = SequentialTrainer(
            model=self.peft_model, args=args, train_dataset=[{k: r[k] for k in ROW_KEYS} for r in rows],
            data_collator=lambda batch: collate(batch, pad_id if pad_id is not None else 0),
            callbacks=[Watch(stats, stop_at, _now)],
        )
        trainer.remove_callback(PrinterCallback)  # a kernel log line per step per task is noise
        trainer.remove_callback(ProgressCallback)
        return trainer


def collate(batch: Sequence[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch: ``pad_id`` in the inputs, -100 in the labels, 0 in the attention mask."""
    import torch

    width = max(len(r["input_ids"]) for r in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, r in enumerate(batch):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"], dtype=torch.long)
        labels[i, :n] = torch.tensor(r["labels"], dtype=torch.long)
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
