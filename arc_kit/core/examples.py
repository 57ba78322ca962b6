"""Training examples from a task: which pairs become targets, and a target rendered and tokenized with its loss
labels. Pre-training and test-time training both build their rows here, so both learn the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arc_kit.core.tasks import Pair, Task
from arc_kit.core.text import TokenizerError, render

IGNORE_INDEX = -100  # the label of a token the loss skips (PyTorch's cross-entropy default)


def example_targets(task: Task, use_test_pairs: bool = True, leave_one_out: bool = True) -> list[Task]:
    """The (context, target) problems of one task, each as a one-test-pair Task.

    Why leave-one-out: hidden tasks come without answers, but their train pairs are answered puzzles of the same
    rule, so each can be a target with the rest as context (needs >= 2 train pairs).
    """
    problems = []
    if use_test_pairs:
        for p in task.test:
            if p.output is not None:
                problems.append(Task(task.task_id, task.train, (p,)))
    if leave_one_out and len(task.train) >= 2:
        for i, p in enumerate(task.train):
            problems.append(Task(task.task_id, task.train[:i] + task.train[i + 1 :], (p,)))
    return problems


def tokenize_example(tokenizer: Any, train: Sequence[Pair], target: Pair) -> dict[str, Any]:
    """Render one example and label only its completion (the answer grid and the end-of-turn tokens)."""
    rendered = render(tokenizer, train, target.input, target.output)
    prompt_ids = tokenizer(rendered.prompt, add_special_tokens=False)["input_ids"]
    input_ids = tokenizer(rendered.text, add_special_tokens=False)["input_ids"]
    if input_ids[: len(prompt_ids)] != prompt_ids:
        raise TokenizerError(
            "the tokenized prompt is not a prefix of the tokenized prompt+answer (tokens merge across the boundary); "
            "the answer-only loss mask would be wrong with this tokenizer"
        )
    labels = [IGNORE_INDEX] * len(prompt_ids) + input_ids[len(prompt_ids) :]
    return {"text": rendered.text, "input_ids": input_ids, "labels": labels, "length": len(input_ids)}
