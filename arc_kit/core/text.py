"""Grid <-> text, the checks a tokenizer must pass (one token per cell and per newline), and fitting a task into a
context limit by dropping train pairs.

How a whole task becomes a prompt depends on the format the model was trained in: ``arc_kit.core.formats``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from arc_kit.core.tasks import MAX_SIDE, Grid, Pair, Task
from arc_kit.errors import ArcKitError


class ParseError(ValueError):
    """Generated text is not a grid; the message says why (empty, stray token, ragged rows, too large)."""


class TokenizerError(ArcKitError, ValueError):
    """The tokenizer cannot give one token per cell; training or decoding with it would be wrong."""


def grid_to_text(grid: Grid) -> str:
    """Rows of digits, each ending in a newline (the arc-kit format's grid; also a grid's stable text key)."""
    return "".join("".join(str(c) for c in row) + "\n" for row in grid)


def text_to_grid(text: str) -> Grid:
    """Parse an answer back into a grid, or raise ParseError saying why."""
    rows = [line.strip() for line in text.strip().split("\n")]
    if not rows or rows == [""]:
        raise ParseError("empty answer")
    if len(rows) > MAX_SIDE:
        raise ParseError(f"{len(rows)} rows, at most {MAX_SIDE}")
    width = len(rows[0])
    for r, row in enumerate(rows):
        if not row:
            raise ParseError(f"row {r} is empty")
        bad = next((ch for ch in row if ch not in "0123456789"), None)
        if bad is not None:
            raise ParseError(f"row {r} holds a stray character {bad!r}")
        if len(row) != width:
            raise ParseError(f"ragged rows: row {r} has {len(row)} cells, row 0 has {width}")
    if width > MAX_SIDE:
        raise ParseError(f"{width} columns, at most {MAX_SIDE}")
    return tuple(tuple(int(ch) for ch in row) for row in rows)


END_MARKERS = ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>")
"""Chat end-of-turn markers of the model families the kit loads (Qwen/ChatML, Llama 2, Llama 3)."""


def marker_end_ids(tokenizer: Any) -> list[int]:
    """The tokenizer's eos and the chat end markers it holds as special (added) tokens: in Qwen's vocabulary
    ``</s>`` is also plain text, which ends nothing."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    added = tokenizer.get_added_vocab()
    ids.update(added[m] for m in END_MARKERS if m in added)
    return sorted(ids)


def answer_from_generation(text: str) -> Grid:
    """The grid in generated text, read up to its first end marker."""
    for marker in END_MARKERS:
        text = text.split(marker, 1)[0]
    return text_to_grid(text)


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer checks and token counting


def check_tokenizer(tokenizer: Any) -> None:
    """Refuse a tokenizer that merges cells, or rows, into fewer tokens (the model could not address cells)."""
    sample = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9), (9, 9, 0, 0, 1))
    text = grid_to_text(sample)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    expected = sum(len(r) for r in sample) + len(sample)
    if len(ids) != expected:
        raise TokenizerError(
            f"tokenizer {type(tokenizer).__name__} turns a 3x5 grid into {len(ids)} tokens, expected {expected} "
            "(one per cell and one per newline); it merges digits or newlines. Use a tokenizer that splits digits "
            "(Qwen2/2.5/3, Llama-3) or the ARC tokenizer from `arc-kit tiny-model`."
        )
    for digit in range(10):
        if len(tokenizer(str(digit), add_special_tokens=False)["input_ids"]) != 1:
            raise TokenizerError(f"digit {digit} is not a single token in {type(tokenizer).__name__}")
    # A vocabulary without the digits passes the counts (each digit becomes the unknown token): the cells must
    # also be told apart.
    row = "0123456789\n"
    cells = list(tokenizer(row, add_special_tokens=False)["input_ids"])
    unknown = getattr(tokenizer, "unk_token_id", None)
    if len(set(cells)) != len(row) or (unknown is not None and unknown in cells):
        raise TokenizerError(
            f"tokenizer {type(tokenizer).__name__} does not give 0-9 and newline eleven different tokens of its "
            f"vocabulary ({len(set(cells))} distinct{', some unknown' if unknown in cells else ''}): the model "
            "could not write a grid. Use a tokenizer whose vocabulary holds the digits."
        )


def physical_tokens(grid: Grid) -> int:
    """Cells plus one newline per row: the least any one-token-per-cell format can spend on a grid."""
    return len(grid) * (len(grid[0]) + 1)


def largest_answer_tokens(task: Task) -> int:
    """Room to reserve for an unknown answer: as large as the task's train outputs suggest, or 30x30.

    When every train output has the same shape as its input, we reserve for the largest input (plus slack);
    otherwise we can't tell and reserve a full 30x30 grid.
    """
    same_shape = all(len(p.input) == len(p.output) and len(p.input[0]) == len(p.output[0]) for p in task.train)
    if same_shape:
        rows = max(max(len(p.output) for p in task.train), max(len(p.input) for p in task.test))
        cols = max(max(len(p.output[0]) for p in task.train), max(len(p.input[0]) for p in task.test))
        return rows * (cols + 1)
    rows = max(len(p.output) for p in task.train)
    cols = max(len(p.output[0]) for p in task.train)
    if all(len(p.output) <= len(p.input) and len(p.output[0]) <= len(p.input[0]) for p in task.train):
        rows = max(rows, max(len(p.input) for p in task.test))
        cols = max(cols, max(len(p.input[0]) for p in task.test))
        return rows * (cols + 1)
    return MAX_SIDE * (MAX_SIDE + 1)


@dataclass(frozen=True)
class FittedPrompt:
    train: tuple[Pair, ...]  # the train pairs kept, in their original order
    dropped: int  # how many train pairs were dropped to fit
    prompt_ids: tuple[int, ...]  # the rendered prompt's tokens, counted while fitting and carried on, not redone
    reserved_tokens: int  # room kept for the answer (its real length when known)
    fits: bool  # False only when even one train pair does not fit; we still answer with what we have

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)


def fit_train_pairs(
    train: Sequence[Pair],
    test_input: Grid,
    encode_prompt: Callable[[Sequence[Pair], Grid], Sequence[int]],
    max_length: int,
    reserved_tokens: int,
) -> FittedPrompt:
    """Drop train pairs, largest first, until prompt + reserved answer fits ``max_length``.

    Why largest first: a big pair costs the most context and a task's examples usually teach the same rule, so
    keeping more small pairs keeps more evidence per token. The test input is never dropped, and at least one train
    pair is always kept (a prompt without examples cannot be answered).
    """
    kept = list(range(len(train)))
    ids = tuple(encode_prompt(train, test_input))
    while len(ids) + reserved_tokens > max_length and len(kept) > 1:
        largest = max(kept, key=lambda i: (physical_tokens(train[i].input) + physical_tokens(train[i].output), i))
        kept.remove(largest)
        ids = tuple(encode_prompt([train[i] for i in kept], test_input))
    return FittedPrompt(
        train=tuple(train[i] for i in kept),
        dropped=len(train) - len(kept),
        prompt_ids=ids,
        reserved_tokens=reserved_tokens,
        fits=len(ids) + reserved_tokens <= max_length,
    )
