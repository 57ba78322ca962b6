"""The transformers ``Trainer`` pieces of test-time training (``arc_kit.solve.ttt``): a trainer that reads the rows
in the order given, and a callback that records the losses and stops at the deadline.

torch and transformers are imported at the top, so ``TaskAdapter`` imports this module only when it trains: the
runner imports solver modules in worker processes only after it has set ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import SequentialSampler
from transformers import Trainer, TrainerCallback


class SequentialTrainer(Trainer):
    """A ``Trainer`` that reads the rows in the order given: ``ttt_examples`` already shuffled them from the task id
    and seed, so the order cannot depend on the global RNG (and so on what ran before)."""

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        return SequentialSampler(self.train_dataset if train_dataset is None else train_dataset)


class Watch(TrainerCallback):
    """Record each step's loss and the step count in ``stats`` (a ``ttt.TTTStats``); stop once ``clock()`` (unix
    seconds) reaches ``stop_at``."""

    def __init__(self, stats: Any, stop_at: float | None, clock: Callable[[], float]) -> None:
        self.stats, self.stop_at, self.clock = stats, stop_at, clock

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            loss = float(logs["loss"])
            self.stats.loss_first = loss if self.stats.loss_first is None else self.stats.loss_first
            self.stats.loss_last = loss

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.stats.steps = state.global_step
        if self.stop_at is not None and self.clock() >= self.stop_at:
            control.should_training_stop = True
