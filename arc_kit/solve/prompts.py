"""A task's prompts: one per (test input, view), fitted to the context once, carrying its token ids and its view's
key, so any candidate can be inverted from its own record. And what a task costs, for the runner's queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arc_kit.core.augment import View
from arc_kit.core.formats import PromptFormat, fit_for_tokenizer
from arc_kit.core.tasks import Task
from arc_kit.core.text import largest_answer_tokens, physical_tokens


@dataclass(frozen=True)
class Prompt:
    task_id: str
    test_index: int
    view_key: str  # arc_kit.core.augment.View key: View.from_key(view_key).invert_grid(answer) is the task's frame
    token_ids: tuple[int, ...]
    max_new_tokens: int  # the largest answer this prompt allows, end tokens included
    pairs_dropped: int


def task_prompts(task: Task, tokenizer: Any, prompt_format: PromptFormat, views: list[View],
                 max_length: int) -> list[Prompt]:
    """One prompt per (test input, view) in ``prompt_format``, each rendered and tokenized once while its train
    pairs are fitted."""
    prompts = []
    for view in views:
        viewed = view.apply_task(task)
        for index in range(len(viewed.test)):
            fitted = fit_for_tokenizer(tokenizer, prompt_format, viewed, index, max_length)
            room = max(1, max_length - fitted.prompt_tokens)
            prompts.append(Prompt(task.task_id, index, view.key, fitted.prompt_ids,
                                  min(fitted.reserved_tokens, room), fitted.dropped))
    return prompts


def task_cost(task: Task) -> int:
    """Tokens a task costs, roughly: its grids plus the answer room; orders the queue shortest first."""
    grids = sum(physical_tokens(p.input) + physical_tokens(p.output) for p in task.train)
    return grids + sum(physical_tokens(p.input) for p in task.test) + largest_answer_tokens(task) * len(task.test)
