"""Prompt formats: how a task becomes the text a model reads, and its answer the text the model writes.

This is the one place a task becomes text. Training rows (``core.examples``, ``training.dataset``), test-time
training (``solve.ttt``), prompts (``solve.prompts``), re-scoring (``solve.rescoring``), the search's token ids
(``solve.dfs``), token counts and the shrunk vocabulary (``models.vocab``) all ask the format the weights speak. The
manifest written beside exported weights records it (``models.manifest``); a folder without one (a published
checkpoint) is recognised by its tokenizer (``detect_format``) or named by a setting.

- ``arc-kit``, the kit's own: one user message holding every train pair and the test input, with words, rendered
  through the tokenizer's chat template; the answer is the assistant message (rows of digits, each ending in a
  newline), then the template's end of turn::

      user:      Input:\\n12\\n34\\nOutput:\\n21\\n43\\n  ...  Test input:\\n56\\nTest output:
      assistant: 65\\n

- ``nvarc``, NVARC's (1st in ARC Prize 2025; their Qwen3-4B speaks it with a 16-token vocabulary): a multi-turn
  chat with no system turn and no words; each train pair is a user turn (its input) and an assistant turn (its
  output), the test input a user turn and an open assistant turn. Rows are joined by newlines with none after the
  last one, and no newline separates turns::

      <|im_start|>user\\n12\\n34<|im_end|><|im_start|>assistant\\n21\\n43<|im_end|>...
      <|im_start|>user\\n56<|im_end|><|im_start|>assistant\\n          (one line in reality)

  The answer is ``65<|im_end|>``. Written by hand, not through a chat template: their tokenizer has none.

``loss_on`` (training, both formats): ``answer`` learns the test output and its end of turn; ``all_outputs`` also
learns every demonstration output in the text (NVARC's collator: every assistant turn, its ``<|im_end|>``
included; in the arc-kit format each demonstration output's rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arc_kit.core.tasks import Grid, Pair, Task
from arc_kit.core.text import (
    FittedPrompt,
    TokenizerError,
    answer_from_generation,
    fit_train_pairs,
    grid_to_text,
    largest_answer_tokens,
    marker_end_ids,
    physical_tokens,
)
from arc_kit.errors import ArcKitError

ARC_KIT = "arc-kit"
NVARC = "nvarc"
FORMAT_NAMES = (ARC_KIT, NVARC)  # arc_kit.config.run.FormatChoice without "auto" (a test checks)
LOSS_ON = ("answer", "all_outputs")  # arc_kit.config.run.LossOn (a test checks)

# The arc-kit format's words.
INPUT_LABEL = "Input:\n"
OUTPUT_LABEL = "Output:\n"
TEST_INPUT_LABEL = "Test input:\n"
TEST_OUTPUT_LABEL = "Test output:"

# NVARC's markers and its 16-token vocabulary, in its ids (the byte-level spelling: "Ċ" is the newline).
IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
NVARC_WORDS = [*"0123456789", "\n", "user", "assistant"]  # ids 0-12, in this order
NVARC_SPECIAL_TOKENS = [END_OF_TEXT, IM_START, IM_END]  # ids 13-15: pad, turn start, end of turn (eos)
NVARC_TOKENS = [*NVARC_WORDS, *NVARC_SPECIAL_TOKENS]
NVARC_VOCAB = {("Ċ" if t == "\n" else t): i for i, t in enumerate(NVARC_TOKENS)}
NVARC_CHAT_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""NVARC's own template (their ``chat_template.j2``): the kit writes it into the tokenizers it shrinks to this
format, so ``apply_chat_template`` on user/assistant turns of grids gives exactly ``NvarcFormat``'s text."""


class FormatError(ArcKitError, ValueError):
    """A format name the kit does not know, or a format the tokenizer cannot write; the message says which."""


@dataclass(frozen=True)
class RenderedExample:
    """A prompt, the completion that follows it (answer + end of turn; empty without an answer) and where the
    demonstration outputs lie in the prompt (character spans), which ``loss_on = "all_outputs"`` also learns."""

    prompt: str
    completion: str
    output_spans: tuple[tuple[int, int], ...] = ()

    @property
    def text(self) -> str:
        return self.prompt + self.completion

    def pieces(self, loss_on: str) -> list[tuple[str, bool]]:
        """The full text split into consecutive pieces, each with whether the loss learns it under ``loss_on``."""
        if loss_on not in LOSS_ON:
            raise FormatError(f"loss_on must be one of {', '.join(LOSS_ON)}, got {loss_on!r}")
        out: list[tuple[str, bool]] = []
        at = 0
        for start, end in self.output_spans if loss_on == "all_outputs" else ():
            out += [(self.prompt[at:start], False), (self.prompt[start:end], True)]
            at = end
        out.append((self.prompt[at:], False))
        out.append((self.completion, True))
        return [(text, learnt) for text, learnt in out if text]


class PromptFormat:
    """How one format turns a task into text; ``ARC_KIT_FORMAT`` and ``NVARC_FORMAT`` are the two instances."""

    name = ""

    def grid_text(self, grid: Grid) -> str:
        raise NotImplementedError

    def render(self, tokenizer: Any, train: Sequence[Pair], test_input: Grid,
               answer: Grid | None = None) -> RenderedExample:
        """The prompt for ``test_input`` after the ``train`` pairs, and the answer's completion when given."""
        raise NotImplementedError

    def parse_answer(self, text: str) -> Grid:
        """A generated answer back to a grid (``ParseError`` saying why not), read up to its first end marker."""
        return answer_from_generation(text)

    def end_ids(self, tokenizer: Any) -> list[int]:
        """The token ids that end an answer."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"PromptFormat({self.name!r})"


class ArcKitFormat(PromptFormat):
    name = ARC_KIT

    def grid_text(self, grid: Grid) -> str:
        return grid_to_text(grid)

    def user_message(self, train: Sequence[Pair], test_input: Grid) -> tuple[str, list[tuple[int, int]]]:
        """Every train pair, the test input, then ``Test output:``; and each train output's span in it."""
        text, spans = "", []
        for p in train:
            text += INPUT_LABEL + self.grid_text(p.input) + OUTPUT_LABEL
            spans.append((len(text), len(text) + len(self.grid_text(p.output))))
            text += self.grid_text(p.output)
        return text + TEST_INPUT_LABEL + self.grid_text(test_input) + TEST_OUTPUT_LABEL, spans

    def render(self, tokenizer: Any, train: Sequence[Pair], test_input: Grid,
               answer: Grid | None = None) -> RenderedExample:
        """Rendered with the tokenizer's chat template. The completion is the full text minus the generation
        prompt, so the loss mask and the decoder see exactly the tokens the model must produce, end-of-turn marker
        included."""
        content, spans = self.user_message(train, test_input)
        messages = [{"role": "user", "content": content}]
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        at = prompt.find(content)
        if at < 0:
            raise TokenizerError("the chat template changes the user message, so the prompt's grids cannot be found")
        output_spans = tuple((at + start, at + end) for start, end in spans)
        if answer is None:
            return RenderedExample(prompt, "", output_spans)
        messages.append({"role": "assistant", "content": self.grid_text(answer)})
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        if not full.startswith(prompt):
            raise TokenizerError("the chat template does not render the answer as a continuation of the prompt")
        return RenderedExample(prompt, full[len(prompt):], output_spans)

    def end_ids(self, tokenizer: Any) -> list[int]:
        """The tokenizer's eos and the chat end markers it knows."""
        return marker_end_ids(tokenizer)


class NvarcFormat(PromptFormat):
    name = NVARC

    def grid_text(self, grid: Grid) -> str:
        return "\n".join("".join(str(c) for c in row) for row in grid)

    def render(self, tokenizer: Any, train: Sequence[Pair], test_input: Grid,
               answer: Grid | None = None) -> RenderedExample:
        """Assembled by hand as NVARC's ``QwenFormatter`` does (``tokenizer`` is not needed)."""
        prompt, spans = "", []
        for p in train:
            prompt += f"{IM_START}user\n{self.grid_text(p.input)}{IM_END}{IM_START}assistant\n"
            output = self.grid_text(p.output) + IM_END
            spans.append((len(prompt), len(prompt) + len(output)))
            prompt += output
        prompt += f"{IM_START}user\n{self.grid_text(test_input)}{IM_END}{IM_START}assistant\n"
        completion = "" if answer is None else self.grid_text(answer) + IM_END
        return RenderedExample(prompt, completion, tuple(spans))

    def end_ids(self, tokenizer: Any) -> list[int]:
        """``<|im_end|>`` alone, as NVARC's search: ``<|endoftext|>`` is the padding, never an answer's end."""
        ids = tokenizer(IM_END, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise TokenizerError(f"{IM_END} is not one token in {type(tokenizer).__name__}: it cannot write the "
                                 "nvarc format")
        return [int(ids[0])]


ARC_KIT_FORMAT = ArcKitFormat()
NVARC_FORMAT = NvarcFormat()
FORMATS: dict[str, PromptFormat] = {f.name: f for f in (ARC_KIT_FORMAT, NVARC_FORMAT)}


def get_format(name: str) -> PromptFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise FormatError(f"unknown prompt format {name!r} (known: {', '.join(FORMAT_NAMES)})") from None


def detect_format(tokenizer: Any) -> str | None:
    """``nvarc`` for a tokenizer holding exactly NVARC's 16 tokens in its ids; None when the tokenizer says
    nothing (a full vocabulary can speak either format)."""
    return NVARC if dict(tokenizer.get_vocab()) == NVARC_VOCAB else None


# ---------------------------------------------------------------------------------------------------------------
# A format with a tokenizer: fitting a context, the answer's tokens, the tokens the format uses


def fit_for_tokenizer(
    tokenizer: Any,
    prompt_format: PromptFormat,
    task: Task,
    test_index: int,
    max_length: int,
    answer: Grid | None = None,
    train: Sequence[Pair] | None = None,
) -> FittedPrompt:
    """Fit one test input of ``task`` in ``prompt_format`` for ``tokenizer``; the result carries the prompt's ids.

    With ``answer`` known (training) the room kept is its real length plus the end-of-turn tokens; otherwise it is
    ``largest_answer_tokens`` plus the same end tokens.
    """
    train = task.train if train is None else train
    test_input = task.test[test_index].input

    def encode(pairs: Sequence[Pair], grid: Grid) -> list[int]:
        return encode_text(tokenizer, prompt_format.render(tokenizer, pairs, grid).prompt)

    end_tokens = end_of_turn_tokens(tokenizer, prompt_format)
    reserved = (physical_tokens(answer) if answer is not None else largest_answer_tokens(task)) + end_tokens
    return fit_train_pairs(train, test_input, encode, max_length, reserved)


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of text the kit rendered (``add_special_tokens=False``: the format writes every marker itself)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def end_of_turn_tokens(tokenizer: Any, prompt_format: PromptFormat) -> int:
    """Tokens the format adds after an answer's rows beyond one per row (ChatML's ``<|im_end|>\\n``: 2; NVARC's
    answer has a newline fewer and an ``<|im_end|>``: 0). Counted once per tokenizer and format."""
    cache = getattr(tokenizer, "_arc_kit_end_tokens", None)
    if cache is None:
        cache = {}
        try:
            tokenizer._arc_kit_end_tokens = cache
        except AttributeError:
            pass
    if prompt_format.name not in cache:
        tiny = ((0,),)
        example = prompt_format.render(tokenizer, [Pair(tiny, tiny)], tiny, tiny)
        cache[prompt_format.name] = len(encode_text(tokenizer, example.completion)) - physical_tokens(tiny)
    return cache[prompt_format.name]


def answer_token_ids(tokenizer: Any, prompt_format: PromptFormat) -> tuple[list[int], list[int]]:
    """(the ids an answer may contain: the ten digits and the newline; the format's end ids).

    The ids are read from a tokenized two-row grid, second row, so they are the ids a digit or newline gets in the
    middle of an answer (a SentencePiece tokenizer may give a word-initial digit another id). A tokenizer that does
    not give one token per cell and per newline is refused, as ``check_tokenizer`` would.
    """
    row = "0123456789\n"
    ids = encode_text(tokenizer, row + row)
    if len(ids) != 2 * len(row):
        raise TokenizerError(
            f"tokenizer {type(tokenizer).__name__} turns two rows of 10 cells into {len(ids)} tokens, expected "
            f"{2 * len(row)} (one per cell and one per newline)"
        )
    expand = [int(i) for i in ids[len(row):]]
    if len(set(expand)) != len(row):
        raise TokenizerError(f"tokenizer {type(tokenizer).__name__} gives two of 0-9 and newline the same id")
    return expand, prompt_format.end_ids(tokenizer)


def probe_task() -> Task:
    """A small task whose grids hold every colour and several rows: its text holds every token the format
    writes (``format_token_ids``, ``check_format``)."""
    a = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
    b = ((9, 8), (7, 6), (5, 4), (3, 2), (1, 0))
    return Task("probe", (Pair(a, b), Pair(b, a)), (Pair(a, b),))


def check_format(tokenizer: Any, prompt_format: PromptFormat, where: str) -> None:
    """Refuse, in one line naming ``where``, a tokenizer that cannot write ``prompt_format`` (a word its vocabulary
    lacks; a shrunk vocabulary raises for any text outside its format)."""
    task = probe_task()
    try:
        rendered = prompt_format.render(tokenizer, task.train, task.test[0].input, task.test[0].output)
        encode_text(tokenizer, rendered.text)
        prompt_format.end_ids(tokenizer)
    except TokenizerError as e:
        raise FormatError(f"{where}: the tokenizer cannot write the {prompt_format.name} format: {e}") from None
    except Exception as e:  # the tokenizers library raises a bare Exception for a word outside a WordLevel vocabulary
        raise FormatError(f"{where}: the tokenizer cannot write the {prompt_format.name} format "
                          f"({type(e).__name__}: {e})") from None


def format_token_ids(tokenizer: Any, prompt_format: PromptFormat) -> list[int]:
    """Every id of ``tokenizer`` a text in ``prompt_format`` can hold, plus the padding: what a vocabulary shrunk to
    the format keeps. In NVARC's order for ``nvarc`` (its 16 tokens, so the shrunk model takes NVARC's ids); sorted
    for ``arc-kit`` (the digits, the newline, the prompt's words and the special tokens its template writes).

    Why from a rendered probe rather than a list of words: the chat template decides which markers and newlines
    the text holds, and the tokenizer how they split; rendering and tokenizing a probe that holds every colour
    sees exactly the tokens training and inference will feed.
    """
    check_format(tokenizer, prompt_format, "format_token_ids")
    if prompt_format.name == NVARC:
        ids = []
        for piece in NVARC_TOKENS:
            got = encode_text(tokenizer, piece)
            if len(got) != 1:
                raise FormatError(f"{piece!r} is {len(got)} tokens in this tokenizer, not one: it cannot be shrunk to "
                                  "NVARC's 16 tokens")
            ids.append(int(got[0]))
        return ids
    task = probe_task()
    rendered = prompt_format.render(tokenizer, task.train, task.test[0].input, task.test[0].output)
    kept = set(encode_text(tokenizer, rendered.text)) | set(prompt_format.end_ids(tokenizer))
    kept |= {int(t) for t in (tokenizer.pad_token_id, tokenizer.eos_token_id) if t is not None}
    return sorted(kept)
