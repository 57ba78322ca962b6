"""`arc-kit prompt` (the exact text a model is fed, in its format) and `arc-kit shrink-vocab` (shrink a
model's vocabulary to its format's tokens); imports stay inside the handlers so `--help` is instant."""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from arc_kit.cli.flags import challenges_file, input_errors, setting_value, solutions_file
from arc_kit.config.run import FormatChoice, SolverSettings

FORMAT_CHOICES = typing.get_args(FormatChoice)


def add_format_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """``--format``, with the solver's default (``SolverSettings.format``: auto)."""
    parser.add_argument("--format", dest="prompt_format", choices=FORMAT_CHOICES, default=SolverSettings.format,
                        help=f"the prompt format {what} (default: %(default)s: the manifest's, else nvarc for "
                             "NVARC's 16-token tokenizer, else arc-kit)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this area's sub-commands on the top-level parser."""
    p = sub.add_parser("prompt", help="print the exact text a model is fed for one test input (and its token ids)",
                       description="The prompt of TASK_ID's test input N as the solver builds it before any view: "
                       "rendered in the model's prompt format, train pairs dropped (largest first) to fit "
                       "--max-length. Without --model: the ARC tokenizer (arc-kit) or NVARC's (nvarc). The text "
                       "goes to stdout exactly; a note on what was fitted goes to stderr.")
    p.add_argument("challenges", type=challenges_file, help="challenges file, task folder or data set name")
    p.add_argument("task_id", help="the task's id")
    p.add_argument("--test", type=int, default=0, help="which test input (default: %(default)s)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, help="weights folder: its tokenizer and format")
    add_format_flag(source, "to render in")
    p.add_argument("--ids", action="store_true", help="also print the token ids, on a line after the text")
    p.add_argument("--answer", action="store_true",
                   help="append the answer's completion: the training text (the solution must be known)")
    p.add_argument("--solutions", type=solutions_file, help="solutions file or data set name (for --answer)")
    p.add_argument("--max-length", type=setting_value(SolverSettings, "max_length"),
                   default=SolverSettings.max_length,
                   help="context the prompt must fit, answer room included (default: %(default)s, the solver's)")
    p.set_defaults(handler=_prompt)

    p = sub.add_parser("shrink-vocab", help="shrink a model's vocabulary to the tokens its prompt format writes",
                       description="Keep only the tokens a text in the model's format holds (nvarc: NVARC's 16, "
                       "same ids; arc-kit: digits, newline, the prompt's words and special tokens): rows of the "
                       "input embedding and lm_head, a word-level tokenizer with the format's chat template, the "
                       "config's vocab_size. Logits at kept ids are unchanged; the folder loads with plain "
                       "AutoModelForCausalLM/AutoTokenizer offline and runs everywhere the kit runs a model.")
    p.add_argument("model", type=Path, help="merged weights folder (or an export root)")
    p.add_argument("--out", type=Path, required=True, help="new folder for the shrunk model")
    add_format_flag(p, "the model speaks")
    p.set_defaults(handler=_shrink_vocab)


@input_errors
def _prompt(args: argparse.Namespace) -> int:
    from arc_kit.core.formats import encode_text, fit_for_tokenizer, get_format
    from arc_kit.core.tasks import TaskFileError, load_tasks

    tasks = load_tasks(args.challenges, args.solutions)  # before the tokenizer: a bad file fails fast
    task = next((t for t in tasks if t.task_id == args.task_id), None)
    if task is None:
        raise TaskFileError(f"{args.challenges}: no task {args.task_id!r}")
    if not 0 <= args.test < len(task.test):
        raise TaskFileError(f"task {task.task_id} has {len(task.test)} test input(s); --test {args.test} is not one")
    if args.model is not None:
        from arc_kit.models.loading import load_tokenizer, resolve_format, weights_folder

        folder = weights_folder(args.model)
        tokenizer = load_tokenizer(folder, local_only=True)
        prompt_format = resolve_format(args.prompt_format, folder, tokenizer)
    else:
        prompt_format = get_format("arc-kit" if args.prompt_format == "auto" else args.prompt_format)
        tokenizer = _built_in_tokenizer(prompt_format.name)
    pair = task.test[args.test]
    if args.answer and pair.output is None:
        raise TaskFileError(f"task {task.task_id}: no solution for test input {args.test} (give --solutions)")
    answer = pair.output if args.answer else None  # fitted as training fits it: room for the real answer
    fitted = fit_for_tokenizer(tokenizer, prompt_format, task, args.test, args.max_length, answer=answer)
    rendered = prompt_format.render(tokenizer, fitted.train, pair.input, answer)
    sys.stdout.write(rendered.text)
    if args.ids:
        ids = encode_text(tokenizer, rendered.text)
        sys.stdout.write(("" if rendered.text.endswith("\n") else "\n") + " ".join(map(str, ids)) + "\n")
    print(f"format {prompt_format.name}: {len(fitted.train)} of {len(task.train)} train pairs kept to fit "
          f"{args.max_length} tokens; prompt {fitted.prompt_tokens} tokens, answer room {fitted.reserved_tokens}",
          file=sys.stderr)
    return 0


def _built_in_tokenizer(name: str):  # noqa: ANN202 - a transformers tokenizer; typed loosely to keep imports lazy
    """The tokenizer a format is shown with when no model is given: the ARC one, or NVARC's 16 tokens."""
    if name == "nvarc":
        from arc_kit.models.vocab import nvarc_tokenizer

        return nvarc_tokenizer()
    from arc_kit.models.tiny import build_arc_tokenizer

    return build_arc_tokenizer()


@input_errors
def _shrink_vocab(args: argparse.Namespace) -> int:
    from arc_kit.models.vocab import shrink_vocabulary

    result = shrink_vocabulary(args.model, args.out, args.prompt_format, local_only=True)
    print(f"{args.model} -> {result.out_dir}: vocabulary {result.source_vocab_size:,} -> {result.kept} tokens "
          f"({result.prompt_format} format; embeddings {'tied' if result.tied else 'untied'}); "
          f"arc_kit_manifest.json records the format")
    return 0
