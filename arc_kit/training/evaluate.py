"""A minimal greedy exact-grid check for training runs (learning benchmark, export tests).

One view, one attempt, ``model.generate(do_sample=False)`` in batches: enough to tell whether a model learnt a
task family. The competition's decoding (views, voting, two attempts, deadlines) lives in ``arc_kit.inference``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arc_kit.tasks import Grid, Task
from arc_kit.text import ParseError, answer_from_generation, fit_for_tokenizer, largest_answer_tokens, render


def greedy_answers(
    model: Any, tokenizer: Any, tasks: Sequence[Task], max_length: int = 2048, batch_size: int = 16
) -> list[Grid | None]:
    """The greedy answer to each task's first test input (None where the output does not parse as a grid)."""
    import torch

    prompts, budgets = [], []
    for task in tasks:
        fitted = fit_for_tokenizer(tokenizer, task, 0, max_length)
        prompts.append(render(tokenizer, fitted.train, task.test[0].input).prompt)
        budgets.append(largest_answer_tokens(task) + 4)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # decoder-only models continue on the right
    answers: list[Grid | None] = []
    model.eval()
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                out = model.generate(
                    **enc, do_sample=False, max_new_tokens=max(budgets[start : start + batch_size]),
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                )
            for row in out[:, enc["input_ids"].shape[1] :]:
                try:
                    answers.append(answer_from_generation(tokenizer.decode(row, skip_special_tokens=False)))
                except ParseError:
                    answers.append(None)
    finally:
        tokenizer.padding_side = side
    return answers


def exact_accuracy(model: Any, tokenizer: Any, tasks: Sequence[Task], max_length: int = 2048) -> float:
    """Share of tasks whose first test output is reproduced exactly by greedy decoding."""
    answers = greedy_answers(model, tokenizer, tasks, max_length)
    right = sum(a == t.test[0].output for a, t in zip(answers, tasks, strict=True))
    return right / len(tasks) if tasks else 0.0
