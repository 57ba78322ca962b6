"""Grid <-> text, the chat prompt of the recipe, and fitting a task into a context limit.

This is the one place a grid becomes text. Training and inference both call it, so a change to the format changes
both together.

Format (one token per cell, one newline per row, with every tokenizer we accept)::

    user:      Input:\\n012\\n345\\nOutput:\\n...\\n  (each train pair)  Test input:\\n...\\nTest output:
    assistant: 012\\n345\\n
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from arc_kit.core.tasks import MAX_SIDE, Grid, Pair, Task
from arc_kit.errors import ArcKitError

INPUT_LABEL = "Input:\n"
OUTPUT_LABEL = "Output:\n"
TEST_INPUT_LABEL = "Test input:\n"
TEST_OUTPUT_LABEL = "Test output:"


class ParseError(ValueError):
    """Generated text is not a grid; the message says why (empty, stray token, ragged rows, too large)."""


class TokenizerError(ArcKitError, ValueError):
    """The tokenizer cannot give one token per cell; training or decoding with it would be wrong."""


def grid_to_text(grid: Grid) -> str:
    """Rows of digits, each ending in a newline."""
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


def prompt_text(train: Sequence[Pair], test_input: Grid) -> str:
    """The user message: every train pair, the test input, then ``Test output:``."""
    parts = [INPUT_LABEL + grid_to_text(p.input) + OUTPUT_LABEL + grid_to_text(p.output) for p in train]
    parts.append(TEST_INPUT_LABEL + grid_to_text(test_input) + TEST_OUTPUT_LABEL)
    return "".join(parts)


def chat_messages(train: Sequence[Pair], test_input: Grid, answer: Grid | None = None) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": prompt_text(train, test_input)}]
    if answer is not None:
        messages.append({"role": "assistant", "content": grid_to_text(answer)})
    return messages


@dataclass(frozen=True)
class RenderedExample:
    """A prompt rendered with the chat template, and the completion that follows it (answer + end of turn)."""

    prompt: str
    completion: str

    @property
    def text(self) -> str:
        return self.prompt + self.completion


def render(tokenizer: Any, train: Sequence[Pair], test_input: Grid, answer: Grid | None = None) -> RenderedExample:
    """Render with the tokenizer's chat template; ``completion`` is empty when there is no answer.

    The completion is the full text minus the generation prompt, so the loss mask and the decoder see exactly the
    tokens the model must produce, end-of-turn marker included.
    """
    prompt = tokenizer.apply_chat_template(
        chat_messages(train, test_input), tokenize=False, add_generation_prompt=True
    )
    if answer is None:
        return RenderedExample(prompt, "")
    full = tokenizer.apply_chat_template(chat_messages(train, test_input, answer), tokenize=False)
    if not full.startswith(prompt):
        raise TokenizerError("the chat template does not render the answer as a continuation of the prompt")
    return RenderedExample(prompt, full[len(prompt) :])


def answer_from_generation(text: str) -> Grid:
    """Cut generated text at the first end marker and parse the grid."""
    for marker in ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>"):
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


def fit_for_tokenizer(
    tokenizer: Any,
    task: Task,
    test_index: int,
    max_length: int,
    answer: Grid | None = None,
    train: Sequence[Pair] | None = None,
) -> FittedPrompt:
    """Fit one test input of ``task`` for ``tokenizer``; the result carries the prompt's token ids.

    With ``answer`` known (training) the room kept is its real length plus the end-of-turn tokens; otherwise it is
    ``largest_answer_tokens`` plus the same end tokens.
    """
    train = task.train if train is None else train
    test_input = task.test[test_index].input

    def encode(pairs: Sequence[Pair], grid: Grid) -> list[int]:
        return tokenizer(render(tokenizer, pairs, grid).prompt, add_special_tokens=False)["input_ids"]

    end_tokens = _end_of_turn_tokens(tokenizer)
    reserved = (physical_tokens(answer) if answer is not None else largest_answer_tokens(task)) + end_tokens
    return fit_train_pairs(train, test_input, encode, max_length, reserved)


def _end_of_turn_tokens(tokenizer: Any) -> int:
    """Tokens the chat template adds after the assistant's content (e.g. ``<|im_end|>\\n``)."""
    cache = getattr(tokenizer, "_arc_kit_end_tokens", None)
    if cache is not None:
        return cache
    tiny = ((0,),)
    example = render(tokenizer, [Pair(tiny, tiny)], tiny, tiny)
    n = len(tokenizer(example.completion, add_special_tokens=False)["input_ids"]) - physical_tokens(tiny)
    try:
        tokenizer._arc_kit_end_tokens = n
    except AttributeError:
        pass
    return n
