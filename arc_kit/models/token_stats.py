"""Token statistics: how long each prompt + answer is, against the physical floor of the grids it holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from arc_kit.core.formats import PromptFormat, encode_text, fit_for_tokenizer
from arc_kit.core.tasks import TaskSet
from arc_kit.core.text import TokenizerError, physical_tokens


@dataclass
class TestInputTokens:
    task_id: str
    test_index: int
    tokens: int  # prompt + answer (the real answer when known, else the room reserved for it)
    physical: int  # cells + rows of every grid the example holds (train pairs kept, test input, answer)
    dropped_pairs: int
    fits: bool


BUILT_IN_TOKENIZERS = ("qwen", "nvarc")


def counting_tokenizer(name_or_folder: str | None) -> Any:
    """The tokenizer to count with: None -> the ARC one, ``"qwen"`` -> Qwen2.5/3's vocabulary, ``"nvarc"`` ->
    NVARC's 16 tokens (all built offline), else a local tokenizer folder (read by the kit's loader, as inference
    reads it). Checked to give one token per cell; errors are a ``ValueError`` naming the folder (never a hub
    look-up: a typo must not read as "not a valid repo id")."""
    from arc_kit.core.text import check_tokenizer

    if name_or_folder is None:
        from arc_kit.models.tiny import build_arc_tokenizer

        tokenizer = build_arc_tokenizer()
    elif name_or_folder == "qwen":
        from arc_kit.models.qwen_vocab import build_qwen_tokenizer

        tokenizer = build_qwen_tokenizer()
    elif name_or_folder == "nvarc":
        from arc_kit.models.vocab import nvarc_tokenizer

        tokenizer = nvarc_tokenizer()
    else:
        folder = Path(name_or_folder)
        if not folder.exists():
            raise TokenizerError(f"tokenizer folder {folder} does not exist (give a tokenizer folder, or 'qwen')")
        if not folder.is_dir():
            raise TokenizerError(f"tokenizer {folder} is a file; give the folder holding it")
        if not any(folder.iterdir()):
            raise TokenizerError(f"tokenizer folder {folder} is empty")
        from arc_kit.models.loading import load_tokenizer

        try:
            tokenizer = load_tokenizer(folder, local_only=True)
        except TokenizerError as e:  # it loaded, but fails check_tokenizer
            raise TokenizerError(f"tokenizer {folder}: {e}") from None
        except (OSError, ValueError, KeyError) as e:
            raise TokenizerError(f"tokenizer folder {folder}: cannot load a tokenizer from it "
                             f"({_first_line(e)})") from None
    try:
        check_tokenizer(tokenizer)
    except ValueError as e:
        raise TokenizerError(f"tokenizer {name_or_folder or 'ARC'}: {e}") from None
    return tokenizer


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def token_format(name_or_folder: str | None, tokenizer: Any, requested: str) -> PromptFormat:
    """The format to count in: a folder's (``resolve_format``: its manifest, its tokenizer, or ``requested``);
    for a built-in tokenizer, ``requested``, else ``nvarc`` for NVARC's, else ``arc-kit``."""
    from arc_kit.core.formats import check_format, detect_format, get_format

    if name_or_folder is not None and name_or_folder not in BUILT_IN_TOKENIZERS:
        from arc_kit.models.loading import resolve_format

        return resolve_format(requested, name_or_folder, tokenizer)
    prompt_format = get_format(requested if requested != "auto" else detect_format(tokenizer) or "arc-kit")
    check_format(tokenizer, prompt_format, f"tokenizer {name_or_folder or 'ARC'}")
    return prompt_format


def token_stats(tasks: TaskSet, tokenizer: Any, prompt_format: PromptFormat, max_length: int) -> dict[str, Any]:
    rows: list[TestInputTokens] = []
    for task in tasks:
        for i, pair in enumerate(task.test):
            fitted = fit_for_tokenizer(tokenizer, prompt_format, task, i, max_length, answer=pair.output)
            if pair.output is not None:
                example = prompt_format.render(tokenizer, fitted.train, pair.input, pair.output)
                n = len(encode_text(tokenizer, example.text))
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
