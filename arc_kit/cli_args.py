"""Command-line flags generated from the settings dataclasses, so a flag and its default cannot drift apart.

``transformers.HfArgumentParser`` turns each dataclass field into a flag with the field's type, default and help;
here every flag is spelt with hyphens (``--batch-size``, ``--no-colour-views``), the CLI convention, and a
sub-command takes those flags through argparse's ``parents``. Abbreviations are off in every parser: a prefix of
one flag must never silently mean another.

Which flags were given is tracked (their parser defaults are ``SUPPRESS``, so an absent flag leaves no attribute):
a flag given on the command line always wins over ``--settings FILE``, even when its value is the dataclass
default, and the defaults themselves come only from the dataclasses.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar, get_type_hints

from arc_kit.settings import KernelPlan, TTTConfig, build, fields_of, load_plan

T = TypeVar("T")

# Groups whose field names would clash with another group's (seed, batch_size, max_length) take a prefix on the
# command line: TTTConfig.learning_rate is --ttt-learning-rate.
FLAG_PREFIX: dict[type, str] = {TTTConfig: "ttt_"}
SETTINGS_GROUPS = "_settings_groups"  # the namespace attribute naming the dataclasses a command has flags for


class Parser(argparse.ArgumentParser):
    """The kit's argument parser: no abbreviations, and an error is one line (``error: arc-kit dry-run: <message>``,
    exit 2), like every other bad input, not argparse's usage block, which for a command with every settings flag
    runs to fifty lines and buries the message. Sub-command parsers are of this class too (argparse makes them of
    the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {' '.join(message.split())} (see {self.prog} --help)\n")


def _hyphens_only(names: tuple[str, ...]) -> tuple[str, ...]:
    """Drop ``--some_flag`` where ``--some-flag`` is also offered (HfArgumentParser offers both)."""
    return tuple(n for n in names if not (n.startswith("--") and "_" in n and n.replace("_", "-") in names))


def settings_parent(*classes: type) -> argparse.ArgumentParser:
    """A parent parser holding the flags of ``classes`` (pass it as ``parents=[...]`` to ``add_parser``); the
    namespace it fills holds only the flags given, plus which classes the command has flags for."""
    from transformers import HfArgumentParser

    class HyphenParser(HfArgumentParser):
        def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
            return super().add_argument(*_hyphens_only(names), **kwargs)

    parser = HyphenParser([_prefixed(cls) for cls in classes], add_help=False)
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    parser.set_defaults(**{SETTINGS_GROUPS: classes})
    return parser


def _prefixed(cls: type) -> type:
    """``cls`` itself, or a copy whose fields carry ``FLAG_PREFIX[cls]`` (same types, defaults and help)."""
    prefix = FLAG_PREFIX.get(cls)
    if not prefix:
        return cls
    hints = get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        default = (dataclasses.field(default_factory=f.default_factory, metadata=f.metadata)
                   if f.default_factory is not dataclasses.MISSING else dataclasses.field(default=f.default,
                                                                                          metadata=f.metadata))
        specs.append((prefix + f.name, hints[f.name], default))
    return dataclasses.make_dataclass(f"{prefix}{cls.__name__}", specs)


def given_flags(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line, by field name."""
    prefix = FLAG_PREFIX.get(cls, "")
    return {f.name: getattr(args, prefix + f.name) for f in dataclasses.fields(cls) if hasattr(args, prefix + f.name)}


def settings_from_args(args: argparse.Namespace, cls: type[T], base: T | None = None) -> T:
    """``base`` (default: the dataclass defaults) with every flag given on the command line put over it; checking
    the values is the caller's next step."""
    return build(cls, {**fields_of(base if base is not None else cls(), cls), **given_flags(args, cls)})


def plan_from_args(args: argparse.Namespace) -> KernelPlan:
    """The settings a command runs with: ``--settings FILE`` (``[kernel]``, ``[run]``, ``[solver]``, ``[ttt]``
    tables), then the flags given on top; checked, so a nonsense value is one line naming its field."""
    base = load_plan(args.settings) if getattr(args, "settings", None) else KernelPlan()
    flagged = getattr(args, SETTINGS_GROUPS, ())
    plan = KernelPlan(*(settings_from_args(args, type(group), group) if type(group) in flagged else group
                        for group in (base.kernel, base.run, base.solver, base.ttt)))
    plan.check()
    return plan


def add_settings_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", type=Path, default=None, metavar="TOML",
                        help="a settings file with [kernel], [run], [solver] and [ttt] tables; flags given "
                             "override it")


def challenges_file(value: str) -> Path:
    """argparse ``type=`` for a challenges argument: an existing path, or a named data set's challenges file."""
    return _task_file(value, solutions=False)


def solutions_file(value: str) -> Path:
    """argparse ``type=`` for a solutions argument: an existing path, or a named data set's solutions file."""
    return _task_file(value, solutions=True)


def _task_file(value: str, solutions: bool) -> Path:
    """Resolved while the command line is parsed, so a bad name stops the command before anything loads."""
    from arc_kit.named_data import resolve_task_path

    try:
        return resolve_task_path(value, solutions=solutions)
    except (OSError, ValueError) as exc:  # argparse shows an ArgumentTypeError's message as it is
        raise argparse.ArgumentTypeError(describe(exc)) from None


Handler = Callable[[argparse.Namespace], int]


def input_errors(handler: Handler) -> Handler:
    """Bad input (a missing, unreadable or malformed file, a bad setting) ends in ``error: <message>`` and exit 2,
    not a traceback. The kit's input errors are ValueErrors (TaskFileError, SettingsError, ConfigError, ...) and
    their messages name the file or field; an OSError is named by its file."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (OSError, ValueError) as exc:
            print(f"error: {describe(exc)}", file=sys.stderr)
            return 2

    return run


def describe(exc: BaseException) -> str:
    """One line; an OSError names its file (``str()`` would say "[Errno 2] No such file ...: 'x'")."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    return " ".join(str(exc).split()) or type(exc).__name__
