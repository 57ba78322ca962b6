"""A minimal greedy exact-grid check for training runs (learning benchmark, export tests).

One view, one attempt, the kit's own batched greedy decoder (``arc_kit.solve.decoding``): enough to tell whether a
model learnt a task family. The competition's solver (views, search, re-scoring, two attempts, deadlines) is
``arc_kit.solve.solver``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arc_kit.config.run import SolverSettings
from arc_kit.core.augment import View
from arc_kit.core.formats import PromptFormat
from arc_kit.core.tasks import Grid, Task
from arc_kit.core.text import ParseError


def greedy_answers(model: Any, tokenizer: Any, prompt_format: PromptFormat, tasks: Sequence[Task],
                   solver: SolverSettings) -> list[Grid | None]:
    """The greedy answer to each task's first test input in ``prompt_format`` (None where the output does not
    parse as a grid), decoded as ``solver`` says (context, batch size, cache)."""
    from arc_kit.solve.decoding import DecodeRequest, GreedyDecoder
    from arc_kit.solve.prompts import task_prompts

    requests = []
    for task in tasks:
        first = task_prompts(task, tokenizer, prompt_format, [View()], solver.max_length)[0]
        requests.append(DecodeRequest(task.task_id, first.token_ids, first.max_new_tokens))
    was_training = model.training
    model.eval()
    try:
        generations = GreedyDecoder.for_config(model, tokenizer, str(model.device), solver).decode(requests)
    finally:
        model.train(was_training)
    answers: list[Grid | None] = []
    for generation in generations:
        try:
            text = tokenizer.decode(generation.token_ids, skip_special_tokens=False)
            answers.append(prompt_format.parse_answer(text))
        except ParseError:
            answers.append(None)
    return answers


def exact_accuracy(model: Any, tokenizer: Any, prompt_format: PromptFormat, tasks: Sequence[Task],
                   solver: SolverSettings) -> float:
    """Share of tasks whose first test output is reproduced exactly by greedy decoding."""
    answers = greedy_answers(model, tokenizer, prompt_format, tasks, solver)
    right = sum(a == t.test[0].output for a, t in zip(answers, tasks, strict=True))
    return right / len(tasks) if tasks else 0.0
