"""Training examples from a task: which pairs become targets, and a target rendered (in the model's prompt format)
and tokenized with its loss labels. Pre-training and test-time training both build their rows here, so both learn
the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arc_kit.core.formats import PromptFormat, encode_text
from arc_kit.core.tasks import Pair, Task
from arc_kit.core.text import TokenizerError

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


def tokenize_example(tokenizer: Any, prompt_format: PromptFormat, train: Sequence[Pair], target: Pair, *,
                     loss_on: str) -> dict[str, Any]:
    """Render one example in ``prompt_format`` and label what ``loss_on`` learns: the completion (the answer grid
    and the end-of-turn tokens), and with ``all_outputs`` every demonstration output in the prompt too.

    Each piece (``RenderedExample.pieces``) is tokenized on its own and the pieces' ids must be exactly the ids of
    the whole text; otherwise tokens merge across a boundary and a label would sit on a token the model never
    sees as such.
    """
    rendered = prompt_format.render(tokenizer, train, target.input, target.output)
    input_ids: list[int] = []
    labels: list[int] = []
    for text, learnt in rendered.pieces(loss_on):
        ids = encode_text(tokenizer, text)
        input_ids += ids
        labels += ids if learnt else [IGNORE_INDEX] * len(ids)
    if encode_text(tokenizer, rendered.text) != input_ids:
        raise TokenizerError(
            "tokenizing the prompt and the learnt grids piece by piece differs from tokenizing the whole text "
            f"(tokens merge across a boundary); the {loss_on} loss mask would be wrong with this tokenizer"
        )
    return {"text": rendered.text, "input_ids": input_ids, "labels": labels, "length": len(input_ids)}
