"""The trainer a run drives and its callbacks: TRL's ``SFTTrainer`` with the recipe's optimiser groups,
length-grouped batches and a padding count (``ArcSFTTrainer``), the padding meter and the JSON-lines log.

trl and transformers are imported at the top, so this module is imported only once the model is loaded
(``trainer.prepare_run``): Unsloth patches trl when it is imported, which must come first.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState
from trl import SFTTrainer

from arc_kit.config.training import TrainConfig
from arc_kit.training.debug_batches import record_batch

EMBEDDING_NAMES = ("embed_tokens", "lm_head", "wte", "embed_out")


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


class ArcSFTTrainer(SFTTrainer):
    """SFTTrainer with the recipe's optimiser groups, length-grouped batches and a padding count."""

    def __init__(self, *args: Any, arc_config: TrainConfig, padding_meter: PaddingMeter, **kwargs: Any) -> None:
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
        # The dataloader splits the sampler's index stream into batches of this same size, so they are its batches.
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


class PaddingMeter(TrainerCallback, ExportableState):
    """Counts real and padded tokens of the batches trained on (the trainer feeds it every batch).

    Why a callback: the Trainer saves the state of ``ExportableState`` callbacks in each checkpoint's
    ``trainer_state.json``, so a resumed run goes on counting from the checkpoint. With several GPUs it counts this
    process's batches.
    """

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


class JsonlLogger(TrainerCallback):
    """Append each log event (loss, learning_rate, eval_loss, ...) as one JSON line, tagged with the step."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "epoch": state.epoch, "time": round(time.time(), 3), **logs}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


class WallClockBudget(TrainerCallback):
    """Stops a run cleanly before ``deadline`` (``clock()`` seconds): after a step, when the next one would end past
    it, the Trainer is told to save a checkpoint and stop; the schedule is left as it is (a resumed run goes on
    with it). A step's length is guessed as the longest of the last ``window`` intervals between steps (which
    include the evaluations and saves between them). Every process takes the same decision (the slowest one's),
    so none waits at a collective the others have left. ``stopped`` tells the caller it happened."""

    def __init__(self, deadline: float, clock: Callable[[], float], window: int = 10) -> None:
        self.deadline, self.clock = deadline, clock
        self.intervals: deque[float] = deque(maxlen=window)
        self.last: float | None = None
        self.stopped = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.last = self.clock()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        now = self.clock()
        if self.last is not None:
            self.intervals.append(now - self.last)
        self.last = now
        past = now + max(self.intervals, default=0.0) > self.deadline
        if not _any_process(past, args) or control.should_training_stop:  # the last step ends the run anyway
            return
        control.should_save = True
        control.should_training_stop = True
        self.stopped = True

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.stopped:  # the epoch's evaluation would spend the margin
            control.should_evaluate = False


def _any_process(flag: bool, args: Any) -> bool:
    """``flag`` or-ed over every process of the run (one all-reduce; the flag itself alone)."""
    import torch

    if args.world_size <= 1 or not torch.distributed.is_initialized():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=args.device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item() > 0)
