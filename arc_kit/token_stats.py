"""Token statistics: how long each prompt + answer is, against the physical floor of the grids it holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from arc_kit.tasks import TaskSet
from arc_kit.text import fit_for_tokenizer, physical_tokens, render


@dataclass
class TestInputTokens:
    task_id: str
    test_index: int
    tokens: int  # prompt + answer (the real answer when known, else the room reserved for it)
    physical: int  # cells + rows of every grid the example holds (train pairs kept, test input, answer)
    dropped_pairs: int
    fits: bool


def token_stats(tasks: TaskSet, tokenizer: Any, max_length: int) -> dict[str, Any]:
    rows: list[TestInputTokens] = []
    for task in tasks:
        for i, pair in enumerate(task.test):
            fitted = fit_for_tokenizer(tokenizer, task, i, max_length, answer=pair.output)
            if pair.output is not None:
                example = render(tokenizer, fitted.train, pair.input, pair.output)
                n = len(tokenizer(example.text, add_special_tokens=False)["input_ids"])
                answer_physical = physical_tokens(pair.output)
            else:
                n = fitted.prompt_tokens + fitted.reserved_tokens
                answer_physical = fitted.reserved_tokens
            physical = (
                sum(physical_tokens(p.input) + physical_tokens(p.output) for p in fitted.train)
                + physical_tokens(pair.input)
                + answer_physical
            )
            rows.append(TestInputTokens(task.task_id, i, n, physical, fitted.dropped, n <= max_length))
    total = sum(r.tokens for r in rows)
    total_physical = sum(r.physical for r in rows)
    return {
        "test_inputs": len(rows),
        "max_length": max_length,
        "total_tokens": total,
        "total_physical": total_physical,
        "overhead_ratio": total / total_physical if total_physical else 0.0,
        "overhead_per_test_input": (total - total_physical) / len(rows) if rows else 0.0,
        "max_tokens": max((r.tokens for r in rows), default=0),
        "fit": sum(r.fits for r in rows),
        "needed_pairs_dropped": sum(r.dropped_pairs > 0 for r in rows),
        "per_test_input": [asdict(r) for r in rows],
    }
