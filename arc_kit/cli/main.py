"""The ``arc-kit`` command: thin argument parsing over the library; heavy imports happen inside handlers."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from arc_kit.cli import data, demo, dry_run, formats, kaggle, reselect, train
from arc_kit.cli.flags import Parser, challenges_file, input_errors, setting_value, solutions_file
from arc_kit.config.run import SolverSettings
from arc_kit.config.training import ModelSettings
from arc_kit.errors import Terminated


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2, one line already printed): the exit code
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        with notices_on_stderr():
            return int(args.handler(args) or 0)
    except Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


NOTICE_FORMAT = "%(levelname)s %(name)s: %(message)s"  # as the kernel's log writes them (arc_kit.run.kernel)


@contextlib.contextmanager
def notices_on_stderr() -> Iterator[None]:
    """While a command runs, the library's notices (it reports them through ``logging`` only) are printed on stderr:
    the kit's from INFO up (the training data's size, a weights folder picked among several), other libraries'
    from WARNING. The handler is removed afterwards, so a command run from a test or a script leaves none behind."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(NOTICE_FORMAT))
    root, kit = logging.getLogger(), logging.getLogger("arc_kit")
    kit_level = kit.level
    root.addHandler(handler)
    kit.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        kit.setLevel(kit_level)


def run_standalone(command: list[str], argv: list[str] | None = None) -> int:
    """Run an ``arc-kit`` command from a script (the scripts/ wrappers): ``command`` then ``argv`` (default: the
    script's own arguments)."""
    return main([*command, *(sys.argv[1:] if argv is None else argv)])


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="arc-kit",
        description="Fine-tune a small LLM on ARC tasks and submit it to the ARC Prize on Kaggle, offline.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_foundation_commands(sub)
    for area in (train, dry_run, formats, reselect, kaggle, data, demo):
        area.add_commands(sub)
    return parser


def _add_foundation_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tiny-model", help="write the ARC tokenizer and a tiny random causal LM (tests, demo)")
    p.add_argument("--out", required=True, type=Path, help="folder to write (save_pretrained layout)")
    for name, field in _tiny_fields().items():
        p.add_argument("--" + name.removeprefix("tiny_").replace("_", "-"), dest=name, type=int, metavar="N",
                       default=argparse.SUPPRESS, help=f"{field.metadata['help']} (default: {field.default})")
    p.set_defaults(handler=_tiny_model)

    p = sub.add_parser("score", help="score a submission against a solutions file (ARC Prize metric)")
    p.add_argument("submission", type=Path)
    p.add_argument("solutions", type=solutions_file, help="solutions file or data set name (arc-kit data list)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.set_defaults(handler=_score)

    p = sub.add_parser("validate", help="check a submission against the challenges file; exit 1 on any problem")
    p.add_argument("submission", type=Path)
    p.add_argument("challenges", type=challenges_file, help="challenges file or data set name (arc-kit data list)")
    p.set_defaults(handler=_validate)

    p = sub.add_parser("tokens", help="token counts per test input against the physical floor of the grids")
    p.add_argument("challenges", type=challenges_file, help="challenges file, task folder or data set name")
    p.add_argument("--solutions", type=solutions_file, help="solutions file or data set name")
    p.add_argument("--tokenizer", help="tokenizer or weights folder, 'qwen' for Qwen2.5/3's vocabulary or 'nvarc' "
                   "for NVARC's 16 tokens (default: the ARC one)")
    formats.add_format_flag(p, "to count in")
    solver_max_length = next(f for f in dataclasses.fields(SolverSettings) if f.name == "max_length")
    p.add_argument("--max-length", type=setting_value(SolverSettings, "max_length"),
                   default=solver_max_length.default,
                   help=f"the solver's max_length: {solver_max_length.metadata['help']} (default: %(default)s)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_tokens)


def _tiny_fields() -> dict[str, dataclasses.Field]:
    """The training settings' ``tiny_*`` fields: the tiny model's shape, whose defaults live there."""
    return {f.name: f for f in dataclasses.fields(ModelSettings) if f.name.startswith("tiny_")}


@input_errors
def _tiny_model(args: argparse.Namespace) -> int:
    from arc_kit.models.tiny import tiny_shape, write_tiny_model

    given = {name: getattr(args, name) for name in _tiny_fields() if hasattr(args, name)}
    out = write_tiny_model(args.out, tiny_shape(ModelSettings(**given).check()))
    print(f"tiny model and ARC tokenizer written to {out}")
    return 0


@input_errors
def _score(args: argparse.Namespace) -> int:
    from arc_kit.core.metric import score_files

    report = score_files(args.submission, args.solutions)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print(f"score {report.score:.4f} (ARC Prize, per task)  per output {report.score_per_output:.4f}  "
              f"{report.correct_outputs}/{report.test_outputs} test outputs over {report.tasks} tasks")
    return 0


@input_errors
def _validate(args: argparse.Namespace) -> int:
    from arc_kit.core.submission import validate_submission_file

    problems = validate_submission_file(args.submission, args.challenges)
    if problems:
        print(f"{args.submission}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"- {problem}", file=sys.stderr)
        return 1
    print(f"{args.submission}: valid for {args.challenges}")
    return 0


@input_errors
def _tokens(args: argparse.Namespace) -> int:
    from arc_kit.core.tasks import load_tasks
    from arc_kit.models.token_stats import counting_tokenizer, token_format, token_stats

    tasks = load_tasks(args.challenges, args.solutions)  # before the tokenizer: a bad file fails fast
    tokenizer = counting_tokenizer(args.tokenizer)
    stats = token_stats(tasks, tokenizer, token_format(args.tokenizer, tokenizer, args.prompt_format),
                        args.max_length)
    if args.json:
        print(json.dumps(stats))
    else:
        print(f"{stats['test_inputs']} test inputs, {stats['fit']} fit {args.max_length} tokens, "
              f"{stats['needed_pairs_dropped']} needed train pairs dropped; total {stats['total_tokens']} tokens = "
              f"{stats['overhead_ratio']:.3f}x the physical floor; longest {stats['max_tokens']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
